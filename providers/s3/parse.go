// Package s3 turns S3 bucket notifications into notify.Events: S3 event
// records (AWS, MinIO, Ceph RGW), the same wrapped in an SNS envelope,
// EventBridge "Object Created" / "Object Deleted" events, and s3:TestEvent.
// They arrive through an SQS queue (SQSConsumer) or are POSTed by an
// S3-compatible store (NewWebhook).
//
// The parsers are pure: bytes in, events out. What a record does not say
// (whether a deleted version was the current one; a create's size and ETag
// where a store omits them) is left to the applier through Event.Complete.
package s3

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// Name is the kind's name: the provider key of its sources and the
// notify.Event provider these parsers emit.
const Name = "s3"

// MaxBodySize bounds a notification body. An SQS message is at most 256 KiB
// and a MinIO webhook POST carries one record (a few KiB); 1 MiB leaves room
// for either without letting one request hold unbounded memory.
const MaxBodySize = 1 << 20

// SequencerWidth is the width sequencers are left-padded to. S3 sequencers
// seen in the wild are 16 to 18 hex digits and MinIO's are a nanosecond
// timestamp (at most 16); 32 leaves room for S3 to lengthen them (it only
// promises they grow, not their length) while staying short in the catalog.
const SequencerWidth = 32

// Errors a body can be refused with. Test with errors.Is.
var (
	// ErrMalformed: the body is not a notification of a known format.
	ErrMalformed = errors.New("malformed notification")
	// ErrTooLarge: the body exceeds MaxBodySize.
	ErrTooLarge = errors.New("notification too large")
)

// Format names the shape a body had.
type Format string

const (
	FormatRecords     Format = "records"     // {"Records":[...]} from S3, SNS raw delivery or Ceph RGW
	FormatMinIO       Format = "minio"       // MinIO's {"EventName","Key","Records"} wrapper
	FormatSNS         Format = "sns"         // SNS envelope; Inner says what it wrapped
	FormatEventBridge Format = "eventbridge" // EventBridge event from source aws.s3
	FormatTestEvent   Format = "testevent"   // s3:TestEvent sent when notifications are configured
	FormatEmpty       Format = "empty"       // empty body: a sender's connectivity probe
)

// Why a record produced no event, in notify's one vocabulary.
const (
	// SkipIgnored: an event type syncer does not track (tagging, ACLs,
	// restores, storage-class transitions, accesses, ...).
	SkipIgnored = notify.SkipUnsupported
	// SkipTest: s3:TestEvent, or an empty probe body.
	SkipTest = notify.SkipTest
	// SkipMalformed: a record inside an otherwise well-formed body that
	// cannot be understood (bad key encoding, missing bucket or key,
	// unsupported eventVersion).
	SkipMalformed = notify.SkipMalformed
)

// Skip is one record that produced no event: Type is the event name or
// detail-type, Key the decoded key (or the raw one when it failed to
// decode), Detail why.
type Skip = notify.Skip

// Result is what one body says.
type Result struct {
	Format Format
	// Inner is the format an SNS envelope wrapped; empty otherwise.
	Inner  Format
	Events []notify.Event
	Skips  []Skip
}

// Parse sniffs which format body is and parses it. An error (ErrMalformed,
// ErrTooLarge) refuses the whole body; problems with single records of a
// well-formed body are reported as Skips of kind SkipMalformed instead, so
// that the good records of a batch still apply.
func Parse(body []byte) (Result, error) {
	return parseBody(body, true)
}

func parseBody(body []byte, allowSNS bool) (Result, error) {
	if len(body) > MaxBodySize {
		return Result{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(body), MaxBodySize)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return Result{Format: FormatEmpty, Skips: []Skip{{Reason: SkipTest, Detail: "empty body"}}}, nil
	}
	var env envelope
	if err := unmarshalObject(body, &env); err != nil {
		return Result{}, err
	}
	return env.parse(allowSNS)
}

