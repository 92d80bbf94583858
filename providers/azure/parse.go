// Package azure turns Azure Blob Storage events, delivered by Event Grid to a
// Storage Queue or to a webhook, into notify.Events.
//
// Both Event Grid schemas are understood, the Event Grid schema
// ({topic, subject, eventType, eventTime, id, data, dataVersion,
// metadataVersion}) and CloudEvents 1.0 ({specversion, type, source, subject,
// id, time, data}), as one object or an array of them.
//
// What is applied:
//   - Microsoft.Storage.BlobCreated: an Upsert, complete when the event
//     carries the ETag and the length (the content type comes along).
//     Creations that may describe a blob not yet fully written (the
//     hierarchical namespace's CreateFile, and CopyBlob, which fires when the
//     copy starts on such accounts) are incomplete: the applier stats the key.
//   - Microsoft.Storage.BlobDeleted: a complete Delete, unless the URL names
//     a snapshot or a version (deleting one of those leaves the blob), when
//     the applier stats instead.
//   - Microsoft.Storage.BlobRenamed (hierarchical namespace): a complete
//     Delete of the source and an incomplete Upsert of the destination.
//
// What is skipped and counted: DirectoryCreated/Renamed/Deleted
// (hierarchical namespace; a directory rename or recursive delete changes
// every blob below it, which one event cannot list: the next scan catches
// up), Event Grid's own events (subscription validation and deletion), and
// every other type (BlobTierChanged, AsyncOperationInitiated, inventory and
// lifecycle reports...).
//
// Keys: the subject, /blobServices/default/containers/{container}/blobs/{name},
// carries the blob name as is, not URL-encoded, while data.url carries it
// percent-encoded (Microsoft's own Event Grid blob trigger decodes the name
// from data.url). The subject is known to lose characters outside the Basic
// Multilingual Plane: they arrive as U+FFFD
// (Azure-Samples/azure-event-grid-viewer#9). So the key is the subject's name
// when the decoded URL agrees or the subject is intact, the URL's name when
// the subject is damaged, and an event whose two names disagree is marked
// incomplete so that the applier stats the key rather than trust either.
//
// Sequencers: data.sequencer orders the events of one blob; it is hex of
// varying length and case, so it is normalised with notify.PadSequencer to
// SequencerWidth digits.
package azure

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/imgly/syncer/notify"
)

// Name is the kind's name: the provider key of its sources and
// notify.Event.Provider for Azure Blob events.
const Name = "azure"

// SequencerWidth is the width sequencers are padded to: the longest seen in
// Azure's examples is 48 hex digits; 64 leaves room.
const SequencerWidth = 64

// Event types.
const (
	TypeBlobCreated            = "Microsoft.Storage.BlobCreated"
	TypeBlobDeleted            = "Microsoft.Storage.BlobDeleted"
	TypeBlobRenamed            = "Microsoft.Storage.BlobRenamed"
	TypeDirectoryCreated       = "Microsoft.Storage.DirectoryCreated"
	TypeDirectoryRenamed       = "Microsoft.Storage.DirectoryRenamed"
	TypeDirectoryDeleted       = "Microsoft.Storage.DirectoryDeleted"
	TypeSubscriptionValidation = "Microsoft.EventGrid.SubscriptionValidationEvent"
	TypeSubscriptionDeleted    = "Microsoft.EventGrid.SubscriptionDeletedEvent"
)

const (
	subjectPrefix   = "/blobServices/default/containers/"
	eventGridPrefix = "microsoft.eventgrid."
	ceSpecVersion   = "1.0"
	apiCreateFile   = "CreateFile" // hierarchical namespace: an empty file, written later
	apiCopyBlob     = "CopyBlob"   // hierarchical namespace: fires when the copy starts
)

// Reason says why an event was not turned into a change: the Code of its
// Skip, finer than the Skip's notify.SkipReason.
type Reason string

