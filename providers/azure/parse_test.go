package azure

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/imgly/syncer/notify"
)

// Examples in the shapes Azure documents for blob storage events.

const egCreated = `[{
  "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
  "subject": "/blobServices/default/containers/assets/blobs/photos/red flower+1.jpg",
  "eventType": "Microsoft.Storage.BlobCreated",
  "eventTime": "2026-11-27T20:33:51.0595757Z",
  "id": "4d96b1d4-0001-00b3-58ce-16568c064fab",
  "data": {
    "api": "PutBlockList",
    "clientRequestId": "d65ca2e2-a168-4155-b7a4-2c925c18902f",
    "requestId": "4d96b1d4-0001-00b3-58ce-16568c000000",
    "eTag": "0x8D4E4E61AE038AD",
    "contentType": "image/jpeg",
    "contentLength": 524288,
    "blobType": "BlockBlob",
    "url": "https://acct.blob.core.windows.net/assets/photos/red%20flower%2B1.jpg",
    "sequencer": "00000000000000EB0000000000046199",
    "storageDiagnostics": {"batchId": "dffea416-b46e-4613-ac19-0371c0c5e352"}
  },
  "dataVersion": "",
  "metadataVersion": "1"
}]`

const egDeleted = `{
  "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
  "subject": "/blobServices/default/containers/assets/blobs/photos/old.png",
  "eventType": "Microsoft.Storage.BlobDeleted",
  "eventTime": "2026-11-27T20:40:00Z",
  "id": "a1",
  "data": {
    "api": "DeleteBlob",
    "requestId": "r",
    "contentType": "image/png",
    "blobType": "BlockBlob",
    "url": "https://acct.blob.core.windows.net/assets/photos/old.png",
    "sequencer": "0000000000000281000000000002F5CA000000000000001A"
  },
  "dataVersion": "",
  "metadataVersion": "1"
}`

const ceCreated = `{
  "specversion": "1.0",
  "type": "Microsoft.Storage.BlobCreated",
  "source": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
  "subject": "/blobServices/default/containers/assets/blobs/a b.png",
  "id": "ce-1",
  "time": "2026-11-27T20:41:00.5Z",
  "data": {
    "api": "PutBlob",
    "eTag": "\"0x8D9ABCDEF\"",
    "contentType": "image/png",
    "contentLength": 12,
    "blobType": "BlockBlob",
    "url": "https://acct.blob.core.windows.net/assets/a%20b.png",
    "sequencer": "0000000000000000000000000000A5C1"
  }
}`

const ceRenamed = `[{
  "specversion": "1.0",
  "type": "Microsoft.Storage.BlobRenamed",
  "source": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
  "subject": "/blobServices/default/containers/assets/blobs/new/name.png",
  "id": "ce-2",
  "time": "2026-11-27T20:42:00Z",
  "data": {
    "api": "RenameFile",
    "sourceUrl": "https://acct.dfs.core.windows.net/assets/old/name.png",
    "destinationUrl": "https://acct.dfs.core.windows.net/assets/new/name.png",
    "sequencer": "00000000000000000000000000000a5c2"
  }
}, {
  "specversion": "1.0",
  "type": "Microsoft.Storage.DirectoryDeleted",
  "source": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
  "subject": "/blobServices/default/containers/assets/blobs/old",
  "id": "ce-3",
  "time": "2026-11-27T20:43:00Z",
  "data": {"api": "DeleteDirectory", "url": "https://acct.dfs.core.windows.net/assets/old", "recursive": "true", "sequencer": "1"}
}]`

const egTier = `[{
  "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
  "subject": "/blobServices/default/containers/assets/blobs/a.png",
  "eventType": "Microsoft.Storage.BlobTierChanged",
  "eventTime": "2026-11-27T20:44:00Z",
  "id": "t1",
  "data": {"api": "SetBlobTier", "url": "https://acct.blob.core.windows.net/assets/a.png"},
  "dataVersion": "", "metadataVersion": "1"
}]`

const egValidation = `[{
  "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
  "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
  "subject": "",
  "data": {
    "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
    "validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/sub/validate?id=x&t=2026-11-27T20:44:00Z"
  },
  "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
  "eventTime": "2026-11-27T20:44:00Z",
  "metadataVersion": "1",
  "dataVersion": "1"
}]`

func mustParse(t *testing.T, body string) Result {
	t.Helper()
	res, err := Parse([]byte(body))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	checkEvents(t, res.Events)
	return res
}

