// Package live pushes syncer's events to browsers as Server-Sent Events:
// GET /sources/{id}/events and GET /events?sources=a,b, fed from the
// JetStream stream (so a client only ever sees events the stream holds),
// one shared subscription per source fanned out in process, with
// Last-Event-ID replay read back from the stream.
//
// Wire format (docs/editors.md):
//
//	event: contents-changed
//	id: <lastSeq>                 (multi-source form: <sourceId>:<lastSeq>)
//	data: <the CloudEvent JSON on one line>
//
// plus `: ping` comments as heartbeat and `event: reset` (data
// {"sourceId","lastSeq"}) when the events a reconnecting client missed are
// no longer in the stream.
package live

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/notify"
)

// Source is one source whose events are served.
type Source struct {
	ID string
	// Tokens are the source's assets.tokens: when set they replace the
	// shared tokens for this source.
	Tokens []string
}

// Options configure a Server.
type Options struct {
	NATS *nats.Conn
	// Domain is the JetStream domain ("" for the account's own).
	Domain        string
	Stream        string
	SubjectPrefix string
	Sources       []Source
	// Open says requests without a token are allowed (no http.auth.tokens
	// and a loopback listener).
	Open bool
	// Allowed says a bearer token is one of http.auth.tokens; it must
	// compare in constant time.
	Allowed func(token string) bool
	// AllowedOrigins is http.cors.allowedOrigins.
	AllowedOrigins []string
	// Heartbeat is the interval of `: ping` comments (default 15 s): they
	// keep proxies from closing a quiet stream and let a client notice a
	// dead one.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a client (default 10 s): a client
	// that does not read is cut off after it.
	WriteTimeout time.Duration
	// Buffer is how many events may wait for one client before it is
	// dropped (default 64).
	Buffer int
	// MaxReplay caps the events replayed to a reconnecting client; past
	// it the client gets a reset (default 1000).
	MaxReplay int
	// MaxStreams caps the open streams (0: no cap). A stream over the cap
	// is told to retry later: the listener's connections must not all be
	// streams.
	MaxStreams int
	// Published, if set, returns the last change of a source JetStream
	// acknowledged: it tells a client whose missed events all aged out of
	// the stream that it missed something.
	Published func(id string) (uint64, bool)
	Log       *slog.Logger
}

// Defaults of Options.
const (
	DefaultHeartbeat    = 15 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultBuffer       = 64
	DefaultMaxReplay    = 1000
)

// Server serves the events endpoints.
type Server struct {
	opts    Options
	js      jetstream.JetStream
	log     *slog.Logger
	sources map[string]*source
	origins map[string]bool
	anyOrig bool
	streams atomic.Int64 // open
	// done ends every open stream (Close).
	done     chan struct{}
	doneOnce sync.Once
}

type source struct {
	id     string
	tokens []notify.Secret
	hub    *hub
}

