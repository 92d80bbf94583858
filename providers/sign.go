package providers

import (
	"context"
	"os"
	"time"
)

// URLSigner is implemented by providers that can hand out a URL from which
// anyone holding it may GET one object, for a limited time (an S3 presigned
// URL, a GCS V4 signed URL, an Azure SAS URL). The asset API uses it for an
// asset's uri. The URL is a bearer credential: never log it.
type URLSigner interface {
	SignGetURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// FileOpener is implemented by providers whose objects are files this
// process can open (the local provider). OpenFile applies the same rules as
// Stat (a key the listing would not show is not found) and returns the open
// file with its current state; the caller closes it.
type FileOpener interface {
	OpenFile(ctx context.Context, key string) (*os.File, Object, error)
}

// Capability returns p, or the provider it wraps (see WithTimeout), as a T:
// the optional interfaces above survive wrapping.
func Capability[T any](p Provider) (T, bool) {
	for p != nil {
		if t, ok := p.(T); ok {
			return t, true
		}
		u, ok := p.(interface{ Unwrap() Provider })
		if !ok {
			break
		}
		p = u.Unwrap()
	}
	var zero T
	return zero, false
}