func TestParseEventGridCreated(t *testing.T) {
	res := mustParse(t, egCreated)
	if len(res.Events) != 1 || len(res.Skips) != 0 {
		t.Fatalf("got %+v", res)
	}
	e := res.Events[0]
	want := notify.Event{
		Provider: "azure", Bucket: "assets", Key: "photos/red flower+1.jpg", Kind: notify.Upsert, Complete: true,
		Sequencer: strings.Repeat("0", 32) + "00000000000000eb0000000000046199",
		ID:        "4d96b1d4-0001-00b3-58ce-16568c064fab",
	}
	want.Time = time.Date(2026, 11, 27, 20, 33, 51, 59575700, time.UTC)
	want.Object.Key, want.Object.ETag, want.Object.Size, want.Object.ContentType = want.Key, "0x8D4E4E61AE038AD", 524288, "image/jpeg"
	want.Object.LastModified = want.Time
	if !e.Time.Equal(want.Time) || !e.Object.LastModified.Equal(want.Time) {
		t.Errorf("time %v / %v, want %v", e.Time, e.Object.LastModified, want.Time)
	}
	e.Time, e.Object.LastModified = want.Time, want.Time
	if e != want {
		t.Errorf("event\n got %+v\nwant %+v", e, want)
	}
}

func TestParseEventGridDeletedSingleObject(t *testing.T) {
	res := mustParse(t, egDeleted)
	if len(res.Events) != 1 {
		t.Fatalf("got %+v", res)
	}
	e := res.Events[0]
	if e.Kind != notify.Delete || !e.Complete || e.Key != "photos/old.png" || e.Bucket != "assets" {
		t.Errorf("got %+v", e)
	}
	if e.Sequencer != notify.PadSequencer("0000000000000281000000000002f5ca000000000000001a", 64) {
		t.Errorf("sequencer %q", e.Sequencer)
	}
}

func TestParseCloudEvents(t *testing.T) {
	res := mustParse(t, ceCreated)
	if len(res.Events) != 1 {
		t.Fatalf("got %+v", res)
	}
	e := res.Events[0]
	if e.Kind != notify.Upsert || !e.Complete || e.Key != "a b.png" || e.Object.ETag != "0x8D9ABCDEF" || e.Object.Size != 12 {
		t.Errorf("got %+v", e)
	}

	res = mustParse(t, ceRenamed)
	if len(res.Events) != 2 || len(res.Skips) != 1 || res.Skips[0].Code != string(ReasonDirectory) {
		t.Fatalf("got %+v", res)
	}
	del, up := res.Events[0], res.Events[1]
	if del.Kind != notify.Delete || del.Key != "old/name.png" || !del.Complete {
		t.Errorf("rename source: %+v", del)
	}
	if up.Kind != notify.Upsert || up.Key != "new/name.png" || up.Complete {
		t.Errorf("rename destination: %+v", up)
	}
}

// Both schemas parse, whichever a subscription is set to.
func TestParseEitherSchema(t *testing.T) {
	for _, b := range []string{egCreated, egDeleted, ceCreated, ceRenamed} {
		if res, err := Parse([]byte(b)); err != nil || len(res.Events) == 0 {
			t.Errorf("Parse: %v, %+v", err, res)
		}
	}
}

func TestParseSkips(t *testing.T) {
	res := mustParse(t, egTier)
	if len(res.Events) != 0 || len(res.Skips) != 1 || res.Skips[0].Code != string(ReasonEventType) || res.Skips[0].Type != "Microsoft.Storage.BlobTierChanged" {
		t.Errorf("tier change: %+v", res)
	}
	res = mustParse(t, egValidation)
	if len(res.Events) != 0 || len(res.Skips) != 1 || res.Skips[0].Code != string(ReasonEventGrid) {
		t.Errorf("validation event: %+v", res)
	}
	// One bad event among good ones is skipped; the rest stand.
	mixed := `[` + egDeleted + `, {"eventType": "Microsoft.Storage.BlobCreated", "subject": "/nope"}, 7]`
	res = mustParse(t, mixed)
	if len(res.Events) != 1 || len(res.Skips) != 2 || res.Skips[0].Code != string(ReasonMalformed) || res.Skips[1].Code != string(ReasonMalformed) {
		t.Errorf("mixed: %+v", res)
	}
	// An empty array is nothing to do, not an error.
	if res, err := Parse([]byte(" [] ")); err != nil || len(res.Events)+len(res.Skips) != 0 {
		t.Errorf("empty array: %+v, %v", res, err)
	}
}

