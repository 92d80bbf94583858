package providers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Descriptor is one provider kind: everything syncer needs to know of a
// store besides its adapter, so that config and worker never switch on a
// kind's name (rclone's fs.Register, thanos objstore's per-provider Config).
// Each provider package returns its own from a Descriptor function; the
// kinds package gathers them into a Registry.
type Descriptor struct {
	// Name is the value of a source's "provider" key.
	Name string
	// Order is the key order the kind lists in; the catalog stores a
	// source's keys by it and records it (see catalog.Source.CheckOrder).
	Order Order
	// Block is the key of the kind's own settings block in a source ("s3"),
	// empty when it has none.
	Block string
	// Fields are the other source-level keys only this kind reads
	// ("bucket"; "path", "followSymlinks", "settle"). config refuses them,
	// and Block, on a source of another kind.
	Fields []string
	// Transports are the keys under a source's notifications this kind
	// offers ("sqs", "webhook"); config refuses the others.
	Transports []string
	// Presigns says that the store signs URLs to its objects, so that the
	// asset API's uri defaults to "presign"; otherwise syncer serves the
	// files itself ("serve").
	Presigns bool
	// ListsRanges says that the store starts a listing after any key, so a
	// scan may list key ranges at once (a source's listConcurrency).
	ListsRanges bool
	// Watches says that the kind watches its store itself, without
	// notifications (a source's watch switch, on by default).
	Watches bool
	// Configure decodes and validates the kind's part of one source (its
	// block and Fields) into the kind's typed Config. Its error joins one
	// *FieldError per problem.
	Configure func(Spec) (Configured, error)
}

// Spec is what a kind reads of one configured source.
type Spec struct {
	ID string
	// Field is the source's path in the file ("sources[2]"), which errors
	// name fields under.
	Field string
	// Prefix is the source's key prefix, for Location.
	Prefix string
	// Node is the source's settings as a YAML mapping (config encodes its
	// Source), which the kind decodes the keys it reads from.
	Node *yaml.Node
	// Lines is the source's mapping as parsed from the file, for the line
	// numbers of errors; nil for a source built in code.
	Lines *yaml.Node
}

// Configured is one source of a kind, decoded and validated.
type Configured struct {
	// Bucket is the bucket (or container) notifications name; "" for a kind
	// without one.
	Bucket string
	// Location names where the source's objects are, for reports
	// ("s3://bucket/prefix", a directory).
	Location string
	// Settings is the kind's typed Config, as its adapter's constructor
	// takes it.
	Settings any
	// Notifications is the kind's typed notification settings of the
	// source, a notify.Offer that builds its transports (nil: the kind
	// offers none). providers cannot name notify's types: notify imports
	// providers.
	Notifications any
	// Open returns the adapter. It makes no request to the store: a missing
	// bucket or a refused credential shows on the first call.
	Open func(ctx context.Context, o OpenOptions) (Provider, error)
}

// OpenOptions are what the caller, not the file, decides about an adapter.
type OpenOptions struct {
	// Log receives the SDK's logging (nil: slog.Default()).
	Log *slog.Logger
	// Probe opens the source for `config check`: nothing may be created
	// (a missing local directory is an error, not made).
	Probe bool
}

// Logger is o.Log, or slog.Default().
func (o OpenOptions) Logger() *slog.Logger {
	if o.Log == nil {
		return slog.Default()
	}
	return o.Log
}

// Offers reports whether the kind offers the notification transport.
func (d Descriptor) Offers(transport string) bool { return slices.Contains(d.Transports, transport) }

// Reads reports whether key (a source-level key) belongs to the kind.
func (d Descriptor) Reads(key string) bool {
	return key == d.Block && key != "" || slices.Contains(d.Fields, key)
}

// Registry is a fixed set of kinds, looked up by name. It is built once
// (kinds.All) and handed to config and worker; nothing registers later.
type Registry struct {
	kinds []Descriptor
}

