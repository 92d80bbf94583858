// Package events turns committed catalog changes into contents-changed
// events on NATS JetStream: CloudEvents 1.0 in structured JSON mode, one
// subject per source, deduplicated by Nats-Msg-Id.
package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imgly/syncer/catalog"
)

// Type is the CloudEvents type of a contents-changed event.
const Type = "io.syncer.contents.changed.v1"

// ContentType is the Content-Type header of a structured CloudEvent.
const ContentType = "application/cloudevents+json"

// CloudEvent is the structured-mode envelope.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            ContentsChanged `json:"data"`
}

// ContentsChanged says which objects of a source changed. An editor needs
// only to know that the source changed (one refresh per event); other
// subscribers get every change listed.
type ContentsChanged struct {
	SourceID string `json:"sourceId"`
	// FirstSeq and LastSeq bound the sequence numbers of the changes listed.
	// Consecutive events of a source have consecutive ranges, so a gap tells
	// a subscriber it missed an event.
	FirstSeq uint64   `json:"firstSeq"`
	LastSeq  uint64   `json:"lastSeq"`
	Changes  []Change `json:"changes"`
	// Skipped are the changes of the range that are not listed because
	// NATS could not carry them even alone (a key longer than the
	// message size limit). The range stays contiguous; a subscriber that
	// must know the object lists the source.
	Skipped []Skipped `json:"skipped,omitempty"`
}

// Skipped is a change left out of its event.
type Skipped struct {
	Seq uint64 `json:"seq"`
	Op  string `json:"op"`
	// KeyBytes is the length of the key, which is not repeated.
	KeyBytes int    `json:"keyBytes"`
	Reason   string `json:"reason"` // too_large
}

// ReasonTooLarge is the Skipped reason of a change too big for NATS.
const ReasonTooLarge = "too_large"

// Change is one object's change.
type Change struct {
	Seq          uint64     `json:"seq"`
	Op           string     `json:"op"` // added | modified | deleted
	Key          string     `json:"key"`
	Size         int64      `json:"size"`
	ETag         string     `json:"etag,omitempty"`
	Version      string     `json:"version,omitempty"`
	LastModified *time.Time `json:"lastModified,omitempty"`
	ContentType  string     `json:"contentType,omitempty"`
	DetectedBy   string     `json:"detectedBy"` // scan | notification
}

// MessageID is the event id and Nats-Msg-Id of the changes first..last of a
// source: a retry of the same event carries the same id and JetStream drops
// the duplicate, and a restart reads back from the stream which changes its
// last event covered. The catalog's instance id keeps ids unique if a
// catalog is recreated from scratch; an event whose id a restored catalog
// would reuse gets a ".<suffix>" (see Publisher).
func MessageID(instance, sourceID string, first, last uint64) string {
	return fmt.Sprintf("%s.%s.%d-%d", instance, sourceID, first, last)
}

// parseMessageID returns the last sequence number an id of instance and
// sourceID covers; ok is false for any other id.
func parseMessageID(id, instance, sourceID string) (last uint64, ok bool) {
	rest, found := strings.CutPrefix(id, instance+"."+sourceID+".")
	if !found {
		return 0, false
	}
	a, b, found := strings.Cut(rest, "-")
	if !found {
		return 0, false
	}
	// An id made unique after a collision carries a suffix.
	b, _, _ = strings.Cut(b, ".")
	first, err1 := strconv.ParseUint(a, 10, 64)
	last, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil || first > last {
		return 0, false
	}
	return last, true
}

// Subject is the subject a source's events are published on.
func Subject(prefix, sourceID string) string { return prefix + "." + sourceID }

// New builds the event of a batch of changes.
func New(instance, sourceID string, changes []catalog.Change, now time.Time) CloudEvent {
	first, last := changes[0].Seq, changes[len(changes)-1].Seq
	data := ContentsChanged{SourceID: sourceID, FirstSeq: first, LastSeq: last, Changes: make([]Change, len(changes))}
	for i, c := range changes {
		ch := Change{
			Seq: c.Seq, Op: c.Op.String(), Key: c.Object.Key, Size: c.Object.Size,
			ETag: c.Object.ETag, Version: c.Object.Version, ContentType: c.Object.ContentType,
			DetectedBy: c.Origin.String(),
		}
		if !c.Object.LastModified.IsZero() {
			t := c.Object.LastModified
			ch.LastModified = &t
		}
		data.Changes[i] = ch
	}
	return CloudEvent{
		SpecVersion:     "1.0",
		ID:              MessageID(instance, sourceID, first, last),
		Source:          "/syncer/sources/" + sourceID,
		Type:            Type,
		Subject:         sourceID,
		Time:            now.UTC(),
		DataContentType: "application/json",
		Data:            data,
	}
}

// Decode parses a structured CloudEvent of syncer.
func Decode(b []byte) (CloudEvent, error) {
	var ev CloudEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		return CloudEvent{}, fmt.Errorf("decode event: %w", err)
	}
	if ev.SpecVersion != "1.0" || ev.Type != Type {
		return CloudEvent{}, fmt.Errorf("decode event: not a %s CloudEvent 1.0 (specversion %q, type %q)", Type, ev.SpecVersion, ev.Type)
	}
	return ev, nil
}