const (
	// ReasonEventType: a type syncer does not act on (BlobTierChanged...).
	ReasonEventType Reason = "event_type"
	// ReasonDirectory: a hierarchical-namespace directory event.
	ReasonDirectory Reason = "directory"
	// ReasonEventGrid: Event Grid's own events (validation, deletion).
	ReasonEventGrid Reason = "eventgrid"
	// ReasonMalformed: the event lacks what its type needs.
	ReasonMalformed Reason = "malformed"
)

// Skip is one event left out of Result.Events, and why: Code is its
// Reason, Detail explains a malformed event.
type Skip = notify.Skip

// skipReasons maps this parser's reasons onto notify's one vocabulary.
var skipReasons = map[Reason]notify.SkipReason{
	ReasonEventType: notify.SkipUnsupported,
	ReasonDirectory: notify.SkipUnsupported,
	ReasonEventGrid: notify.SkipUnsupported,
	ReasonMalformed: notify.SkipMalformed,
}

// skipped is the Skip of an event (id, type) left out for r.
func skipped(r Reason, id, typ, detail string) *Skip {
	if detail == "" {
		detail = string(r)
	}
	return &Skip{Reason: skipReasons[r], Code: string(r), ID: id, Type: typ, Detail: detail}
}

// Result is what one message held.
type Result struct {
	Events []notify.Event
	Skips  []Skip
}

// ErrMalformed marks a message that is not an event or an array of events
// at all, or none of whose events could be read.
var ErrMalformed = errors.New("malformed Event Grid message")

// envelope holds the fields of both schemas; the schema decides which count.
type envelope struct {
	// Event Grid schema.
	Topic           string `json:"topic"`
	EventType       string `json:"eventType"`
	EventTime       string `json:"eventTime"`
	DataVersion     string `json:"dataVersion"`
	MetadataVersion string `json:"metadataVersion"`
	// CloudEvents 1.0.
	SpecVersion string `json:"specversion"`
	Type        string `json:"type"`
	Source      string `json:"source"`
	Time        string `json:"time"`
	// Both.
	ID      string          `json:"id"`
	Subject string          `json:"subject"`
	Data    json.RawMessage `json:"data"`
}

// blobData is the data of the storage events syncer acts on.
type blobData struct {
	API            string `json:"api"`
	ETag           string `json:"eTag"`
	ContentType    string `json:"contentType"`
	ContentLength  *int64 `json:"contentLength"`
	BlobType       string `json:"blobType"`
	URL            string `json:"url"`
	Sequencer      string `json:"sequencer"`
	VersionID      string `json:"versionId"`
	SourceURL      string `json:"sourceUrl"`
	DestinationURL string `json:"destinationUrl"`
}

// Parse parses a message in either schema, telling them apart per event by
// CloudEvents' specversion attribute. A subscription's schema is a setting
// on the Azure side; accepting both keeps a change there from silently
// dropping events.
func Parse(body []byte) (Result, error) {
	elems, err := splitEvents(body)
	if err != nil {
		return Result{}, err
	}
	var res Result
	malformed := 0
	var firstBad string
	for _, raw := range elems {
		var env envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			malformed++
			detail := "not an event object: " + err.Error()
			res.Skips = append(res.Skips, *skipped(ReasonMalformed, "", "", detail))
			if firstBad == "" {
				firstBad = detail
			}
			continue
		}
		evs, skip := convert(&env)
		if skip != nil {
			res.Skips = append(res.Skips, *skip)
			if skip.Reason == notify.SkipMalformed {
				malformed++
				if firstBad == "" {
					firstBad = skip.Detail
				}
			}
			continue
		}
		res.Events = append(res.Events, evs...)
	}
	if malformed > 0 && malformed == len(elems) {
		return res, fmt.Errorf("%w: %s", ErrMalformed, firstBad)
	}
	return res, nil
}

