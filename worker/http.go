package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/schedule"
)

// Handler is the HTTP side: health, readiness, metrics, webhooks and the
// data endpoints (/status, /catalog/...), the latter behind bearer tokens.
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Write([]byte("ok\n")) //nolint:errcheck
	})
	mux.HandleFunc("GET /readyz", w.serveReadyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.reg, promhttp.HandlerOpts{Registry: w.reg}))
	mux.Handle("GET /status", w.authorized(http.HandlerFunc(w.serveStatus)))
	mux.Handle("GET /catalog/stats", w.authorized(http.HandlerFunc(w.serveCatalogStats)))
	mux.Handle("GET /catalog/sources/{id}/objects", w.authorized(http.HandlerFunc(w.serveCatalogObjects)))
	mux.Handle("POST /admin/sources/{id}/scan", w.adminAuthorized(http.HandlerFunc(w.serveAdminScan)))
	for pattern, h := range w.webhooks {
		mux.Handle(pattern, h)
	}
	// --- asset API (package assets): /sources/..., /t/{token}/sources/... ---
	if w.assets != nil {
		w.assets.Register(mux)
	}
	// --- end asset API ---
	// --- server-sent events (package live): /sources/{id}/events, /events ---
	if w.live != nil {
		w.live.Register(mux)
	}
	// --- end server-sent events ---
	return mux
}

// authPolicy decides who may read the data endpoints.
type authPolicy struct {
	tokens []notify.Secret
	// open: no tokens are configured and the listener is loopback, so
	// only processes on this host reach it.
	open bool
}

func newAuthPolicy(tokens []string, listen string) authPolicy {
	var p authPolicy
	for _, t := range tokens {
		if t != "" {
			p.tokens = append(p.tokens, notify.NewSecret(t))
		}
	}
	p.open = len(p.tokens) == 0 && isLoopback(listen)
	return p
}

// isLoopback says listen ("host:port") only accepts connections from this
// host. An empty host (":8080") listens on every interface.
func isLoopback(listen string) bool { return config.LoopbackListen(listen) }

// allows says r carries one of the tokens (or none is needed). Every token
// is compared, each in constant time (notify.Secret compares digests).
func (p authPolicy) allows(r *http.Request) bool {
	if p.open {
		return true
	}
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return false
	}
	match := false
	for _, s := range p.tokens {
		if s.Match(tok) {
			match = true
		}
	}
	return match
}

// newAdminPolicy is the policy of the admin endpoints, which change what
// syncer publishes (a scan with the guard lifted publishes deletions): they
// are never open, not even on loopback, where any local process or a
// browser tricked into a cross-site POST would reach them. Without
// http.auth.adminTokens every admin request is refused.
func newAdminPolicy(tokens []string) authPolicy {
	p := newAuthPolicy(tokens, "")
	p.open = false
	return p
}

func (w *Worker) adminAuthorized(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !w.admin.allows(r) {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="syncer-admin"`)
			msg := "unauthorized: admin endpoints need a bearer token from http.auth.adminTokens"
			if len(w.admin.tokens) == 0 {
				msg = "unauthorized: admin endpoints are disabled until http.auth.adminTokens is set"
			}
			writeError(rw, http.StatusUnauthorized, msg)
			return
		}
		h.ServeHTTP(rw, r)
	})
}

// matches says tok is one of the tokens, comparing each in constant time.
func (p authPolicy) matches(tok string) bool {
	match := false
	for _, s := range p.tokens {
		if s.Match(tok) {
			match = true
		}
	}
	return match
}

func (w *Worker) authorized(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !w.auth.allows(r) {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="syncer"`)
			writeError(rw, http.StatusUnauthorized, "unauthorized")
			return
		}
		h.ServeHTTP(rw, r)
	})
}

func writeError(rw http.ResponseWriter, code int, msg string) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	json.NewEncoder(rw).Encode(map[string]string{"error": msg}) //nolint:errcheck
}

func writeJSON(rw http.ResponseWriter, v any) {
	rw.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}

