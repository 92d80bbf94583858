package testkit

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// FaultProxy is a reverse proxy in front of an emulator (gofakes3,
// fake-gcs-server, Azurite) that fails chosen requests the way a network, a
// load balancer or an overloaded store does. Requests no rule picks are
// forwarded unchanged (Host header included, so signatures still verify).
//
// Rules are tried in the order they were added; the first that matches and
// fires decides the request. Which requests a rated rule fires on is drawn
// from a generator seeded at start, so a test with a fixed seed and a fixed
// request order injects the same faults every run.
//
//	p := testkit.StartFaultProxy(t, emulatorURL, 1)
//	p.Next(2, nil, testkit.Status(503, "SlowDown"))   // the next two requests
//	p.Rate(0.1, testkit.IsGET, testkit.Reset())       // 10 % of GETs
//	p.Next(1, nil, testkit.Stall())                   // until p.Release()
type FaultProxy struct {
	// URL is the proxy's base URL (http://127.0.0.1:port), to use in place
	// of the emulator's.
	URL string

	target *url.URL
	srv    *httptest.Server
	rp     *httputil.ReverseProxy

	mu       sync.Mutex
	rng      *rand.Rand
	rules    []*rule
	release  chan struct{}
	injected int
	stalled  int           // requests stalled now
	stalls   int           // requests that began to stall, ever
	changed  chan struct{} // closed and replaced when a stall begins
	last     *Recorded     // the last GET forwarded unchanged
}

// Fault is what the proxy does to a request a rule picked. Build one with
// Status, Body, Reset, Delay, Stall or Truncate.
type Fault struct {
	kind   faultKind
	status int
	body   []byte
	ctype  string
	delay  time.Duration
	keep   int
}

type faultKind int

const (
	faultStatus faultKind = iota
	faultReset
	faultDelay
	faultStall
	faultTruncate
)

