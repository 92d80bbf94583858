package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/imgly/syncer/providers"
)

// checkListing returns an API option that checks the frame of the raw body
// of a successful ListObjectsV2 response before the SDK decodes it (list
// checks the decoded fields). The SDK reads
// an empty, whitespace, plain-text, JSON or HTML body with status 200 as a
// listing of nothing — and a scan would then delete every object — so the
// check runs beneath every deserialize middleware, on the raw response (the
// SDK's own check for a 200 <Error> consumes an empty or non-XML body).
func checkListing() func(*middleware.Stack) error {
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
				if why := validListing(body); why != "" {
					return out, md, providers.NotListing("ListObjectsV2", why)
				}
				return out, md, nil
			}), middleware.After)
	}
}

// validListing says what is wrong with body as a ListObjectsV2 response, or
// "" when nothing is: its frame only (XMLListingRoot); checkPage checks what
// the SDK decoded from it.
func validListing(body []byte) string {
	_, why := providers.XMLListingRoot(body, "ListBucketResult")
	return why
}

// checkPage says what is wrong with out as the ListObjectsV2 page of bucket
// requested with token, or "" when nothing is. S3 always sends Name and
// IsTruncated; KeyCount and ContinuationToken are optional in S3-compatible
// stores but must agree when present.
func checkPage(out *awss3.ListObjectsV2Output, bucket, token string) string {
	switch {
	case out.Name == nil:
		return "no <Name>"
	case *out.Name != bucket:
		return fmt.Sprintf("listing of bucket %q", *out.Name)
	case out.IsTruncated == nil:
		return "no <IsTruncated>"
	case *out.IsTruncated && (out.NextContinuationToken == nil || *out.NextContinuationToken == ""):
		return "truncated page without a continuation token"
	case out.KeyCount != nil && int(*out.KeyCount) != len(out.Contents)+len(out.CommonPrefixes):
		return fmt.Sprintf("<KeyCount> %d but %d entries", *out.KeyCount, len(out.Contents)+len(out.CommonPrefixes))
	case out.ContinuationToken != nil && *out.ContinuationToken != token:
		return "<ContinuationToken> is not the one sent"
	}
	return ""
}
