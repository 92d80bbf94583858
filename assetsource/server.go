// Package assets serves every source as an IMG.LY remote asset source: the
// protocol of @imgly/plugin-remote-asset-source-web (a manifest, findAssets
// pages, one asset), answered from the catalog, with absolute URLs for each
// asset (presigned, public, or served by syncer for local sources).
//
// Every answer is read from one catalog snapshot and carries the sequence
// number it reflects (data.seq and X-Syncer-Seq): a client that received the
// event with lastSeq N and then queries sees at least N.
package assetsource

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// Source is one served source.
type Source struct {
	Config   config.Source
	Provider providers.Provider
	Catalog  *catalog.Source
}

// Options configure a Server.
type Options struct {
	Sources []Source
	// Open says requests without a token are allowed (the worker's policy:
	// no http.auth.tokens and a loopback listener).
	Open bool
	// Allowed says a bearer token is one of http.auth.tokens; it must
	// compare in constant time.
	Allowed func(token string) bool
	// PublicURL is http.publicURL ("" for the request's host).
	PublicURL string
	// AllowedOrigins is http.cors.allowedOrigins.
	AllowedOrigins []string
	Log            *slog.Logger
	// Now is the clock for URL expiries (default time.Now).
	Now func() time.Time
}

// Server answers the asset API.
type Server struct {
	opts    Options
	sources map[string]*served
	order   []string
	origins map[string]bool
	anyOrig bool
	// fileKey signs the URLs of local files when a token is needed: a
	// browser's <img> cannot send one. It is random per process, so a
	// restart ends every such URL (as its TTL would).
	fileKey []byte
}

type served struct {
	Source
	tokens []notify.Secret

	mu        sync.Mutex
	mimes     []string
	mimesSeq  uint64
	mimesAt   time.Time
	mimesDone bool
}

// New returns a server for opts.Sources (those with assets.disabled are
// left out).
func New(opts Options) (*Server, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Allowed == nil {
		opts.Allowed = func(string) bool { return false }
	}
	s := &Server{opts: opts, sources: map[string]*served{}, origins: map[string]bool{}}
	for _, o := range opts.AllowedOrigins {
		if o == "*" {
			s.anyOrig = true
		}
		s.origins[o] = true
	}
	s.fileKey = make([]byte, 32)
	if _, err := rand.Read(s.fileKey); err != nil {
		return nil, fmt.Errorf("assets: file URL key: %w", err)
	}
	for _, src := range opts.Sources {
		if src.Config.Assets.Disabled {
			continue
		}
		_, presigns := providers.Capability[providers.URLSigner](src.Provider)
		src.Config.Assets.URI = src.Config.Assets.Mode(presigns)
		src.Config.Assets.TTL = src.Config.Assets.EffectiveTTL()
		sv := &served{Source: src}
		for _, t := range src.Config.Assets.Tokens {
			if t != "" {
				sv.tokens = append(sv.tokens, notify.NewSecret(t))
			}
		}
		if src.Config.Assets.URI == config.AssetURIPresign {
			if _, ok := providers.Capability[providers.URLSigner](src.Provider); !ok {
				return nil, fmt.Errorf("source %s: assets.uri presign: provider %s cannot presign URLs", src.Config.ID, src.Config.Provider)
			}
		}
		if src.Config.Assets.URI == config.AssetURIServe {
			if _, ok := providers.Capability[providers.FileOpener](src.Provider); !ok {
				return nil, fmt.Errorf("source %s: assets.uri serve: provider %s cannot serve files", src.Config.ID, src.Config.Provider)
			}
		}
		s.sources[src.Config.ID] = sv
		s.order = append(s.order, src.Config.ID)
	}
	return s, nil
}

// Register adds the asset API's routes to mux: each under /sources and,
// for clients that cannot send a header, under /t/{token}/sources.
func (s *Server) Register(mux *http.ServeMux) {
	for _, base := range []string{"", "/t/{token}"} {
		mux.Handle("GET "+base+"/sources", s.wrap(s.serveList))
		mux.Handle("GET "+base+"/sources/{id}", s.wrap(s.serveManifest))
		mux.Handle("GET "+base+"/sources/{id}/assets", s.wrap(s.serveAssets))
		mux.Handle("GET "+base+"/sources/{id}/assets/{assetId}", s.wrap(s.serveAsset))
		mux.Handle("GET "+base+"/sources/{id}/files/{key...}", s.wrap(s.serveFile))
		mux.Handle("OPTIONS "+base+"/sources", http.HandlerFunc(s.preflight))
		mux.Handle("OPTIONS "+base+"/sources/", http.HandlerFunc(s.preflight))
	}
}

// cors sets the CORS response headers for an allowed origin.
func (s *Server) cors(rw http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !s.anyOrig && !s.origins[origin] {
		return false
	}
	h := rw.Header()
	if s.anyOrig {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "ETag, X-Syncer-Seq, Content-Range, Accept-Ranges")
	return true
}