func (w *Worker) serveStatus(rw http.ResponseWriter, r *http.Request) {
	st, err := w.Status(r.Context())
	if err != nil {
		writeError(rw, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(rw, st)
}

// CatalogStats is the body of GET /catalog/stats.
type CatalogStats struct {
	Sources []CatalogSourceStats `json:"sources"`
}

// CatalogSourceStats are one source's catalog counters.
type CatalogSourceStats struct {
	ID          string `json:"id"`
	Objects     uint64 `json:"objects"`
	LastSeq     uint64 `json:"lastSeq"`
	Unpublished uint64 `json:"unpublished"`
}

func (w *Worker) serveCatalogStats(rw http.ResponseWriter, r *http.Request) {
	out := CatalogStats{Sources: []CatalogSourceStats{}}
	for _, s := range w.sources {
		st, err := s.Catalog.Stats(r.Context())
		if err != nil {
			writeError(rw, http.StatusInternalServerError, fmt.Sprintf("catalog stats of %s: %v", s.Config.ID, err))
			return
		}
		out.Sources = append(out.Sources, CatalogSourceStats{
			ID: s.Config.ID, Objects: st.Objects, LastSeq: st.LastSeq, Unpublished: st.Pending,
		})
	}
	writeJSON(rw, out)
}

// serveCatalogObjects streams a source's entries as NDJSON in key order,
// each written as it is read: a listing of a million objects is never held
// in memory. Like `syncer catalog ls`, a prefix starts the range at the
// prefix (the keys with it are the prefix itself and those right after).
func (w *Worker) serveCatalogObjects(rw http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	src := w.source(id) // ids are unique (config.Validate)
	if src == nil {
		writeError(rw, http.StatusNotFound, fmt.Sprintf("no source %q", id))
		return
	}
	q := r.URL.Query()
	prefix := q.Get("prefix")
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(rw, http.StatusBadRequest, fmt.Sprintf("limit %q: want a whole number >= 0 (0: all)", v))
			return
		}
		limit = n
	}
	rw.Header().Set("Content-Type", "application/x-ndjson")
	// A streaming endpoint: a million entries may take longer than
	// WriteTimeout, so each chunk gets a fresh one (a client that stops
	// reading is still cut off).
	writeTimeout := w.opts.HTTP.withDefaults().WriteTimeout
	flusher, _ := rw.(http.Flusher)
	enc := json.NewEncoder(rw)
	n := 0
	emit := func(e catalog.Entry) error {
		if limit > 0 && n >= limit {
			return catalog.ErrStop
		}
		n++
		if err := enc.Encode(e); err != nil {
			return err // the client went away
		}
		if flusher != nil && n%256 == 0 {
			flusher.Flush()
		}
		return nil
	}
	ctx := r.Context()
	if prefix != "" {
		e, ok, err := src.Catalog.Get(ctx, prefix)
		if err != nil {
			writeError(rw, http.StatusInternalServerError, err.Error())
			return
		}
		if ok {
			emit(e) //nolint:errcheck // a failed write shows in the next
		}
	}
	// Read in chunks, each in its own read transaction, written out after
	// it ended: a slow client must not hold a bbolt read transaction open,
	// which would block a commit that needs to grow the file.
	after := prefix
	for {
		chunk, done, err := readChunk(ctx, src.Catalog, after, prefix)
		if err != nil {
			if n == 0 && ctx.Err() == nil {
				writeError(rw, http.StatusInternalServerError, err.Error())
				return
			}
			// Part of the body is out: the status cannot change any
			// more; the client sees a truncated stream.
			w.log.Warn("catalog listing over HTTP ended early", "source", id, "err", err)
			return
		}
		extendWriteDeadline(rw, writeTimeout)
		for _, e := range chunk {
			if err := emit(e); err != nil {
				return // the limit, or the client went away
			}
		}
		if done || len(chunk) < catalogChunk {
			return
		}
		after = chunk[len(chunk)-1].Key
	}
}

// readChunk reads up to catalogChunk entries after after, in one read
// transaction; done says the prefix's entries ended.
func readChunk(ctx context.Context, cat *catalog.Source, after, prefix string) (chunk []catalog.Entry, done bool, err error) {
	chunk = make([]catalog.Entry, 0, catalogChunk)
	err = cat.Range(ctx, after, func(e catalog.Entry) error {
		if !strings.HasPrefix(e.Key, prefix) {
			done = true
			return catalog.ErrStop
		}
		chunk = append(chunk, e)
		if len(chunk) == catalogChunk {
			return catalog.ErrStop
		}
		return nil
	})
	return chunk, done, err
}

