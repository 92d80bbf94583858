package assetsource_test

import (
	"bytes"
	"context"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/assetsource"
	"github.com/imgly/syncer/catalog"
)

type fixture struct {
	key, ct string
	body    []byte
}

func fixtures() []fixture {
	list := []struct{ key, ct string }{
		{"photos/cat.jpg", "image/jpeg"},
		{"photos/Katze-ÄÖ.png", "image/png"},
		{"photos/2024/dog.png", "image/png"},
		{"Über/Bild.png", "application/octet-stream"}, // typed by its extension
		{"icons/logo.svg", "image/svg+xml"},
		{"video/clip.mp4", "video/mp4"},
		{"audio/song.mp3", "audio/mpeg"},
		{"top.png", "image/png"},
		{"zz/a.png", "image/png"},
		{"zz/b.png", "image/png"},
		{"zz/c d+e.png", "image/png"},
	}
	out := make([]fixture, len(list))
	for i, f := range list {
		n := i + 1
		if strings.HasPrefix(f.key, "zz/") {
			n = 3 // equal sizes: ties broken by key
		}
		out[i] = fixture{key: f.key, ct: f.ct, body: bytes.Repeat([]byte(f.key+"|"), n)}
	}
	return out
}

func TestProtocolS3(t *testing.T)    { testProtocol(t, newS3(t)) }
func TestProtocolGCS(t *testing.T)   { testProtocol(t, newGCS(t)) }
func TestProtocolAzure(t *testing.T) { testProtocol(t, newAzure(t)) }
func TestProtocolLocal(t *testing.T) { testProtocol(t, newLocal(t)) }

// want computes the expected order independently of the package.
func want(entries []catalog.Entry, sortKey string, desc bool) []string {
	es := append([]catalog.Entry(nil), entries...)
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		var c int
		switch sortKey {
		case "lastModified":
			c = a.LastModified.Compare(b.LastModified)
		case "size":
			c = int(a.Size - b.Size)
		case "name":
			c = strings.Compare(path.Base(a.Key), path.Base(b.Key))
		}
		if c == 0 {
			c = strings.Compare(a.Key, b.Key)
		}
		if desc {
			return c > 0
		}
		return c < 0
	})
	keys := make([]string, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	return keys
}

func pageAll(t *testing.T, a *api, params url.Values, perPage int) ([]assetsource.Asset, uint64) {
	t.Helper()
	var all []assetsource.Asset
	var seq uint64
	for page := 0; ; page++ {
		params.Set("page", strconv.Itoa(page))
		params.Set("perPage", strconv.Itoa(perPage))
		r := a.get(t, "/sources/media/assets?"+params.Encode())
		p := decode[assetsource.Page](t, r)
		if p.CurrentPage != page {
			t.Fatalf("currentPage %d, want %d", p.CurrentPage, page)
		}
		if h := r.header.Get("X-Syncer-Seq"); h != strconv.FormatUint(p.Seq, 10) {
			t.Fatalf("X-Syncer-Seq %q, data.seq %d", h, p.Seq)
		}
		seq = p.Seq
		all = append(all, p.Assets...)
		if p.Total < len(all) {
			t.Fatalf("total %d, but %d assets so far", p.Total, len(all))
		}
		if p.NextPage == nil {
			if len(all) != p.Total {
				t.Fatalf("last page at %d assets, total %d", len(all), p.Total)
			}
			return all, seq
		}
		if *p.NextPage != page+1 || len(p.Assets) != perPage {
			t.Fatalf("page %d: nextPage %v with %d assets", page, *p.NextPage, len(p.Assets))
		}
		if page > 1000 {
			t.Fatal("no last page")
		}
	}
}

func keysOf(as []assetsource.Asset) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Meta["key"].(string)
	}
	return out
}

