package gcs

import (
	"maps"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/notify"
)

// Real-format examples: the attributes and JSON_API_V1 payloads GCS sends
// (https://cloud.google.com/storage/docs/pubsub-notifications), trimmed of
// fields the parser does not read only where noted.
const (
	exGen  = "1700000000123456"
	exGen2 = "1700000000999999"
)

func exAttrs(eventType, format string) map[string]string {
	return map[string]string{
		"notificationConfig": "projects/_/buckets/my-bucket/notificationConfigs/7",
		"eventType":          eventType,
		"payloadFormat":      format,
		"bucketId":           "my-bucket",
		"objectId":           "photos/red flower+1%2F.jpg",
		"objectGeneration":   exGen,
		"eventTime":          "2023-11-14T22:13:20.181735Z",
	}
}

const exFinalizeJSON = `{
  "kind": "storage#object",
  "id": "my-bucket/photos/red flower+1%2F.jpg/1700000000123456",
  "selfLink": "https://www.googleapis.com/storage/v1/b/my-bucket/o/photos%2Fred%20flower+1%252F.jpg",
  "name": "photos/red flower+1%2F.jpg",
  "bucket": "my-bucket",
  "generation": "1700000000123456",
  "metageneration": "1",
  "contentType": "image/jpeg",
  "timeCreated": "2023-11-14T22:13:20.123Z",
  "updated": "2023-11-14T22:13:20.123Z",
  "storageClass": "STANDARD",
  "timeStorageClassUpdated": "2023-11-14T22:13:20.123Z",
  "size": "12345",
  "md5Hash": "XrY7u+Ae7tCTyyK7j1rNww==",
  "mediaLink": "https://storage.googleapis.com/download/storage/v1/b/my-bucket/o/photos%2Fred%20flower+1%252F.jpg?generation=1700000000123456&alt=media",
  "crc32c": "yZRlqg==",
  "etag": "CMDYhvHbxIIDEAE="
}`

const exMetadataJSON = `{
  "kind": "storage#object",
  "name": "photos/red flower+1%2F.jpg",
  "bucket": "my-bucket",
  "generation": "1700000000123456",
  "metageneration": "2",
  "contentType": "image/png",
  "updated": "2023-11-14T22:20:00.5Z",
  "size": "12345",
  "etag": "CMDYhvHbxIIDEAI=",
  "metadata": {"owner": "ada"}
}`

const exDeleteJSON = `{
  "kind": "storage#object",
  "name": "photos/red flower+1%2F.jpg",
  "bucket": "my-bucket",
  "generation": "1700000000123456",
  "metageneration": "2",
  "contentType": "image/png",
  "updated": "2023-11-14T22:20:00.5Z",
  "size": "12345",
  "etag": "CMDYhvHbxIIDEAI=",
  "timeDeleted": "2023-11-14T23:00:00Z"
}`

// exFakeFinalizeJSON is what fake-gcs-server sends: no etag, no
// metageneration.
const exFakeFinalizeJSON = `{"kind":"storage#object","id":"b/k","name":"k","bucket":"b","generation":"1764237000123456","contentType":"text/plain","timeCreated":"2026-11-27T10:00:00.123456Z","updated":"2026-11-27T10:00:00.123456Z","storageClass":"STANDARD","size":"3","md5Hash":"rL0Y20zC+Fzt72VPzMSk2A==","crc32c":"NT3Yvg=="}`

