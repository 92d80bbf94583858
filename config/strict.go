package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/imgly/syncer/providers"
)

func typeOf(v any) reflect.Type { return reflect.TypeOf(v) }

func checkGlob(g string) error { return providers.CheckGlob(g) }

// refRe is a ${NAME} or ${NAME:-default} reference. Only these braced forms
// are references; every other "$" ($HOME, $$, "${" never closed on its line)
// is data.
var refRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}\r\n]*))?\}`)

// ref is one ${...} reference found in the raw text.
type ref struct {
	text string // as written, "${NAME:-def}"
	name string
	def  string
	// hasDef tells "${X:-}" (default empty) from "${X}" (required).
	hasDef bool
}

// refs maps the placeholders that stand for ${...} references in the text
// yaml.v3 parses back to the references.
type refs struct {
	prefix string
	list   []ref
	re     *regexp.Regexp
	// from remembers, per expanded scalar, the variables its value came
	// from, so a later error can name them instead of echoing a value that
	// may be a secret.
	from map[*yaml.Node]string
	// looked are the values the environment gave, with the variable
	// each came from, so validation errors can name the variable too.
	looked []lookedUp
}

type lookedUp struct{ value, name string }

// substitute replaces each ${...} reference in data by a placeholder that is
// a plain YAML scalar token (__syncer_env_0__), so that a reference can stand
// wherever a value can — also inside a flow mapping, where "{" and "}" are
// syntax — and so that a variable's value, substituted after parsing, can
// never change the document's structure.
func substitute(data []byte) ([]byte, *refs) {
	r := &refs{prefix: "__syncer_env_", from: map[*yaml.Node]string{}}
	// A file that happens to contain the prefix gets a longer one.
	for strings.Contains(string(data), r.prefix) {
		r.prefix = "_" + r.prefix
	}
	r.re = regexp.MustCompile(regexp.QuoteMeta(r.prefix) + `([0-9]+)__`)
	out := refRe.ReplaceAllStringFunc(string(data), func(m string) string {
		sub := refRe.FindStringSubmatch(m)
		i := len(r.list)
		r.list = append(r.list, ref{text: m, name: sub[1], def: sub[2], hasDef: strings.Contains(m, ":-")})
		return fmt.Sprintf("%s%d__", r.prefix, i)
	})
	return []byte(out), r
}

// hide rewrites a validation error so that no value the environment gave
// shows: a quoted value becomes "(from ${NAME})", and so does the value
// itself where it stands unquoted. Validation messages quote what they
// reject (`log.level: "x" is not one of ...`), which is right for a value
// written in the file but may be a secret when it came from a variable.
func (r *refs) hide(err error) error {
	if err == nil || len(r.looked) == 0 {
		return err
	}
	vals := slices.Clone(r.looked)
	// Longest first, so a value that contains another is replaced whole.
	slices.SortFunc(vals, func(a, b lookedUp) int { return len(b.value) - len(a.value) })
	text := err.Error()
	for _, v := range vals {
		text = strings.ReplaceAll(text, strconv.Quote(v.value), "(from "+v.name+")")
		text = strings.ReplaceAll(text, v.value, "(from "+v.name+")")
	}
	return errors.New(text)
}

// lookupRef returns the placeholder's reference.
func (r *refs) lookupRef(ph string) *ref {
	m := r.re.FindStringSubmatch(ph)
	i, err := strconv.Atoi(m[1])
	if err != nil || i < 0 || i >= len(r.list) {
		return nil
	}
	return &r.list[i]
}

// restore puts the references back as written, for text that is not
// expanded (mapping keys) and so may show in an error.
func (r *refs) restore(s string) string {
	if !strings.Contains(s, r.prefix) {
		return s
	}
	return r.re.ReplaceAllStringFunc(s, func(ph string) string {
		if rf := r.lookupRef(ph); rf != nil {
			return rf.text
		}
		return ph
	})
}

// expand replaces the placeholders in every scalar value with the
// variables' values (an empty variable counts as unset, so its default
// applies). Mapping keys are restored, not expanded.
func (r *refs) expand(n *yaml.Node, path string, lookup func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, r.prefix) {
			return nil
		}
		whole := r.re.FindString(n.Value) == n.Value
		var missing, names []string
		n.Value = r.re.ReplaceAllStringFunc(n.Value, func(ph string) string {
			rf := r.lookupRef(ph)
			if rf == nil {
				return ph
			}
			names = append(names, "${"+rf.name+"}")
			if v, ok := lookup(rf.name); ok && v != "" {
				r.looked = append(r.looked, lookedUp{v, "${" + rf.name + "}"})
				return v
			}
			if rf.hasDef {
				return rf.def
			}
			missing = append(missing, rf.name)
			return ""
		})
		if len(missing) > 0 {
			return fmt.Errorf("%s: environment variable %s is not set (line %d)", path, strings.Join(missing, ", "), n.Line)
		}
		r.from[n] = strings.Join(names, ", ")
		// A plain scalar's type was resolved from the placeholder (a
		// string); resolve it again from the expanded value. A quoted
		// whole reference, "${PORT}", takes the value's type too.
		if n.Style == 0 || whole && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			n.Tag, n.Style = "", 0
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			k.Value = r.restore(k.Value)
			if err := r.expand(n.Content[i+1], join(path, k.Value), lookup); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := r.expand(c, fmt.Sprintf("%s[%d]", path, i), lookup); err != nil {
				return err
			}
		}
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := r.expand(c, path, lookup); err != nil {
				return err
			}
		}
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// check walks the document against the Go type it will decode into and
// reports every key the type does not have and every value the type cannot
// hold, naming its path (sources[0].s3.pathstlye) and line. yaml.v3's own
// errors name Go types ("cannot unmarshal !!int into time.Duration") and
// echo values, which may be secrets.
func (r *refs) check(n *yaml.Node, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		var errs []error
		for _, c := range n.Content {
			errs = append(errs, r.check(c, t, path)...)
		}
		return errs
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil // the zero value
	}
	at := func(format string, args ...any) []error {
		return []error{fmt.Errorf("%s: %s (line %d)", path, fmt.Sprintf(format, args...), n.Line)}
	}
	switch t.Kind() {
	case reflect.Struct:
		return r.checkStruct(n, t, path, at)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return at("must be a list, not %s", kindName(n))
		}
		var errs []error
		for i, c := range n.Content {
			errs = append(errs, r.check(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return errs
	case reflect.Map, reflect.Interface:
		return nil // none today; the decoder's business
	}
	return r.checkScalar(n, t, at)
}

// checkStruct checks a mapping against struct type t: every key must be
// one of its yaml fields, and every value must suit that field.
func (r *refs) checkStruct(n *yaml.Node, t reflect.Type, path string, at func(format string, args ...any) []error) []error {
	if n.Kind != yaml.MappingNode {
		return at("must be a mapping of keys (%s), not %s", keysOf(t), kindName(n))
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		ft, ok := fields[k.Value]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown key (line %d)", p, k.Line))
			continue
		}
		errs = append(errs, r.check(v, ft, p)...)
	}
	return errs
}

// checkScalar checks a single value against type t.
func (r *refs) checkScalar(n *yaml.Node, t reflect.Type, at func(format string, args ...any) []error) []error {
	// A single value.
	if n.Kind != yaml.ScalarNode {
		return at("must be a single value, not %s", kindName(n))
	}
	// Decoding this one scalar as the final decode will is the only way
	// to agree with yaml.v3 on what it accepts.
	err := n.Decode(reflect.New(t).Interface())
	isInt := t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64
	if err == nil && isInt && t != durationType && n.ShortTag() == "!!float" {
		// yaml.v3 truncates 2.5 to 2 silently; a count is whole.
		var f float64
		if n.Decode(&f) == nil && f != math.Trunc(f) {
			err = errors.New("fractional")
		}
	}
	if err == nil {
		return nil
	}
	v := r.shown(n)
	switch {
	case t == durationType:
		return at(`%s is not a duration; write it with a unit, e.g. "250ms"`, v)
	case t.Kind() == reflect.Bool:
		return at("%s is not true or false", v)
	case isInt:
		return at("%s is not a whole number", v)
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return at("%s is not a number", v)
	default:
		return at("%s is not a %s", v, t.Kind())
	}
}

// shown is how an error shows a scalar: as written, shortened, or for a
// value that came from the environment only the variables' names.
func (r *refs) shown(n *yaml.Node) string {
	if names, ok := r.from[n]; ok {
		return "the value (from " + names + ")"
	}
	v := n.Value
	if utf8.RuneCountInString(v) > 40 {
		v = string([]rune(v)[:40]) + "…"
	}
	if n.Style == 0 && v != "" && !strings.ContainsAny(v, " \t\n\"'") {
		return v
	}
	return fmt.Sprintf("%q", v)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a single value"
	}
}

// keysOf lists a struct's first keys, to say what a mapping should hold.
func keysOf(t reflect.Type) string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	if len(names) > 4 {
		names = append(names[:4], "…")
	}
	return strings.Join(names, ", ")
}

// typeErrorValue matches the values yaml.v3 quotes in its errors.
var typeErrorValue = regexp.MustCompile("`[^`]*`")

// scrub removes the values yaml.v3 quotes in a decode error: they may be
// secrets. check reports the same problems better; this is a backstop.
func scrub(err error) error {
	return fmt.Errorf("%s", typeErrorValue.ReplaceAllString(err.Error(), "a value"))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
