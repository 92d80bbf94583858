package worker

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestExtendWriteDeadline: a response that takes longer than WriteTimeout
// completes when the handler moves the deadline per chunk, and is cut off
// when it does not.
func TestExtendWriteDeadline(t *testing.T) {
	const timeout = 150 * time.Millisecond
	stream := func(extend bool) http.HandlerFunc {
		return func(rw http.ResponseWriter, _ *http.Request) {
			for range 4 {
				if extend {
					extendWriteDeadline(rw, timeout)
				}
				// Slow work between chunks: 4 × 60 ms is past the timeout.
				time.Sleep(60 * time.Millisecond) //nolint:forbidigo // the slowness under test
				if _, err := io.WriteString(rw, strings.Repeat("x", 1000)+"\n"); err != nil {
					return
				}
				rw.(http.Flusher).Flush()
			}
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/extend", stream(true))
	mux.Handle("/plain", stream(false))
	srv, limit := newServer(mux, HTTPLimits{WriteTimeout: timeout})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(limit(ln)) //nolint:errcheck // closed below
	t.Cleanup(func() { srv.Close() })
	get := func(path string) (int, error) {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return len(b), err
	}
	if n, err := get("/extend"); err != nil || n != 4*1001 {
		t.Errorf("extended: %d bytes, %v; want all 4004", n, err)
	}
	if n, err := get("/plain"); err == nil && n == 4*1001 {
		t.Errorf("without extending: the whole response (%d bytes) arrived past WriteTimeout", n)
	}
}
