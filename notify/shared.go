package notify

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterCounterVec registers c with reg and returns the counter to use:
// the one already registered under the same description when several
// consumers (one per source) share a registry, or c itself. A conflicting
// collector of the same name leaves c counting unregistered rather than
// failing the consumer.
func RegisterCounterVec(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if prev, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return prev
			}
		}
	}
	return c
}

// NewCounterVec returns a counter with one variable label, every value of
// values present from the start (dashboards then see zeros, not gaps), and
// registered with reg through RegisterCounterVec; a nil reg registers
// nothing.
func NewCounterVec(reg prometheus.Registerer, opts prometheus.CounterOpts, label string, values ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(opts, []string{label})
	for _, v := range values {
		c.WithLabelValues(v)
	}
	if reg == nil {
		return c
	}
	return RegisterCounterVec(reg, c)
}

// Secret is a webhook's configured shared secret, kept as its SHA-256:
// comparing digests keeps the comparison constant-time in the secret's
// length too. The zero Secret (none configured) matches nothing.
type Secret struct {
	digest [sha256.Size]byte
	set    bool
}

// NewSecret returns the Secret of s; an empty s is no secret.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{digest: sha256.Sum256([]byte(s)), set: true}
}

// IsSet says a secret is configured.
func (s Secret) IsSet() bool { return s.set }

// Match says got is the secret.
func (s Secret) Match(got string) bool {
	if !s.set {
		return false
	}
	d := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(d[:], s.digest[:]) == 1
}

// Sleep waits d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Detach returns a context for work that should finish even when ctx is
// cancelled: it is cancelled only grace after ctx is, or by the returned
// function. A consumer asked to stop lets a commit under way complete
// rather than abandon it half done.
func Detach(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-work.Done():
		}
	})
	return work, func() {
		stop()
		cancel()
	}
}

// OnceLog logs the first occurrence of each distinct problem at its level
// and later ones at debug, so that a misconfigured notification (every
// object-access event of a bucket, say) is visible once without flooding the
// log; the counters keep the totals. The set of keys is bounded; past the
// bound everything logs at debug.
type OnceLog struct {
	log  *slog.Logger
	mu   sync.Mutex
	seen map[string]struct{}
}

const onceLogMax = 1024

// NewOnceLog returns a OnceLog writing to log.
func NewOnceLog(log *slog.Logger) *OnceLog {
	return &OnceLog{log: log, seen: map[string]struct{}{}}
}

// Log logs msg at level the first time key is seen, at debug afterwards.
func (o *OnceLog) Log(ctx context.Context, level slog.Level, key, msg string, args ...any) {
	o.mu.Lock()
	_, dup := o.seen[key]
	first := !dup && len(o.seen) < onceLogMax
	if first {
		o.seen[key] = struct{}{}
	}
	o.mu.Unlock()
	if !first {
		level = slog.LevelDebug
	}
	o.log.Log(ctx, level, msg, args...)
}