// preflight answers a CORS preflight. It needs no token: browsers send
// none on a preflight.
func (s *Server) preflight(rw http.ResponseWriter, r *http.Request) {
	if s.cors(rw, r) {
		h := rw.Header()
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		// The plugin sends content-type on its GETs; authorization for a
		// bearer token, range and if-none-match for files and re-queries.
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Range, If-None-Match")
		h.Set("Access-Control-Max-Age", "600")
	}
	rw.WriteHeader(http.StatusNoContent)
}

type handler func(rw http.ResponseWriter, r *http.Request, tok string, tokOK bool)

func (s *Server) wrap(h handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		s.cors(rw, r)
		tok, tokOK := notify.RequestToken(r)
		h(rw, r, tok, tokOK)
	})
}

// mayRead says the token (if any) may read src. A source's own tokens
// replace http.auth.tokens for it; every token is compared in constant time.
func (s *Server) mayRead(src *served, tok string, tokOK bool) bool {
	if len(src.tokens) > 0 {
		match := false
		for _, t := range src.tokens {
			if tokOK && t.Match(tok) {
				match = true
			}
		}
		return match
	}
	return s.opts.Open || tokOK && s.opts.Allowed(tok)
}

func unauthorized(rw http.ResponseWriter) {
	rw.Header().Set("WWW-Authenticate", `Bearer realm="syncer"`)
	writeError(rw, http.StatusUnauthorized, "unauthorized")
}

// source finds the source of the request and checks access. An unknown
// source answers 401 to whoever could not read every source, so that the
// existence of a source is learned only with a token.
func (s *Server) source(rw http.ResponseWriter, r *http.Request, tok string, tokOK bool) *served {
	id := r.PathValue("id")
	src := s.sources[id]
	if src == nil {
		if s.opts.Open || tokOK && s.opts.Allowed(tok) {
			writeError(rw, http.StatusNotFound, fmt.Sprintf("no source %q", id))
		} else {
			unauthorized(rw)
		}
		return nil
	}
	if !s.mayRead(src, tok, tokOK) {
		unauthorized(rw)
		return nil
	}
	return src
}

func writeError(rw http.ResponseWriter, code int, msg string) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(code)
	json.NewEncoder(rw).Encode(map[string]string{"error": msg}) //nolint:errcheck // the client went away
}