// unmarshalObject decodes a JSON object into v, refusing anything else
// (arrays, strings, trailing garbage).
func unmarshalObject(body []byte, v any) error {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// envelope is the union of the top-level fields of every format, decoded
// once; which fields are set tells the format. encoding/json matches names
// case-insensitively, so no two fields here differ only in case.
type envelope struct {
	// S3 records; MinIO adds EventName (and Key, which the record repeats)
	// beside them.
	Records   []json.RawMessage `json:"Records"`
	EventName string            `json:"EventName"`

	// SNS.
	Type    string  `json:"Type"`
	Message *string `json:"Message"`

	// s3:TestEvent.
	Service string `json:"Service"`
	Event   string `json:"Event"`
	Bucket  string `json:"Bucket"`

	// EventBridge.
	ID         string          `json:"id"`
	DetailType *string         `json:"detail-type"`
	Source     string          `json:"source"`
	Time       string          `json:"time"`
	Detail     json.RawMessage `json:"detail"`
}

func (e *envelope) isTest() bool {
	return e.Event == "s3:TestEvent" && e.Records == nil
}

func (e *envelope) isSNS() bool {
	return e.Type != "" && e.Message != nil && e.Records == nil
}

func (e *envelope) isEventBridge() bool {
	return e.DetailType != nil && e.Detail != nil
}

// parse dispatches on the fields present. allowSNS is false inside an SNS
// envelope: SNS does not wrap SNS.
func (e *envelope) parse(allowSNS bool) (Result, error) {
	switch {
	case e.isTest():
		return Result{Format: FormatTestEvent, Skips: []Skip{{
			Reason: SkipTest, Type: e.Event, Bucket: e.Bucket, Detail: "test event",
		}}}, nil
	case e.isSNS():
		if !allowSNS {
			return Result{}, fmt.Errorf("%w: SNS envelope inside SNS envelope", ErrMalformed)
		}
		return e.parseSNS()
	case e.isEventBridge():
		return e.parseEventBridge()
	case e.Records != nil:
		f := FormatRecords
		if e.EventName != "" {
			f = FormatMinIO
		}
		res := Result{Format: f}
		for i, raw := range e.Records {
			ev, skip := parseRecord(raw, i)
			if skip != nil {
				res.Skips = append(res.Skips, *skip)
				continue
			}
			res.Events = append(res.Events, ev)
		}
		return res, nil
	}
	return Result{}, fmt.Errorf("%w: no Records, SNS Message, EventBridge detail or test event", ErrMalformed)
}

func (e *envelope) parseSNS() (Result, error) {
	if e.Type != "Notification" {
		// SubscriptionConfirmation and UnsubscribeConfirmation only reach
		// HTTP subscribers; SQS subscriptions are confirmed by SNS itself.
		return Result{Format: FormatSNS, Skips: []Skip{{
			Reason: SkipIgnored, Type: "sns:" + e.Type, Detail: "SNS message type is not Notification",
		}}}, nil
	}
	inner, err := parseBody([]byte(*e.Message), false)
	if err != nil {
		// No message id in the error: it keys the consumer's log-once set.
		return Result{}, fmt.Errorf("in SNS message: %w", err)
	}
	if inner.Format == FormatEmpty {
		return Result{}, fmt.Errorf("%w: empty SNS message", ErrMalformed)
	}
	inner.Inner, inner.Format = inner.Format, FormatSNS
	return inner, nil
}

// record is one S3 event record. Only what syncer uses is decoded.
type record struct {
	EventVersion     string `json:"eventVersion"`
	EventSource      string `json:"eventSource"`
	EventTime        string `json:"eventTime"`
	EventName        string `json:"eventName"`
	EventID          string `json:"eventId"` // Ceph RGW
	ResponseElements struct {
		RequestID string `json:"x-amz-request-id"`
	} `json:"responseElements"`
	S3 struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key         string  `json:"key"`
			Size        flexInt `json:"size"`
			ETag        string  `json:"eTag"`
			VersionID   string  `json:"versionId"`
			Sequencer   string  `json:"sequencer"`
			ContentType string  `json:"contentType"` // MinIO
		} `json:"object"`
	} `json:"s3"`
}

// What a notification does to the catalog.
type action uint8

const (
	actIgnore action = iota
	actUpsert
	// actDelete: the object's current version is gone, or it may be: a
	// versioned delete is checked by a stat.
	actDelete
	// actDeleteCurrent: the current version is certainly gone (a delete
	// marker was created, every version was deleted).
	actDeleteCurrent
	// actDeleteUnsure: a delete the record cannot place; always stat.
	actDeleteUnsure
)

