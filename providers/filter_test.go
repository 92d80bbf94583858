package providers_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/imgly/syncer/providers"
)

func TestFilterMatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    providers.Filter
		in   []string // keys that belong to the source
		out  []string // keys that do not
	}{
		{
			name: "everything",
			f:    providers.Filter{},
			in:   []string{"a", "a/b/c.jpg", " ", "ä/\U0001F600"},
			out:  []string{""},
		},
		{
			name: "prefix",
			f:    providers.Filter{Prefix: "images/"},
			in:   []string{"images/a.jpg", "images/x/y/z", "images//double"},
			out:  []string{"images/", "images", "Images/a.jpg", "other/images/a.jpg", "imagesX/a.jpg", ""},
		},
		{
			name: "prefix without slash is a plain string prefix",
			f:    providers.Filter{Prefix: "img"},
			in:   []string{"img1.jpg", "img/a", "imgs/a"},
			out:  []string{"img", "im", "IMG/a"},
		},
		{
			name: "basename glob at any depth",
			f:    providers.Filter{Include: []string{"*.jpg"}},
			in:   []string{"a.jpg", "x/a.jpg", "x/y/z/a.jpg", ".jpg", "dir.png/a.jpg"},
			out:  []string{"a.jpeg", "a.JPG", "a.jpg/b", "x/a.jpg.png", "a.jpg/"},
		},
		{
			name: "several includes",
			f:    providers.Filter{Prefix: "p/", Include: []string{"*.jpg", "*.png"}},
			in:   []string{"p/a.jpg", "p/b/c.png"},
			out:  []string{"p/a.gif", "a.jpg", "q/a.png"},
		},
		{
			name: "glob relative to the prefix",
			f:    providers.Filter{Prefix: "assets/", Include: []string{"thumbs/*.png"}},
			in:   []string{"assets/thumbs/a.png"},
			out:  []string{"assets/thumbs/x/a.png", "assets/x/thumbs/a.png", "thumbs/a.png", "assets/assets/thumbs/a.png"},
		},
		{
			name: "glob with slash matches whole key",
			f:    providers.Filter{Include: []string{"a/*/c"}},
			in:   []string{"a/b/c", "a/x/c"},
			out:  []string{"a/c", "a/b/b/c", "x/a/b/c", "a/b/c/d"},
		},
		{
			name: "double star at the end",
			f:    providers.Filter{Include: []string{"thumbs/**"}},
			// "**" is any number of segments, none included: the key
			// "thumbs" itself matches, as in doublestar (not gitignore).
			in:  []string{"thumbs/a", "thumbs/a/b/c.png", "thumbs/", "thumbs"},
			out: []string{"x/thumbs/a", "thumbsx/a", "thumb"},
		},
		{
			name: "double star at the start",
			f:    providers.Filter{Include: []string{"**/raw/*.png"}},
			in:   []string{"raw/a.png", "x/raw/a.png", "x/y/z/raw/a.png"},
			out:  []string{"raw/x/a.png", "x/raw/a.jpg", "xraw/a.png", "raw.png"},
		},
		{
			name: "double star in the middle",
			f:    providers.Filter{Include: []string{"a/**/b.png"}},
			in:   []string{"a/b.png", "a/x/b.png", "a/x/y/z/b.png"},
			out:  []string{"b.png", "x/a/b.png", "a/x/b.pngx", "ab.png"},
		},
		{
			name: "two double stars",
			f:    providers.Filter{Include: []string{"**/x/**/*.jpg"}},
			in:   []string{"x/a.jpg", "p/x/q/r/a.jpg", "x/x/x.jpg"},
			out:  []string{"a.jpg", "p/a.jpg", "xx/a.jpg"},
		},
		{
			name: "character classes and ?",
			f:    providers.Filter{Include: []string{"img-[0-9]?.jpg"}},
			in:   []string{"img-1a.jpg", "d/img-99.jpg"},
			out:  []string{"img-a1.jpg", "img-1.jpg", "img-123.jpg"},
		},
		{
			name: "exclude only",
			f:    providers.Filter{Exclude: []string{"*.tmp", ".cache/**"}},
			in:   []string{"a.jpg", "x/.cache/a", "tmp"},
			out:  []string{"a.tmp", "d/e/a.tmp", ".cache/a", ".cache/a/b"},
		},
		{
			name: "exclude wins over include",
			f:    providers.Filter{Prefix: "p/", Include: []string{"*.jpg"}, Exclude: []string{"drafts/**", "*-wip.jpg"}},
			in:   []string{"p/a.jpg", "p/x/drafts/a.jpg"},
			out:  []string{"p/drafts/a.jpg", "p/drafts/x/a.jpg", "p/a-wip.jpg", "p/x/a-wip.jpg", "p/a.png"},
		},
		{
			name: "braces in a base-name glob",
			f:    providers.Filter{Include: []string{"*.{jpg,png}"}},
			in:   []string{"a.jpg", "x/y/a.png", "dir.gif/a.jpg"},
			out:  []string{"a.gif", "a.jpgx", "a.{jpg,png}", "a.jpg/b", "a."},
		},
		{
			name: "braces with a slash match the whole key",
			f:    providers.Filter{Prefix: "p/", Include: []string{"{thumbs,previews}/**/*.{jpg,png}"}},
			in:   []string{"p/thumbs/a.jpg", "p/previews/x/y/b.png"},
			out:  []string{"p/x/thumbs/a.jpg", "p/thumbs/a.gif", "p/other/a.jpg", "thumbs/a.jpg"},
		},
		{
			name: "braces in exclude",
			f:    providers.Filter{Exclude: []string{"*.{tmp,part}", "{.cache,.git}/**"}},
			in:   []string{"a.jpg", "x/.git/a", "tmp"},
			out:  []string{"a.tmp", "d/a.part", ".git/HEAD", ".cache/x/y"},
		},
		{
			name: "unicode in keys and globs",
			f:    providers.Filter{Prefix: "bilder/", Include: []string{"*.\u00e9"}},
			in:   []string{"bilder/caf\u00e9.\u00e9", "bilder/\U0001F600/x.\u00e9"},
			out:  []string{"bilder/x.e", "bilder/x.\u00c9"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range tc.in {
				if !tc.f.Match(k) {
					t.Errorf("%+v: Match(%q) = false, want true", tc.f, k)
				}
			}
			for _, k := range tc.out {
				if tc.f.Match(k) {
					t.Errorf("%+v: Match(%q) = true, want false", tc.f, k)
				}
			}
		})
	}
}

