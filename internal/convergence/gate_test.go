package convergence

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
)

// gate sits in front of gofakes3. It makes listings short (max-keys is
// rewritten, as a server may return fewer keys than asked for), so a small
// bucket still lists in several pages; and, when armed, it holds one list
// page after computing it, so that the bucket can change — and
// notifications can be applied — while the scan waits for a page that no
// longer describes the bucket. That is the race the catalog's guards
// (IfSeq, ListedAt) exist for, reproduced at a point the seed chooses.
type gate struct {
	pageSize int

	mu sync.Mutex
	// skip is how many list requests pass before the next one is held;
	// -1 when not armed.
	skip int
	held chan heldPage
}

// heldPage is a list page the gate holds: the keys it lists, and the
// channel that releases it.
type heldPage struct {
	keys    []string
	release chan struct{}
}

func newGate(pageSize int) *gate {
	return &gate{pageSize: pageSize, skip: -1, held: make(chan heldPage)}
}

// arm holds the list request after the next skip ones.
func (g *gate) arm(skip int) {
	g.mu.Lock()
	g.skip = skip
	g.mu.Unlock()
}

func (g *gate) disarm() {
	g.mu.Lock()
	g.skip = -1
	g.mu.Unlock()
}

// take says whether this list request is the one to hold.
func (g *gate) take() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.skip < 0:
		return false
	case g.skip == 0:
		g.skip = -1
		return true
	}
	g.skip--
	return false
}

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		list := r.Method == http.MethodGet && q.Get("list-type") == "2"
		if list && g.pageSize > 0 {
			q.Set("max-keys", strconv.Itoa(g.pageSize))
			r.URL.RawQuery = q.Encode()
		}
		if !list || !g.take() {
			next.ServeHTTP(w, r)
			return
		}
		// The page is computed now, delivered when the test releases it.
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var page struct {
			Contents []struct{ Key string }
		}
		xml.Unmarshal(rec.Body.Bytes(), &page) //nolint:errcheck // no keys: the test picks any
		hp := heldPage{release: make(chan struct{})}
		for _, c := range page.Contents {
			hp.keys = append(hp.keys, c.Key)
		}
		g.held <- hp
		<-hp.release
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes()) //nolint:errcheck // the client sees a short body as an error
	})
}
