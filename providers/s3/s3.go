// Package s3 lists S3 and S3-compatible buckets with aws-sdk-go-v2.
package s3

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/imgly/syncer/providers"
)

// DefaultPageSize is the ListObjectsV2 page size (the S3 maximum).
const DefaultPageSize = 1000

// Provider lists one bucket.
type Provider struct {
	client   *awss3.Client
	bucket   string
	pageSize int32
}

var _ providers.Provider = (*Provider)(nil)

// New returns a provider for cfg. Credentials come from the default AWS chain
// (environment, shared config, web identity / IRSA).
func New(ctx context.Context, cfg Config, opts ...Option) (*Provider, error) {
	o := options{pageSize: DefaultPageSize}
	for _, fn := range opts {
		fn(&o)
	}
	acfg, err := loadAWSConfig(ctx, cmp.Or(cfg.Region, DefaultRegion), o,
		// Checksums only where S3 requires them: S3-compatible stores
		// differ in what trailing-checksum uploads they understand, and
		// syncer only lists and heads.
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", cfg.Bucket, err)
	}
	client := awss3.NewFromConfig(acfg, func(so *awss3.Options) {
		if cfg.Endpoint != "" {
			so.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		so.UsePathStyle = cfg.PathStyle
	})
	if o.pageSize < 1 || o.pageSize > DefaultPageSize {
		o.pageSize = DefaultPageSize
	}
	return &Provider{client: client, bucket: cfg.Bucket, pageSize: int32(o.pageSize)}, nil
}

// KeyOrder is the order the adapter lists keys in (S3 lists in UTF-8 byte order). The
// catalog stores keys by it, so it is also what opens a catalog without the
// adapter.
const KeyOrder = providers.ByteOrder

// Order implements providers.Provider.
func (p *Provider) Order() providers.Order { return KeyOrder }

// Close implements providers.Provider.
func (p *Provider) Close() error { return nil }

// ListPage implements providers.Provider with one ListObjectsV2 call; the
// token is S3's continuation token.
//
// Keys are requested raw, not with EncodingType=url: S3-compatible servers
// that ignore the parameter would return raw keys that decoding would mangle.
func (p *Provider) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	return p.list(ctx, prefix, token, "")
}

// ListPageAfter implements providers.StartAfterLister with ListObjectsV2's
// StartAfter (exclusive, in byte order, as S3 lists). The following pages
// carry the continuation token, which supersedes StartAfter.
func (p *Provider) ListPageAfter(ctx context.Context, prefix, startAfter string) (providers.Page, error) {
	return p.list(ctx, prefix, "", startAfter)
}

func (p *Provider) list(ctx context.Context, prefix, token, startAfter string) (providers.Page, error) {
	in := &awss3.ListObjectsV2Input{
		Bucket:  aws.String(p.bucket),
		MaxKeys: aws.Int32(p.pageSize),
	}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	if token != "" {
		in.ContinuationToken = aws.String(token)
	} else if startAfter != "" {
		in.StartAfter = aws.String(startAfter)
	}
	out, err := p.client.ListObjectsV2(ctx, in, func(o *awss3.Options) {
		o.APIOptions = append(o.APIOptions, checkListing())
	})
	if err == nil {
		if why := checkPage(out, p.bucket, token); why != "" {
			err = providers.NotListing("ListObjectsV2", why)
		}
	}
	if err != nil {
		if nl := providers.AsNotListing(err); nl != nil {
			err = nl // without the SDK's wrapping, which says only "StatusCode: 200"
		}
		return providers.Page{}, classify(fmt.Errorf("s3: list s3://%s/%s: %w", p.bucket, prefix, err))
	}
	page := providers.Page{Objects: make([]providers.Object, 0, len(out.Contents))}
	for i := range out.Contents {
		page.Objects = append(page.Objects, fromListed(&out.Contents[i]))
	}
	if aws.ToBool(out.IsTruncated) {
		page.Next = aws.ToString(out.NextContinuationToken) // not empty: checkPage
	}
	return page, nil
}

func fromListed(c *types.Object) providers.Object {
	return providers.Object{
		Key:          aws.ToString(c.Key),
		Size:         aws.ToInt64(c.Size),
		ETag:         normalizeETag(aws.ToString(c.ETag)),
		LastModified: aws.ToTime(c.LastModified).UTC(),
	}
}

// Stat implements providers.Provider with HeadObject.
//
// Version stays empty, as in the listing: ListObjectsV2 never reports version
// ids, and a Stat that did would make every object look modified whenever a
// notification and a scan took turns. The ETag already changes with content.
func (p *Provider) Stat(ctx context.Context, key string) (providers.Object, error) {
	out, err := p.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(key)})
	if err != nil {
		return providers.Object{}, classify(fmt.Errorf("s3: head s3://%s/%s: %w", p.bucket, key, err))
	}
	return providers.Object{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         normalizeETag(aws.ToString(out.ETag)),
		LastModified: aws.ToTime(out.LastModified).UTC(),
		ContentType:  aws.ToString(out.ContentType),
	}, nil
}

// normalizeETag is the form of an S3 ETag syncer stores: without the quotes
// listings and HEAD put around it. Notifications go through it too, so that
// a key seen by both compares equal.
func normalizeETag(s string) string { return strings.Trim(s, `"`) }

// classify maps an SDK error to a provider error kind.
func classify(err error) error {
	if providers.AsNotListing(err) != nil {
		return err
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var nsb *types.NoSuchBucket
	switch {
	case errors.As(err, &nsb):
		return providers.Classify(providers.ErrBucketNotFound, err)
	case errors.As(err, &nsk), errors.As(err, &nf):
		return providers.Classify(providers.ErrNotFound, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchBucket":
			return providers.Classify(providers.ErrBucketNotFound, err)
		case "NoSuchKey", "NotFound":
			return providers.Classify(providers.ErrNotFound, err)
		case "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return providers.Classify(providers.ErrPermission, err)
		case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded":
			return providers.Classify(providers.ErrThrottled, err)
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		if kind := providers.KindOfStatus(re.HTTPStatusCode()); kind != nil {
			return providers.Classify(kind, err)
		}
	}
	return providers.Classify(providers.ErrTransient, err)
}
