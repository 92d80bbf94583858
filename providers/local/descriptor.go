package local

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/imgly/syncer/providers"
)

// Config is what the adapter needs of one local source.
type Config struct {
	// Path is the directory listed.
	Path string `yaml:"path"`
	// FollowSymlinks follows links that stay inside Path.
	FollowSymlinks bool `yaml:"followSymlinks"`
	// Settle is how long a file must stay unchanged before a scan
	// announces it (see WithSettle); nil is DefaultSettle.
	Settle *time.Duration `yaml:"settle"`
}

// DefaultSettle is a local source's settle time when unset: long enough for
// a copy or an upload widget to finish writing a typical asset, short enough
// for an editor user dropping files into a directory.
const DefaultSettle = time.Second

// SettleTime is Settle, or DefaultSettle when unset.
func (c Config) SettleTime() time.Duration {
	if c.Settle == nil {
		return DefaultSettle
	}
	return *c.Settle
}

// Descriptor is the local provider kind: a directory, served by syncer
// itself, without notifications. "watch" (the directory watch's switch) is
// listed so that config refuses it on other kinds; the watch reads it.
func Descriptor() providers.Descriptor {
	return providers.Descriptor{
		Name: "local", Order: KeyOrder, Fields: []string{"path", "followSymlinks", "settle", "watch"}, Watches: true,
		Configure: configure,
	}
}

func configure(spec providers.Spec) (providers.Configured, error) {
	var c Config
	if err := spec.Decode(&c); err != nil {
		return providers.Configured{}, err
	}
	p := providers.NewProblems(spec)
	if c.Path == "" {
		p.Add([]string{"path"}, "is required for provider local")
	}
	if s := c.Settle; s != nil && (*s < 0 || *s > time.Hour) {
		p.Add([]string{"settle"}, "%s is not from 0 to 1h", *s)
	}
	return providers.Configured{
		Location: c.Path, Settings: c,
		Open: func(_ context.Context, o providers.OpenOptions) (providers.Provider, error) { return c.open(o) },
	}, p.Err()
}

// open creates a missing directory, except for a probe, which must change
// nothing and says what is wrong instead.
func (c Config) open(o providers.OpenOptions) (providers.Provider, error) {
	if o.Probe {
		fi, err := os.Stat(c.Path)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", c.Path)
		}
	} else if err := os.MkdirAll(c.Path, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", c.Path, err)
	}
	return New(c.Path, WithFollowSymlinks(c.FollowSymlinks), WithSettle(c.SettleTime()), WithLogger(o.Logger()))
}
