package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/events"
)

// Config says where the mirror reads from.
type Config struct {
	API     string // syncer's HTTP listener, e.g. http://127.0.0.1:8080
	Source  string // the source id
	Token   string // bearer token for the asset API, if it asks for one
	NATS    string // NATS URL
	Stream  string // the JetStream stream (nats.stream)
	Subject string // the source's subject: <nats.subjectPrefix>.<source id>
	PerPage int    // snapshot page size (default 1000)
	Log     *slog.Logger
	HTTP    *http.Client
}

// Object is what the mirror keeps of each key.
type Object struct {
	Size int64
	Seq  uint64 // the catalog sequence of the change that made this state
}

// Mirror is a copy of one source, kept equal to the bucket: a snapshot of
// the asset API, then the source's JetStream subject from before it.
type Mirror struct {
	cfg Config

	mu      sync.Mutex
	objects map[string]Object
	seq     uint64 // every change through seq is reflected
}

// errGap: the stream no longer holds changes the mirror has not applied
// (retention); only a new snapshot can catch up.
var errGap = errors.New("mirror: the stream skipped changes")

// New returns an empty mirror.
func New(cfg Config) *Mirror {
	if cfg.PerPage == 0 {
		cfg.PerPage = 1000
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	return &Mirror{cfg: cfg, objects: map[string]Object{}}
}

// Run keeps the mirror until ctx ends: snapshot, then stream; a gap in the
// stream starts over with a new snapshot.
func (m *Mirror) Run(ctx context.Context) error {
	nc, err := nats.Connect(m.cfg.NATS, nats.Name("syncer-mirror"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("mirror: connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("mirror: JetStream: %w", err)
	}
	for {
		err := m.once(ctx, js)
		if !errors.Is(err, errGap) {
			return err
		}
		m.cfg.Log.Warn("mirror: changes left the stream before they were applied; taking a new snapshot")
	}
}

func (m *Mirror) once(ctx context.Context, js jetstream.JetStream) error {
	// 1. Where the stream is now: every change committed after the first
	//    snapshot page is published after this point.
	st, err := js.Stream(ctx, m.cfg.Stream)
	if err != nil {
		return fmt.Errorf("mirror: stream %s: %w", m.cfg.Stream, err)
	}
	start := st.CachedInfo().State.LastSeq + 1

	// 2. The snapshot: the whole source in key order by cursor. Each page
	//    reflects at least the first page's sequence S; each asset names its
	//    own sequence, so changes the stream repeats are recognised.
	s, err := m.snapshot(ctx)
	if err != nil {
		return err
	}
	m.cfg.Log.Info("mirror: snapshot taken", "objects", m.Len(), "seq", s)

	// 3. The stream from before the snapshot, skipping what it holds.
	cons, err := js.OrderedConsumer(ctx, m.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{m.cfg.Subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	})
	if err != nil {
		return fmt.Errorf("mirror: consumer on %s: %w", m.cfg.Subject, err)
	}
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("mirror: read %s: %w", m.cfg.Subject, err)
		}
		var ev events.CloudEvent
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			m.cfg.Log.Warn("mirror: not a CloudEvent; skipped", "err", err)
			continue
		}
		if err := m.Apply(ev.Data); err != nil {
			return err
		}
	}
}

// snapshot pages the source into the mirror and returns the first page's
// sequence, through which every change is reflected.
func (m *Mirror) snapshot(ctx context.Context) (uint64, error) {
	m.mu.Lock()
	m.objects = map[string]Object{}
	m.mu.Unlock()
	var first uint64
	after := ""
	for page := 0; ; page++ {
		p, err := m.page(ctx, after)
		if err != nil {
			return 0, err
		}
		if page == 0 {
			first = p.Seq
		}
		m.mu.Lock()
		for _, a := range p.Assets {
			size, _ := strconv.ParseInt(a.Meta.Size, 10, 64)
			seq, _ := strconv.ParseUint(a.Meta.Seq, 10, 64)
			m.objects[a.Meta.Key] = Object{Size: size, Seq: seq}
		}
		m.mu.Unlock()
		if p.After == "" {
			break
		}
		after = p.After
	}
	m.mu.Lock()
	m.seq = first
	m.mu.Unlock()
	return first, nil
}

type page struct {
	Assets []struct {
		Meta struct {
			Key  string `json:"key"`
			Size string `json:"size"`
			Seq  string `json:"seq"`
		} `json:"meta"`
	} `json:"assets"`
	Seq   uint64 `json:"seq"`
	After string `json:"after"`
}

func (m *Mirror) page(ctx context.Context, after string) (*page, error) {
	q := url.Values{"sortKey": {"key"}, "sortingOrder": {"Ascending"},
		"perPage": {strconv.Itoa(m.cfg.PerPage)}, "after": {after}}
	u := m.cfg.API + "/sources/" + url.PathEscape(m.cfg.Source) + "/assets?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("mirror: snapshot request: %w", err)
	}
	if m.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+m.cfg.Token)
	}
	resp, err := m.cfg.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mirror: snapshot page: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("mirror: snapshot page: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mirror: snapshot page: %s: %.200s", resp.Status, body)
	}
	var out struct{ Data page }
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("mirror: snapshot page: %w", err)
	}
	return &out.Data, nil
}

// Apply folds one event into the mirror. Events arrive in sequence order;
// one whose changes the mirror already reflects is skipped, and so is each
// change older than the state the snapshot gave its key. An event that
// starts after a gap means changes were lost to retention: errGap.
func (m *Mirror) Apply(d events.ContentsChanged) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d.LastSeq <= m.seq {
		return nil
	}
	if d.FirstSeq > m.seq+1 {
		return fmt.Errorf("%w: have %d, next event starts at %d", errGap, m.seq, d.FirstSeq)
	}
	for _, c := range d.Changes {
		if c.Seq <= m.seq {
			continue
		}
		if cur, ok := m.objects[c.Key]; ok && c.Seq <= cur.Seq {
			continue
		}
		if c.Op == "deleted" {
			delete(m.objects, c.Key)
		} else {
			m.objects[c.Key] = Object{Size: c.Size, Seq: c.Seq}
		}
	}
	if len(d.Skipped) > 0 {
		// A change too large for an event names no key: only a new snapshot
		// tells what it was.
		return fmt.Errorf("%w: %d changes were too large to publish", errGap, len(d.Skipped))
	}
	m.seq = d.LastSeq
	return nil
}

// Seq is the sequence through which the mirror reflects every change.
func (m *Mirror) Seq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seq
}

// Len is the number of objects mirrored.
func (m *Mirror) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.objects)
}

// Objects returns a copy of the mirror.
func (m *Mirror) Objects() map[string]Object {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Object, len(m.objects))
	for k, v := range m.objects {
		out[k] = v
	}
	return out
}
