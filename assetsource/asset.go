package assetsource

import (
	"encoding/base64"
	"mime"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/imgly/syncer/catalog"
)

// Asset is one asset as CE.SDK's AssetResult.
type Asset struct {
	ID     string         `json:"id"`
	Label  string         `json:"label"`
	Tags   []string       `json:"tags,omitempty"`
	Groups []string       `json:"groups,omitempty"`
	Meta   map[string]any `json:"meta"`
}

// AssetID is the asset id of a key: its unpadded base64url form, stable
// for the key, reversible, and safe in a URL path.
func AssetID(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

// KeyOf reverses AssetID.
func KeyOf(id string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) == 0 {
		return "", false
	}
	return string(b), true
}

// MimeType is the entry's content type as recorded, else the one its
// extension names, without parameters.
func MimeType(e *catalog.Entry) string {
	ct := e.ContentType
	if ct == "" || ct == "application/octet-stream" || ct == "binary/octet-stream" {
		if byExt := mime.TypeByExtension(strings.ToLower(path.Ext(e.Key))); byExt != "" {
			ct = byExt
		}
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	return ct
}

// Block and fill types of the CE.SDK guide "Import media from your server".
const (
	blockGraphic = "//ly.img.ubq/graphic"
	blockAudio   = "//ly.img.ubq/audio"
	fillImage    = "//ly.img.ubq/fill/image"
	fillVideo    = "//ly.img.ubq/fill/video"
)

// mapAsset builds the asset of e. uri and thumb are absolute URLs.
// Values in meta are strings where the engine does not need a number: some
// engine bindings keep meta as a flat string map.
func mapAsset(e *catalog.Entry, prefix, uri, thumb string) Asset {
	r := rel(prefix, e.Key)
	name := path.Base(r)
	label := strings.TrimSuffix(name, path.Ext(name))
	if label == "" {
		label = name
	}
	mt := MimeType(e)
	meta := map[string]any{
		"uri":      uri,
		"filename": name,
		"mimeType": mt,
		"key":      e.Key,
		"size":     strconv.FormatInt(e.Size, 10),
		// The catalog sequence of the change that made this state: what a
		// mirror compares a later event's change with (README, "Snapshot,
		// then stream").
		"seq": strconv.FormatUint(e.Seq, 10),
	}
	if !e.LastModified.IsZero() {
		meta["lastModified"] = e.LastModified.UTC().Format(time.RFC3339Nano)
	}
	switch {
	case strings.HasPrefix(mt, "image/"):
		meta["blockType"], meta["fillType"], meta["kind"] = blockGraphic, fillImage, "image"
		meta["thumbUri"] = thumb
	case strings.HasPrefix(mt, "video/"):
		meta["blockType"], meta["fillType"], meta["kind"] = blockGraphic, fillVideo, "video"
		// A video's thumbUri must be an image: only a configured image
		// service can make one; without it the editor shows a placeholder.
		if thumb != uri {
			meta["thumbUri"] = thumb
		}
	case strings.HasPrefix(mt, "audio/"):
		meta["blockType"] = blockAudio
		meta["previewUri"] = uri
		if thumb != uri {
			meta["thumbUri"] = thumb
		}
	}
	a := Asset{ID: AssetID(e.Key), Label: label, Meta: meta}
	if g := groupOf(r); g != "" {
		a.Groups = []string{g}
	}
	a.Tags = tagsOf(r)
	return a
}