// NewRegistry returns a registry of ds. Two kinds of one name, or a kind
// without a name or Configure, are a programming error reported here.
func NewRegistry(ds ...Descriptor) (*Registry, error) {
	r := &Registry{}
	for _, d := range ds {
		switch {
		case d.Name == "" || d.Configure == nil:
			return nil, fmt.Errorf("provider kind %q: a kind needs a name and Configure", d.Name)
		case slices.ContainsFunc(r.kinds, func(k Descriptor) bool { return k.Name == d.Name }):
			return nil, fmt.Errorf("provider kind %q registered twice", d.Name)
		}
		r.kinds = append(r.kinds, d)
	}
	return r, nil
}

// Lookup returns the kind called name.
func (r *Registry) Lookup(name string) (Descriptor, bool) {
	for _, d := range r.kinds {
		if d.Name == name {
			return d, true
		}
	}
	return Descriptor{}, false
}

// Kind returns the kind called name, or an error listing the known ones.
func (r *Registry) Kind(name string) (Descriptor, error) {
	if d, ok := r.Lookup(name); ok {
		return d, nil
	}
	if name == "" {
		return Descriptor{}, fmt.Errorf("is required (%s)", r.List("or"))
	}
	return Descriptor{}, fmt.Errorf("%q is not one of %s", name, r.List(","))
}

// Kinds returns the registered kinds in registration order.
func (r *Registry) Kinds() []Descriptor { return slices.Clone(r.kinds) }

// Names returns the kinds' names in registration order.
func (r *Registry) Names() []string {
	names := make([]string, len(r.kinds))
	for i, d := range r.kinds {
		names[i] = d.Name
	}
	return names
}

// List names the kinds for a message: "s3, gcs, azure, local" with sep
// ",", or "s3, gcs, azure or local" with a word.
func (r *Registry) List(sep string) string { return listNames(r.Names(), sep) }

// ListWhere names the kinds for which keep holds, like List.
func (r *Registry) ListWhere(sep string, keep func(Descriptor) bool) string {
	var names []string
	for _, d := range r.kinds {
		if keep(d) {
			names = append(names, d.Name)
		}
	}
	return listNames(names, sep)
}

func listNames(names []string, sep string) string {
	if sep == "," || len(names) < 2 {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:len(names)-1], ", ") + " " + sep + " " + names[len(names)-1]
}

// Order returns the key order of the kind called name, for opening a
// catalog without opening the provider. An unknown kind is an error, never
// a guess: a wrong order would lay the source's keys out wrongly.
func (r *Registry) Order(name string) (Order, error) {
	d, err := r.Kind(name)
	if err != nil {
		return 0, fmt.Errorf("provider: %w", err)
	}
	return d.Order, nil
}

// FieldError is one problem with one field of a source's kind settings.
type FieldError struct {
	Field string // the field's path: sources[0].s3.endpoint
	Line  int    // its line in the file; 0 when not known
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", e.Field, e.Msg, e.Line)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Msg)
}

// Problems gathers the FieldErrors of one Configure call.
type Problems struct {
	spec Spec
	errs []error
}

// NewProblems starts the problems of spec.
func NewProblems(spec Spec) *Problems { return &Problems{spec: spec} }

// Add records a problem with the field at path (keys below the source,
// "s3", "endpoint"), naming its line when the spec has one.
func (p *Problems) Add(path []string, format string, args ...any) {
	line := 0
	if n := Find(p.spec.Lines, path...); n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &FieldError{Field: p.spec.Field + "." + strings.Join(path, "."), Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Err is the problems joined, or nil.
func (p *Problems) Err() error { return errors.Join(p.errs...) }

// Find returns the node at path below a mapping node (nil when absent).
func Find(n *yaml.Node, path ...string) *yaml.Node {
	for _, key := range path {
		if n == nil {
			return nil
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
			n = n.Content[0]
		}
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// Decode decodes the source's mapping into v, a struct of the keys the kind
// reads (yaml tags); other keys are config's. Decoding the whole mapping,
// not a key at a time, keeps YAML merge keys (<<: *defaults) working.
func (s Spec) Decode(v any) error {
	if s.Node == nil {
		return nil
	}
	if err := s.Node.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", s.Field, err)
	}
	return nil
}

// Location joins a URL scheme, a bucket and a prefix for reports.
func Location(scheme, bucket, prefix string) string { return scheme + "://" + bucket + "/" + prefix }
