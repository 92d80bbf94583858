package azure

import (
	"encoding/base64"
	"errors"
	"testing"
)

func seeds(f *testing.F) {
	for _, s := range []string{egCreated, egDeleted, ceCreated, ceRenamed, egTier, egValidation,
		`[` + egDeleted + `,` + ceCreated + `]`, `[]`, `{}`, `[{"eventType":"Microsoft.Storage.BlobDeleted","subject":"/blobServices/default/containers/c/blobs/\ufffd","data":{"url":"http://h/c/%F0%9F%98%80"}}]`} {
		f.Add([]byte(s))
	}
}

func checkParse(t *testing.T, res Result, err error) {
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
		return
	}
	checkEvents(t, res.Events)
	for _, s := range res.Skips {
		if s.Reason == "" {
			t.Fatalf("skip without a reason: %+v", s)
		}
	}
}

// FuzzParse covers both schemas: the seeds hold Event Grid and CloudEvents
// events, alone and mixed in arrays.
func FuzzParse(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Parse(body)
		checkParse(t, res, err)
	})
}

// FuzzQueueMessage runs the queue consumer's whole decoding path: message
// text (raw or base64) through Parse.
func FuzzQueueMessage(f *testing.F) {
	for _, s := range []string{egCreated, ceCreated, ceRenamed, "", "aGVsbG8=", "!!"} {
		f.Add(s)
		f.Add(base64.StdEncoding.EncodeToString([]byte(s)))
	}
	f.Fuzz(func(t *testing.T, text string) {
		body, err := DecodeQueueMessage(text)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		res, err := Parse(body)
		checkParse(t, res, err)
	})
}
