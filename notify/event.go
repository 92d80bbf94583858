// Package notify is the fast path: it turns bucket notifications (S3 via SQS
// or webhook, GCS via Pub/Sub, Azure Event Grid) into catalog changes through
// the same commit path as a scan, so a change seen by a notification and again
// by the next scan is published once.
//
// Each provider's consumer parses its messages into Events and hands them to
// an Applier; it acknowledges a message only after Apply returned nil.
package notify

import (
	"context"
	"strings"
	"time"

	"github.com/imgly/syncer/providers"
)

// Kind is what a notification says happened to an object.
type Kind uint8

const (
	// Upsert: the object was created or overwritten.
	Upsert Kind = iota + 1
	// Delete: the object's current version is gone.
	Delete
)

func (k Kind) String() string {
	switch k {
	case Upsert:
		return "upsert"
	case Delete:
		return "delete"
	}
	return "unknown"
}

// Event is one object-level change reported by a provider notification,
// normalised across providers.
type Event struct {
	// Provider is the kind of store that sent it: "s3", "gcs" or "azure".
	// Only sources of that provider are considered when routing.
	Provider string
	// Bucket is the bucket (S3, GCS) or container (Azure).
	Bucket string
	// Key is the object key, fully decoded.
	Key  string
	Kind Kind
	// Object is the state the notification carries; Object.Key == Key.
	Object providers.Object
	// Complete says Object (for Upsert) or the deletion (for Delete) can be
	// committed as is. When false the applier asks the store for the key's
	// current state instead: a record without a sequencer or size cannot be
	// ordered or recorded, a delete of one version of a versioned object may
	// leave the object in place. A complete event older than the router's
	// VerifyAfter is checked the same way.
	Complete bool
	// Sequencer orders events of the same key: a greater Sequencer (plain
	// string comparison) is newer. Parsers normalise provider sequencers so
	// this holds (left-padded hex, zero-padded generations). Empty means
	// unordered: the event is applied as it comes.
	Sequencer string
	// Time is when the provider says the change happened.
	Time time.Time
	// ID identifies the notification in logs.
	ID string
}

// Applier commits events to the catalog of every source they belong to.
// Apply returns nil once each event is committed, or deliberately ignored
// (foreign bucket, outside the prefix or filters, stale, duplicate); an error
// means nothing is known to be durable and the message must be redelivered.
type Applier interface {
	Apply(ctx context.Context, events []Event) error
}

// ApplyEach applies the events of several messages with one Apply, so that
// one catalog commit covers them all. If that fails it applies them message
// by message, so that one message that cannot be applied does not hold back
// the others; Apply is idempotent, so what the failed call committed is
// harmlessly committed again. It returns each message's error, nil once
// applied.
func ApplyEach(ctx context.Context, app Applier, msgs [][]Event) []error {
	errs := make([]error, len(msgs))
	var all []Event
	for _, evs := range msgs {
		all = append(all, evs...)
	}
	err := app.Apply(ctx, all)
	switch {
	case err == nil:
	case len(msgs) == 1:
		errs[0] = err
	default:
		for i, evs := range msgs {
			errs[i] = app.Apply(ctx, evs)
		}
	}
	return errs
}

// PadSequencer left-pads a hexadecimal or decimal sequencer with zeros to a
// fixed width and lower-cases it, so that string comparison orders sequencers
// of different lengths and cases correctly.
func PadSequencer(s string, width int) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) >= width {
		return s
	}
	return strings.Repeat("0", width-len(s)) + s
}

// HexSequencer normalises a hexadecimal sequencer with PadSequencer. An
// empty, all-zero, non-hex or over-long one (more than width digits once
// leading zeros are dropped) cannot be ordered: it comes back empty with ok
// false, and the caller applies the event unordered or leaves it to a stat.
func HexSequencer(s string, width int) (string, bool) {
	s = strings.TrimLeft(strings.TrimSpace(s), "0")
	if s == "" || len(s) > width {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", false
		}
	}
	return PadSequencer(s, width), true
}
