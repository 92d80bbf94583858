package azure

import (
	"bytes"
	"encoding/xml"
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
// container, or "" when nothing is.
func validListing(body []byte, container string) string {
	var r struct {
		XMLName       xml.Name
		ContainerName *string   `xml:"ContainerName,attr"`
		Blobs         *struct{} `xml:"Blobs"`
	}
	if why := providers.DecodeXMLListing(body, &r); why != "" {
		return why
	}
	switch {
	case r.XMLName.Local != "EnumerationResults":
		return fmt.Sprintf("root element <%s>, want <EnumerationResults>", r.XMLName.Local)
	case r.ContainerName == nil:
		return "no ContainerName"
	case *r.ContainerName != container:
		return fmt.Sprintf("listing of container %q", *r.ContainerName)
	case r.Blobs == nil:
		return "no <Blobs>"
	}
	return ""
}
