package config

import (
	"cmp"
	"errors"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/imgly/syncer/providers"
)

// Load reads, expands, decodes and validates the file at path, all but the
// provider kinds' own settings (see LoadFor).
func Load(path string) (*Config, error) { return load(path, nil) }

func load(path string, kinds *providers.Registry) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := parseWith(data, os.LookupEnv, kinds)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes and validates a configuration, all but the provider kinds'
// own settings (see ParseFor). lookup resolves ${VAR}.
func Parse(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	return parseWith(data, lookup, nil)
}

func parseWith(data []byte, lookup func(string) (string, bool), kinds *providers.Registry) (*Config, error) {
	cfg, r, err := decode(data, lookup)
	if err != nil {
		return nil, err
	}
	cfg.setDefaults()
	var kerr error
	if kinds != nil {
		kerr = cfg.resolveKinds(kinds)
	}
	return cfg, r.hide(errors.Join(kerr, cfg.Validate()))
}

// decode parses, expands and decodes data without defaults or validation.
// Its errors never show a value that came from the environment.
func decode(data []byte, lookup func(string) (string, bool)) (*Config, *refs, error) {
	text, r := substitute(data)
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		// A syntax error may quote the text near it; put the references
		// back as written (never a variable's value: none is expanded yet).
		return nil, nil, fmt.Errorf("%s", r.restore(err.Error()))
	}
	// Defaults that 0 cannot stand for are set before decoding, so that a
	// file that writes 0 keeps it: `coalesceWindow: 0` turns coalescing off.
	cfg := &Config{Events: Events{CoalesceWindow: DefaultCoalesceWindow}}
	if root.Kind != 0 { // not an empty file
		if err := r.expand(&root, "", lookup); err != nil {
			return nil, nil, err
		}
		if errs := r.check(&root, typeOf(cfg), ""); len(errs) > 0 {
			return nil, nil, errors.Join(errs...)
		}
		if err := root.Decode(cfg); err != nil {
			return nil, nil, scrub(err)
		}
		// Each source keeps its node: the kinds' errors name lines.
		if seq := providers.Find(&root, "sources"); seq != nil && len(seq.Content) == len(cfg.Sources) {
			for i, n := range seq.Content {
				cfg.Sources[i].node = n
			}
		}
	}
	return cfg, r, nil
}

func (c *Config) setDefaults() {
	if c.NATS.Stream == "" {
		c.NATS.Stream = DefaultStream
	}
	if c.NATS.SubjectPrefix == "" {
		c.NATS.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.NATS.Replicas == 0 {
		c.NATS.Replicas = 1
	}
	if c.NATS.Listen == "" {
		c.NATS.Listen = "127.0.0.1:4222"
	}
	if c.Catalog.Path == "" && c.Catalog.URL == "" {
		c.Catalog.Path = "./data"
	}
	if c.NATS.StoreDir == "" {
		c.NATS.StoreDir = cmp.Or(c.Catalog.Path, "./data") + "/nats"
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8080"
	}
	if c.Events.MaxChanges == 0 {
		c.Events.MaxChanges = DefaultMaxChanges
	}
	if c.Notify.StatRate == 0 {
		c.Notify.StatRate = DefaultStatRate
	}
	if c.Notify.StatBurst == 0 {
		c.Notify.StatBurst = DefaultStatBurst
	}
	if c.Notify.StatConcurrency == 0 {
		c.Notify.StatConcurrency = DefaultStatConcurrency
	}
	if c.Notify.VerifyAfter == 0 {
		c.Notify.VerifyAfter = DefaultVerifyAfter
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Schedule == "" {
			s.Schedule = DefaultSchedule
		}
		if s.Guard.MaxDeletePercent == nil {
			p := DefaultMaxDeletePercent
			s.Guard.MaxDeletePercent = &p
		}
		s.Assets.TTL = s.Assets.EffectiveTTL()
		// assets.uri and the kinds' own defaults (s3.region) are their
		// kind's to set: see resolveKinds.
	}
}
