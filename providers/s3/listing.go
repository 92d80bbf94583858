package s3

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/imgly/syncer/providers"
)

// checkListing returns an API option that checks the raw body of a
// successful ListObjectsV2 response before the SDK decodes it. The SDK reads
// an empty, whitespace, plain-text, JSON or HTML body with status 200 as a
// listing of nothing — and a scan would then delete every object — so the
// check runs beneath every deserialize middleware, on the raw response (the
// SDK's own check for a 200 <Error> consumes an empty or non-XML body).
func checkListing(bucket, token string) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("syncer.CheckListing",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if err != nil {
					return out, md, err
				}
				resp, ok := out.RawResponse.(*smithyhttp.Response)
				if !ok || resp.StatusCode < 200 || resp.StatusCode > 299 {
					return out, md, err // errors are the deserializer's
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					return out, md, fmt.Errorf("read listing: %w", err)
				}
				resp.Body = io.NopCloser(bytes.NewReader(body))
				if why := validListing(body, bucket, token); why != "" {
					return out, md, providers.NotListing("ListObjectsV2", why)
				}
				return out, md, nil
			}), middleware.After)
	}
}

// listBucketResult is the part of a ListObjectsV2 response the check reads.
type listBucketResult struct {
	XMLName               xml.Name
	Name                  *string    `xml:"Name"`
	KeyCount              *int       `xml:"KeyCount"`
	IsTruncated           *bool      `xml:"IsTruncated"`
	ContinuationToken     *string    `xml:"ContinuationToken"`
	NextContinuationToken *string    `xml:"NextContinuationToken"`
	Contents              []struct{} `xml:"Contents"`
	CommonPrefixes        []struct{} `xml:"CommonPrefixes"`
}

// validListing says what is wrong with body as the ListObjectsV2 page of
// bucket requested with token, or "" when nothing is. S3 always sends Name
// and IsTruncated; KeyCount and ContinuationToken are optional in
// S3-compatible stores but must agree when present.
func validListing(body []byte, bucket, token string) string {
	var r listBucketResult
	if why := providers.DecodeXMLListing(body, &r); why != "" {
		return why
	}
	switch {
	case r.XMLName.Local != "ListBucketResult":
		return fmt.Sprintf("root element <%s>, want <ListBucketResult>", r.XMLName.Local)
	case r.Name == nil:
		return "no <Name>"
	case *r.Name != bucket:
		return fmt.Sprintf("listing of bucket %q", *r.Name)
	case r.IsTruncated == nil:
		return "no <IsTruncated>"
	case *r.IsTruncated && (r.NextContinuationToken == nil || *r.NextContinuationToken == ""):
		return "truncated page without a continuation token"
	case r.KeyCount != nil && *r.KeyCount != len(r.Contents)+len(r.CommonPrefixes):
		return fmt.Sprintf("<KeyCount> %d but %d entries", *r.KeyCount, len(r.Contents)+len(r.CommonPrefixes))
	case r.ContinuationToken != nil && *r.ContinuationToken != token:
		return "<ContinuationToken> is not the one sent"
	}
	return ""
}
