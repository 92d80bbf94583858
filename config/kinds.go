package config

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imgly/syncer/providers"
)

// LoadFor is Load with the provider kinds' own checks and defaults (see
// ParseFor). syncer's commands load their file with it.
func LoadFor(path string, kinds *providers.Registry) (*Config, error) {
	return load(path, kinds)
}

// ParseFor is Parse with the provider kinds' own checks and defaults: each
// source's provider must be one of kinds; its kind decodes and validates
// the settings it reads (its block, "bucket", "path", …) and fills in their
// defaults; keys and notification transports of other kinds are refused.
// Without kinds (Parse) those checks are left to the worker, which runs
// them when it opens the sources.
func ParseFor(data []byte, lookup func(string) (string, bool), kinds *providers.Registry) (*Config, error) {
	return parseWith(data, lookup, kinds)
}

// Spec is the source as a kind reads it; field is the source's path in the
// file ("sources[2]"), which errors name fields under.
func (s *Source) Spec(field string) (providers.Spec, error) {
	// The kind decodes from the Source as it is now (a test or caller may
	// have changed it since parsing), the parsed node gives line numbers.
	var n yaml.Node
	if err := n.Encode(s); err != nil {
		return providers.Spec{}, fmt.Errorf("%s: encode for provider %s: %w", field, s.Provider, err)
	}
	return providers.Spec{ID: s.ID, Field: field, Prefix: s.Prefix, Node: &n, Lines: s.node}, nil
}

// Configure returns the source's kind and the source as that kind
// configured it; field names the source in errors ("sources[2]"). An unknown
// kind returns a zero Descriptor and an error listing the known ones.
func (s *Source) Configure(kinds *providers.Registry, field string) (providers.Descriptor, providers.Configured, error) {
	d, err := kinds.Kind(s.Provider)
	if err != nil {
		return d, providers.Configured{}, fmt.Errorf("%s.provider: %w", field, err)
	}
	spec, err := s.Spec(field)
	if err != nil {
		return d, providers.Configured{}, err
	}
	got, err := d.Configure(spec)
	return d, got, err
}

// resolveKinds checks every source against its kind and applies the kind's
// defaults to the source's settings.
func (c *Config) resolveKinds(kinds *providers.Registry) error {
	var errs []error
	for i := range c.Sources {
		s := &c.Sources[i]
		f := fmt.Sprintf("sources[%d]", i)
		d, got, err := s.Configure(kinds, f)
		errs = append(errs, err)
		if d.Name == "" {
			continue // not a known kind: nothing to check it against
		}
		if err == nil && d.Block != "" {
			// The kind's defaults (s3.region) show in the Source too.
			if err := mirror(s, d.Block, got.Settings); err != nil {
				errs = append(errs, fmt.Errorf("%s.%s: %w", f, d.Block, err))
			}
		}
		if s.Assets.URI == "" {
			s.Assets.URI = s.Assets.Mode(d.Presigns)
		}
		errs = append(errs, s.checkOwnKeys(f, d, kinds)...)
		errs = append(errs, s.checkAssetsKind(f, d, kinds)...)
		errs = append(errs, s.checkRanges(f, d, kinds)...)
	}
	return errors.Join(errs...)
}

// checkOwnKeys refuses keys and notification transports that belong to
// other kinds: they would be ignored, which is never what was meant.
func (s *Source) checkOwnKeys(f string, d providers.Descriptor, kinds *providers.Registry) []error {
	var errs []error
	for _, key := range setKeys(reflect.ValueOf(*s)) {
		reads := func(k providers.Descriptor) bool { return k.Reads(key) }
		if owners := kinds.ListWhere("or", reads); owners != "" && !d.Reads(key) {
			errs = append(errs, fmt.Errorf("%s.%s: applies to provider %s, not %q", f, key, owners, s.Provider))
		}
	}
	for _, t := range setKeys(reflect.ValueOf(s.Notifications)) {
		if !d.Offers(t) {
			offers := kinds.ListWhere("or", func(k providers.Descriptor) bool { return k.Offers(t) })
			errs = append(errs, fmt.Errorf("%s.notifications.%s: applies to provider %s, not %q", f, t, cmp.Or(offers, "none"), s.Provider))
		}
	}
	return errs
}

// checkAssetsKind checks the asset URI mode against what the kind can do.
func (s *Source) checkAssetsKind(f string, d providers.Descriptor, kinds *providers.Registry) []error {
	presigners := kinds.ListWhere("and", func(k providers.Descriptor) bool { return k.Presigns })
	switch s.Assets.URI {
	case AssetURIPresign:
		if !d.Presigns {
			return []error{fmt.Errorf(`%s.assets.uri: "presign" applies to %s; a %s source is served by syncer ("serve") or from publicBaseURL ("public")`, f, presigners, d.Name)}
		}
	case AssetURIServe:
		if d.Presigns {
			return []error{fmt.Errorf(`%s.assets.uri: "serve" applies to %s sources, not %q (use "presign" or "public")`, f,
				kinds.ListWhere("and", func(k providers.Descriptor) bool { return !k.Presigns }), s.Provider)}
		}
	}
	return nil
}

// setKeys returns the yaml keys of v's fields that are set (not zero).
func setKeys(v reflect.Value) []string {
	var keys []string
	for i := 0; i < v.NumField(); i++ {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" && !v.Field(i).IsZero() {
			keys = append(keys, name)
		}
	}
	return keys
}

// mirror copies a kind's decoded settings into the Source's field of that
// block (yaml tag block), through YAML so that config needs no kind's type.
func mirror(s *Source, block string, settings any) error {
	v := reflect.ValueOf(s).Elem()
	for i := 0; i < v.NumField(); i++ {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if name != block {
			continue
		}
		var n yaml.Node
		if err := n.Encode(settings); err != nil {
			return err
		}
		return n.Decode(v.Field(i).Addr().Interface())
	}
	return nil
}
