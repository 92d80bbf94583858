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

// XMLListingRoot checks the frame of an XML listing without decoding it: the
// body's first element must be want and the body must end with its end tag,
// so that an empty, non-XML or cut-off body, an error document or a portal's
// page is told apart from a listing. It returns that first element, or why
// the body is not such a listing. The listing itself is decoded once, by the
// SDK: a full second decode here cost as much CPU as the SDK's own (a third
// of a no-change rescan).
func XMLListingRoot(body []byte, want string) (root xml.StartElement, why string) {
	if len(bytes.TrimSpace(body)) == 0 {
		return root, "empty body"
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			return root, fmt.Sprintf("no XML element in %d bytes", len(body))
		}
		if err != nil {
			return root, fmt.Sprintf("not XML (%d bytes): %v", len(body), err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			root = se
			break
		}
	}
	if root.Name.Local != want {
		return root, fmt.Sprintf("root element <%s>, want <%s>", root.Name.Local, want)
	}
	end := "</" + want + ">"
	if root.Name.Space != "" {
		end = "</" + root.Name.Space + ":" + want + ">"
	}
	if !bytes.HasSuffix(bytes.TrimRight(body, " \t\r\n"), []byte(end)) {
		return root, fmt.Sprintf("cut off: %d bytes without the closing %s", len(body), end)
	}
	return root, ""
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
