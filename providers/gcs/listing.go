package gcs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/imgly/syncer/providers"
)

// listingCheck is the HTTP transport beneath the SDK (and beneath its
// authentication) that checks each successful objects.list response before
// the SDK decodes it. The SDK reads any JSON object sent with 200 as a
// listing — "{}" as an empty bucket, and a scan would then delete every
// object. A listing asked for with a field selection carries only the
// selected fields, so the check adds "kind" to the selection: a real listing
// then always says "kind": "storage#objects".
type listingCheck struct {
	bucket string
	next   http.RoundTripper
}

func (c *listingCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/b/"+c.bucket+"/o") {
		return c.next.RoundTrip(req)
	}
	if q := req.URL.Query(); q.Get("fields") != "" {
		// RoundTrip must not change the caller's request.
		req = req.Clone(req.Context())
		q.Set("fields", "kind,"+q.Get("fields"))
		req.URL.RawQuery = q.Encode()
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read listing: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if why := validListing(body); why != "" {
		return nil, providers.NotListing("objects.list", why)
	}
	return resp, nil
}

// validListing says what is wrong with body as an objects.list page, or ""
// when nothing is: it must be one complete JSON object whose top-level
// "kind" is "storage#objects". It reads the frame only — strings and
// nesting, no values — because the SDK decodes the page right after, and a
// full decode here cost a third of the SDK's own (BenchmarkListingCheck).
// Whether the items are of this bucket is checked on what the SDK decoded
// (Provider.list).
func validListing(body []byte) string {
	kind, found, why := topLevelString(body, "kind")
	switch {
	case why != "":
		return fmt.Sprintf("not a JSON listing (%d bytes): %s", len(body), why)
	case !found:
		return `no "kind"`
	case kind != "storage#objects":
		return fmt.Sprintf(`"kind" is %q, want "storage#objects"`, kind)
	}
	return ""
}

// topLevelString scans body as one JSON object and returns the value of its
// top-level member name when that is a string. why says what makes body not
// one complete object (empty, another type, cut off, trailing data); values
// are not validated beyond their strings and brackets.
func topLevelString(body []byte, name string) (value string, found bool, why string) {
	i := skipSpace(body, 0)
	if i == len(body) {
		return "", false, "empty body"
	}
	if body[i] != '{' {
		return "", false, fmt.Sprintf("starts with %q, not an object", body[i])
	}
	depth := 0
	// At depth 1 a string is a member name when it follows '{' or ','; the
	// string right after the wanted name's ':' is its value.
	expectName, wantValue := false, false
	for ; i < len(body); i++ {
		c := body[i]
		switch c {
		case '{', '[':
			depth++
			expectName = c == '{' && depth == 1
			wantValue = false
		case '}', ']':
			depth--
			if depth == 0 {
				if j := skipSpace(body, i+1); j != len(body) {
					return "", false, "data after the object"
				}
				return value, found, ""
			}
		case ',':
			expectName = depth == 1
		case ':':
			// wantValue was set by the name just read.
		case '"':
			end, ok := stringEnd(body, i)
			if !ok {
				return "", false, "cut off in a string"
			}
			str := body[i : end+1]
			i = end
			switch {
			case depth == 1 && expectName:
				expectName = false
				wantValue = string(str[1:len(str)-1]) == name
				if wantValue { // a repeated member counts as its last, as in encoding/json
					value, found = "", false
				}
				continue
			case depth == 1 && wantValue:
				var v string
				if err := json.Unmarshal(str, &v); err != nil {
					return "", false, fmt.Sprintf("bad string: %v", err)
				}
				value, found = v, true
			}
			wantValue = false
		default:
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				wantValue = false // a number, true, false or null
			}
		}
	}
	return "", false, "cut off before the object's end"
}

// stringEnd returns the index of the quote that closes the string opening at
// body[i].
func stringEnd(body []byte, i int) (int, bool) {
	for j := i + 1; j < len(body); j++ {
		switch body[j] {
		case '\\':
			j++
		case '"':
			return j, true
		}
	}
	return 0, false
}

func skipSpace(body []byte, i int) int {
	for i < len(body) && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r') {
		i++
	}
	return i
}
