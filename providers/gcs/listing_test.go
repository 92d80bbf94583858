package gcs

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidListing(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		ok         bool
		why        string // a part of the reason, when not ok
	}{
		{"a page", `{"kind":"storage#objects","items":[{"name":"a","bucket":"b"}]}`, true, ""},
		{"an empty bucket", ` {"kind": "storage#objects"} ` + "\n", true, ""},
		{"kind after the items", `{"items":[{"kind":"storage#object","name":"a"}],"nextPageToken":"x","kind":"storage#objects"}`, true, ""},
		{"escaped kind", `{"kind":"storage\u0023objects"}`, true, ""},
		{"names with quotes and brackets", `{"items":[{"name":"a\"}],\"kind\":\"x{"}],"kind":"storage#objects"}`, true, ""},
		{"empty", "", false, "empty body"},
		{"whitespace", " \r\n\t", false, "empty body"},
		{"an array", `[{"kind":"storage#objects"}]`, false, "not an object"},
		{"null", `null`, false, "not an object"},
		{"no kind", `{"items":[]}`, false, `no "kind"`},
		{"kind only in an item", `{"items":[{"kind":"storage#objects"}]}`, false, `no "kind"`},
		{"kind as a value", `{"x":"kind","y":"storage#objects"}`, false, `no "kind"`},
		{"an object's metadata", `{"kind":"storage#object","name":"x"}`, false, `"kind" is "storage#object"`},
		{"kind not a string", `{"kind":{"v":"storage#objects"}}`, false, `no "kind"`},
		{"an error", `{"error":{"code":500,"message":"x"}}`, false, `no "kind"`},
		{"cut off in the items", `{"kind":"storage#objects","items":[{"name":"a"}`, false, "cut off"},
		{"cut off in a string", `{"kind":"storage#objects","items":[{"name":"a`, false, "cut off"},
		{"data after the object", `{"kind":"storage#objects"}{"kind":"storage#objects"}`, false, "data after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			why := validListing([]byte(tc.body))
			if tc.ok != (why == "") || !strings.Contains(why, tc.why) {
				t.Fatalf("validListing(%s) = %q, want ok=%v (%q)", tc.body, why, tc.ok, tc.why)
			}
		})
	}
}

// FuzzTopLevelString checks the frame scanner against encoding/json on every
// input that is a JSON object: the same top-level "kind" string, or none.
func FuzzTopLevelString(f *testing.F) {
	for _, s := range []string{
		`{"kind":"storage#objects","items":[{"name":"a\"b","bucket":"b"}]}`,
		`{"items":[{"kind":"storage#objects"}],"kind":"x"}`,
		`{"kind":1,"kind":"a"}`, `{}`, `[]`, `{"a":{"kind":"b"}}`, `{"k\u0069nd":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, found, why := topLevelString(body, "kind")
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil || m == nil {
			return // not an object: the SDK refuses it too; any answer will do
		}
		if why != "" {
			t.Fatalf("a JSON object refused: %s (%q)", why, body)
		}
		// Names are compared as written: an escaped "kind" is not the
		// member GCS sends, so only plain ones are compared.
		if strings.Contains(string(body), `\`) {
			return
		}
		var want string
		raw, ok := m["kind"]
		wantFound := ok && json.Unmarshal(raw, &want) == nil
		if wantFound != found || (found && got != want) {
			t.Fatalf("%q: got %q found=%v, encoding/json %q found=%v", body, got, found, want, wantFound)
		}
	})
}