// Status answers with status and, unless code is empty, an XML error
// document carrying code (S3's and Azure's error format: their SDKs read
// the code from it; GCS's reads the status alone).
func Status(status int, code string) Fault {
	var body []byte
	if code != "" {
		body = fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message></Error>`, code)
	}
	return Fault{kind: faultStatus, status: status, body: body, ctype: "application/xml"}
}

// Body answers 200 with body and contentType instead of forwarding: a
// listing request then gets a page that is not (or not this bucket's)
// listing.
func Body(contentType string, body []byte) Fault {
	return Fault{kind: faultStatus, status: http.StatusOK, body: body, ctype: contentType}
}

// Reset closes the connection with a TCP reset before answering.
func Reset() Fault { return Fault{kind: faultReset} }

// Delay forwards the request after d (or fails it when the client gives up
// first).
func Delay(d time.Duration) Fault { return Fault{kind: faultDelay, delay: d} }

// Stall accepts the request and never answers, until Release is called
// (then it is forwarded) or the client gives up.
func Stall() Fault { return Fault{kind: faultStall} }

// Truncate forwards the request and sends the response's status, headers
// (with the full Content-Length) and its first keep bytes of body, then
// closes the connection: the client reads an unexpected EOF.
func Truncate(keep int) Fault { return Fault{kind: faultTruncate, keep: keep} }

type rule struct {
	match func(*http.Request) bool
	rate  float64 // probability per matching request; 1 for Next
	left  int     // matching requests left to fire on; -1 unlimited
	fault Fault
}

// IsGET matches GET requests (listings and reads).
func IsGET(r *http.Request) bool { return r.Method == http.MethodGet }

// IsHEAD matches HEAD requests (S3 and Azure stats).
func IsHEAD(r *http.Request) bool { return r.Method == http.MethodHead }

// StartFaultProxy starts a proxy on 127.0.0.1:0 in front of target (an
// emulator's base URL); seed fixes which requests rated rules fire on. It
// stops, releasing stalled requests, when the test ends.
func StartFaultProxy(t testing.TB, target string, seed uint64) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		t.Fatalf("fault proxy: target %q is not a URL", target)
	}
	p := &FaultProxy{
		target:  u,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		release: make(chan struct{}),
		changed: make(chan struct{}),
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		// A failed upstream is the emulator's problem, not a fault we
		// injected: say so plainly.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "fault proxy: upstream: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	t.Cleanup(func() {
		p.Release()
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

// Next injects fault into the next n requests that match (nil: any).
func (p *FaultProxy) Next(n int, match func(*http.Request) bool, fault Fault) {
	p.add(&rule{match: match, rate: 1, left: n, fault: fault})
}

// Rate injects fault into each matching request (nil: any) with
// probability rate, until Clear.
func (p *FaultProxy) Rate(rate float64, match func(*http.Request) bool, fault Fault) {
	p.add(&rule{match: match, rate: rate, left: -1, fault: fault})
}

func (p *FaultProxy) add(r *rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
}

// Clear removes every rule; stalled requests stay stalled until Release.
func (p *FaultProxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Release lets every request stalled so far go on to the emulator.
func (p *FaultProxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.release)
	p.release = make(chan struct{})
}

// Injected is how many requests a rule has picked so far.
func (p *FaultProxy) Injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected
}

// Stalled is how many requests are stalled right now.
func (p *FaultProxy) Stalled() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stalled
}

// WaitStalled waits until n requests have begun to stall since the proxy
// started (counting those released or given up since), or ctx ends. A
// cumulative count, because a client that gave up is noticed by the server
// only some time later.
func (p *FaultProxy) WaitStalled(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		got, ch := p.stalls, p.changed
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fault proxy: %d of %d stalls began: %w", got, n, ctx.Err())
		}
	}
}

// Recorded is a response the proxy forwarded.
type Recorded struct {
	Status      int
	ContentType string
	Body        []byte
}

// Last returns the last response forwarded unchanged for a GET request:
// what a genuine listing of the emulator looks like, to replay elsewhere
// with Body.
func (p *FaultProxy) Last() (Recorded, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		return Recorded{}, false
	}
	return *p.last, true
}

// pick returns the fault for r, if a rule fires.
func (p *FaultProxy) pick(r *http.Request) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, ru := range p.rules {
		if ru.match != nil && !ru.match(r) {
			continue
		}
		if ru.rate < 1 && p.rng.Float64() >= ru.rate {
			continue
		}
		if ru.left > 0 {
			ru.left--
			if ru.left == 0 {
				p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
			}
		}
		p.injected++
		return ru.fault, true
	}
	return Fault{}, false
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	f, ok := p.pick(r)
	if !ok {
		p.forward(w, r, true)
		return
	}
	switch f.kind {
	case faultStatus:
		if f.ctype != "" {
			w.Header().Set("Content-Type", f.ctype)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(f.body)))
		w.WriteHeader(f.status)
		_, _ = w.Write(f.body)
	case faultReset:
		_, _ = io.Copy(io.Discard, r.Body)
		resetConn(w)
	case faultDelay:
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-t.C:
			p.forward(w, r, false)
		case <-r.Context().Done():
		}
	case faultStall:
		p.mu.Lock()
		p.stalled++
		p.stalls++
		rel := p.release
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		select {
		case <-rel:
			p.forward(w, r, false)
		case <-r.Context().Done():
		}
		p.mu.Lock()
		p.stalled--
		p.mu.Unlock()
	case faultTruncate:
		p.truncate(w, r, f.keep)
	}
}

// forward proxies r; record says whether to remember a GET's response.
func (p *FaultProxy) forward(w http.ResponseWriter, r *http.Request, record bool) {
	if !record || r.Method != http.MethodGet {
		p.rp.ServeHTTP(w, r)
		return
	}
	rec := &recorder{ResponseWriter: w}
	p.rp.ServeHTTP(rec, r)
	p.mu.Lock()
	p.last = &Recorded{Status: rec.status, ContentType: rec.Header().Get("Content-Type"), Body: rec.body.Bytes()}
	p.mu.Unlock()
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(s int) { r.status = s; r.ResponseWriter.WriteHeader(s) }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// truncate gets the real response, then writes it by hand on the hijacked
// connection so that the body can stop short of its Content-Length.
func (p *FaultProxy) truncate(w http.ResponseWriter, r *http.Request, keep int) {
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if keep > len(body) {
		keep = len(body)
	}
	conn, buf, err := hijack(w)
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", rec.Code, http.StatusText(rec.Code))
	h := rec.Header().Clone()
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("Transfer-Encoding")
	_ = h.Write(buf)
	buf.WriteString("\r\n")
	buf.Write(body[:keep])
	_ = buf.Flush()
}

func hijack(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("fault proxy: connection cannot be hijacked")
	}
	return hj.Hijack()
}

func resetConn(w http.ResponseWriter) {
	conn, _, err := hijack(w)
	if err != nil {
		return
	}
	closeReset(conn)
}

// closeReset closes conn with a RST rather than a FIN, the way a dropped
// connection looks to the client.
func closeReset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
