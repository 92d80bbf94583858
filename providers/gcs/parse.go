// Package gcs turns Google Cloud Storage Pub/Sub notifications into
// notify.Events: a pure parser (Parse) and a streaming-pull consumer
// (Consumer) that hands the events to a notify.Applier and acknowledges a
// message only once they are committed.
package gcs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// Name is the kind's name: the provider key of its sources and the
// notify.Event.Provider of every event this package makes.
const Name = "gcs"

// Pub/Sub attributes GCS sets on a notification.
const (
	attrEventType     = "eventType"
	attrPayloadFormat = "payloadFormat"
	attrBucket        = "bucketId"
	attrObject        = "objectId"
	attrGeneration    = "objectGeneration"
	attrEventTime     = "eventTime"
	// attrOverwrittenBy marks the delete or archive half of an overwrite.
	attrOverwrittenBy = "overwrittenByGeneration"
)

// GCS event types and payload formats.
const (
	eventFinalize       = "OBJECT_FINALIZE"
	eventMetadataUpdate = "OBJECT_METADATA_UPDATE"
	eventDelete         = "OBJECT_DELETE"
	eventArchive        = "OBJECT_ARCHIVE"
	// eventInitialize fires when an upload to a zonal bucket starts; the
	// object is not readable yet, and its OBJECT_FINALIZE follows.
	eventInitialize = "OBJECT_INITIALIZE"

	formatJSON = "JSON_API_V1"
	formatNone = "NONE"
)

// Limits GCS itself enforces on names; anything longer is not a notification.
const (
	maxObjectName = 1024
	maxBucketName = 222
)

// seqWidth is the width of each half of a Sequencer: int64 has 19 digits, so
// 20 always suffices and string comparison equals numeric comparison.
const seqWidth = 20

// deletedMeta is the metageneration half of a delete's Sequencer: a deletion
// ends its generation, so it sorts after every other event of the same
// generation, whether or not the payload says which metageneration it had.
const deletedMeta = "99999999999999999999"

// Reason says why a message yields no event. The values are Prometheus label
// values.
type Reason string

// Reasons a message yields no event.
const (
	// ReasonOverwritten: the OBJECT_DELETE/OBJECT_ARCHIVE half of an
	// overwrite; the OBJECT_FINALIZE of the new generation stands for both.
	ReasonOverwritten Reason = "overwritten"
	// ReasonIgnoredType: an event type that changes nothing listable.
	ReasonIgnoredType Reason = "ignored_event_type"
	// ReasonUnknownType: an event type GCS did not document when this was
	// written.
	ReasonUnknownType Reason = "unknown_event_type"
	// ReasonMissingAttribute: a required attribute is absent or empty.
	ReasonMissingAttribute Reason = "missing_attribute"
	// ReasonBadAttribute: an attribute does not parse.
	ReasonBadAttribute Reason = "bad_attribute"
	// ReasonBadPayload: the JSON_API_V1 payload does not parse or disagrees
	// with the attributes.
	ReasonBadPayload Reason = "bad_payload"
)

// skip is the notify.Skip of a message that yields no event: malformed,
// or (an overwrite's delete half, an ignored type) left out on purpose.
// Code is the finer reason.
func skip(r Reason, format string, args ...any) *notify.Skip {
	reason := notify.SkipMalformed
	if r == ReasonOverwritten || r == ReasonIgnoredType {
		reason = notify.SkipUnsupported
	}
	return &notify.Skip{Reason: reason, Code: string(r), Detail: fmt.Sprintf(format, args...)}
}

// payload is the part of a JSON_API_V1 payload (the object resource) the
// catalog needs. GCS sends the 64-bit numbers as strings.
type payload struct {
	Name           string `json:"name"`
	Bucket         string `json:"bucket"`
	Generation     string `json:"generation"`
	Metageneration string `json:"metageneration"`
	Size           string `json:"size"`
	Etag           string `json:"etag"`
	Updated        string `json:"updated"`
	ContentType    string `json:"contentType"`
}

