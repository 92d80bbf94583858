package testkit

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func upstream(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "real body of "+r.URL.Path+" host "+r.Host)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, ctx context.Context, url string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No keep-alive: net/http silently retries an idempotent request whose
	// reused connection was reset, which would hide the injected reset.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestFaultProxy(t *testing.T) {
	p := StartFaultProxy(t, upstream(t), 1)
	ctx := context.Background()
	host := strings.TrimPrefix(p.URL, "http://")

	if code, body, err := get(t, ctx, p.URL+"/a"); err != nil || code != 200 || body != "real body of /a host "+host {
		t.Fatalf("pass-through: %d %q %v", code, body, err)
	}
	if rec, ok := p.Last(); !ok || string(rec.Body) != "real body of /a host "+host || rec.ContentType != "text/plain" {
		t.Errorf("recorded %+v %v", rec, ok)
	}

	p.Next(2, nil, Status(503, "SlowDown"))
	for i := 0; i < 2; i++ {
		if code, body, _ := get(t, ctx, p.URL+"/a"); code != 503 || !strings.Contains(body, "<Code>SlowDown</Code>") {
			t.Fatalf("injected status %d: %d %q", i, code, body)
		}
	}
	if code, _, _ := get(t, ctx, p.URL+"/a"); code != 200 {
		t.Fatalf("after the next 2: %d", code)
	}

	p.Next(1, func(r *http.Request) bool { return r.URL.Path == "/only" }, Body("application/json", []byte("{}")))
	if code, body, _ := get(t, ctx, p.URL+"/a"); code != 200 || body == "{}" {
		t.Fatalf("predicate ignored: %q", body)
	}
	if _, body, _ := get(t, ctx, p.URL+"/only"); body != "{}" {
		t.Fatalf("replacement body: %q", body)
	}

	p.Next(1, nil, Reset())
	if _, _, err := get(t, ctx, p.URL+"/a"); err == nil {
		t.Fatal("reset: no error")
	}

	p.Next(1, nil, Truncate(5))
	if _, body, err := get(t, ctx, p.URL+"/a"); !errors.Is(err, io.ErrUnexpectedEOF) || body != "real " {
		t.Fatalf("truncated: %q %v", body, err)
	}

	p.Next(1, nil, Delay(10*time.Millisecond))
	if code, _, err := get(t, ctx, p.URL+"/a"); err != nil || code != 200 {
		t.Fatalf("delayed: %d %v", code, err)
	}

	// A stall holds the request until the client gives up ...
	p.Next(1, nil, Stall())
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, _, err := get(t, sctx, p.URL+"/a")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled request: %v, want a deadline", err)
	}
	// ... or until Release.
	p.Next(1, nil, Stall())
	done := make(chan error, 1)
	go func() { _, _, err := get(t, ctx, p.URL+"/a"); done <- err }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := p.WaitStalled(wctx, 2); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("stalled request returned before Release: %v", err)
	default:
	}
	p.Release()
	if err := <-done; err != nil {
		t.Fatalf("released request: %v", err)
	}
	if n := p.Injected(); n != 8 {
		t.Errorf("injected %d, want 8", n)
	}
}

// The same seed fires a rated rule on the same requests.
func TestFaultProxyRateIsSeeded(t *testing.T) {
	up := upstream(t)
	pattern := func(seed uint64) string {
		p := StartFaultProxy(t, up, seed)
		p.Rate(0.5, IsGET, Status(500, ""))
		var b strings.Builder
		for i := 0; i < 40; i++ {
			code, _, err := get(t, context.Background(), p.URL+"/x")
			if err != nil {
				t.Fatal(err)
			}
			if code == 500 {
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b, c := pattern(7), pattern(7), pattern(8)
	if a != b {
		t.Errorf("seed 7 twice: %s vs %s", a, b)
	}
	if a == c {
		t.Errorf("seeds 7 and 8 agree: %s", a)
	}
	if n := strings.Count(a, "x"); n < 8 || n > 32 {
		t.Errorf("rate 0.5 fired %d of 40", n)
	}
}
