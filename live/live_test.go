package live

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Events arrive in order, one SSE event per CloudEvent, with the id of
// each form and the CloudEvent as data.
func TestSingleSourceOrderAndIDs(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.Open = true })
	s := e.open("/sources/a/events", nil)
	if ct := s.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	for i := 1; i <= 20; i++ {
		e.publish("a", 1+i%3)
		if i%5 == 0 {
			e.publish("b", 1) // another source's events do not show
		}
	}
	var want uint64
	for i := 1; i <= 20; i++ {
		p := s.next(false)
		if p.Event != "contents-changed" {
			t.Fatalf("event %q", p.Event)
		}
		src, last := lastSeqOf(t, p)
		want += uint64(1 + i%3)
		if src != "a" || last != want || p.ID != strconv.FormatUint(want, 10) {
			t.Fatalf("event %d: source %s lastSeq %d id %q, want a %d %d", i, src, last, p.ID, want, want)
		}
		if strings.ContainsAny(p.Data, "\n\r") {
			t.Fatal("data spans lines")
		}
	}
}

// One connection carries several sources, each event's id naming its
// source.
func TestMultiSource(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.Open = true })
	s := e.open("/events?sources=a,b", nil)
	e.publish("a", 2)
	e.publish("b", 1)
	e.publish("a", 1)
	want := []string{"a:2", "b:1", "a:3"}
	for _, id := range want {
		p := s.next(false)
		src, last := lastSeqOf(t, p)
		if p.ID != id || src+":"+strconv.FormatUint(last, 10) != id {
			t.Fatalf("got id %q (data %s:%d), want %q", p.ID, src, last, id)
		}
	}
}

// A reconnect with Last-Event-ID gets exactly the events it missed, then
// the live ones; header and query parameter alike, both forms.
func TestReplay(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.Open = true })
	for range 10 {
		e.publish("a", 1)
		e.publish("b", 2)
	}
	check := func(s *stream, ids ...string) {
		t.Helper()
		for _, id := range ids {
			if p := s.next(false); p.ID != id || p.Event != "contents-changed" {
				t.Fatalf("got %s %q, want contents-changed %q", p.Event, p.ID, id)
			}
		}
	}
	s1 := e.open("/sources/a/events", map[string]string{"Last-Event-ID": "7"})
	s2 := e.open("/sources/a/events?lastEventId=9", nil)
	s3 := e.open("/events?sources=a,b&lastEventId=a:8,b:16", nil)
	s4 := e.open("/events?sources=a,b", map[string]string{"Last-Event-ID": "b:18"}) // a: new only
	check(s1, "8", "9", "10")
	check(s2, "10")
	check(s3, "a:9", "a:10", "b:18", "b:20")
	check(s4, "b:20")
	e.publish("a", 1)
	check(s1, "11")
	check(s2, "11")
	check(s3, "a:11")
	check(s4, "a:11")
	// Caught up: nothing replayed, the next live event comes next.
	s5 := e.open("/sources/a/events", map[string]string{"Last-Event-ID": "11"})
	e.publish("a", 1)
	check(s5, "12")
}

// Events gone from the stream (retention) give a reset whose id replays
// cleanly on the next reconnect.
func TestResetAfterRetention(t *testing.T) {
	e := newEnv(t, func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 3 }, func(o *Options) { o.Open = true })
	for range 6 {
		e.publish("a", 1) // the stream keeps 4..6
	}
	s := e.open("/sources/a/events", map[string]string{"Last-Event-ID": "2"})
	p := s.next(false)
	if p.Event != "reset" || p.ID != "6" || !strings.Contains(p.Data, `"sourceId":"a"`) {
		t.Fatalf("got %+v, want a reset with id 6", p)
	}
	// Within what the stream holds: a replay, not a reset.
	s2 := e.open("/sources/a/events", map[string]string{"Last-Event-ID": "3"})
	for _, id := range []string{"4", "5", "6"} {
		if p := s2.next(false); p.Event != "contents-changed" || p.ID != id {
			t.Fatalf("got %+v, want event %s", p, id)
		}
	}
	// A client ahead of the stream (catalog recreated) is reset too.
	s3 := e.open("/events?sources=a", map[string]string{"Last-Event-ID": "a:99"})
	if p := s3.next(false); p.Event != "reset" || p.ID != "a:6" {
		t.Fatalf("got %+v, want a reset with id a:6", p)
	}
	// Live events follow a reset.
	e.publish("a", 1)
	if p := s.next(false); p.ID != "7" {
		t.Fatalf("after reset got %+v, want 7", p)
	}
}