// recordAction classifies an S3 eventName, with or without MinIO's and old
// Ceph's "s3:" prefix. Unknown ObjectCreated / ObjectRemoved subtypes are
// taken as a change of unknown shape and resolved by a stat, so that a new
// S3 event name never silently loses a change.
func recordAction(name string) action {
	n := strings.TrimPrefix(name, "s3:")
	switch n {
	case "ObjectCreated:PutTagging", "ObjectCreated:DeleteTagging",
		"ObjectCreated:PutRetention", "ObjectCreated:PutLegalHold":
		// MinIO files metadata-only changes under ObjectCreated.
		return actIgnore
	case "ObjectRemoved:Delete", "LifecycleExpiration:Delete":
		return actDelete
	case "ObjectRemoved:DeleteMarkerCreated", "LifecycleExpiration:DeleteMarkerCreated",
		"ObjectRemoved:DeleteAllVersions":
		return actDeleteCurrent
	case "ObjectRemoved:NoOP":
		// MinIO: a delete of a key that did not exist.
		return actIgnore
	case "ObjectLifecycle:Expiration:Current":
		// Ceph RGW: the current version expired (deleted, or hidden by a
		// delete marker on a versioned bucket).
		return actDeleteUnsure
	case "ObjectSynced:Delete", "ObjectSynced:DeletionMarkerCreated":
		// Ceph RGW multisite: replicated from another zone.
		return actDeleteUnsure
	}
	switch {
	case strings.HasPrefix(n, "ObjectCreated:"), strings.HasPrefix(n, "ObjectSynced:Create"):
		return actUpsert
	case strings.HasPrefix(n, "ObjectRemoved:"):
		return actDeleteUnsure
	}
	// ObjectRestore:*, LifecycleTransition, IntelligentTiering,
	// ObjectTagging:*, ObjectAcl:Put, Replication:*,
	// ReducedRedundancyLostObject, ObjectAccessed:*, Scanner:*,
	// LifecycleDelMarkerExpiration:Delete (an expired delete marker leaves
	// the object absent), Ceph's non-current expirations and transitions.
	return actIgnore
}

// parseRecord turns one record into an event, or says why it does not.
func parseRecord(raw json.RawMessage, i int) (notify.Event, *Skip) {
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return notify.Event{}, &Skip{Reason: SkipMalformed, Detail: fmt.Sprintf("record %d: %v", i, err)}
	}
	bucket, rawKey := r.S3.Bucket.Name, r.S3.Object.Key
	bad := func(format string, args ...any) (notify.Event, *Skip) {
		return notify.Event{}, &Skip{Reason: SkipMalformed, Type: r.EventName, Bucket: bucket, Key: rawKey,
			Detail: fmt.Sprintf("record %d: ", i) + fmt.Sprintf(format, args...)}
	}
	if !supportedEventVersion(r.EventVersion) {
		return bad("unsupported eventVersion %q (want 2.x)", r.EventVersion)
	}
	act := recordAction(r.EventName)
	if act == actIgnore {
		return notify.Event{}, &Skip{Reason: SkipIgnored, Type: r.EventName, Bucket: bucket, Key: rawKey,
			Detail: "event type not tracked"}
	}
	if bucket == "" {
		return bad("no bucket name")
	}
	if !r.S3.Object.Size.valid() {
		return bad("object size %q is not a non-negative integer", r.S3.Object.Size.raw)
	}
	// Ceph RGW sends keys raw (rgw_notify.cc copies the object name as is),
	// and its sequencer is the hex dump of an in-memory timestamp struct,
	// which does not order: its events are unordered and resolved by a
	// stat. AWS and MinIO form-encode the key.
	ceph := r.EventSource == "ceph:s3"
	key := rawKey
	if !ceph {
		var err error
		if key, err = decodeKey(rawKey); err != nil {
			return bad("key: %v", err)
		}
	}
	if key == "" {
		return bad("no object key")
	}
	if !utf8.ValidString(key) {
		return bad("key is not valid UTF-8")
	}
	seq, seqOK := "", false
	if !ceph {
		seq, seqOK = notify.HexSequencer(r.S3.Object.Sequencer, SequencerWidth)
	}
	id := r.ResponseElements.RequestID
	if id == "" {
		id = r.EventID
	}
	ev := notify.Event{
		Provider:  Name,
		Bucket:    bucket,
		Key:       key,
		Sequencer: seq,
		Time:      parseTime(r.EventTime),
		ID:        id,
		Object: providers.Object{
			Key:         key,
			Size:        r.S3.Object.Size.n,
			ETag:        normalizeETag(r.S3.Object.ETag),
			Version:     versionOf(r.S3.Object.VersionID),
			ContentType: r.S3.Object.ContentType,
		},
	}
	setKind(&ev, act, r.S3.Object.Size, r.S3.Object.ETag, r.S3.Object.VersionID != "", seqOK)
	return ev, nil
}

