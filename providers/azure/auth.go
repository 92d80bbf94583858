package azure

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// newContainerClient builds a client for one container from the source's
// settings. Errors never quote the settings: URLs may carry a SAS and
// connection strings carry keys.
//
// With a token credential (DefaultAzureCredential) it also returns that
// credential and the service URL, for user-delegation SAS URLs.
func newContainerClient(name string, az Config, co *container.ClientOptions) (*container.Client, *tokenAuth, error) {
	if az.ConnectionString != "" {
		c, err := container.NewClientFromConnectionString(az.ConnectionString, name, co)
		if err != nil {
			// The SDK's parse errors do not quote the string; keep them.
			return nil, nil, fmt.Errorf("azure.connectionString: %w", err)
		}
		return c, nil, nil
	}
	u, err := ServiceURL(az.AccountURL, az.SASToken)
	if err != nil {
		return nil, nil, err
	}
	serviceURL := *u
	serviceURL.RawQuery = ""
	u.Path = strings.TrimRight(u.Path, "/") + "/" + name
	u.RawPath = ""
	kind, err := chooseAuth(az, u)
	if err != nil {
		return nil, nil, err
	}
	switch kind {
	case authSharedKey:
		cred, err := container.NewSharedKeyCredential(az.AccountName, az.AccountKey)
		if err != nil {
			return nil, nil, errBadAccountKey
		}
		c, err := container.NewClientWithSharedKeyCredential(u.String(), cred, co)
		return c, nil, err
	case authSAS:
		c, err := container.NewClientWithNoCredential(u.String(), co)
		return c, nil, err
	default:
		cred, err := defaultCredential()
		if err != nil {
			return nil, nil, err
		}
		c, err := container.NewClient(u.String(), cred, co)
		return c, &tokenAuth{cred: cred, serviceURL: serviceURL.String(), co: co}, err
	}
}

// authKind is how a client of the storage account authenticates: the one
// choice Blob (newContainerClient) and Storage Queue (queueService) share.
type authKind int

const (
	authSharedKey authKind = iota // azure.accountKey with azure.accountName
	authSAS                       // a SAS in the URL authorises by itself
	authDefault                   // DefaultAzureCredential (workload identity on AKS)
)

// errBadAccountKey never quotes the key.
var errBadAccountKey = errors.New("azure.accountKey is not valid base64")

// chooseAuth picks how a client at u authenticates with az's settings: an
// account key, else a SAS in u, else DefaultAzureCredential. For a shared
// key it drops u's query, which must not carry a SAS beside the key.
func chooseAuth(az Config, u *url.URL) (authKind, error) {
	switch {
	case az.AccountKey != "":
		if az.AccountName == "" {
			return 0, errors.New("azure.accountName is required with azure.accountKey")
		}
		u.RawQuery = ""
		return authSharedKey, nil
	case u.RawQuery != "":
		return authSAS, nil
	}
	return authDefault, nil
}

// defaultCredential is DefaultAzureCredential. The credential keeps the
// SDK's own retries: token endpoints (IMDS, workload identity) are flaky at
// pod start.
func defaultCredential() (*azidentity.DefaultAzureCredential, error) {
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("azure default credential: %w", err)
	}
	return cred, nil
}

// ServiceURL parses an account URL (https://acct.blob.core.windows.net, or
// an emulator's http://127.0.0.1:10000/devstoreaccount1) and puts sas, when
// given, in its query. A SAS already in the URL is kept when sas is empty.
func ServiceURL(accountURL, sas string) (*url.URL, error) {
	if accountURL == "" {
		return nil, errors.New("azure.accountURL is required unless a connection string is given")
	}
	u, err := url.Parse(accountURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// Not quoting the URL: it may hold a SAS.
		return nil, errors.New("azure.accountURL is not an http(s) URL")
	}
	u.Fragment = ""
	if sas = strings.TrimPrefix(strings.TrimSpace(sas), "?"); sas != "" {
		u.RawQuery = sas
	}
	return u, nil
}
