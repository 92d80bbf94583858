package assetsource_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgly/syncer/assetsource"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/providers/local"
)

func TestAuth(t *testing.T) {
	st := newLocal(t)
	st.put(t, "a/pic.png", []byte("png bytes"), "")
	a := serve(t, st, apiOpts{tokens: []string{"global-token"}})
	a.scan(t)
	for _, p := range []string{"/sources", "/sources/media", "/sources/media/assets", "/sources/nope", "/sources/nope/assets",
		"/sources/media/assets/" + assetsource.AssetID("a/pic.png"), "/sources/media/files/a/pic.png", "/t/wrong/sources/media"} {
		r := must(t, a.get(t, p), 401)
		if strings.Contains(string(r.body), "media") || strings.Contains(string(r.body), "nope") || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 says too much: %s", p, r.body)
		}
		must(t, a.get(t, p, "Authorization", "Bearer wrong"), 401)
	}
	must(t, a.get(t, "/sources/media", "Authorization", "Bearer global-token"), 200)
	must(t, a.get(t, "/sources/nope", "Authorization", "Bearer global-token"), 404)
	// The path form, for the plugin, which only takes a baseUrl.
	p := decode[assetsource.Page](t, must(t, a.get(t, "/t/global-token/sources/media/assets?perPage=5"), 200))
	if len(p.Assets) != 1 {
		t.Fatalf("assets %+v", p)
	}
	// Its file URL is signed: an <img> sends no token.
	uri := p.Assets[0].Meta["uri"].(string)
	if strings.Contains(uri, "global-token") || !strings.Contains(uri, "sig=") {
		t.Fatalf("uri %q", uri)
	}
	if r := do(t, "GET", uri); r.status != 200 || string(r.body) != "png bytes" {
		t.Fatalf("signed uri: %d %s", r.status, r.body)
	}
	must(t, do(t, "GET", strings.Replace(uri, "sig=", "sig=x", 1)), 401)
	must(t, do(t, "GET", strings.Replace(uri, "pic.png", "pic2.png", 1)), 401)

	// Per-source tokens narrow http.auth.tokens.
	b := serve(t, newLocal(t), apiOpts{tokens: []string{"global-token"}, mutate: func(s *config.Source) {
		s.Assets.Tokens = []string{"source-token"}
	}})
	must(t, b.get(t, "/sources/media", "Authorization", "Bearer global-token"), 401)
	must(t, b.get(t, "/sources/media", "Authorization", "Bearer source-token"), 200)
	must(t, b.get(t, "/t/source-token/sources/media/assets"), 200)
	if l := decode[[]assetsource.SourceInfo](t, b.get(t, "/sources", "Authorization", "Bearer global-token")); len(l) != 0 {
		t.Fatalf("global token lists %+v", l)
	}
}

func TestCORS(t *testing.T) {
	a := serve(t, newLocal(t), apiOpts{open: true, origins: []string{"https://editor.example"}})
	r := must(t, do(t, "OPTIONS", a.url+"/sources/media/assets?perPage=1",
		"Origin", "https://editor.example", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "content-type"), 204)
	if r.header.Get("Access-Control-Allow-Origin") != "https://editor.example" ||
		!strings.Contains(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "content-type") ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "GET") {
		t.Fatalf("preflight headers %v", r.header)
	}
	r = must(t, a.get(t, "/sources/media/assets", "Origin", "https://editor.example", "Content-Type", "application/json"), 200)
	if r.header.Get("Access-Control-Allow-Origin") != "https://editor.example" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Syncer-Seq") {
		t.Fatalf("headers %v", r.header)
	}
	r = must(t, do(t, "OPTIONS", a.url+"/sources/media", "Origin", "https://evil.example", "Access-Control-Request-Method", "GET"), 204)
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign origin allowed: %v", r.header)
	}
}

func TestLocalFiles(t *testing.T) {
	st := newLocal(t, local.WithFollowSymlinks(true))
	dir := st.cfg.Path
	st.put(t, "img/pic.png", []byte("0123456789"), "")
	st.put(t, "secret/inside.txt", []byte("inside"), "")
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("outside secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(dir, "img", "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "outdir")); err != nil {
		t.Fatal(err)
	}
	a := serve(t, st, apiOpts{open: true})
	a.scan(t)
	// The catalog learns of the links' keys by hand, as a notification
	// would claim them: serving must still refuse them.
	a.claim(t, "img/link.txt", "outdir/secret.txt")

	r := must(t, a.get(t, "/sources/media/files/img/pic.png"), 200)
	if string(r.body) != "0123456789" || r.header.Get("Content-Type") != "image/png" || r.header.Get("ETag") == "" || r.header.Get("Last-Modified") == "" {
		t.Fatalf("file: %v %q", r.header, r.body)
	}
	rr := must(t, a.get(t, "/sources/media/files/img/pic.png", "Range", "bytes=2-4"), 206)
	if string(rr.body) != "234" || rr.header.Get("Content-Range") != "bytes 2-4/10" {
		t.Fatalf("range: %v %q", rr.header, rr.body)
	}
	must(t, a.get(t, "/sources/media/files/img/pic.png", "If-None-Match", r.header.Get("ETag")), 304)
	for _, p := range []string{
		"/sources/media/files/img/link.txt",
		"/sources/media/files/outdir/secret.txt",
		"/sources/media/files/img/%2e%2e/secret/inside.txt",
		"/sources/media/files/img%2Fpic.png",
		"/sources/media/files/img/..%2F..%2Fetc/passwd",
		"/sources/media/files/nothere.png",
	} {
		res := a.get(t, p)
		if res.status == http.StatusOK || strings.Contains(string(res.body), "secret") {
			t.Errorf("%s: %d %q", p, res.status, res.body)
		}
	}
	// ".." in a raw path: the client is redirected to the cleaned path,
	// never served outside.
	req, _ := http.NewRequest("GET", a.url+"/sources/media/files/img/../../../etc/passwd", nil)
	req.URL.Opaque = "/sources/media/files/img/../../../etc/passwd"
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == 200 {
		t.Fatalf("raw ..: %d", res.StatusCode)
	}
}

func TestPublicAndThumbnailURLs(t *testing.T) {
	st := newLocal(t)
	st.put(t, "a b/ü+1.png", []byte("x"), "")
	a := serve(t, st, apiOpts{open: true, mutate: func(s *config.Source) {
		s.Assets.URI, s.Assets.PublicBaseURL = config.AssetURIPublic, "https://cdn.example/m/"
		s.Assets.ThumbnailURL = "https://img.example/rs:{width}/plain/{url}?k={key}"
	}})
	a.scan(t)
	p := decode[assetsource.Page](t, a.get(t, "/sources/media/assets"))
	if len(p.Assets) != 1 {
		t.Fatalf("%+v", p)
	}
	m := p.Assets[0].Meta
	if m["uri"] != "https://cdn.example/m/a%20b/%C3%BC+1.png" {
		t.Errorf("uri %v", m["uri"])
	}
	if m["thumbUri"] != "https://img.example/rs:512/plain/https%3A%2F%2Fcdn.example%2Fm%2Fa%2520b%2F%25C3%25BC%2B1.png?k=a%20b/%C3%BC+1.png" {
		t.Errorf("thumbUri %v", m["thumbUri"])
	}
}
