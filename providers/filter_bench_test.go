package providers_test

import (
	"fmt"
	"testing"

	"github.com/imgly/syncer/providers"
)

// BenchmarkFilterMatch measures matching in the scan's hot loop: every listed
// key passes through Match once.
func BenchmarkFilterMatch(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("assets/tenant-%d/images/%d/photo-%d.jpg", i%17, i%5, i)
		if i%3 == 0 {
			keys[i] = fmt.Sprintf("assets/tenant-%d/raw/%d/scan-%d.png", i%17, i%5, i)
		}
	}
	for _, bc := range []struct {
		name string
		f    providers.Filter
	}{
		{"basename", providers.Filter{Prefix: "assets/", Include: []string{"*.jpg", "*.png"}}},
		{"doublestar", providers.Filter{Prefix: "assets/", Include: []string{"**/raw/**/*.png"}, Exclude: []string{"tenant-3/**"}}},
		{"segments", providers.Filter{Prefix: "assets/", Include: []string{"tenant-*/images/*/*.jpg"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := 0
			for i := 0; b.Loop(); i++ {
				if bc.f.Match(keys[i%len(keys)]) {
					n++
				}
			}
			_ = n
		})
	}
}