// splitEvents returns the JSON objects of a body holding one object or an
// array of them.
func splitEvents(body []byte) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	switch body[0] {
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(body, &elems); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return elems, nil
	case '{':
		if !json.Valid(body) {
			return nil, fmt.Errorf("%w: invalid JSON", ErrMalformed)
		}
		return []json.RawMessage{body}, nil
	}
	return nil, fmt.Errorf("%w: neither a JSON object nor an array", ErrMalformed)
}

// convert turns one event into changes, or says why it does not.
func convert(env *envelope) ([]notify.Event, *Skip) {
	isCE := env.SpecVersion != ""
	typ, when := env.EventType, env.EventTime
	if isCE {
		typ, when = env.Type, env.Time
	}
	bad := func(format string, args ...any) *Skip {
		return skipped(ReasonMalformed, env.ID, typ, fmt.Sprintf(format, args...))
	}
	switch {
	case isCE && env.SpecVersion != ceSpecVersion:
		return nil, bad("CloudEvents specversion %q, want %s", env.SpecVersion, ceSpecVersion)
	case typ == "":
		return nil, bad("no event type")
	}

	kind, sk := blobKind(env.ID, typ)
	if sk != nil {
		return nil, sk
	}

	container, subjKey, err := splitSubject(env.Subject)
	if err != nil {
		return nil, bad("%v", err)
	}
	var d blobData
	if len(env.Data) > 0 && !bytes.Equal(env.Data, []byte("null")) {
		if err := json.Unmarshal(env.Data, &d); err != nil {
			return nil, bad("data: %v", err)
		}
	}
	at, _ := time.Parse(time.RFC3339Nano, when) // zero when absent or odd: informational only
	base := notify.Event{
		Provider:  Name,
		Bucket:    container,
		Sequencer: sequencer(d.Sequencer),
		Time:      at,
		ID:        env.ID,
	}

	if kind == 0 { // BlobRenamed
		return renamed(base, d, subjKey, container, at, bad)
	}

	key, sure := pickKey(subjKey, d.URL, container)
	if key == "" {
		return nil, bad("no usable blob name")
	}
	ev := base
	ev.Kind, ev.Key = kind, key
	ev.Object.Key = key
	switch kind {
	case notify.Upsert:
		ev.Object.ETag = NormalizeETag(d.ETag)
		ev.Object.ContentType = d.ContentType
		ev.Object.Version = d.VersionID
		ev.Object.LastModified = at
		if d.ContentLength != nil {
			if *d.ContentLength < 0 {
				return nil, bad("negative contentLength")
			}
			ev.Object.Size = *d.ContentLength
		}
		ev.Complete = sure && ev.Object.ETag != "" && d.ContentLength != nil &&
			!strings.EqualFold(d.API, apiCreateFile) && !strings.EqualFold(d.API, apiCopyBlob)
	case notify.Delete:
		ev.Complete = sure && !namesSnapshotOrVersion(d.URL)
	}
	return []notify.Event{ev}, nil
}

// blobKind is what an event type does to its blob: 0 for a rename (which
// deletes one name and creates another), or why the event is skipped.
func blobKind(id, typ string) (notify.Kind, *Skip) {
	switch {
	case strings.EqualFold(typ, TypeBlobCreated):
		return notify.Upsert, nil
	case strings.EqualFold(typ, TypeBlobDeleted):
		return notify.Delete, nil
	case strings.EqualFold(typ, TypeBlobRenamed):
		return 0, nil
	case strings.EqualFold(typ, TypeDirectoryCreated), strings.EqualFold(typ, TypeDirectoryRenamed),
		strings.EqualFold(typ, TypeDirectoryDeleted):
		return 0, skipped(ReasonDirectory, id, typ, "")
	case strings.HasPrefix(strings.ToLower(typ), eventGridPrefix):
		return 0, skipped(ReasonEventGrid, id, typ, "")
	default:
		return 0, skipped(ReasonEventType, id, typ, "")
	}
}

