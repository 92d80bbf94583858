// Package gcs adapts Google Cloud Storage (cloud.google.com/go/storage) to
// providers.Provider.
//
// Listing asks only for the attributes the catalog keeps, in pages of a
// configurable size, and hands the SDK's page token back as the opaque
// providers.Page token. The object's generation is its Version.
//
// Credentials: a key file named in the configuration (gcs.credentialsFile),
// otherwise Application Default Credentials (Workload Identity on GKE). When
// STORAGE_EMULATOR_HOST is set the SDK talks to that emulator without
// authentication and the credentials are not loaded.
package gcs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/api/option/internaloption"
	htransport "google.golang.org/api/transport/http"

	"github.com/imgly/syncer/providers"
)

// DefaultPageSize is the listing page size: the JSON API's maximum.
const DefaultPageSize = 1000

// defaultMaxAttempts bounds the SDK's own retries. Left alone the SDK retries
// a failing call until the context ends, which would hide a store that keeps
// answering 503 from syncer's retry policy and metrics; a few quick attempts
// still smooth over a single dropped connection.
const defaultMaxAttempts = 3

// Provider lists and stats the objects of one GCS bucket.
type Provider struct {
	client   *storage.Client
	bucket   *storage.BucketHandle
	name     string
	pageSize int
	sign     signing
}

var _ providers.Provider = (*Provider)(nil)

// Option tunes New.
type Option func(*settings)

type settings struct {
	pageSize    int
	maxAttempts int
	clientOpts  []option.ClientOption
	sign        signing
}

// WithPageSize sets how many objects one ListPage returns at most (default
// DefaultPageSize). Values below 1 keep the default.
func WithPageSize(n int) Option {
	return func(s *settings) {
		if n > 0 {
			s.pageSize = n
		}
	}
}

// WithMaxAttempts sets how often the SDK tries one call on a retryable error
// before the error reaches the caller (default 3; 1 disables SDK retries).
func WithMaxAttempts(n int) Option {
	return func(s *settings) {
		if n > 0 {
			s.maxAttempts = n
		}
	}
}

// WithClientOptions passes extra options to storage.NewClient, after those
// derived from the configuration.
func WithClientOptions(opts ...option.ClientOption) Option {
	return func(s *settings) { s.clientOpts = append(s.clientOpts, opts...) }
}

// New returns a provider over cfg.Bucket. It does not contact the store: a
// missing bucket or a lack of permission shows on the first ListPage or Stat.
func New(ctx context.Context, cfg Config, opts ...Option) (*Provider, error) {
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("gcs source %q: no bucket", cfg.ID)
	}
	s := settings{pageSize: DefaultPageSize, maxAttempts: defaultMaxAttempts}
	for _, o := range opts {
		o(&s)
	}
	emulator := os.Getenv("STORAGE_EMULATOR_HOST") != ""
	copts, err := ClientOptions(cfg.CredentialsFile, emulator)
	if err != nil {
		return nil, fmt.Errorf("gcs source %q: %w", cfg.ID, err)
	}
	copts = append(copts, s.clientOpts...)
	// The listing check sits beneath authentication, so the client is built
	// here the way storage.NewClient would build it: read-only scope over
	// the credentials, none against an emulator.
	var trans http.RoundTripper = &listingCheck{bucket: cfg.Bucket, next: http.DefaultTransport}
	if !emulator {
		trans, err = htransport.NewTransport(ctx, trans, append([]option.ClientOption{
			option.WithScopes(storage.ScopeReadOnly),
			internaloption.EnableNewAuthLibrary(),
		}, copts...)...)
		if err != nil {
			return nil, fmt.Errorf("gcs source %q: credentials: %w", cfg.ID, err)
		}
	}
	copts = append(copts, option.WithHTTPClient(&http.Client{Transport: trans}))
	if cfg.Endpoint != "" {
		copts = append(copts, option.WithEndpoint(cfg.Endpoint))
	}
	client, err := storage.NewClient(ctx, copts...)
	if err != nil {
		return nil, fmt.Errorf("gcs source %q: new client: %w", cfg.ID, err)
	}
	client.SetRetry(storage.WithMaxAttempts(s.maxAttempts))
	return &Provider{
		client:   client,
		bucket:   client.Bucket(cfg.Bucket),
		name:     cfg.Bucket,
		pageSize: s.pageSize,
		sign:     s.sign.withInsecure(emulator, cfg.Endpoint),
	}, nil
}

// ClientOptions returns the authentication options for a Google Cloud client:
// the key file when one is named, nothing (Application Default Credentials)
// otherwise. With emulator set the file is not read, because the SDKs then
// talk to the emulator without authentication. The Pub/Sub consumer uses the
// same identity as the storage provider.
func ClientOptions(credentialsFile string, emulator bool) ([]option.ClientOption, error) {
	if credentialsFile == "" || emulator {
		return nil, nil
	}
	typ, err := credentialsType(credentialsFile)
	if err != nil {
		return nil, err
	}
	return []option.ClientOption{option.WithAuthCredentialsFile(typ, credentialsFile)}, nil
}

// credentialsType reads the "type" field of a credentials file, so that the
// SDK loads it as that kind and no other. The error names the file, never its
// contents.
func credentialsType(path string) (option.CredentialsType, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("credentials file: %w", err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return "", fmt.Errorf("credentials file %s: not JSON", path)
	}
	switch t := option.CredentialsType(head.Type); t {
	case option.ServiceAccount, option.AuthorizedUser, option.ExternalAccount, option.ImpersonatedServiceAccount:
		return t, nil
	}
	return "", fmt.Errorf("credentials file %s: unsupported type %q", path, head.Type)
}