func TestFilterAll(t *testing.T) {
	for _, tc := range []struct {
		f    providers.Filter
		want bool
	}{
		{providers.Filter{}, true},
		{providers.Filter{Prefix: "p/"}, true},
		{providers.Filter{Include: []string{"*"}}, false},
		{providers.Filter{Exclude: []string{"*.tmp"}}, false},
	} {
		if got := tc.f.All(); got != tc.want {
			t.Errorf("%+v.All() = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestCheckGlob(t *testing.T) {
	for _, g := range []string{"*", "*.jpg", "a/b", "**", "thumbs/**", "**/raw/*.png", "a/**/b", "[a-z]?.png", `\*.txt`,
		"*.{jpg,png}", "{a,b}/**/*.{x,y}", "{,x}", `\{literal\}`} {
		if err := providers.CheckGlob(g); err != nil {
			t.Errorf("CheckGlob(%q) = %v, want nil", g, err)
		}
	}
	for _, g := range []string{"", "[", "a/[", "[a-", "**/x[/y", `a\`, "*.{jpg,png", "{a,{b}", "x/*.{a", "*.jpg}z{"} {
		err := providers.CheckGlob(g)
		if err == nil {
			t.Errorf("CheckGlob(%q) = nil, want an error", g)
			continue
		}
		if g != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", g)) {
			t.Errorf("CheckGlob(%q) = %v, want the glob named", g, err)
		}
	}
}
