package assetsource

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/providers"
)

// ThumbnailWidth is what {width} stands for in assets.thumbnailURL: the
// width the CE.SDK guide suggests for thumbnails.
const ThumbnailWidth = 512

// urlMaker makes the absolute URLs of one answer.
type urlMaker struct {
	s    *Server
	src  *served
	base string // scheme://host of syncer, for served files
	sign bool   // served files need a signature
	now  time.Time
}

func (s *Server) urlsFor(r *http.Request, src *served, tok string, tokOK bool) *urlMaker {
	base := strings.TrimSuffix(s.opts.PublicURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return &urlMaker{s: s, src: src, base: base, sign: !s.opts.Open || len(src.tokens) > 0, now: s.opts.Now()}
}

// escapeKey escapes each segment of a key for a URL path.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, p := range segs {
		segs[i] = url.PathEscape(p)
	}
	return strings.Join(segs, "/")
}

func (u *urlMaker) uri(ctx context.Context, key string) (string, error) {
	a := &u.src.Config.Assets
	switch a.URI {
	case config.AssetURIPublic:
		return strings.TrimSuffix(a.PublicBaseURL, "/") + "/" + escapeKey(key), nil
	case config.AssetURIPresign:
		signer, _ := providers.Capability[providers.URLSigner](u.src.Provider) // checked by New
		s, err := signer.SignGetURL(ctx, key, a.TTL)
		if err != nil {
			return "", fmt.Errorf("presign %q: %w", key, err)
		}
		return s, nil
	default:
		p := u.base + "/sources/" + url.PathEscape(u.src.Config.ID) + "/files/" + escapeKey(key)
		if u.sign {
			exp := expiry(u.now, a.TTL)
			p += "?exp=" + strconv.FormatInt(exp, 10) + "&sig=" + u.s.fileSig(u.src.Config.ID, key, exp)
		}
		return p, nil
	}
}

// expiry is when a served file's URL expires: at most ttl from now and at
// least half of it, on a grid of ttl/2 so that URLs, and with them the
// ETags of answers, stay the same for a while.
func expiry(now time.Time, ttl time.Duration) int64 {
	w := int64(ttl/time.Second) / 2
	if w < 1 {
		w = 1
	}
	t := now.Unix()
	return (t/w + 2) * w
}

func (s *Server) fileSig(id, key string, exp int64) string {
	m := hmac.New(sha256.New, s.fileKey)
	fmt.Fprintf(m, "%s\x00%s\x00%d", id, key, exp)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validSig checks a served file's signature and expiry.
func (s *Server) validSig(id, key, expS, sig string) bool {
	exp, err := strconv.ParseInt(expS, 10, 64)
	if err != nil || sig == "" || s.opts.Now().Unix() >= exp {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(s.fileSig(id, key, exp)))
}

func (u *urlMaker) asset(ctx context.Context, e *catalog.Entry) (Asset, error) {
	uri, err := u.uri(ctx, e.Key)
	if err != nil {
		return Asset{}, err
	}
	thumb := uri
	if t := u.src.Config.Assets.ThumbnailURL; t != "" {
		thumb = strings.NewReplacer(
			"{key}", escapeKey(e.Key), "{url}", url.QueryEscape(uri), "{width}", strconv.Itoa(ThumbnailWidth),
		).Replace(t)
	}
	return mapAsset(e, u.src.Config.Prefix, uri, thumb), nil
}
