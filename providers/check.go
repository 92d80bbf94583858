package providers

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// RedactURL shows a URL for an error without what may be a secret: the user
// information (user:password@) and the query (an Azure SAS, a token).
// It works on the raw text, so it also redacts what url.Parse rejects.
func RedactURL(raw string) string {
	s := raw
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i] + "?…"
	}
	rest := s
	scheme := ""
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = s[:i+3], s[i+3:]
	}
	end := strings.IndexByte(rest, '/')
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		rest = rest[at+1:]
	}
	return strconv.Quote(scheme + rest)
}

// CheckHTTPURL checks an absolute http(s) URL with a host.
func CheckHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil && !strings.Contains(raw, "://") {
		return fmt.Errorf("%s is not an absolute URL; write it with http:// or https://", RedactURL(raw))
	}
	if err != nil {
		// url's error quotes the URL; say what failed without it.
		return fmt.Errorf("%s is not a valid URL", RedactURL(raw))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" || u.Opaque != "" {
			return fmt.Errorf("%s is not an absolute URL; write it with http:// or https://", RedactURL(raw))
		}
		return fmt.Errorf("%s: scheme %q is not http or https", RedactURL(raw), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%s has no host", RedactURL(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n > 65535 {
			return fmt.Errorf("%s: port %q is not a number from 0 to 65535", RedactURL(raw), p)
		}
	}
	return nil
}

// CheckConnectionString applies the rules azblob and azqueue apply when
// they build a client from a connection string (service is "Blob" or
// "Queue"), so that `config check` fails where `run` would. Errors name
// the parts, never their values: the string holds the account key. It
// lives here, not in providers/azure, while config checks the Storage
// Queue transport too.
func CheckConnectionString(cs, service string) error {
	parts := map[string]string{}
	for _, p := range strings.Split(strings.TrimRight(cs, ";"), ";") {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("is not a connection string: each ;-separated part must be Name=value")
		}
		parts[k] = v
	}
	if parts["UseDevelopmentStorage"] != "" {
		return fmt.Errorf("UseDevelopmentStorage is not supported by the Azure SDK for Go; give AccountName, AccountKey and %sEndpoint", service)
	}
	ep, hasEP := parts[service+"Endpoint"]
	name, hasName := parts["AccountName"]
	if !hasEP && !hasName {
		return fmt.Errorf("needs AccountName or %sEndpoint", service)
	}
	if hasEP {
		if err := CheckHTTPURL(ep); err != nil {
			return fmt.Errorf("%sEndpoint: %w", service, err)
		}
	}
	key, hasKey := parts["AccountKey"]
	_, hasSAS := parts["SharedAccessSignature"]
	switch {
	case hasName && hasKey:
		if name == "" {
			return fmt.Errorf("AccountName is empty")
		}
		if _, err := base64.StdEncoding.DecodeString(key); err != nil {
			return fmt.Errorf("AccountKey is not valid base64")
		}
	case hasSAS:
	default:
		return fmt.Errorf("needs AccountName with AccountKey, or SharedAccessSignature")
	}
	return nil
}