func TestParseMalformed(t *testing.T) {
	for _, b := range []string{
		"", "   ", "null", "42", `"x"`, "{", "[{]", `{"foo": 1}`, `[{"foo": 1}]`, `[1, 2]`,
		`{"specversion": "0.3", "type": "Microsoft.Storage.BlobCreated", "subject": "/blobServices/default/containers/c/blobs/k"}`,
		`{"eventType": "Microsoft.Storage.BlobCreated", "subject": "/blobServices/default/containers/c/blobs/"}`,
		`{"eventType": "Microsoft.Storage.BlobCreated", "subject": "/blobServices/default/containers//blobs/k"}`,
		`{"eventType": "Microsoft.Storage.BlobCreated", "subject": "/blobServices/default/containers/c/blobs/k", "data": {"contentLength": "12"}}`,
		`{"eventType": "Microsoft.Storage.BlobCreated", "subject": "/blobServices/default/containers/c/blobs/k", "data": {"contentLength": -1}}`,
	} {
		if res, err := Parse([]byte(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrMalformed", b, res, err)
		}
	}
}

func TestParseKeys(t *testing.T) {
	created := func(subject, url string) string {
		return `{"eventType": "Microsoft.Storage.BlobCreated", "id": "k", "subject": "` + subject +
			`", "data": {"eTag": "0x1", "contentLength": 1, "url": "` + url + `"}}`
	}
	for _, c := range []struct {
		name, subject, url, key string
		complete                bool
	}{
		{"plain", "/blobServices/default/containers/c/blobs/a/b.jpg", "https://x.blob.core.windows.net/c/a/b.jpg", "a/b.jpg", true},
		{"percent in name", "/blobServices/default/containers/c/blobs/a%2Fb.jpg", "https://x.blob.core.windows.net/c/a%252Fb.jpg", "a%2Fb.jpg", true},
		{"space and plus", "/blobServices/default/containers/c/blobs/a b+c.jpg", "https://x.blob.core.windows.net/c/a%20b+c.jpg", "a b+c.jpg", true},
		{"question mark", "/blobServices/default/containers/c/blobs/q?x=1.jpg", "https://x.blob.core.windows.net/c/q%3Fx=1.jpg", "q?x=1.jpg", true},
		{"blobs inside the name", "/blobServices/default/containers/c/blobs/x/blobs/y", "https://x.blob.core.windows.net/c/x/blobs/y", "x/blobs/y", true},
		{"emulator url", "/blobServices/default/containers/c/blobs/k", "http://127.0.0.1:10000/devstoreaccount1/c/k", "k", true},
		{"no url", "/blobServices/default/containers/c/blobs/日本語/画像.jpg", "", "日本語/画像.jpg", true},
		// The subject lost the emoji; the URL has it.
		{"damaged subject", "/blobServices/default/containers/c/blobs/emoji/\uFFFD\uFFFD.png", "https://x.blob.core.windows.net/c/emoji/%F0%9F%98%80.png", "emoji/😀.png", true},
		{"damaged subject, no url", "/blobServices/default/containers/c/blobs/emoji/\uFFFD\uFFFD.png", "", "emoji/\uFFFD\uFFFD.png", false},
		// Disagreement: trust neither fully.
		{"disagree", "/blobServices/default/containers/c/blobs/a.jpg", "https://x.blob.core.windows.net/c/b.jpg", "a.jpg", false},
		{"url not decodable", "/blobServices/default/containers/c/blobs/a.jpg", "https://x.blob.core.windows.net/c/%zz", "a.jpg", true},
	} {
		res, err := Parse([]byte(created(c.subject, c.url)))
		if err != nil || len(res.Events) != 1 {
			t.Errorf("%s: %+v, %v", c.name, res, err)
			continue
		}
		checkEvents(t, res.Events)
		if e := res.Events[0]; e.Key != c.key || e.Complete != c.complete || e.Bucket != "c" {
			t.Errorf("%s: key %q complete %v, want %q %v", c.name, e.Key, e.Complete, c.key, c.complete)
		}
	}
}

func TestParseIncomplete(t *testing.T) {
	body := func(typ, data string) string {
		return `{"eventType": "` + typ + `", "id": "i", "subject": "/blobServices/default/containers/c/blobs/k", "data": ` + data + `}`
	}
	for _, c := range []struct {
		name, typ, data string
		complete        bool
	}{
		{"no etag", TypeBlobCreated, `{"contentLength": 3}`, false},
		{"no length", TypeBlobCreated, `{"eTag": "0x1"}`, false},
		{"no data", TypeBlobCreated, `null`, false},
		{"HNS create file", TypeBlobCreated, `{"api": "CreateFile", "eTag": "0x1", "contentLength": 0}`, false},
		{"HNS flush", TypeBlobCreated, `{"api": "FlushWithClose", "eTag": "0x1", "contentLength": 10}`, true},
		{"copy", TypeBlobCreated, `{"api": "CopyBlob", "eTag": "0x1", "contentLength": 10}`, false},
		{"delete", TypeBlobDeleted, `{"api": "DeleteBlob"}`, true},
		{"delete of a version", TypeBlobDeleted, `{"url": "https://a.blob.core.windows.net/c/k?versionid=2026-11-27T20:00:00.0000000Z"}`, false},
		{"delete of a snapshot", TypeBlobDeleted, `{"url": "https://a.blob.core.windows.net/c/k?snapshot=2026-11-27T20:00:00.0000000Z"}`, false},
	} {
		res, err := Parse([]byte(body(c.typ, c.data)))
		if err != nil || len(res.Events) != 1 {
			t.Errorf("%s: %+v, %v", c.name, res, err)
			continue
		}
		if got := res.Events[0].Complete; got != c.complete {
			t.Errorf("%s: complete %v, want %v", c.name, got, c.complete)
		}
	}
}

func TestSequencer(t *testing.T) {
	for in, want := range map[string]string{
		"00000000000000EB0000000000046199": notify.PadSequencer("00000000000000eb0000000000046199", 64),
		"a":                                strings.Repeat("0", 63) + "a",
		"xyz":                              "", // not hex: unordered
		"":                                 "",
		strings.Repeat("f", 65):            "",
	} {
		if got := sequencer(in); got != want {
			t.Errorf("sequencer(%q) = %q, want %q", in, got, want)
		}
	}
	// Different lengths and cases compare as the numbers they are.
	a, b := sequencer("00000000000000EB0000000000046199"), sequencer("ec0000000000000000")
	if !(a < b) {
		t.Errorf("%q should sort before %q", a, b)
	}
}

func TestDecodeQueueMessage(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(egDeleted))
	for name, in := range map[string]string{
		"raw":       egDeleted,
		"raw array": egCreated,
		"base64":    b64,
		"base64 nl": b64 + "\n",
		"raw b64":   strings.TrimRight(b64, "="),
		"url b64":   base64.URLEncoding.EncodeToString([]byte(egCreated)),
	} {
		body, err := DecodeQueueMessage(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := Parse(body); err != nil {
			t.Errorf("%s: parse: %v", name, err)
		}
	}
	for _, in := range []string{"", "hello", "aGVsbG8=", "!!!"} {
		if _, err := DecodeQueueMessage(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeQueueMessage(%q): %v, want ErrMalformed", in, err)
		}
	}
}

// checkEvents asserts what every accepted event must satisfy.
func checkEvents(t testing.TB, evs []notify.Event) {
	t.Helper()
	for _, e := range evs {
		if e.Provider != Name {
			t.Errorf("provider %q", e.Provider)
		}
		if e.Bucket == "" || strings.Contains(e.Bucket, "/") {
			t.Errorf("bucket %q", e.Bucket)
		}
		if e.Key == "" || e.Object.Key != e.Key {
			t.Errorf("key %q, object key %q", e.Key, e.Object.Key)
		}
		if !utf8.ValidString(e.Key) {
			t.Errorf("key %q is not UTF-8", e.Key)
		}
		if e.Kind != notify.Upsert && e.Kind != notify.Delete {
			t.Errorf("kind %v", e.Kind)
		}
		if e.Kind == notify.Upsert && e.Complete && e.Object.ETag == "" {
			t.Errorf("complete upsert without an ETag: %+v", e)
		}
		if e.Object.Size < 0 {
			t.Errorf("size %d", e.Object.Size)
		}
		if s := e.Sequencer; s != "" {
			if len(s) != SequencerWidth || strings.Trim(s, "0123456789abcdef") != "" {
				t.Errorf("sequencer %q not padded lower-case hex", s)
			}
		}
	}
}
