package livetest

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/worker"
)

// startNATS is the testkit server standing in for an external NATS: its
// WebSocket clients get the read-only user the embedded server's
// nats.websocket gives browsers (worker.BrowserPermissions), TCP clients
// (syncer, the tests' own subscribers) every permission.
func startNATS(t testing.TB) *testkit.ConfiguredNATS {
	return testkit.StartNATSWith(t, t.TempDir(), func(no *natsserver.Options) {
		no.Websocket = natsserver.WebsocketOpts{Host: "127.0.0.1", Port: -1, NoTLS: true, NoAuthUser: "browser"}
		no.Users = []*natsserver.User{
			{Username: "syncer", Password: "unused-syncer", AllowedConnectionTypes: map[string]struct{}{"STANDARD": {}}},
			{Username: "browser", Password: "unused-browser", AllowedConnectionTypes: map[string]struct{}{"WEBSOCKET": {}},
				Permissions: worker.BrowserPermissions(config.DefaultStream, "syncer.changed")},
		}
		no.NoAuthUser = "syncer"
	})
}

// pinEmbedded learns where the worker's embedded server listens, as a user
// does: the client URL from /status, the WebSocket URL from the start-up
// log. It then fixes both ports in the configuration, so that a restart
// (Stop, Start) serves clients where they reconnect.
func (s *Syncer) pinEmbedded(t testing.TB, ctx context.Context, w *worker.Worker, urls *logURLs) {
	t.Helper()
	st, err := w.Status(ctx)
	if err != nil {
		t.Fatalf("livetest: status: %v", err)
	}
	ws := urls.first("ws://")
	if ws == "" || !strings.HasPrefix(st.NATS.URL, "nats://") {
		t.Fatalf("livetest: the embedded server's URLs: client %q, websocket %q (from the log)", st.NATS.URL, ws)
	}
	s.NATSURL, s.WSURL = st.NATS.URL, ws
	for _, u := range []struct {
		raw    string
		listen *string
	}{{st.NATS.URL, &s.cfg.NATS.Listen}, {ws, &s.cfg.NATS.Websocket.Listen}} {
		p, err := url.Parse(u.raw)
		if err != nil {
			t.Fatalf("livetest: %q: %v", u.raw, err)
		}
		*u.listen = p.Host
	}
}

// logURLs is a slog handler that discards records but keeps the URL
// attributes ("url") the worker logs at start.
type logURLs struct {
	mu   sync.Mutex
	seen []string
}

func (h *logURLs) Enabled(context.Context, slog.Level) bool { return true }

func (h *logURLs) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "url" {
			h.mu.Lock()
			h.seen = append(h.seen, a.Value.String())
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h *logURLs) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logURLs) WithGroup(string) slog.Handler      { return h }

// first is the first URL logged with prefix, or "".
func (h *logURLs) first(prefix string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range h.seen {
		if strings.HasPrefix(u, prefix) {
			return u
		}
	}
	return ""
}
