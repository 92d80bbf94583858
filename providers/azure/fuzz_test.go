package azure

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/imgly/syncer/notify"
)

// The fuzzers assert properties of what Parse accepts, not only that no input
// panics: events are well-formed (checkEvents), Parse is deterministic, an
// error is ErrMalformed and carries no events, and every skip says why.

// eventGridSeeds are bodies in the Event Grid schema.
func eventGridSeeds() []string {
	return []string{egCreated, egDeleted, egTier, egValidation,
		`[` + egDeleted + `,` + egDeleted + `]`, `[]`, `{}`, `null`,
		`[{"eventType":"Microsoft.Storage.BlobDeleted","subject":"/blobServices/default/containers/c/blobs/\ufffd","data":{"url":"http://h/c/%F0%9F%98%80"}}]`,
		`{"eventType":"Microsoft.Storage.BlobDeleted","subject":"/blobServices/default/containers/c/blobs/k","data":{"url":"https://a.blob.core.windows.net/c/k?snapshot=2026-11-27T20:44:00.0000000Z"}}`,
		`{"eventType":"Microsoft.Storage.BlobCreated","subject":"/blobServices/default/containers/c/blobs/k","data":{"api":"CopyBlob","eTag":"0x1","contentLength":-1}}`,
		`{"eventType":"Microsoft.Storage.DirectoryCreated","subject":"/blobServices/default/containers/c/blobs/d"}`,
	}
}

// cloudEventsSeeds are bodies in the CloudEvents 1.0 schema.
func cloudEventsSeeds() []string {
	return []string{ceCreated, ceRenamed, `[` + ceCreated + `]`,
		`{"specversion":"0.3","type":"Microsoft.Storage.BlobCreated","subject":"/blobServices/default/containers/c/blobs/k"}`,
		`{"specversion":"1.0","type":"Microsoft.Storage.BlobRenamed","subject":"/blobServices/default/containers/c/blobs/k","data":{"sourceUrl":"https://a.dfs.core.windows.net/c/k","destinationUrl":"https://a.dfs.core.windows.net/c/k"}}`,
		`{"specversion":"1.0","type":"Microsoft.Storage.BlobCreated","subject":"/blobServices/default/containers/c/blobs/","data":{"url":"http://127.0.0.1:10000/devstoreaccount1/c/a%2Fb"}}`,
	}
}

func addSeeds(f *testing.F, sets ...[]string) {
	for _, set := range sets {
		for _, s := range set {
			f.Add([]byte(s))
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkParse asserts what every Parse answer must hold; body is what was
// parsed, to run it again.
func checkParse(t *testing.T, body []byte, res Result, err error) {
	t.Helper()
	res2, err2 := Parse(body)
	if !reflect.DeepEqual(res, res2) || errText(err) != errText(err2) {
		t.Fatalf("Parse is not deterministic:\n%+v, %v\n%+v, %v", res, err, res2, err2)
	}
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
		if len(res.Events) != 0 {
			t.Fatalf("refused body with events: %+v", res.Events)
		}
	}
	checkEvents(t, res.Events)
	for _, s := range res.Skips {
		switch Reason(s.Code) {
		case "":
			t.Fatalf("skip without a reason: %+v", s)
		case ReasonMalformed:
			if s.Detail == "" {
				t.Fatalf("malformed skip without detail: %+v", s)
			}
		}
	}
	for i, e := range res.Events {
		if e.Kind == notify.Delete && (e.Object.Size != 0 || e.Object.ETag != "") {
			t.Fatalf("event %d: a delete with object details %+v", i, e.Object)
		}
	}
}

// FuzzParse covers both schemas: the seeds hold Event Grid and CloudEvents
// events, alone and mixed in arrays.
func FuzzParse(f *testing.F) {
	addSeeds(f, eventGridSeeds(), cloudEventsSeeds(), []string{`[` + egDeleted + `,` + ceCreated + `]`})
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Parse(body)
		checkParse(t, body, res, err)
	})
}

// FuzzParseEventGrid starts from the Event Grid schema only, so that its
// mutations stay close to it.
func FuzzParseEventGrid(f *testing.F) {
	addSeeds(f, eventGridSeeds())
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Parse(body)
		checkParse(t, body, res, err)
	})
}

// FuzzParseCloudEvents starts from the CloudEvents schema only.
func FuzzParseCloudEvents(f *testing.F) {
	addSeeds(f, cloudEventsSeeds())
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Parse(body)
		checkParse(t, body, res, err)
	})
}

// FuzzQueueMessage runs the queue consumer's whole decoding path: message
// text (raw or base64) through Parse.
func FuzzQueueMessage(f *testing.F) {
	for _, s := range []string{egCreated, ceCreated, ceRenamed, "", "aGVsbG8=", "!!", " \n" + egDeleted + "\n"} {
		f.Add(s)
		f.Add(base64.StdEncoding.EncodeToString([]byte(s)))
		f.Add(base64.RawURLEncoding.EncodeToString([]byte(s)))
	}
	f.Fuzz(func(t *testing.T, text string) {
		body, err := DecodeQueueMessage(text)
		body2, err2 := DecodeQueueMessage(text)
		if !bytes.Equal(body, body2) || errText(err) != errText(err2) {
			t.Fatalf("DecodeQueueMessage is not deterministic")
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			if body != nil {
				t.Fatalf("error with a body %q", body)
			}
			return
		}
		// What comes out looks like JSON, and raw JSON text is passed
		// through unchanged apart from surrounding space.
		if len(body) == 0 || (body[0] != '{' && body[0] != '[') {
			t.Fatalf("decoded body %q is not a JSON object or array", body)
		}
		if t0 := strings.TrimSpace(text); t0[0] == '{' || t0[0] == '[' {
			if string(body) != t0 {
				t.Fatalf("raw JSON text %q came out as %q", t0, body)
			}
		}
		res, err := Parse(body)
		checkParse(t, body, res, err)
	})
}
