// Package events turns committed catalog changes into contents-changed
// events on NATS JetStream: CloudEvents 1.0 in structured JSON mode, one
// subject per source, deduplicated by Nats-Msg-Id.
package events

import (
	"encoding/json"
	"fmt"
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
}

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

// MessageID is the event id and Nats-Msg-Id of a batch: a retry of the same
// batch carries the same id and JetStream drops the duplicate. The catalog's
// instance id keeps ids unique if a catalog is recreated from scratch.
func MessageID(instance, sourceID string, b catalog.Batch) string {
	return fmt.Sprintf("%s.%s.%d-%d", instance, sourceID, b.First, b.Last)
}

// Subject is the subject a source's events are published on.
func Subject(prefix, sourceID string) string { return prefix + "." + sourceID }

// New builds the event of a batch of changes.
func New(instance, sourceID string, changes []catalog.Change, now time.Time) CloudEvent {
	b := catalog.Batch{First: changes[0].Seq, Last: changes[len(changes)-1].Seq}
	data := ContentsChanged{SourceID: sourceID, FirstSeq: b.First, LastSeq: b.Last, Changes: make([]Change, len(changes))}
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
		ID:              MessageID(instance, sourceID, b),
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