func plugin(kv ...string) url.Values {
	// Every key the plugin sends, empty ones as "".
	v := url.Values{}
	for _, k := range []string{"perPage", "page", "query", "tags", "groups", "excludeGroups", "locale", "sortingOrder", "sortKey", "sortActiveFirst", "filter", "facets"} {
		v.Set(k, "")
	}
	v.Set("sortingOrder", "None")
	v.Set("sortActiveFirst", "false")
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func testProtocol(t *testing.T, st *store) {
	fx := fixtures()
	for _, f := range fx {
		st.put(t, f.key, f.body, f.ct)
	}
	a := serve(t, st, apiOpts{open: true})
	a.scan(t)
	var entries []catalog.Entry
	if err := a.src.Range(context.Background(), "", func(e catalog.Entry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(fx) {
		t.Fatalf("catalog holds %d entries, want %d", len(entries), len(fx))
	}
	lastSeq, _ := a.src.LastSeq(context.Background())

	t.Run("manifest", func(t *testing.T) {
		r := a.get(t, "/sources/media")
		m := decode[assetsource.Manifest](t, r)
		if m.ID != "media" || m.Name["en"] != "media" || m.CanAddAsset || m.CanRemoveAsset || m.Seq != lastSeq {
			t.Fatalf("manifest %+v", m)
		}
		for _, mt := range []string{"image/png", "image/jpeg", "image/svg+xml", "video/mp4", "audio/mpeg"} {
			if !contains(m.SupportedMimeTypes, mt) {
				t.Errorf("supportedMimeTypes %v lacks %s", m.SupportedMimeTypes, mt)
			}
		}
		list := decode[[]assetsource.SourceInfo](t, a.get(t, "/sources"))
		if len(list) != 1 || list[0].ID != "media" {
			t.Fatalf("sources %+v", list)
		}
	})

	t.Run("sorts and paging", func(t *testing.T) {
		cases := []struct {
			sortKey, order, wantKey string
			desc                    bool
		}{
			{"", "None", "lastModified", true}, // the default: newest first
			{"", "", "lastModified", true},
			{"lastModified", "Ascending", "lastModified", false},
			{"lastModified", "Descending", "lastModified", true},
			{"name", "Ascending", "name", false},
			{"name", "Descending", "name", true},
			{"key", "Ascending", "key", false},
			{"key", "Descending", "key", true},
			{"key", "None", "key", false},
			{"size", "Ascending", "size", false},
			{"size", "Descending", "size", true},
		}
		for _, c := range cases {
			for _, per := range []int{1, 3, 100} {
				got, seq := pageAll(t, a, plugin("sortKey", c.sortKey, "sortingOrder", c.order), per)
				if seq != lastSeq {
					t.Fatalf("seq %d, want %d", seq, lastSeq)
				}
				if g, w := strings.Join(keysOf(got), ","), strings.Join(want(entries, c.wantKey, c.desc), ","); g != w {
					t.Fatalf("sortKey %q %s perPage %d:\n got %s\nwant %s", c.sortKey, c.order, per, g, w)
				}
			}
		}
	})

	t.Run("query", func(t *testing.T) {
		for q, w := range map[string][]string{
			"KATZE-äö": {"photos/Katze-ÄÖ.png"},
			"über":     {"Über/Bild.png"},
			"bild":     {"Über/Bild.png"},
			"photos/2": {"photos/2024/dog.png"},
			"C D+E":    {"zz/c d+e.png"},
			"nothing":  nil,
		} {
			got, _ := pageAll(t, a, plugin("query", q, "sortKey", "key"), 10)
			if g := strings.Join(keysOf(got), ","); g != strings.Join(w, ",") {
				t.Errorf("query %q: %s, want %v", q, g, w)
			}
		}
	})

	t.Run("groups and tags", func(t *testing.T) {
		check := func(name string, v url.Values, w ...string) {
			t.Helper()
			v.Set("sortKey", "key")
			got, _ := pageAll(t, a, v, 2)
			if g := strings.Join(keysOf(got), ","); g != strings.Join(w, ",") {
				t.Errorf("%s: %s, want %v", name, g, w)
			}
		}
		check("groups", plugin("groups", "photos,zz"), "photos/2024/dog.png", "photos/Katze-ÄÖ.png", "photos/cat.jpg", "zz/a.png", "zz/b.png", "zz/c d+e.png")
		check("excludeGroups", plugin("excludeGroups", "photos,zz,video"), "audio/song.mp3", "icons/logo.svg", "top.png", "Über/Bild.png")
		check("tags", plugin("tags", "photos,2024"), "photos/2024/dog.png")
		check("tags and query", plugin("tags", "zz", "query", "b"), "zz/b.png")
		got, _ := pageAll(t, a, plugin("query", "dog"), 5)
		if len(got) != 1 || strings.Join(got[0].Tags, ",") != "photos,2024" || strings.Join(got[0].Groups, ",") != "photos" {
			t.Fatalf("dog: %+v", got)
		}
	})

	t.Run("asset mapping and uri", func(t *testing.T) {
		got, _ := pageAll(t, a, plugin("sortKey", "key"), 100)
		bodies := map[string][]byte{}
		for _, f := range fx {
			bodies[f.key] = f.body
		}
		for _, as := range got {
			key := as.Meta["key"].(string)
			one := decode[assetsource.One](t, a.get(t, "/sources/media/assets/"+as.ID))
			if one.ID != as.ID || one.Meta["key"] != key {
				t.Fatalf("assets/%s: %+v", as.ID, one)
			}
			uri := as.Meta["uri"].(string)
			if !strings.HasPrefix(uri, "http://") {
				t.Fatalf("%s: uri %q is not absolute", key, uri)
			}
			r := do(t, "GET", uri)
			if r.status != 200 || !bytes.Equal(r.body, bodies[key]) {
				t.Fatalf("%s: GET uri: status %d, %d bytes (want %d)", key, r.status, len(r.body), len(bodies[key]))
			}
			mt := as.Meta["mimeType"]
			switch {
			case strings.HasSuffix(key, ".png"):
				if mt != "image/png" || as.Meta["blockType"] != "//ly.img.ubq/graphic" || as.Meta["fillType"] != "//ly.img.ubq/fill/image" || as.Meta["kind"] != "image" || as.Meta["thumbUri"] == nil {
					t.Errorf("%s: meta %v", key, as.Meta)
				}
			case strings.HasSuffix(key, ".mp4"):
				if mt != "video/mp4" || as.Meta["fillType"] != "//ly.img.ubq/fill/video" || as.Meta["kind"] != "video" {
					t.Errorf("%s: meta %v", key, as.Meta)
				}
			case strings.HasSuffix(key, ".mp3"):
				if mt != "audio/mpeg" || as.Meta["blockType"] != "//ly.img.ubq/audio" {
					t.Errorf("%s: meta %v", key, as.Meta)
				}
			}
			if as.Label != strings.TrimSuffix(path.Base(key), path.Ext(key)) || as.Meta["filename"] != path.Base(key) {
				t.Errorf("%s: label %q filename %v", key, as.Label, as.Meta["filename"])
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, q := range []string{"perPage=0", "perPage=x", "page=-1", "page=1.5", "sortKey=color", "sortingOrder=up", "page=99999999&perPage=1000"} {
			r := must(t, a.get(t, "/sources/media/assets?"+q), 400)
			if !strings.Contains(string(r.body), `"error"`) || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: %s", q, r.body)
			}
		}
		must(t, a.get(t, "/sources/media/assets?perPage=5000&whatever=1"), 200)
		if p := decode[assetsource.Page](t, a.get(t, "/sources/media/assets?perPage=5000")); len(p.Assets) != len(fx) {
			t.Fatalf("perPage capped: %d assets", len(p.Assets))
		}
		must(t, a.get(t, "/sources/media/assets/"+assetsource.AssetID("no/such.png")), 404)
		must(t, a.get(t, "/sources/media/assets/!!"), 400)
		must(t, a.get(t, "/sources/nope"), 404)
		must(t, a.get(t, "/sources/nope/assets"), 404)
		// Beyond the last page: empty, no nextPage, total still exact.
		p := decode[assetsource.Page](t, a.get(t, "/sources/media/assets?page=50&perPage=10"))
		if len(p.Assets) != 0 || p.NextPage != nil || p.Total != len(fx) {
			t.Fatalf("past the end: %+v", p)
		}
	})

	t.Run("etag and seq", func(t *testing.T) {
		if st.cfg.Provider != "local" {
			t.Skip("presigned URLs change with the signing time")
		}
		r := must(t, a.get(t, "/sources/media/assets?sortKey=key&perPage=2"), 200)
		etag := r.header.Get("ETag")
		if etag == "" || !strings.Contains(r.header.Get("Cache-Control"), "no-cache") {
			t.Fatalf("headers %v", r.header)
		}
		must(t, a.get(t, "/sources/media/assets?sortKey=key&perPage=2", "If-None-Match", etag), 304)
		r = must(t, a.get(t, "/sources/media/assets?query=photos&perPage=2"), 200)
		etag = r.header.Get("ETag")
		// A change elsewhere moves the seq but not this page.
		st.put(t, "zzz/late.png", []byte("late"), "image/png")
		a.scan(t)
		r2 := must(t, a.get(t, "/sources/media/assets?query=photos&perPage=2", "If-None-Match", etag), 304)
		if r2.header.Get("X-Syncer-Seq") == r.header.Get("X-Syncer-Seq") {
			t.Fatalf("seq did not move: %s", r2.header.Get("X-Syncer-Seq"))
		}
		r3 := must(t, a.get(t, "/sources/media/assets?perPage=2"), 200)
		if p := decode[assetsource.Page](t, r3); p.Assets[0].Meta["key"] != "zzz/late.png" {
			t.Fatalf("new object not first: %v", keysOf(p.Assets))
		}
		_ = time.Second
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