// KeyOrder is the order the adapter lists keys in (GCS lists in UTF-8 byte order). The
// catalog stores keys by it, so it is also what opens a catalog without the
// adapter.
const KeyOrder = providers.ByteOrder

// Order implements providers.Provider.
func (p *Provider) Order() providers.Order { return KeyOrder }

// ListPage implements providers.Provider.
func (p *Provider) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	startAfter, token, err := splitToken(token)
	if err != nil {
		return providers.Page{}, fmt.Errorf("list gs://%s/%s: %w", p.name, prefix, err)
	}
	return p.list(ctx, prefix, token, startAfter)
}

// ListPageAfter implements providers.StartAfterLister with the listing's
// startOffset. That bound is inclusive, so the key itself is dropped; and a
// page token continues a query only with the same parameters, so the bound
// travels in the tokens of the following pages (see afterToken).
func (p *Provider) ListPageAfter(ctx context.Context, prefix, startAfter string) (providers.Page, error) {
	return p.list(ctx, prefix, "", startAfter)
}

// afterTokenMark begins a page token that carries a start-after bound:
// "~" + base64url(bound) + "~" + GCS's token. GCS tokens are base64, which
// never contains "~".
const afterTokenMark = "~"

func splitToken(token string) (startAfter, rest string, err error) {
	if !strings.HasPrefix(token, afterTokenMark) {
		return "", token, nil
	}
	enc, rest, ok := strings.Cut(token[1:], afterTokenMark)
	b, derr := base64.RawURLEncoding.DecodeString(enc)
	if !ok || derr != nil {
		return "", "", fmt.Errorf("page token %q is not one this adapter made", token)
	}
	return string(b), rest, nil
}

func (p *Provider) list(ctx context.Context, prefix, token, startAfter string) (providers.Page, error) {
	q := &storage.Query{Prefix: prefix, Projection: storage.ProjectionNoACL, StartOffset: startAfter}
	// Only what the catalog keeps; ACLs, metadata and checksums stay on the
	// server.
	// Bucket tells another bucket's listing apart.
	if err := q.SetAttrSelection([]string{"Name", "Bucket", "Size", "Etag", "Generation", "Updated", "ContentType"}); err != nil {
		return providers.Page{}, fmt.Errorf("list gs://%s/%s: %w", p.name, prefix, err)
	}
	it := p.bucket.Objects(ctx, q)
	var attrs []*storage.ObjectAttrs
	next, err := iterator.NewPager(it, p.pageSize, token).NextPage(&attrs)
	if err != nil {
		return providers.Page{}, fmt.Errorf("list gs://%s/%s: %w", p.name, prefix, classify(ctx, err))
	}
	if next != "" && startAfter != "" {
		next = afterTokenMark + base64.RawURLEncoding.EncodeToString([]byte(startAfter)) + afterTokenMark + next
	}
	pg := providers.Page{Objects: make([]providers.Object, 0, len(attrs)), Next: next}
	for _, a := range attrs {
		if a.Bucket != "" && a.Bucket != p.name {
			// A 200 listing of another bucket (a misrouting proxy) would
			// read as this bucket's objects gone.
			return providers.Page{}, fmt.Errorf("list gs://%s/%s: %w", p.name, prefix,
				providers.NotListing("objects.list", fmt.Sprintf("listing of bucket %q", a.Bucket)))
		}
		if a.Name == "" { // a synthetic prefix entry; none without a delimiter
			continue
		}
		if a.Name == startAfter { // startOffset includes the bound
			continue
		}
		pg.Objects = append(pg.Objects, object(a))
	}
	return pg, nil
}

// Stat implements providers.Provider.
func (p *Provider) Stat(ctx context.Context, key string) (providers.Object, error) {
	a, err := p.bucket.Object(key).Attrs(ctx)
	if err != nil {
		return providers.Object{}, fmt.Errorf("stat gs://%s/%s: %w", p.name, key, classify(ctx, err))
	}
	return object(a), nil
}

// Close implements providers.Provider.
func (p *Provider) Close() error { return p.client.Close() }

func object(a *storage.ObjectAttrs) providers.Object {
	return providers.Object{
		Key:          a.Name,
		Size:         a.Size,
		ETag:         a.Etag,
		Version:      strconv.FormatInt(a.Generation, 10),
		LastModified: a.Updated,
		ContentType:  a.ContentType,
	}
}

// classify marks err with the providers error kind it stands for.
func classify(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, storage.ErrObjectNotExist):
		return providers.Classify(providers.ErrNotFound, err)
	case errors.Is(err, storage.ErrBucketNotExist):
		return providers.Classify(providers.ErrBucketNotFound, err)
	case ctx.Err() != nil:
		// Our own cancellation: neither the store's fault nor worth a retry.
		return err
	}
	if nl := providers.AsNotListing(err); nl != nil {
		return nl // without the transport error's wrapping, which quotes the URL
	}
	if kind := providers.KindOfStatus(httpStatus(err)); kind != nil {
		return providers.Classify(kind, err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) {
		return providers.Classify(providers.ErrTransient, err)
	}
	return err
}

// httpStatus digs the HTTP status out of an SDK error, 0 when there is none.
func httpStatus(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	var ae *apierror.APIError
	if errors.As(err, &ae) {
		return ae.HTTPCode()
	}
	return 0
}
