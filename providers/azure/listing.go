package azure

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/imgly/syncer/providers"
)

// listingCheck is a per-call pipeline policy that checks a successful List
// Blobs response before the SDK decodes it: the SDK reads any XML sent with
// 200 — even an <Error> document — as a listing of nothing, and a scan would
// then delete every object. Per call, not per retry, so that the SDK does
// not retry what is not a network failure.
type listingCheck struct{ container string }

func (c listingCheck) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if err != nil || resp == nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, err
	}
	q := req.Raw().URL.Query()
	if q.Get("comp") != "list" || q.Get("restype") != "container" {
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read listing: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if why := validListing(body, c.container); why != "" {
		return nil, providers.NotListing("List Blobs", why)
	}
	return resp, nil
}

// validListing says what is wrong with body as a List Blobs page of
// container, or "" when nothing is. It reads the root element only (the
// container is its attribute) and looks for <Blobs>, so that the page is
// decoded once, by the SDK.
func validListing(body []byte, container string) string {
	root, why := providers.XMLListingRoot(body, "EnumerationResults")
	if why != "" {
		return why
	}
	name, ok := "", false
	for _, a := range root.Attr {
		if a.Name.Local == "ContainerName" {
			name, ok = a.Value, true
		}
	}
	switch {
	case !ok:
		return "no ContainerName"
	case name != container:
		return fmt.Sprintf("listing of container %q", name)
	case !bytes.Contains(body, []byte("<Blobs>")) && !bytes.Contains(body, []byte("<Blobs/>")) && !bytes.Contains(body, []byte("<Blobs />")):
		return "no <Blobs>"
	}
	return ""
}
