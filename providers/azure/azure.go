// Package azure is the Azure Blob Storage adapter: it lists one container
// (below a prefix) page by page and stats single blobs, with
// github.com/Azure/azure-sdk-for-go/sdk/storage/azblob.
//
// # Key order
//
// The List Blobs reference promises only that "blobs are listed in
// alphabetical order in the response body, with upper-case letters listed
// first" (https://learn.microsoft.com/rest/api/storageservices/list-blobs,
// and "The operation returns entities in alphabetical order" in
// https://learn.microsoft.com/rest/api/storageservices/enumerating-blob-resources);
// it does not say which encoding the comparison runs on. Writing one blob per
// Unicode character to a real account and listing them showed the service
// ordering by UTF-16 code units (big-endian), not by UTF-8 bytes
// (blobfile/blobfile#238, https://github.com/blobfile/blobfile/pull/238).
// Azurite, built on JavaScript string comparison, sorts by UTF-16 code units
// too. The two orders differ only between supplementary-plane characters
// (emoji) and U+E000..U+FFFF (private use, CJK compatibility, fullwidth
// forms), which UTF-16 puts after the emoji.
//
// So the adapter reports providers.UTF16Order, fixed rather than
// configurable: there is no setting on the service that changes it, and both
// the service and its emulator agree. Should a store ever list in another
// order, providers.Walk notices the first inversion and fails the scan with
// an *providers.OrderError instead of producing a wrong diff.
package azure

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/imgly/syncer/providers"
)

// DefaultPageSize is the most blobs one List Blobs call returns.
const DefaultPageSize = 5000

// Provider lists and stats the blobs of one container.
type Provider struct {
	container string
	client    *container.Client
	pageSize  int32
	token     *tokenAuth // nil unless authenticated by a token credential
}

var _ providers.Provider = (*Provider)(nil)

type options struct {
	pageSize   int
	retries    int
	clientOpts *azcore.ClientOptions
}

// Option tunes a Provider.
type Option func(*options)

// WithPageSize sets how many blobs one ListPage asks for (1..5000).
func WithPageSize(n int) Option { return func(o *options) { o.pageSize = n } }

// WithSDKRetries sets how often the SDK retries a failed request itself
// (default 2, like the S3 and GCS SDKs' three attempts; 0 or less: none).
// Nothing above the provider retries a page: a failure ends the scan, which
// applies no deletions and is tried again at the next schedule.
func WithSDKRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithClientOptions sets the SDK's client options (transport, telemetry,
// logging). Retry settings in them are overridden by WithSDKRetries.
func WithClientOptions(c azcore.ClientOptions) Option {
	return func(o *options) { o.clientOpts = &c }
}

// New returns a provider over src's container. Credentials come from
// src, in this order: a connection string; an account name and key;
// a SAS token (appended to the account URL, or already in it); otherwise
// azidentity's DefaultAzureCredential (environment, workload identity on
// AKS, managed identity, Azure CLI). No request is made here, so a wrong
// credential shows on the first listing.
func New(ctx context.Context, src Config, opts ...Option) (*Provider, error) {
	o := options{pageSize: DefaultPageSize, retries: 2}
	for _, opt := range opts {
		opt(&o)
	}
	if o.pageSize < 1 || o.pageSize > DefaultPageSize {
		return nil, fmt.Errorf("azure source %q: page size %d out of range 1..%d", src.ID, o.pageSize, DefaultPageSize)
	}
	if src.Container == "" {
		return nil, fmt.Errorf("azure source %q: no container", src.ID)
	}
	co := clientOptions(o)
	co.PerCallPolicies = append(co.PerCallPolicies, listingCheck{container: src.Container})
	cc, tok, err := newContainerClient(src.Container, src, co)
	if err != nil {
		return nil, fmt.Errorf("azure source %q: %w", src.ID, err)
	}
	return &Provider{container: src.Container, client: cc, pageSize: int32(o.pageSize), token: tok}, nil
}