func with(m map[string]string, kv ...string) map[string]string {
	m = maps.Clone(m)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

func parseOne(t *testing.T, attrs map[string]string, data string) notify.Event {
	t.Helper()
	evs, sk := Parse(attrs, []byte(data))
	if sk != nil {
		t.Fatalf("parse: %+v", sk)
	}
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	checkWellFormed(t, attrs, evs[0])
	return evs[0]
}

var seqRe = regexp.MustCompile(`^[0-9]{20}\.[0-9]{20}$`)

// checkWellFormed asserts what every accepted message must yield.
func checkWellFormed(t testing.TB, attrs map[string]string, ev notify.Event) {
	t.Helper()
	if ev.Provider != "gcs" || ev.Bucket != attrs["bucketId"] || ev.Key != attrs["objectId"] || ev.Object.Key != ev.Key {
		t.Fatalf("event does not match its attributes %q: %+v", attrs, ev)
	}
	if ev.Key == "" || ev.Bucket == "" {
		t.Fatalf("event without key or bucket: %+v", ev)
	}
	if ev.Kind != notify.Upsert && ev.Kind != notify.Delete {
		t.Fatalf("kind %v", ev.Kind)
	}
	if !seqRe.MatchString(ev.Sequencer) {
		t.Fatalf("sequencer %q", ev.Sequencer)
	}
	gen, err := strconv.ParseInt(ev.Object.Version, 10, 64)
	if err != nil || !strings.HasPrefix(ev.Sequencer, notify.PadSequencer(ev.Object.Version, 20)+".") || gen < 0 {
		t.Fatalf("version %q, sequencer %q", ev.Object.Version, ev.Sequencer)
	}
	if ev.Kind == notify.Upsert && ev.Complete && (ev.Object.ETag == "" || ev.Object.Size < 0) {
		t.Fatalf("complete upsert without etag or size: %+v", ev)
	}
	if ev.Kind == notify.Delete && ev.Complete != (attrs["eventType"] == "OBJECT_ARCHIVE") {
		t.Fatalf("only an archive is a complete delete: %+v", ev)
	}
}

func TestParseFinalizeJSON(t *testing.T) {
	ev := parseOne(t, exAttrs("OBJECT_FINALIZE", "JSON_API_V1"), exFinalizeJSON)
	if ev.Kind != notify.Upsert || !ev.Complete {
		t.Errorf("kind %v complete %v", ev.Kind, ev.Complete)
	}
	if ev.Key != "photos/red flower+1%2F.jpg" {
		t.Errorf("key %q: objectId is raw, nothing to decode", ev.Key)
	}
	o := ev.Object
	if o.Size != 12345 || o.ETag != "CMDYhvHbxIIDEAE=" || o.Version != exGen || o.ContentType != "image/jpeg" {
		t.Errorf("object %+v", o)
	}
	if want := time.Date(2023, 11, 14, 22, 13, 20, 123e6, time.UTC); !o.LastModified.Equal(want) {
		t.Errorf("last modified %v, want %v", o.LastModified, want)
	}
	if want := time.Date(2023, 11, 14, 22, 13, 20, 181735e3, time.UTC); !ev.Time.Equal(want) {
		t.Errorf("time %v, want %v", ev.Time, want)
	}
	if want := "00001700000000123456.00000000000000000001"; ev.Sequencer != want {
		t.Errorf("sequencer %q, want %q", ev.Sequencer, want)
	}
}

func TestParseFinalizeNone(t *testing.T) {
	ev := parseOne(t, exAttrs("OBJECT_FINALIZE", "NONE"), "")
	if ev.Kind != notify.Upsert || ev.Complete {
		t.Errorf("payload NONE: kind %v complete %v; the applier must stat", ev.Kind, ev.Complete)
	}
	if ev.Object.Version != exGen || ev.Object.ETag != "" {
		t.Errorf("object %+v", ev.Object)
	}
}

func TestParseFinalizeWithoutEtag(t *testing.T) {
	a := with(exAttrs("OBJECT_FINALIZE", "JSON_API_V1"), "bucketId", "b", "objectId", "k", "objectGeneration", "1764237000123456")
	ev := parseOne(t, a, exFakeFinalizeJSON)
	if ev.Complete {
		t.Errorf("a payload without etag is not complete: %+v", ev)
	}
	if ev.Object.Size != 3 || ev.Object.ContentType != "text/plain" {
		t.Errorf("object %+v", ev.Object)
	}
}

func TestParseMetadataUpdate(t *testing.T) {
	ev := parseOne(t, exAttrs("OBJECT_METADATA_UPDATE", "JSON_API_V1"), exMetadataJSON)
	if ev.Kind != notify.Upsert || !ev.Complete || ev.Object.ContentType != "image/png" {
		t.Errorf("%+v", ev)
	}
	fin := parseOne(t, exAttrs("OBJECT_FINALIZE", "JSON_API_V1"), exFinalizeJSON)
	if ev.Sequencer <= fin.Sequencer {
		t.Errorf("metadata update %q does not sort after its finalize %q", ev.Sequencer, fin.Sequencer)
	}
	none := parseOne(t, exAttrs("OBJECT_METADATA_UPDATE", "NONE"), "")
	if none.Kind != notify.Upsert || none.Complete {
		t.Errorf("%+v", none)
	}
}

func TestParseDeleteAndArchive(t *testing.T) {
	for _, typ := range []string{"OBJECT_DELETE", "OBJECT_ARCHIVE"} {
		for _, format := range []string{"JSON_API_V1", "NONE"} {
			data := ""
			if format == "JSON_API_V1" {
				data = exDeleteJSON
			}
			ev := parseOne(t, exAttrs(typ, format), data)
			if ev.Kind != notify.Delete || ev.Object.Version != exGen {
				t.Errorf("%s %s: %+v", typ, format, ev)
			}
			// An OBJECT_DELETE may remove a noncurrent generation and leave
			// the live object: the applier must stat.
			if ev.Complete != (typ == "OBJECT_ARCHIVE") {
				t.Errorf("%s %s: complete %v", typ, format, ev.Complete)
			}
			if want := "00001700000000123456.99999999999999999999"; ev.Sequencer != want {
				t.Errorf("%s %s: sequencer %q, want %q", typ, format, ev.Sequencer, want)
			}
		}
	}
}

func TestParseOverwritePair(t *testing.T) {
	fin := with(exAttrs("OBJECT_FINALIZE", "JSON_API_V1"), "objectGeneration", exGen2, "overwroteGeneration", exGen)
	finData := strings.Replace(exFinalizeJSON, `"generation": "`+exGen+`"`, `"generation": "`+exGen2+`"`, 1)
	del := with(exAttrs("OBJECT_DELETE", "JSON_API_V1"), "overwrittenByGeneration", exGen2)
	arc := with(exAttrs("OBJECT_ARCHIVE", "JSON_API_V1"), "overwrittenByGeneration", exGen2)

	type msg struct {
		attrs map[string]string
		data  string
	}
	for name, order := range map[string][]msg{
		"finalize first": {{fin, finData}, {del, exDeleteJSON}},
		"delete first":   {{del, exDeleteJSON}, {fin, finData}},
		"archive first":  {{arc, exDeleteJSON}, {fin, finData}},
	} {
		t.Run(name, func(t *testing.T) {
			var got []notify.Event
			for _, m := range order {
				evs, sk := Parse(m.attrs, []byte(m.data))
				switch {
				case sk != nil && Reason(sk.Code) == ReasonOverwritten && sk.Reason != notify.SkipMalformed:
				case sk != nil:
					t.Fatalf("parse: %+v", sk)
				}
				got = append(got, evs...)
			}
			if len(got) != 1 || got[0].Kind != notify.Upsert || got[0].Object.Version != exGen2 || !got[0].Complete {
				t.Fatalf("overwrite yields %+v, want one complete upsert of generation %s", got, exGen2)
			}
		})
	}
}

// TestSequencerOrder checks the orderings the applier relies on: newer
// generations win, a deletion ends its generation, and a duplicate compares
// equal.
func TestSequencerOrder(t *testing.T) {
	seq := func(attrs map[string]string, data string) string {
		return parseOne(t, attrs, data).Sequencer
	}
	fin := seq(exAttrs("OBJECT_FINALIZE", "JSON_API_V1"), exFinalizeJSON)
	finNone := seq(exAttrs("OBJECT_FINALIZE", "NONE"), "")
	meta := seq(exAttrs("OBJECT_METADATA_UPDATE", "JSON_API_V1"), exMetadataJSON)
	del := seq(exAttrs("OBJECT_DELETE", "JSON_API_V1"), exDeleteJSON)
	delNone := seq(exAttrs("OBJECT_DELETE", "NONE"), "")
	next := seq(with(exAttrs("OBJECT_FINALIZE", "NONE"), "objectGeneration", exGen2), "")
	big := seq(with(exAttrs("OBJECT_FINALIZE", "NONE"), "objectGeneration", "9223372036854775807"), "")
	small := seq(with(exAttrs("OBJECT_FINALIZE", "NONE"), "objectGeneration", "999"), "")

	chain := []string{small, finNone, fin, meta, del, next, big}
	for i := 1; i < len(chain); i++ {
		if chain[i-1] >= chain[i] {
			t.Errorf("sequencer %d %q does not sort before %d %q", i-1, chain[i-1], i, chain[i])
		}
	}
	if del != delNone {
		t.Errorf("a delete sorts the same whatever its payload: %q vs %q", del, delNone)
	}
	// A duplicate (same event, new message id) parses to the same event.
	a := parseOne(t, exAttrs("OBJECT_FINALIZE", "JSON_API_V1"), exFinalizeJSON)
	b := parseOne(t, exAttrs("OBJECT_FINALIZE", "JSON_API_V1"), exFinalizeJSON)
	if a != b {
		t.Errorf("duplicate parses differently:\n%+v\n%+v", a, b)
	}
}

func TestParseRejects(t *testing.T) {
	fin := exAttrs("OBJECT_FINALIZE", "JSON_API_V1")
	for _, tc := range []struct {
		name  string
		attrs map[string]string
		data  string
		want  Reason
	}{
		{"initialize", exAttrs("OBJECT_INITIALIZE", "JSON_API_V1"), exFinalizeJSON, ReasonIgnoredType},
		{"unknown type", exAttrs("OBJECT_TELEPORTED", "JSON_API_V1"), exFinalizeJSON, ReasonUnknownType},
		{"no attributes", nil, exFinalizeJSON, ReasonMissingAttribute},
		{"no event type", with(fin, "eventType", ""), exFinalizeJSON, ReasonMissingAttribute},
		{"no bucket", with(fin, "bucketId", ""), exFinalizeJSON, ReasonMissingAttribute},
		{"no object", with(fin, "objectId", ""), exFinalizeJSON, ReasonMissingAttribute},
		{"no generation", with(fin, "objectGeneration", ""), exFinalizeJSON, ReasonMissingAttribute},
		{"no payload format", with(fin, "payloadFormat", ""), exFinalizeJSON, ReasonMissingAttribute},
		{"bad generation", with(fin, "objectGeneration", "-5"), exFinalizeJSON, ReasonBadAttribute},
		{"huge generation", with(fin, "objectGeneration", "99999999999999999999"), exFinalizeJSON, ReasonBadAttribute},
		{"bad payload format", with(fin, "payloadFormat", "XML"), exFinalizeJSON, ReasonBadAttribute},
		{"bad event time", with(fin, "eventTime", "yesterday"), exFinalizeJSON, ReasonBadAttribute},
		{"invalid utf-8 key", with(fin, "objectId", "a\xffb"), "", ReasonBadAttribute},
		{"overlong key", with(fin, "objectId", strings.Repeat("k", 1025)), "", ReasonBadAttribute},
		{"garbage payload", fin, "{not json", ReasonBadPayload},
		{"empty JSON payload", fin, "", ReasonBadPayload},
		{"payload of another object", fin, strings.Replace(exFinalizeJSON, `"name": "photos/`, `"name": "videos/`, 1), ReasonBadPayload},
		{"payload of another bucket", fin, strings.Replace(exFinalizeJSON, `"bucket": "my-bucket"`, `"bucket": "other"`, 1), ReasonBadPayload},
		{"payload of another generation", fin, strings.Replace(exFinalizeJSON, `"generation": "1`, `"generation": "2`, 1), ReasonBadPayload},
		{"numeric size", fin, strings.Replace(exFinalizeJSON, `"size": "12345"`, `"size": 12345`, 1), ReasonBadPayload},
		{"negative size", fin, strings.Replace(exFinalizeJSON, `"size": "12345"`, `"size": "-1"`, 1), ReasonBadPayload},
		{"bad updated", fin, strings.Replace(exFinalizeJSON, `"updated": "2023`, `"updated": "x2023`, 1), ReasonBadPayload},
		{"bad metageneration", fin, strings.Replace(exFinalizeJSON, `"metageneration": "1"`, `"metageneration": "one"`, 1), ReasonBadPayload},
		{"overwritten delete", with(exAttrs("OBJECT_DELETE", "NONE"), "overwrittenByGeneration", exGen2), "", ReasonOverwritten},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, sk := Parse(tc.attrs, []byte(tc.data))
			if sk == nil || Reason(sk.Code) != tc.want {
				t.Fatalf("got %+v, %+v; want reason %s", evs, sk, tc.want)
			}
			if evs != nil {
				t.Errorf("events with a skip: %+v", evs)
			}
			wantMalformed := tc.want != ReasonOverwritten && tc.want != ReasonIgnoredType
			if got := sk.Reason == notify.SkipMalformed; got != wantMalformed {
				t.Errorf("malformed = %v (skip reason %s)", got, sk.Reason)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	seed := func(attrs map[string]string, data string) {
		f.Add(attrs["eventType"], attrs["payloadFormat"], attrs["bucketId"], attrs["objectId"],
			attrs["objectGeneration"], attrs["eventTime"], "overwroteGeneration", exGen, []byte(data))
	}
	seed(exAttrs("OBJECT_FINALIZE", "JSON_API_V1"), exFinalizeJSON)
	seed(exAttrs("OBJECT_FINALIZE", "NONE"), "")
	seed(exAttrs("OBJECT_METADATA_UPDATE", "JSON_API_V1"), exMetadataJSON)
	seed(exAttrs("OBJECT_DELETE", "JSON_API_V1"), exDeleteJSON)
	seed(exAttrs("OBJECT_ARCHIVE", "NONE"), "")
	seed(with(exAttrs("OBJECT_FINALIZE", "JSON_API_V1"), "bucketId", "b", "objectId", "k", "objectGeneration", "1764237000123456"), exFakeFinalizeJSON)
	f.Add("OBJECT_DELETE", "JSON_API_V1", "my-bucket", "photos/red flower+1%2F.jpg", exGen, "", "overwrittenByGeneration", exGen2, []byte(exDeleteJSON))
	f.Add("OBJECT_FINALIZE", "JSON_API_V1", "b", "k", "1", "2023-11-14T22:13:20Z", "", "", []byte(`{"size":"1","etag":"e","generation":"1","metageneration":"18446744073709551616"}`))
	f.Add("OBJECT_INITIALIZE", "NONE", "b", "k", "1", "", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, typ, format, bucket, object, gen, at, extraKey, extraVal string, data []byte) {
		attrs := map[string]string{
			"eventType": typ, "payloadFormat": format, "bucketId": bucket,
			"objectId": object, "objectGeneration": gen, "eventTime": at,
		}
		if extraKey != "" {
			attrs[extraKey] = extraVal
		}
		evs, sk := Parse(attrs, data)
		if sk != nil {
			if sk.Code == "" || evs != nil {
				t.Fatalf("skip %+v with events %+v", sk, evs)
			}
			return
		}
		if len(evs) != 1 {
			t.Fatalf("%d events", len(evs))
		}
		checkWellFormed(t, attrs, evs[0])
	})
}