// All of a source's events aged out: the publisher's position tells.
func TestResetWhenAllAgedOut(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) {
		o.Open = true
		o.Published = func(string) (uint64, bool) { return 40, true }
	})
	s := e.open("/sources/a/events", map[string]string{"Last-Event-ID": "12"})
	if p := s.next(false); p.Event != "reset" || p.ID != "40" {
		t.Fatalf("got %+v, want a reset with id 40", p)
	}
}

func TestHeartbeat(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) {
		o.Open = true
		o.Heartbeat = 50 * time.Millisecond
	})
	s := e.open("/sources/a/events", nil)
	for range 3 {
		if p := s.next(true); p.Comment != "ping" {
			t.Fatalf("got %+v, want a ping", p)
		}
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/sources/a/events", "", http.StatusUnauthorized},
		{"/sources/a/events", "Bearer nope", http.StatusUnauthorized},
		{"/sources/a/events", "Bearer tok", http.StatusOK},
		{"/t/tok/sources/a/events", "", http.StatusOK},
		{"/t/nope/sources/a/events", "", http.StatusUnauthorized},
		{"/t/tok/events?sources=a,b", "", http.StatusOK},
		{"/events?sources=a,b", "", http.StatusUnauthorized},
		// An unknown source is not revealed without a token.
		{"/sources/zzz/events", "", http.StatusUnauthorized},
		{"/sources/zzz/events", "Bearer tok", http.StatusNotFound},
		// assets.tokens replace the shared ones for their source.
		{"/sources/secret/events", "Bearer tok", http.StatusUnauthorized},
		{"/t/s3cr3t/sources/secret/events", "", http.StatusOK},
		{"/t/s3cr3t/events?sources=a,secret", "", http.StatusUnauthorized},
		{"/t/tok/events?sources=", "", http.StatusBadRequest},
		{"/sources/a/events?lastEventId=x", "Bearer tok", http.StatusBadRequest},
	} {
		h := map[string]string{}
		if c.auth != "" {
			h["Authorization"] = c.auth
		}
		if _, got := e.tryOpen(c.path, h); got != c.want {
			t.Errorf("GET %s (%q): %d, want %d", c.path, c.auth, got, c.want)
		}
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, nil, nil)
	s := e.open("/t/tok/sources/a/events", map[string]string{"Origin": "https://editor.example.com"})
	if got := s.resp.Header.Get("Access-Control-Allow-Origin"); got != "https://editor.example.com" {
		t.Fatalf("Allow-Origin %q", got)
	}
	s2 := e.open("/t/tok/sources/a/events", map[string]string{"Origin": "https://evil.example.com"})
	if got := s2.resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("Allow-Origin %q for a foreign origin", got)
	}
	for _, path := range []string{"/sources/a/events", "/events?sources=a"} {
		req, _ := http.NewRequest(http.MethodOptions, e.http.URL+path, nil)
		req.Header.Set("Origin", "https://editor.example.com")
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization, last-event-id")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		allow := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
		if resp.StatusCode != http.StatusNoContent || !strings.Contains(allow, "authorization") || !strings.Contains(allow, "last-event-id") {
			t.Fatalf("preflight %s: %d, allow headers %q", path, resp.StatusCode, allow)
		}
	}
}