// respond writes {"data": v} with its ETag and sequence. The ETag covers
// the body without the sequence, so a re-query after an event that did not
// touch this answer is a 304; X-Syncer-Seq always names the snapshot read.
func respond(rw http.ResponseWriter, r *http.Request, seq uint64, v any, setSeq func(uint64)) {
	setSeq(0)
	plain, err := json.Marshal(v)
	if err != nil {
		writeError(rw, http.StatusInternalServerError, "encode answer: "+err.Error())
		return
	}
	sum := sha256.Sum256(plain)
	etag := `W/"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	h := rw.Header()
	h.Set("ETag", etag)
	h.Set("X-Syncer-Seq", strconv.FormatUint(seq, 10))
	// Cached but always revalidated: a change is visible at once.
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Authorization")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		rw.WriteHeader(http.StatusNotModified)
		return
	}
	setSeq(seq)
	body, err := json.Marshal(map[string]any{"data": v})
	if err != nil {
		writeError(rw, http.StatusInternalServerError, "encode answer: "+err.Error())
		return
	}
	h.Set("Content-Type", "application/json")
	rw.Write(append(body, '\n')) //nolint:errcheck // the client went away
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// SourceInfo is one item of GET /sources.
type SourceInfo struct {
	ID      string `json:"id"`
	AssetID string `json:"assetSourceId"`
	Name    string `json:"name"`
	Path    string `json:"path"`
}

func (s *Server) serveList(rw http.ResponseWriter, r *http.Request, tok string, tokOK bool) {
	out := []SourceInfo{}
	for _, id := range s.order {
		src := s.sources[id]
		if !s.mayRead(src, tok, tokOK) {
			continue
		}
		out = append(out, SourceInfo{ID: id, AssetID: src.assetID(), Name: src.name(), Path: "/sources/" + id})
	}
	if len(out) == 0 && !(s.opts.Open || tokOK && s.opts.Allowed(tok)) {
		unauthorized(rw)
		return
	}
	var seq uint64
	respond(rw, r, seq, out, func(uint64) {})
}

func (src *served) assetID() string {
	if src.Config.Assets.ID != "" {
		return src.Config.Assets.ID
	}
	return src.Config.ID
}

func (src *served) name() string {
	if src.Config.Assets.Name != "" {
		return src.Config.Assets.Name
	}
	return src.Config.ID
}

// Manifest is the body of GET /sources/{id}.
type Manifest struct {
	ID                 string            `json:"id"`
	Name               map[string]string `json:"name"`
	SupportedMimeTypes []string          `json:"supportedMimeTypes"`
	CanGetGroups       bool              `json:"canGetGroups"`
	CanAddAsset        bool              `json:"canAddAsset"`
	CanRemoveAsset     bool              `json:"canRemoveAsset"`
	Credits            *config.Credit    `json:"credits,omitempty"`
	License            *config.Credit    `json:"license,omitempty"`
	Seq                uint64            `json:"seq"`
}

// mimesMaxAge bounds how often the manifest's type list is recomputed by
// a scan of the source.
const mimesMaxAge = 30 * time.Second

// mimeTypes are the distinct types the source holds, as of a recent scan.
func (s *Server) mimeTypes(ctx context.Context, src *served, seq uint64) ([]string, error) {
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.mimesDone && (src.mimesSeq == seq || s.opts.Now().Sub(src.mimesAt) < mimesMaxAge) {
		return src.mimes, nil
	}
	set := map[string]bool{}
	var at uint64
	err := src.Catalog.View(ctx, func(sn *catalog.Snapshot) error {
		at = sn.Seq
		return sn.Range(ctx, "", func(e catalog.Entry) error {
			set[MimeType(&e)] = true
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	list := make([]string, 0, len(set))
	for m := range set {
		list = append(list, m)
	}
	sort.Strings(list)
	src.mimes, src.mimesSeq, src.mimesAt, src.mimesDone = list, at, s.opts.Now(), true
	return list, nil
}

func (s *Server) serveManifest(rw http.ResponseWriter, r *http.Request, tok string, tokOK bool) {
	src := s.source(rw, r, tok, tokOK)
	if src == nil {
		return
	}
	seq, err := src.Catalog.LastSeq(r.Context())
	if err != nil {
		s.internal(rw, src, err)
		return
	}
	mimes, err := s.mimeTypes(r.Context(), src, seq)
	if err != nil {
		s.internal(rw, src, err)
		return
	}
	m := &Manifest{
		ID: src.assetID(), Name: map[string]string{"en": src.name()}, SupportedMimeTypes: mimes,
		CanGetGroups: false, Credits: src.Config.Assets.Credits, License: src.Config.Assets.License,
	}
	respond(rw, r, seq, m, func(n uint64) { m.Seq = n })
}

func (s *Server) internal(rw http.ResponseWriter, src *served, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	s.opts.Log.Warn("asset API", "source", src.Config.ID, "err", err)
	writeError(rw, http.StatusInternalServerError, "the catalog could not be read")
}

// Page is the body of GET /sources/{id}/assets.
type Page struct {
	Assets      []Asset `json:"assets"`
	CurrentPage int     `json:"currentPage"`
	NextPage    *int    `json:"nextPage,omitempty"`
	Total       int     `json:"total"`
	Seq         uint64  `json:"seq"`
	// After is, for a cursor query (after=), the value of after that
	// fetches the next page; absent on the last one.
	After string `json:"after,omitempty"`
}

func (s *Server) serveAssets(rw http.ResponseWriter, r *http.Request, tok string, tokOK bool) {
	src := s.source(rw, r, tok, tokOK)
	if src == nil {
		return
	}
	q, err := ParseQuery(r.URL.Query())
	if err != nil {
		writeError(rw, http.StatusBadRequest, err.Error())
		return
	}
	res, err := Run(r.Context(), src.Catalog, src.Provider.Order(), src.Config.Prefix, q)
	if err != nil {
		s.internal(rw, src, err)
		return
	}
	urls := s.urlsFor(r, src, tok, tokOK)
	p := &Page{Assets: make([]Asset, 0, len(res.Entries)), CurrentPage: q.Page, Total: res.Total}
	for i := range res.Entries {
		a, err := urls.asset(r.Context(), &res.Entries[i])
		if err != nil {
			s.internal(rw, src, err)
			return
		}
		p.Assets = append(p.Assets, a)
	}
	switch {
	case q.Cursor && res.More:
		next := 1
		p.NextPage = &next
		p.After = p.Assets[len(p.Assets)-1].ID
	case !q.Cursor && (q.Page+1)*q.PerPage < res.Total:
		next := q.Page + 1
		p.NextPage = &next
	}
	respond(rw, r, res.Seq, p, func(n uint64) { p.Seq = n })
}

// One is the body of GET /sources/{id}/assets/{assetId}.
type One struct {
	Asset
	Seq uint64 `json:"seq"`
}

func (s *Server) serveAsset(rw http.ResponseWriter, r *http.Request, tok string, tokOK bool) {
	src := s.source(rw, r, tok, tokOK)
	if src == nil {
		return
	}
	key, ok := KeyOf(r.PathValue("assetId"))
	if !ok {
		writeError(rw, http.StatusBadRequest, "assetId: not an asset id of this API")
		return
	}
	var (
		e     catalog.Entry
		found bool
		seq   uint64
	)
	err := src.Catalog.View(r.Context(), func(sn *catalog.Snapshot) error {
		seq = sn.Seq
		var err error
		e, found, err = sn.Get(key)
		return err
	})
	if err != nil {
		s.internal(rw, src, err)
		return
	}
	if !found {
		rw.Header().Set("X-Syncer-Seq", strconv.FormatUint(seq, 10))
		writeError(rw, http.StatusNotFound, "no such asset")
		return
	}
	a, err := s.urlsFor(r, src, tok, tokOK).asset(r.Context(), &e)
	if err != nil {
		s.internal(rw, src, err)
		return
	}
	one := &One{Asset: a}
	respond(rw, r, seq, one, func(n uint64) { one.Seq = n })
}
