package worker

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// HTTPLimits bound what one HTTP client may cost the worker. A zero field
// takes its Default value; tests shorten them through Options.HTTP.
type HTTPLimits struct {
	// ReadHeaderTimeout bounds reading a request's headers: a client
	// sending them byte by byte (slowloris) is cut off after it.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included. Webhook
	// bodies are at most 1 MiB; a sender that cannot deliver that in
	// ReadTimeout is too slow to wait for.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response. Streaming endpoints move it
	// per request (see extendWriteDeadline).
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sent no request
	// for this long.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block.
	MaxHeaderBytes int
	// MaxBodyBytes bounds every request body; handlers with a smaller
	// limit (the webhooks' 1 MiB) apply theirs first.
	MaxBodyBytes int64
	// MaxConns caps open connections. At the cap, the connection quiet
	// longest (idle between requests, or still sending its first request's
	// headers) is closed to make room, so that idle or slow clients never
	// lock out /healthz or a webhook; with none quiet, accepting waits.
	MaxConns int
}

// The defaults of HTTPLimits (documented in docs/operations.md).
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	// Longer than the 60 s idle timeout of common load balancers (AWS
	// ALB, GCP's is 600 s, nginx 75 s), so the balancer, not syncer,
	// closes a pooled connection first and never sends on one syncer has
	// just closed.
	DefaultIdleTimeout    = 90 * time.Second
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxBodyBytes   = 2 << 20
	// Each connection is one file descriptor. Go raises the soft
	// RLIMIT_NOFILE to the hard limit at start on Linux; 4,096 leaves room
	// under the common 1,048,576 and even a 10,000 hard limit for the
	// catalog, NATS and provider connections.
	DefaultMaxConns = 4096
)

func (l HTTPLimits) withDefaults() HTTPLimits {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.ReadTimeout, DefaultReadTimeout)
	def(&l.WriteTimeout, DefaultWriteTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	return l
}

// newServer is the http.Server of Run, serving h on a listener wrapped by
// the returned function (which applies the connection cap).
func newServer(h http.Handler, lim HTTPLimits) (*http.Server, func(net.Listener) net.Listener) {
	lim = lim.withDefaults()
	tracker := &connTracker{quiet: map[net.Conn]time.Time{}}
	srv := &http.Server{
		Handler:           limitBodies(h, lim.MaxBodyBytes),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ConnState:         tracker.state,
	}
	return srv, func(ln net.Listener) net.Listener {
		return &limitListener{Listener: ln, max: lim.MaxConns, t: tracker,
			wake: make(chan struct{}, 1), done: make(chan struct{})}
	}
}

// limitBodies bounds every request body, whichever handler reads it.
func limitBodies(h http.Handler, n int64) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(rw, r.Body, n)
		}
		h.ServeHTTP(rw, r)
	})
}

// extendWriteDeadline moves the write deadline of rw's connection to d from
// now (0: none). A streaming endpoint calls it as it makes progress, e.g.
// before each chunk, so that WriteTimeout bounds a stalled client rather
// than the whole response; an endpoint that streams for as long as the
// client listens (server-sent events, when they come) calls it with 0
// once and relies on the request's context to end. Without a connection
// of our own (the handler mounted elsewhere) it does nothing.
func extendWriteDeadline(rw http.ResponseWriter, d time.Duration) {
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	// ErrNotSupported without a connection of ours; any other error is a
	// connection that is gone, which the next write reports.
	_ = http.NewResponseController(rw).SetWriteDeadline(t)
}

// connTracker knows which connections are quiet: open without a request
// being served (idle between requests, or new and still sending headers).
// Those are the ones the limit listener may close to make room: no handler
// runs on them, and HTTP clients retry a request on a closed keep-alive
// connection.
type connTracker struct {
	mu    sync.Mutex
	quiet map[net.Conn]time.Time
}

func (t *connTracker) state(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch s {
	case http.StateNew, http.StateIdle:
		t.quiet[c] = time.Now()
	default:
		delete(t.quiet, c)
	}
}

// oldest removes and returns the connection quiet longest.
func (t *connTracker) oldest() net.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	var (
		pick  net.Conn
		since time.Time
	)
	for c, at := range t.quiet {
		if pick == nil || at.Before(since) {
			pick, since = c, at
		}
	}
	if pick != nil {
		delete(t.quiet, pick)
	}
	return pick
}

// limitListener caps open connections at max (see HTTPLimits.MaxConns).
type limitListener struct {
	net.Listener
	max int
	t   *connTracker

	mu   sync.Mutex
	open int
	wake chan struct{} // a slot was freed
	done chan struct{} // the listener is closed
	once sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if l.open < l.max {
			l.open++
			l.mu.Unlock()
			break
		}
		l.mu.Unlock()
		if c := l.t.oldest(); c != nil {
			c.Close() // frees its slot (limitedConn.Close)
			continue
		}
		select {
		case <-l.wake:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	return &limitedConn{Conn: c, l: l}, nil
}

func (l *limitListener) release() {
	l.mu.Lock()
	l.open--
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

// CloseWrite frees the slot as well: Go's server half-closes a connection
// it will close, then waits 500 ms so the client can read the answer
// before the close; a refused client trickling a body must not hold a slot
// through that wait (its descriptor is held for those 500 ms only).
func (c *limitedConn) CloseWrite() error {
	var err error
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		err = cw.CloseWrite()
	}
	c.once.Do(c.l.release)
	return err
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.release)
	return err
}