func clientOptions(o options) *container.ClientOptions {
	co := &container.ClientOptions{}
	if o.clientOpts != nil {
		co.ClientOptions = *o.clientOpts
	}
	// A few quick attempts smooth over a dropped connection; the SDK's
	// defaults (up to a minute between tries) would hold a scan on a store
	// that keeps failing.
	co.Retry.MaxRetries = int32(o.retries)
	if o.retries <= 0 {
		co.Retry.MaxRetries = -1 // the SDK reads 0 as its default
	}
	co.Retry.RetryDelay, co.Retry.MaxRetryDelay = 200*time.Millisecond, 2*time.Second
	return co
}

// ListPage lists up to the page size of blobs whose names begin with prefix,
// continuing after the page named by token (the service's opaque marker).
func (p *Provider) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	lo := &container.ListBlobsFlatOptions{MaxResults: &p.pageSize}
	if prefix != "" {
		lo.Prefix = &prefix
	}
	if token != "" {
		lo.Marker = &token
	}
	// A pager fetches its first page with the options' marker; one pager per
	// call keeps the provider stateless between pages.
	resp, err := p.client.NewListBlobsFlatPager(lo).NextPage(ctx)
	if err != nil {
		return providers.Page{}, fmt.Errorf("list azure://%s/%s: %w", p.container, prefix, classify(err, true))
	}
	var pg providers.Page
	if resp.Segment != nil {
		pg.Objects = make([]providers.Object, 0, len(resp.Segment.BlobItems))
		for _, it := range resp.Segment.BlobItems {
			if it == nil || it.Name == nil {
				continue
			}
			if it.Deleted != nil && *it.Deleted {
				continue // soft-deleted blobs are listed only when asked for; never current
			}
			o := providers.Object{Key: *it.Name}
			if it.VersionID != nil {
				o.Version = *it.VersionID
			}
			if pr := it.Properties; pr != nil {
				if pr.ResourceType != nil && *pr.ResourceType == "directory" {
					// Hierarchical-namespace directories are not content.
					continue
				}
				o.Size = deref(pr.ContentLength)
				o.ETag = normETag(pr.ETag)
				o.ContentType = deref(pr.ContentType)
				if pr.LastModified != nil {
					o.LastModified = *pr.LastModified
				}
			}
			pg.Objects = append(pg.Objects, o)
		}
	}
	if resp.NextMarker != nil {
		pg.Next = *resp.NextMarker
	}
	return pg, nil
}

// Stat returns the current state of one blob; errors.Is(err,
// providers.ErrNotFound) when it does not exist.
func (p *Provider) Stat(ctx context.Context, key string) (providers.Object, error) {
	if key == "" {
		return providers.Object{}, fmt.Errorf("stat azure://%s/: %w", p.container, providers.ErrInvalidArguments)
	}
	resp, err := p.client.NewBlobClient(key).GetProperties(ctx, nil)
	if err != nil {
		return providers.Object{}, fmt.Errorf("stat azure://%s/%s: %w", p.container, key, classify(err, false))
	}
	o := providers.Object{
		Key:         key,
		Size:        deref(resp.ContentLength),
		ETag:        normETag(resp.ETag),
		ContentType: deref(resp.ContentType),
		Version:     deref(resp.VersionID),
	}
	if resp.LastModified != nil {
		o.LastModified = *resp.LastModified
	}
	return o, nil
}

// KeyOrder is the order Azure lists blob names in: UTF-16 code units (see
// the package comment). The
// catalog stores keys by it, so it is also what opens a catalog without the
// adapter.
const KeyOrder = providers.UTF16Order

// Order implements providers.Provider.
func (p *Provider) Order() providers.Order { return KeyOrder }

// Close releases nothing: the SDK's clients hold no resources beyond the
// shared HTTP transport.
func (p *Provider) Close() error { return nil }

// normETag strips the quotes the service puts around an ETag in response
// headers but not in listings or Event Grid events, so that all three agree.
func normETag(e *azcore.ETag) string {
	if e == nil {
		return ""
	}
	return NormalizeETag(string(*e))
}

// NormalizeETag is the form of an Azure ETag syncer stores: without quotes
// or a weak prefix.
func NormalizeETag(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	return s
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
