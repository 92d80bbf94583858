package s3

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imgly/syncer/providers"
)

var _ providers.URLSigner = (*Provider)(nil)

// SignGetURL implements providers.URLSigner with a SigV4 presigned GET. It
// is computed locally from the credentials; no request is made.
func (p *Provider) SignGetURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	req, err := awss3.NewPresignClient(p.client).PresignGetObject(ctx, &awss3.GetObjectInput{
		Bucket: aws.String(p.bucket), Key: aws.String(key),
	}, awss3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("s3 %s: presign: %w", p.bucket, err)
	}
	return req.URL, nil
}
