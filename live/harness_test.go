package live

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

const (
	testStream = "SYNCER"
	testPrefix = "syncer.changed"
)

// env is a live server over a real embedded JetStream, events published
// straight to the stream as the publisher would.
type env struct {
	t    *testing.T
	nc   *nats.Conn
	js   jetstream.JetStream
	srv  *Server
	http *httptest.Server
	seq  map[string]uint64
	mu   sync.Mutex
}

func newEnv(t *testing.T, streamCfg func(*jetstream.StreamConfig), mod func(*Options)) *env {
	t.Helper()
	n := testkit.StartNATS(t, t.TempDir(), 0)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := jetstream.StreamConfig{Name: testStream, Subjects: []string{testPrefix + ".>"}, Storage: jetstream.MemoryStorage}
	if streamCfg != nil {
		streamCfg(&cfg)
	}
	if _, err := js.CreateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		NATS: nc, Stream: testStream, SubjectPrefix: testPrefix,
		Sources:        []Source{{ID: "a"}, {ID: "b"}, {ID: "secret", Tokens: []string{"s3cr3t"}}},
		Allowed:        func(tok string) bool { return tok == "tok" },
		AllowedOrigins: []string{"https://editor.example.com"},
	}
	if mod != nil {
		mod(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return &env{t: t, nc: nc, js: js, srv: srv, http: hs, seq: map[string]uint64{}}
}

// publish stores the next event of source with n changes and returns it.
func (e *env) publish(source string, n int) events.CloudEvent {
	e.t.Helper()
	e.mu.Lock()
	first := e.seq[source] + 1
	e.seq[source] += uint64(n)
	e.mu.Unlock()
	changes := make([]catalog.Change, n)
	for i := range changes {
		changes[i] = catalog.Change{Seq: first + uint64(i), Op: catalog.Added,
			Object: providers.Object{Key: fmt.Sprintf("k%d", first+uint64(i)), Size: 1}}
	}
	ev := events.New("inst", source, changes, time.Now())
	body, err := json.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.Publish(ctx, events.Subject(testPrefix, source), body, jetstream.WithMsgID(ev.ID)); err != nil {
		e.t.Fatalf("publish: %v", err)
	}
	return ev
}

// sseEvent is one parsed server-sent event (or comment).
type parsed struct {
	Event, ID, Data, Comment string
}

// stream is an open SSE response.
type stream struct {
	t    *testing.T
	resp *http.Response
	ch   chan parsed
	done chan struct{}
}

func (e *env) open(path string, header map[string]string) *stream {
	e.t.Helper()
	s, code := e.tryOpen(path, header)
	if code != http.StatusOK {
		e.t.Fatalf("GET %s: status %d", path, code)
	}
	return s
}

func (e *env) tryOpen(path string, header map[string]string) (*stream, int) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.http.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode
	}
	s := &stream{t: e.t, resp: resp, ch: make(chan parsed, 1024), done: make(chan struct{})}
	go s.read()
	e.t.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	return s, resp.StatusCode
}

func (s *stream) read() {
	defer close(s.done)
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var p parsed
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if p != (parsed{}) {
				s.ch <- p
			}
			p = parsed{}
		case strings.HasPrefix(line, ":"):
			p.Comment = strings.TrimSpace(line[1:])
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "event":
				p.Event = v
			case "id":
				p.ID = v
			case "data":
				p.Data = v
			}
		}
	}
}

// next is the next event, skipping comments unless comments is set.
func (s *stream) next(comments bool) parsed {
	s.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case p := <-s.ch:
			if p.Event == "" && !comments {
				continue
			}
			return p
		case <-s.done:
			s.t.Fatal("stream ended")
		case <-deadline:
			s.t.Fatal("no event within 20 s")
		}
	}
}

// ended waits until the server closed the stream.
func (s *stream) ended() {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.t.Fatal("stream still open after 20 s")
	}
}

// lastSeqOf decodes a contents-changed event's data.
func lastSeqOf(t *testing.T, p parsed) (string, uint64) {
	t.Helper()
	ev, err := events.Decode([]byte(p.Data))
	if err != nil {
		t.Fatalf("event %+v: %v", p, err)
	}
	return ev.Data.SourceID, ev.Data.LastSeq
}
