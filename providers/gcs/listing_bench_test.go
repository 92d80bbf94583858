package gcs

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	raw "google.golang.org/api/storage/v1"
)

// listingPage is an objects.list page of n items with the fields the
// adapter selects, as GCS sends it.
func listingPage(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"kind":"storage#objects","nextPageToken":"Q2hsc2FtcGxlLzAwMDk5OS5wbmc=","items":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"library/images/2026/11/%02d/%06d/photo-%06d-1080p.jpg","bucket":"bench","generation":"17%011d","size":"%d","etag":"CJ7%07dEAE=","updated":"2026-11-%02dT10:%02d:%02d.123Z","contentType":"image/jpeg"}`,
			i%28+1, i, i, i, 1000+i*37, i, i%28+1, i%60, i%60)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkListingCheck sets the check's cost per page against the SDK's
// own decode of the same page (what the check adds to every listing).
func BenchmarkListingCheck(b *testing.B) {
	page := listingPage(1000)
	b.Run("check", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			if why := validListing(page); why != "" {
				b.Fatal(why)
			}
		}
	})
	b.Run("sdk-decode", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		for b.Loop() {
			var objs raw.Objects
			if err := json.Unmarshal(page, &objs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