// setKind sets what record action act does to ev, and whether ev says all
// the catalog needs (otherwise the applier stats the key).
func setKind(ev *notify.Event, act action, size flexInt, etag string, versioned, seqOK bool) {
	switch act {
	case actUpsert:
		// Size, ETag and a sequencer are what the catalog needs of a
		// create: the sequencer keeps a late create from overriding a newer
		// change, and a create older than the router's verifyAfter is
		// checked by a stat anyway. Without them (Ceph has no sequencer,
		// so seqOK is false) the applier stats the key.
		ev.Kind, ev.Complete = notify.Upsert, seqOK && completeObject(size, etag)
		ev.Object.LastModified = ev.Time
	case actDelete:
		// On a versioned bucket this deleted one version, which may not
		// have been the current one: a stat decides.
		ev.Kind, ev.Complete = notify.Delete, !versioned && seqOK
	case actDeleteCurrent:
		ev.Kind, ev.Complete = notify.Delete, seqOK
	case actDeleteUnsure:
		ev.Kind, ev.Complete = notify.Delete, false
	}
	// A delete carries no size or ETag; only the key and version matter.
	if ev.Kind == notify.Delete {
		ev.Object = providers.Object{Key: ev.Key, Version: ev.Object.Version}
	}
}

// supportedEventVersion accepts major version 2 with any minor: minors only
// add fields (2.1 general, 2.2 replication, 2.3 lifecycle/tagging/ACL, 2.4+
// unified), MinIO sends 2.0 and Ceph 2.1 or 2.2.
func supportedEventVersion(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	if major != "2" {
		return false
	}
	if !ok {
		return true
	}
	if minor == "" {
		return false
	}
	for _, c := range minor {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// decodeKey undoes S3's form encoding of keys in notifications: "+" is a
// space, "%2B" a plus, "%2F" (MinIO) or "/" (AWS) a slash.
func decodeKey(raw string) (string, error) {
	k, err := url.QueryUnescape(raw)
	if err != nil {
		return "", err
	}
	return k, nil
}

// versionOf drops the "null" version id S3 reports for objects written while
// versioning was off, as the S3 provider does.
func versionOf(v string) string {
	if v == "null" {
		return ""
	}
	return v
}

// parseTime reads an RFC 3339 time; Ceph has been seen writing a space
// instead of the "T". An unreadable time is left zero: it only informs.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	if t, err := time.Parse(time.RFC3339Nano, strings.Replace(s, " ", "T", 1)); err == nil {
		return t.UTC()
	}
	return time.Time{}
}

// flexInt is an object size: a JSON number (AWS, MinIO, newer Ceph) or a
// string holding one (older Ceph RGW). Absent is zero.
type flexInt struct {
	n   int64
	raw string
	ok  bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	f.raw = string(b)
	s := string(b)
	if s == "null" {
		f.n, f.ok = 0, true
		return nil
	}
	if len(s) >= 2 && s[0] == '"' {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		s = str
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		// Not a hard decode error: the record is reported as malformed
		// with its context instead of failing the whole body.
		f.n, f.ok = 0, false
		return nil
	}
	f.n, f.ok = n, true
	return nil
}

func (f flexInt) valid() bool { return f.ok || f.raw == "" }

// present says the size was given, not just absent (which reads as zero).
func (f flexInt) present() bool { return f.ok && f.raw != "" && f.raw != "null" }

// completeObject says a create names the object's size and ETag.
func completeObject(size flexInt, etag string) bool {
	return size.present() && normalizeETag(etag) != ""
}
