package s3

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// ebDetail is the detail of an S3 EventBridge event (kebab-case fields).
type ebDetail struct {
	Bucket struct {
		Name string `json:"name"`
	} `json:"bucket"`
	Object struct {
		Key       string  `json:"key"`
		Size      flexInt `json:"size"`
		ETag      string  `json:"etag"`
		VersionID string  `json:"version-id"`
		Sequencer string  `json:"sequencer"`
	} `json:"object"`
	RequestID    string `json:"request-id"`
	Reason       string `json:"reason"`
	DeletionType string `json:"deletion-type"`
}

// parseEventBridge handles an EventBridge event delivered to SQS by a rule
// whose target is the queue (no input transformer).
//
// Key encoding: AWS's example events only show keys without special
// characters and the user guide does not say. We decode them like S3 event
// records (form encoding, url.QueryUnescape), as AWS's own Lambda Powertools
// (S3EventBridgeNotificationObject.key uses unquote_plus) and OpenSearch
// Data Prepper (S3EventBridgeNotification uses SdkHttpUtils.urlDecode) do.
// Because of that doubt, creates stay resolved by a stat (unlike S3 records,
// whose encoding is documented): a mis-decoded key shows as "not found"
// rather than as an object that does not exist.
func (e *envelope) parseEventBridge() (Result, error) {
	res := Result{Format: FormatEventBridge}
	dt := *e.DetailType
	if e.Source != "aws.s3" {
		res.Skips = append(res.Skips, Skip{Reason: SkipIgnored, Type: dt,
			Detail: fmt.Sprintf("EventBridge source %q is not aws.s3", e.Source)})
		return res, nil
	}
	var d ebDetail
	if err := json.Unmarshal(e.Detail, &d); err != nil {
		return Result{}, fmt.Errorf("%w: EventBridge detail: %v", ErrMalformed, err)
	}
	bucket, rawKey := d.Bucket.Name, d.Object.Key
	skip := func(kind notify.SkipReason, reason string) (Result, error) {
		res.Skips = append(res.Skips, Skip{Reason: kind, Type: dt, Bucket: bucket, Key: rawKey, Detail: reason})
		return res, nil
	}
	var kind notify.Kind
	switch dt {
	case "Object Created":
		kind = notify.Upsert
	case "Object Deleted":
		kind = notify.Delete
	default:
		// Object Restore Initiated/Completed/Expired, Object Storage Class
		// Changed, Object Access Tier Changed, Object ACL Updated, Object
		// Tags Added/Deleted: the content is unchanged.
		return skip(SkipIgnored, "event type not tracked")
	}
	if bucket == "" {
		return skip(SkipMalformed, "no bucket name")
	}
	if !d.Object.Size.valid() {
		return skip(SkipMalformed, fmt.Sprintf("object size %q is not a non-negative integer", d.Object.Size.raw))
	}
	key, err := decodeKey(rawKey)
	if err != nil {
		return skip(SkipMalformed, "key: "+err.Error())
	}
	if key == "" {
		return skip(SkipMalformed, "no object key")
	}
	if !utf8.ValidString(key) {
		return skip(SkipMalformed, "key is not valid UTF-8")
	}
	seq, seqOK := notify.HexSequencer(d.Object.Sequencer, SequencerWidth)
	id := e.ID
	if id == "" {
		id = d.RequestID
	}
	ev := notify.Event{
		Provider:  Name,
		Bucket:    bucket,
		Key:       key,
		Kind:      kind,
		Sequencer: seq,
		Time:      parseTime(e.Time),
		ID:        id,
		Object: providers.Object{
			Key:     key,
			Size:    d.Object.Size.n,
			ETag:    normalizeETag(d.Object.ETag),
			Version: versionOf(d.Object.VersionID),
		},
	}
	if kind == notify.Delete {
		ev.Object = providers.Object{Key: key, Version: ev.Object.Version}
		ev.Complete = deleteComplete(&d, seqOK)
	}
	res.Events = append(res.Events, ev)
	return res, nil
}

// deleteComplete says whether an EventBridge delete says all the catalog
// needs, or a stat must decide.
func deleteComplete(d *ebDetail, seqOK bool) bool {
	switch {
	case !seqOK:
		return false
	case d.DeletionType == "Delete Marker Created":
		return true
	case d.DeletionType == "Permanently Deleted" && d.Object.VersionID != "":
		// One version is gone for good; it may not have been the
		// current one.
		return false
	default:
		return true
	}
}
