package providers

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrNotListing marks a response that answered a listing request with
// success but is not a listing of the bucket asked for: an empty or
// truncated body, a proxy's or portal's page, an error document sent with
// 200, another bucket's listing. Read as a listing it would be an empty
// bucket, and every object would be deleted; so it is an error, classified
// ErrTransient as well (the next scan tries again).
var ErrNotListing = errors.New("response is not a listing")

// NotListing returns an error for which both errors.Is(err, ErrNotListing)
// and errors.Is(err, ErrTransient) hold; what names the listing, why says
// what is wrong with the response.
func NotListing(what, why string) error {
	return Classify(ErrTransient, fmt.Errorf("%s: %w: %s", what, ErrNotListing, why))
}

// DecodeXMLListing decodes body into v and, when that fails, says why the
// body is no XML listing at all ("" when it decoded). The S3 and Azure
// listing checks share it, so both describe a bad body the same way.
func DecodeXMLListing(body []byte, v any) (why string) {
	err := xml.Unmarshal(body, v)
	switch {
	case err == nil:
		return ""
	case len(bytes.TrimSpace(body)) == 0:
		return "empty body"
	case errors.Is(err, io.EOF):
		return fmt.Sprintf("no XML element in %d bytes", len(body))
	}
	return fmt.Sprintf("not XML (%d bytes): %v", len(body), err)
}

// KindOfStatus is the error kind of a failed request's HTTP status, the one
// mapping every adapter uses so that a status means the same for every store:
// 429 and 503 (S3 SlowDown, Azure ServerBusy, GCS rate limits) are
// ErrThrottled, other 5xx and 408 ErrTransient. It returns nil for a status
// it has no kind for. Adapters map the store's error codes first (a 404 may
// be a missing bucket) and fall back to this.
func KindOfStatus(status int) error {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrPermission
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return ErrThrottled
	case status == http.StatusRequestTimeout || status >= 500:
		return ErrTransient
	case status == http.StatusBadRequest:
		return ErrInvalidArguments
	}
	return nil
}

// AsNotListing returns the ErrNotListing error inside err without the SDK's
// wrapping (which may quote the whole request URL), or nil when err is none.
func AsNotListing(err error) error {
	var ke *KindError
	for e := err; errors.As(e, &ke); e = ke.Err {
		if errors.Is(ke.Err, ErrNotListing) && ke.Kind == ErrTransient {
			return ke
		}
	}
	return nil
}

// Kind names, as reports show them: /status's lastError.kind and the kind
// label of syncer_scan_errors_total.
const (
	KindBucketNotFound   = "bucket_not_found"
	KindPermission       = "permission_denied"
	KindThrottled        = "throttled"
	KindTransient        = "transient"
	KindInvalidArguments = "invalid_arguments"
	KindNotFound         = "not_found"
	// KindOther is an error of none of the kinds (a bug, a catalog error).
	KindOther = "other"
)

// kindNames maps each kind to its name, in the order KindOf tests them: a
// missing bucket is also "not found", and says more.
var kindNames = []struct {
	kind error
	name string
}{
	{ErrBucketNotFound, KindBucketNotFound},
	{ErrPermission, KindPermission},
	{ErrThrottled, KindThrottled},
	{ErrTransient, KindTransient},
	{ErrInvalidArguments, KindInvalidArguments},
	{ErrNotFound, KindNotFound},
}

// KindOf names err's kind: one of the Kind constants, "" for nil.
func KindOf(err error) string {
	if err == nil {
		return ""
	}
	for _, k := range kindNames {
		if errors.Is(err, k.kind) {
			return k.name
		}
	}
	return KindOther
}

// KindErr returns the kind err is of (ErrBucketNotFound, ErrPermission, …),
// tested in KindOf's order; nil for an error of none.
func KindErr(err error) error {
	for _, k := range kindNames {
		if errors.Is(err, k.kind) {
			return k.kind
		}
	}
	return nil
}

// KindNames are every name KindOf returns for an error, for metric series
// that exist from the start.
func KindNames() []string {
	names := make([]string, 0, len(kindNames)+1)
	for _, k := range kindNames {
		names = append(names, k.name)
	}
	return append(names, KindOther)
}
