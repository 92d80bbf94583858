package gcs

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/storage"

	"github.com/imgly/syncer/providers"
)

var _ providers.URLSigner = (*Provider)(nil)

// signing is how V4 signed URLs are signed. Empty: the SDK's detection —
// the private key of a service-account key file, else the IAM signBlob
// API for the default credentials' account (Workload Identity needs
// roles/iam.serviceAccountTokenCreator on itself).
type signing struct {
	accessID string
	key      []byte
	insecure bool // the store is reached over plain http (an emulator)
}

func (s signing) withInsecure(emulator bool, endpoint string) signing {
	if emulator {
		h := os.Getenv("STORAGE_EMULATOR_HOST")
		s.insecure = !strings.HasPrefix(h, "https://")
	}
	if strings.HasPrefix(endpoint, "http://") {
		s.insecure = true
	}
	return s
}

// WithURLSigningKey signs URLs with this service account and PEM private
// key instead of detecting them (tests against an emulator, which has no
// credentials to detect).
func WithURLSigningKey(accessID string, pemKey []byte) Option {
	return func(s *settings) { s.sign.accessID, s.sign.key = accessID, pemKey }
}

// SignGetURL implements providers.URLSigner with a V4 signed URL.
func (p *Provider) SignGetURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	u, err := p.bucket.SignedURL(key, &storage.SignedURLOptions{
		Scheme:         storage.SigningSchemeV4,
		Method:         "GET",
		Expires:        time.Now().Add(ttl),
		GoogleAccessID: p.sign.accessID,
		PrivateKey:     p.sign.key,
		Insecure:       p.sign.insecure,
	})
	if err != nil {
		return "", fmt.Errorf("gcs %s: sign URL: %w", p.name, err)
	}
	return u, nil
}
