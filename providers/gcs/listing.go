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
	if why := validListing(body, c.bucket); why != "" {
		return nil, providers.NotListing("objects.list", why)
	}
	return resp, nil
}

// validListing says what is wrong with body as an objects.list page of
// bucket, or "" when nothing is. Items name their bucket (the adapter selects
// the field), so another bucket's listing is told apart unless it is empty.
func validListing(body []byte, bucket string) string {
	if len(bytes.TrimSpace(body)) == 0 {
		return "empty body"
	}
	var r struct {
		Kind  *string `json:"kind"`
		Items []struct {
			Bucket *string `json:"bucket"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Sprintf("not a JSON listing (%d bytes): %v", len(body), err)
	}
	switch {
	case r.Kind == nil:
		return `no "kind"`
	case *r.Kind != "storage#objects":
		return fmt.Sprintf(`"kind" is %q, want "storage#objects"`, *r.Kind)
	}
	for _, it := range r.Items {
		if it.Bucket != nil && *it.Bucket != bucket {
			return fmt.Sprintf("listing of bucket %q", *it.Bucket)
		}
	}
	return ""
}
