package assetsource

import (
	"errors"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/providers"
)

// serveFile serves a local source's file with Range, ETag/If-None-Match,
// Last-Modified and Content-Type. Only keys the catalog holds are served
// (so include/exclude apply), read through the provider's os.Root: no key
// and no symbolic link reaches outside the source's directory.
func (s *Server) serveFile(rw http.ResponseWriter, r *http.Request, tok string, tokOK bool) {
	id := r.PathValue("id")
	src := s.sources[id]
	key := r.PathValue("key")
	q := r.URL.Query()
	signed := src != nil && s.validSig(id, key, q.Get("exp"), q.Get("sig"))
	if !signed {
		if src = s.source(rw, r, tok, tokOK); src == nil {
			return
		}
	}
	opener, ok := providers.Capability[providers.FileOpener](src.Provider)
	if !ok || src.Config.Assets.URI != config.AssetURIServe {
		writeError(rw, http.StatusNotFound, "this source's files are not served by syncer")
		return
	}
	// An encoded slash would make one key segment look like two; ".."
	// and "." never name a file in a key.
	esc := strings.ToLower(r.URL.EscapedPath())
	if strings.Contains(esc, "%2f") || strings.Contains(esc, "%5c") || !fs.ValidPath(key) || strings.Contains(key, "\\") {
		writeError(rw, http.StatusBadRequest, "key: not a valid file key")
		return
	}
	var found bool
	var e catalog.Entry
	err := src.Catalog.View(r.Context(), func(sn *catalog.Snapshot) error {
		var err error
		e, found, err = sn.Get(key)
		return err
	})
	if err != nil {
		s.internal(rw, src, err)
		return
	}
	if !found {
		writeError(rw, http.StatusNotFound, "no such file")
		return
	}
	f, obj, err := opener.OpenFile(r.Context(), key)
	if errors.Is(err, providers.ErrNotFound) {
		writeError(rw, http.StatusNotFound, "no such file")
		return
	}
	if err != nil {
		s.opts.Log.Warn("asset API: open file", "source", id, "key", key, "err", err)
		writeError(rw, http.StatusInternalServerError, "the file could not be read")
		return
	}
	defer f.Close()
	e.Object.ContentType = obj.ContentType
	h := rw.Header()
	h.Set("Content-Type", MimeType(&e))
	h.Set("ETag", `"`+obj.ETag+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	// A served file may be an SVG: it must not run as a page of this origin.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	if signed {
		h.Set("Cache-Control", "private, max-age=60")
	} else {
		h.Set("Cache-Control", "private, no-cache")
	}
	http.ServeContent(rw, r, path.Base(key), obj.LastModified, f)
}