// renamed is the events of a BlobRenamed: the source name's delete, when
// it is known and differs, and the destination's upsert.
func renamed(base notify.Event, d blobData, subjKey, container string, at time.Time, bad func(format string, args ...any) *Skip) ([]notify.Event, *Skip) {
	dest, _ := pickKey(subjKey, d.DestinationURL, container)
	if dest == "" {
		return nil, bad("no usable destination name")
	}
	var out []notify.Event
	if src, ok := keyFromURL(d.SourceURL, container); ok && src != dest {
		del := base
		del.Kind, del.Key, del.Object.Key, del.Complete = notify.Delete, src, src, true
		out = append(out, del)
	}
	up := base
	up.Kind, up.Key, up.Object.Key = notify.Upsert, dest, dest
	up.Object.LastModified = at
	up.Complete = false // a rename event carries no ETag or length
	return append(out, up), nil
}

// splitSubject splits /blobServices/default/containers/{c}/blobs/{name}.
// The name is taken as is: the subject does not URL-encode it.
func splitSubject(subject string) (container, key string, err error) {
	rest, ok := strings.CutPrefix(subject, subjectPrefix)
	if !ok {
		return "", "", fmt.Errorf("subject %q is not a blob's", truncate(subject))
	}
	container, name, ok := strings.Cut(rest, "/blobs/")
	if !ok || container == "" || strings.Contains(container, "/") {
		return "", "", fmt.Errorf("subject %q names no container and blob", truncate(subject))
	}
	return container, name, nil
}

// pickKey chooses between the subject's name and the one decoded from
// data.url (see the package comment); sure is false when they disagree, or
// when the only name available may be damaged.
func pickKey(subjKey, rawURL, container string) (key string, sure bool) {
	urlKey, urlOK := keyFromURL(rawURL, container)
	damaged := strings.ContainsRune(subjKey, utf8.RuneError) || !utf8.ValidString(subjKey)
	switch {
	case subjKey != "" && urlOK && subjKey == urlKey:
		return subjKey, true
	case subjKey != "" && !damaged:
		return subjKey, !urlOK
	case urlOK:
		return urlKey, true
	case subjKey != "":
		return subjKey, false
	}
	return "", false
}

// keyFromURL decodes the blob name from a blob URL: the path after the
// first segment equal to the container (the account's endpoint has the
// container first; an emulator's has the account name before it).
func keyFromURL(raw, container string) (string, bool) {
	if raw == "" {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", false
	}
	segs := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	for i, s := range segs {
		if s != container || i == len(segs)-1 {
			continue
		}
		key, err := url.PathUnescape(strings.Join(segs[i+1:], "/"))
		if err != nil || key == "" || !utf8.ValidString(key) {
			return "", false
		}
		return key, true
	}
	return "", false
}

// namesSnapshotOrVersion reports whether a blob URL addresses one snapshot
// or version rather than the blob itself.
func namesSnapshotOrVersion(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	for k := range u.Query() {
		if strings.EqualFold(k, "snapshot") || strings.EqualFold(k, "versionid") {
			return true
		}
	}
	return false
}

// sequencer pads a hex sequencer; anything else is dropped (the event is
// then applied unordered) rather than compared wrongly.
func sequencer(s string) string {
	seq, _ := notify.HexSequencer(s, SequencerWidth)
	return seq
}

func truncate(s string) string {
	const n = 200
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// DecodeQueueMessage returns the JSON of a Storage Queue message: Event Grid
// writes the event as is, but queue clients commonly base64-encode message
// text, so both are accepted.
func DecodeQueueMessage(text string) ([]byte, error) {
	t := strings.TrimSpace(text)
	if t == "" {
		return nil, fmt.Errorf("%w: empty queue message", ErrMalformed)
	}
	if t[0] == '{' || t[0] == '[' {
		return []byte(t), nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(t)
		if err != nil {
			continue
		}
		if b = bytes.TrimSpace(b); len(b) > 0 && (b[0] == '{' || b[0] == '[') {
			return b, nil
		}
		break
	}
	return nil, fmt.Errorf("%w: queue message is neither JSON nor base64-encoded JSON", ErrMalformed)
}