// Parse turns one Pub/Sub message of a GCS notification into events: one
// Upsert or Delete, or the notify.Skip saying why it yields none (its Code
// a Reason).
//
// The Sequencer is the object generation and metageneration, each
// zero-padded to 20 digits and joined by a dot, so that string comparison
// orders the events of one key: a newer generation always wins, and a
// deletion of generation N sorts after every other event of generation N. The
// delete half of an overwrite is skipped (ReasonOverwritten), so an overwrite
// yields one Upsert in whatever order its two messages arrive.
//
// An Upsert is Complete when the JSON_API_V1 payload carries size, etag and
// generation; with payload format NONE the applier must stat the object. An
// OBJECT_ARCHIVE Delete is Complete: the live object became noncurrent. An
// OBJECT_DELETE Delete is not: in a versioned bucket it may be the permanent
// deletion of a noncurrent generation (a lifecycle rule pruning old
// versions) while the live object stays, and nothing in the message tells
// the two apart, so the applier asks the store. A Delete's Object.Version is
// the deleted generation.
func Parse(attrs map[string]string, data []byte) ([]notify.Event, *notify.Skip) {
	get := func(name string) (string, *notify.Skip) {
		v := attrs[name]
		if v == "" {
			return "", skip(ReasonMissingAttribute, "no %s", name)
		}
		return v, nil
	}
	typ, sk := get(attrEventType)
	if sk != nil {
		return nil, sk
	}
	kind, sk := kindOf(typ)
	if sk != nil {
		return nil, sk
	}
	bucket, sk := get(attrBucket)
	if sk != nil {
		return nil, sk
	}
	key, sk := get(attrObject)
	if sk != nil {
		return nil, sk
	}
	genAttr, sk := get(attrGeneration)
	if sk != nil {
		return nil, sk
	}
	format, sk := get(attrPayloadFormat)
	if sk != nil {
		return nil, sk
	}
	if len(bucket) > maxBucketName || !utf8.ValidString(bucket) {
		return nil, skip(ReasonBadAttribute, "bucketId %.64q", bucket)
	}
	if len(key) > maxObjectName || !utf8.ValidString(key) {
		return nil, skip(ReasonBadAttribute, "objectId %.64q", key)
	}
	gen, err := parseCount(genAttr)
	if err != nil {
		return nil, skip(ReasonBadAttribute, "objectGeneration %.32q", genAttr)
	}
	if kind == notify.Delete && attrs[attrOverwrittenBy] != "" {
		return nil, skip(ReasonOverwritten, "generation %d of %q", gen, key)
	}
	var at time.Time
	if s := attrs[attrEventTime]; s != "" {
		if at, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, skip(ReasonBadAttribute, "eventTime %.64q", s)
		}
	}

	ev := notify.Event{
		Provider: Name,
		Bucket:   bucket,
		Key:      key,
		Kind:     kind,
		Object:   providers.Object{Key: key, Version: strconv.FormatInt(gen, 10)},
		Time:     at,
	}
	meta := int64(0)
	switch format {
	case formatNone:
	case formatJSON:
		if meta, sk = fromPayload(&ev, data, gen); sk != nil {
			return nil, sk
		}
	default:
		return nil, skip(ReasonBadAttribute, "payloadFormat %.32q", format)
	}

	if kind == notify.Delete {
		ev.Complete = typ == eventArchive
		ev.Sequencer = pad(gen) + "." + deletedMeta
	} else {
		ev.Sequencer = pad(gen) + "." + pad(meta)
	}
	return []notify.Event{ev}, nil
}

// kindOf is what a notification's event type does to its object, or why
// it is skipped.
func kindOf(typ string) (notify.Kind, *notify.Skip) {
	switch typ {
	case eventFinalize, eventMetadataUpdate:
		return notify.Upsert, nil
	case eventDelete, eventArchive:
		return notify.Delete, nil
	case eventInitialize:
		return 0, skip(ReasonIgnoredType, "%s", typ)
	default:
		return 0, skip(ReasonUnknownType, "event type %.64q", typ)
	}
}

// fromPayload fills ev's object from a JSON_API_V1 payload and returns the
// object's metageneration (0 when the payload has none).
func fromPayload(ev *notify.Event, data []byte, gen int64) (int64, *notify.Skip) {
	var err error
	meta := int64(0)
	p, sk := decodePayload(data, ev.Bucket, ev.Key, gen)
	if sk != nil {
		return 0, sk
	}
	if p.Metageneration != "" {
		if meta, err = parseCount(p.Metageneration); err != nil {
			return 0, skip(ReasonBadPayload, "metageneration %.32q", p.Metageneration)
		}
	}
	if p.Size != "" {
		if ev.Object.Size, err = parseCount(p.Size); err != nil {
			return 0, skip(ReasonBadPayload, "size %.32q", p.Size)
		}
	}
	if p.Updated != "" {
		if ev.Object.LastModified, err = time.Parse(time.RFC3339Nano, p.Updated); err != nil {
			return 0, skip(ReasonBadPayload, "updated %.64q", p.Updated)
		}
	}
	ev.Object.ETag = p.Etag
	ev.Object.ContentType = p.ContentType
	ev.Complete = p.Size != "" && p.Etag != "" && p.Generation != ""
	return meta, nil
}

// decodePayload reads a JSON_API_V1 payload and checks that it describes the
// object the attributes name.
func decodePayload(data []byte, bucket, key string, gen int64) (payload, *notify.Skip) {
	var p payload
	if err := json.Unmarshal(data, &p); err != nil {
		return p, skip(ReasonBadPayload, "%v", err)
	}
	if p.Name != "" && p.Name != key {
		return p, skip(ReasonBadPayload, "payload names object %.64q, attributes %.64q", p.Name, key)
	}
	if p.Bucket != "" && p.Bucket != bucket {
		return p, skip(ReasonBadPayload, "payload names bucket %.64q, attributes %.64q", p.Bucket, bucket)
	}
	if p.Generation != "" {
		g, err := parseCount(p.Generation)
		if err != nil || g != gen {
			return p, skip(ReasonBadPayload, "payload generation %.32q, attributes %d", p.Generation, gen)
		}
	}
	return p, nil
}

// parseCount parses a non-negative decimal int64 as GCS writes them.
func parseCount(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a decimal count: %q", s)
	}
	return strconv.ParseInt(s, 10, 64)
}

func pad(n int64) string {
	return notify.PadSequencer(strconv.FormatInt(n, 10), seqWidth)
}