// New returns a server over an established NATS connection.
func New(opts Options) (*Server, error) {
	if opts.NATS == nil {
		return nil, fmt.Errorf("live: no NATS connection")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Allowed == nil {
		opts.Allowed = func(string) bool { return false }
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.MaxReplay <= 0 {
		opts.MaxReplay = DefaultMaxReplay
	}
	var js jetstream.JetStream
	var err error
	if opts.Domain != "" {
		js, err = jetstream.NewWithDomain(opts.NATS, opts.Domain)
	} else {
		js, err = jetstream.New(opts.NATS)
	}
	if err != nil {
		return nil, fmt.Errorf("live: jetstream: %w", err)
	}
	s := &Server{opts: opts, js: js, log: opts.Log, sources: map[string]*source{}, origins: map[string]bool{},
		done: make(chan struct{})}
	for _, o := range opts.AllowedOrigins {
		s.anyOrig = s.anyOrig || o == "*"
		s.origins[o] = true
	}
	for _, src := range opts.Sources {
		sv := &source{id: src.ID}
		for _, t := range src.Tokens {
			if t != "" {
				sv.tokens = append(sv.tokens, notify.NewSecret(t))
			}
		}
		sv.hub = &hub{s: s, source: src.ID, subject: events.Subject(opts.SubjectPrefix, src.ID), clients: map[*client]struct{}{}}
		s.sources[src.ID] = sv
	}
	return s, nil
}

// Close ends every open stream and stops the sources' subscriptions. It is
// meant for http.Server.RegisterOnShutdown: a graceful shutdown waits for
// active requests, and an event stream would not end by itself.
func (s *Server) Close() {
	s.doneOnce.Do(func() { close(s.done) })
	for _, src := range s.sources {
		src.hub.stop()
	}
}

// Register adds the routes to mux, each also under /t/{token} for
// EventSource, which cannot send an Authorization header.
func (s *Server) Register(mux *http.ServeMux) {
	for _, base := range []string{"", "/t/{token}"} {
		mux.HandleFunc("GET "+base+"/sources/{id}/events", s.serveSingle)
		mux.HandleFunc("GET "+base+"/events", s.serveMulti)
		mux.HandleFunc("OPTIONS "+base+"/sources/{id}/events", s.preflight)
		mux.HandleFunc("OPTIONS "+base+"/events", s.preflight)
	}
}

// cors sets the CORS headers for an allowed origin.
func (s *Server) cors(rw http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || !s.anyOrig && !s.origins[origin] {
		return
	}
	if s.anyOrig {
		rw.Header().Set("Access-Control-Allow-Origin", "*")
	} else {
		rw.Header().Set("Access-Control-Allow-Origin", origin)
	}
	rw.Header().Add("Vary", "Origin")
}

// preflight answers a CORS preflight (browsers send no token on it). A
// fetch-based client sends Authorization and Last-Event-ID.
func (s *Server) preflight(rw http.ResponseWriter, r *http.Request) {
	s.cors(rw, r)
	if rw.Header().Get("Access-Control-Allow-Origin") != "" {
		h := rw.Header()
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Last-Event-ID, Cache-Control, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
	}
	rw.WriteHeader(http.StatusNoContent)
}

// lookup finds the sources ids name and checks the request may read each.
// An unknown source is a 401 to whoever may not read every source, so
// that only a token holder learns which sources exist (as the asset API).
func (s *Server) lookup(r *http.Request, ids []string) ([]*source, int, string) {
	tok, tokOK := notify.RequestToken(r)
	shared := s.opts.Open || tokOK && s.opts.Allowed(tok)
	out := make([]*source, 0, len(ids))
	for _, id := range ids {
		src := s.sources[id]
		if src == nil {
			if shared {
				return nil, http.StatusNotFound, fmt.Sprintf("no source %q", id)
			}
			return nil, http.StatusUnauthorized, "unauthorized"
		}
		ok := shared
		if len(src.tokens) > 0 {
			ok = false
			for _, t := range src.tokens {
				if tokOK && t.Match(tok) {
					ok = true
				}
			}
		}
		if !ok {
			return nil, http.StatusUnauthorized, "unauthorized"
		}
		out = append(out, src)
	}
	return out, 0, ""
}

func writeError(rw http.ResponseWriter, code int, msg string) {
	if code == http.StatusUnauthorized {
		rw.Header().Set("WWW-Authenticate", `Bearer realm="syncer"`)
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(code)
	json.NewEncoder(rw).Encode(map[string]string{"error": msg}) //nolint:errcheck // the client went away
}

func (s *Server) serveSingle(rw http.ResponseWriter, r *http.Request) {
	s.cors(rw, r)
	s.serve(rw, r, []string{r.PathValue("id")}, false)
}

func (s *Server) serveMulti(rw http.ResponseWriter, r *http.Request) {
	s.cors(rw, r)
	var ids []string
	seen := map[string]bool{}
	for _, id := range strings.Split(r.URL.Query().Get("sources"), ",") {
		if id = strings.TrimSpace(id); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		if _, code, msg := s.lookup(r, nil); code != 0 {
			writeError(rw, code, msg)
			return
		}
		writeError(rw, http.StatusBadRequest, "sources: name one or more source ids, comma-separated (/events?sources=a,b)")
		return
	}
	s.serve(rw, r, ids, true)
}

// oneLine returns b with no line breaks, which would end an SSE data
// field: syncer's events are compact JSON already; anything else is
// compacted.
func oneLine(b []byte) []byte {
	if !bytes.ContainsAny(b, "\r\n") {
		return b
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return []byte(strings.NewReplacer("\r", " ", "\n", " ").Replace(string(b)))
	}
	return out.Bytes()
}