// catalogChunk is how many entries one read transaction of a catalog
// listing over HTTP reads.
const catalogChunk = 1000

// check is one line of /readyz?verbose.
type check struct {
	name string
	ok   bool
	msg  string
	// informational checks are shown but do not decide readiness.
	informational bool
}

// readiness lists the checks of /readyz. Readiness means this replica can
// take the traffic a Service sends it (webhooks, data endpoints): the
// catalog is open and HTTP serves. NATS, publishing, scans and consumers are
// listed for information only: with any of them failing, webhooks still
// commit to the catalog and the outbox keeps the events, while a 503 would
// take every source's webhooks down for one source's problem.
func (w *Worker) readiness() []check {
	var out []check
	if _, err := w.cat.Sources(); err != nil {
		out = append(out, check{name: "catalog", msg: err.Error()})
	} else {
		out = append(out, check{name: "catalog", ok: true, msg: "ok"})
	}
	// This handler runs, so HTTP serves; without a listener of our own
	// the handler is mounted elsewhere and answering this request.
	if w.listener == nil || w.serving.Load() {
		out = append(out, check{name: "http", ok: true, msg: "ok"})
	} else {
		out = append(out, check{name: "http", msg: "not serving"})
	}
	if w.nc.IsConnected() {
		out = append(out, check{name: "nats", ok: true, msg: "ok", informational: true})
	} else {
		out = append(out, check{name: "nats", msg: "not connected", informational: true})
	}
	for _, s := range w.sources {
		id := s.Config.ID
		if err := w.pub.SourceHealth(id); err != nil {
			out = append(out, check{name: "publish/" + id, msg: err.Error(), informational: true})
		} else {
			out = append(out, check{name: "publish/" + id, ok: true, msg: "ok", informational: true})
		}
		st, _ := w.schedStatus(id)
		switch {
		case st.Last == nil:
			out = append(out, check{name: "scan/" + id, ok: true, msg: "not run yet", informational: true})
		case st.Last.Result == schedule.ResultHeld:
			out = append(out, check{name: "scan/" + id, msg: st.Last.Err.Error(), informational: true})
		case st.Last.Err != nil:
			out = append(out, check{name: "scan/" + id, msg: st.Last.Result + ": " + st.Last.Err.Error(), informational: true})
		default:
			out = append(out, check{name: "scan/" + id, ok: true, msg: st.Last.Result, informational: true})
		}
	}
	for _, n := range w.notifiers {
		state := w.notifierState(n)
		out = append(out, check{name: "notifications/" + n.transport + "/" + n.source,
			ok: state == StateRunning || state == StateServing, msg: state, informational: true})
	}
	return out
}

func (w *Worker) serveReadyz(rw http.ResponseWriter, r *http.Request) {
	checks := w.readiness()
	ready := true
	for _, c := range checks {
		if !c.ok && !c.informational {
			ready = false
		}
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	_, verbose := r.URL.Query()["verbose"]
	if ready && !verbose {
		rw.Write([]byte("ok\n")) //nolint:errcheck
		return
	}
	if !ready {
		rw.WriteHeader(http.StatusServiceUnavailable)
	}
	var b strings.Builder
	for _, c := range checks {
		if !verbose && (c.ok || c.informational) {
			continue // as kube-apiserver: without verbose only what failed
		}
		mark := "[+]"
		if !c.ok {
			mark = "[-]"
		}
		b.WriteString(mark + c.name + " " + c.msg)
		if c.informational {
			b.WriteString(" (informational)")
		}
		b.WriteString("\n")
	}
	if ready {
		b.WriteString("readyz check passed\n")
	} else {
		b.WriteString("readyz check failed\n")
	}
	rw.Write([]byte(b.String())) //nolint:errcheck
}

// rfc3339 is a time for JSON: whole seconds in UTC (RFC 3339 without a
// fraction), nil when zero.
func rfc3339(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Second)
	return &t
}
