package azure

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/imgly/syncer/providers"
)

var _ providers.URLSigner = (*Provider)(nil)

// tokenAuth is a token credential, for user-delegation SAS URLs.
type tokenAuth struct {
	cred       azcore.TokenCredential
	serviceURL string
	co         *container.ClientOptions

	mu     sync.Mutex
	udc    *service.UserDelegationCredential
	udcEnd time.Time
}

// udcLife is how long one user delegation key is asked for; a URL is
// signed only with a key that outlives it.
const udcLife = 24 * time.Hour

func (t *tokenAuth) credential(ctx context.Context, until time.Time) (*service.UserDelegationCredential, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.udc != nil && t.udcEnd.After(until) {
		return t.udc, nil
	}
	now := time.Now().UTC()
	end := now.Add(udcLife)
	if until.After(end) {
		end = until.Add(time.Minute)
	}
	var so *service.ClientOptions
	if t.co != nil {
		so = &service.ClientOptions{ClientOptions: t.co.ClientOptions}
	}
	sc, err := service.NewClient(t.serviceURL, t.cred, so)
	if err != nil {
		return nil, err
	}
	st, en := now.Add(-5*time.Minute).Format(sas.TimeFormat), end.Format(sas.TimeFormat)
	udc, err := sc.GetUserDelegationCredential(ctx, service.KeyInfo{Start: &st, Expiry: &en}, nil)
	if err != nil {
		return nil, err
	}
	t.udc, t.udcEnd = udc, end
	return udc, nil
}

// SignGetURL implements providers.URLSigner with a read-only SAS for one
// blob: signed with the account key when the source has one (key or
// connection string), else a user-delegation SAS from the token
// credential. A source authenticated by a SAS token cannot sign: handing
// out its own SAS would give away more than one blob.
func (p *Provider) SignGetURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	bc := p.client.NewBlobClient(key)
	expiry := time.Now().UTC().Add(ttl)
	if p.token == nil {
		u, err := bc.GetSASURL(sas.BlobPermissions{Read: true}, expiry, nil)
		if errors.Is(err, bloberror.MissingSharedKeyCredential) {
			return "", fmt.Errorf("azure %s: a SAS URL needs azure.accountKey, a connection string with a key, or a token credential (not azure.sasToken); or set assets.publicBaseURL", p.container)
		}
		if err != nil {
			return "", fmt.Errorf("azure %s: sign URL: %w", p.container, err)
		}
		return u, nil
	}
	udc, err := p.token.credential(ctx, expiry)
	if err != nil {
		return "", fmt.Errorf("azure %s: user delegation key: %w", p.container, err)
	}
	qp, err := sas.BlobSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, StartTime: time.Now().UTC().Add(-5 * time.Minute), ExpiryTime: expiry,
		Permissions: (&sas.BlobPermissions{Read: true}).String(), ContainerName: p.container, BlobName: key,
	}.SignWithUserDelegation(udc)
	if err != nil {
		return "", fmt.Errorf("azure %s: sign URL: %w", p.container, err)
	}
	u, err := url.Parse(bc.URL())
	if err != nil {
		return "", fmt.Errorf("azure %s: blob URL: %w", p.container, err)
	}
	u.RawQuery = strings.TrimPrefix(qp.Encode(), "?")
	return u.String(), nil
}
