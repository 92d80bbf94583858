// Package providers defines the seam between syncer and an object store.
//
// An adapter implements the small Provider interface: list one page of a
// source in key order, and stat one key. Everything shared — streaming pages,
// order checks, metrics — lives above it, so that an adapter stays a thin
// translation of one SDK. Retrying a failed request is left to each SDK (a
// few quick attempts); a listing that still fails ends the scan, applying no
// deletions, and the next scheduled scan tries again.
package providers

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Object is what syncer records about one stored object. Fields a provider
// does not know are left zero.
type Object struct {
	// Key is the object's full key in the bucket (or its slash path below a
	// local root), as the provider spells it, unescaped.
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	ETag         string    `json:"etag,omitempty"`
	Version      string    `json:"version,omitempty"` // version id or generation, when the store has one
	LastModified time.Time `json:"lastModified"`
	ContentType  string    `json:"contentType,omitempty"`
	// Settling marks an object that may still be being written (a local
	// file modified moments ago): a scan neither announces it nor counts it
	// gone, and leaves what the catalog knows of it as it is until a later
	// scan sees it settled. Never stored.
	Settling bool `json:"-"`
}

// Page is one page of a listing. Keys within a page, and across the pages of
// one listing, are strictly increasing in the provider's Order.
type Page struct {
	Objects []Object
	// Next is the opaque token of the following page; empty on the last page.
	Next string
}

// Provider lists and stats the objects of one source (a bucket and prefix).
//
// ListPage returns the objects whose key begins with prefix, starting at the
// page named by token ("" for the first), in strictly increasing Order. An
// error ends the listing: callers never treat a partial listing as complete.
//
// Stat returns the current state of one key, or an error for which
// errors.Is(err, ErrNotFound) holds when the key does not exist.
type Provider interface {
	ListPage(ctx context.Context, prefix, token string) (Page, error)
	Stat(ctx context.Context, key string) (Object, error)
	// Order is the key order ListPage promises.
	Order() Order
	// Close releases the provider's clients.
	Close() error
}

// Order names the total order a provider lists keys in. The catalog stores a
// source's keys so that its own byte order equals the provider's order; the
// streaming diff relies on that.
type Order int

const (
	// ByteOrder compares keys as UTF-8 byte strings (S3, GCS, local).
	ByteOrder Order = iota
	// UTF16Order compares keys by UTF-16 code units (Azure Blob / Azurite):
	// it differs from ByteOrder only between supplementary-plane characters
	// and U+E000..U+FFFF.
	UTF16Order
)

func (o Order) String() string {
	switch o {
	case ByteOrder:
		return "byte"
	case UTF16Order:
		return "utf16"
	}
	return fmt.Sprintf("Order(%d)", int(o))
}

// Error kinds every adapter maps its SDK's errors into, so that callers and
// reports tell them apart the same way for every store. Test with errors.Is.
var (
	ErrNotFound         = errors.New("not found")
	ErrPermission       = errors.New("permission denied")
	ErrThrottled        = errors.New("throttled")
	ErrTransient        = errors.New("transient failure")
	ErrBucketNotFound   = errors.New("bucket not found")
	ErrInvalidArguments = errors.New("invalid arguments")
)

// KindError wraps an SDK error with one of the kinds above while keeping the
// original for errors.As and for the message.
type KindError struct {
	Kind error
	Err  error
}

func (e *KindError) Error() string { return e.Err.Error() }

// Unwrap exposes both the kind and the cause.
func (e *KindError) Unwrap() []error { return []error{e.Kind, e.Err} }

// Classify returns err marked with kind; a nil err stays nil.
func Classify(kind, err error) error {
	if err == nil {
		return nil
	}
	return &KindError{Kind: kind, Err: err}
}

// StartAfterLister is implemented by providers that can begin a listing
// after a given key (S3 StartAfter, GCS StartOffset, the local walker), so
// that an interrupted first scan resumes where it stopped. Azure Blob has no
// such parameter (its markers are opaque), so it does not implement it.
//
// ListPageAfter returns the first page of the listing of prefix that holds
// only keys after startAfter in the provider's Order; the following pages
// are read with ListPage and the returned Next token, as usual.
type StartAfterLister interface {
	ListPageAfter(ctx context.Context, prefix, startAfter string) (Page, error)
}

// CanStartAfter reports whether p can begin a listing after a key. Wrappers
// (such as WithTimeout's) that implement ListPageAfter by delegating are
// seen through with an Unwrap() Provider method: what counts is whether the
// provider underneath can.
func CanStartAfter(p Provider) bool {
	for {
		if _, ok := p.(StartAfterLister); !ok {
			return false
		}
		u, ok := p.(interface{ Unwrap() Provider })
		if !ok {
			return true
		}
		p = u.Unwrap()
	}
}
