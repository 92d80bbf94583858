package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/imgly/syncer/providers"
)

// classify marks an SDK error with its providers kind. listing says a 404
// without an error code means the container is missing (a listing has no
// blob to miss) rather than the blob.
func classify(err error, listing bool) error {
	err = redact(err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if nl := providers.AsNotListing(err); nl != nil {
		return nl
	}
	var re *ResponseError
	if errors.As(err, &re) {
		switch bloberror.Code(re.Code) {
		case bloberror.BlobNotFound:
			return providers.Classify(providers.ErrNotFound, err)
		case bloberror.ContainerNotFound, bloberror.ContainerBeingDeleted, bloberror.ContainerDisabled:
			return providers.Classify(providers.ErrBucketNotFound, err)
		case bloberror.ServerBusy:
			return providers.Classify(providers.ErrThrottled, err)
		}
		if re.StatusCode == http.StatusNotFound && listing {
			return providers.Classify(providers.ErrBucketNotFound, err)
		}
		if kind := providers.KindOfStatus(re.StatusCode); kind != nil {
			return providers.Classify(kind, err)
		}
		return err
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) {
		return providers.Classify(providers.ErrPermission, err)
	}
	if isNetError(err) {
		return providers.Classify(providers.ErrTransient, err)
	}
	return err
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// ResponseError is a service error response in a compact, secret-free form:
// status and error code. The SDK's own message spans many lines and quotes
// the response body; it stays reachable with errors.As.
type ResponseError struct {
	StatusCode int
	Code       string
	Err        *azcore.ResponseError
}

func (e *ResponseError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d", e.StatusCode)
	}
	return fmt.Sprintf("HTTP %d %s", e.StatusCode, e.Code)
}

func (e *ResponseError) Unwrap() error { return e.Err }

// redact rewrites err so that its message can be logged: a service error
// becomes a *ResponseError, and a transport error's URL loses its query,
// which may hold a SAS signature. Other errors pass unchanged.
func redact(err error) error {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return &ResponseError{StatusCode: re.StatusCode, Code: re.ErrorCode, Err: re}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: redactURL(ue.URL), Err: ue.Err}
	}
	return err
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(url)"
	}
	u.RawQuery, u.ForceQuery, u.User, u.Fragment = "", false, nil, ""
	return u.String()
}
