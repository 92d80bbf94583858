package config

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imgly/syncer/providers"
)

func typeOf(v any) reflect.Type { return reflect.TypeOf(v) }

func checkGlob(g string) error { return providers.CheckGlob(g) }

// checkKeys walks the document against the Go type it will decode into and
// rejects any mapping key the type does not have, naming its path
// (sources[0].s3.pathstlye) and line. yaml.v3's KnownFields names the Go type
// instead, which means nothing to someone editing the file.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkKeys(c, t, path); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		if t.Kind() != reflect.Struct {
			return nil // maps and scalars are the decoder's business
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
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("%s: unknown key (line %d)", p, k.Line)
			}
			if err := checkKeys(v, ft, p); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// expandVars replaces each ${NAME} or ${NAME:-default} in s with get's
// answer. Unlike os.Expand it leaves every other "$" alone ($HOME, $$, a "$"
// inside a password): the file documents only the braced forms.
func expandVars(s string, get func(name string) string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i+2:], '}')
		if j < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteString(get(s[i+2 : i+2+j]))
		s = s[i+2+j+1:]
	}
	b.WriteString(s)
	return b.String()
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// expand replaces ${VAR} and ${VAR:-default} in every scalar value. Expanding
// values after parsing, rather than the raw text, keeps a secret containing
// YAML syntax from changing the document's structure.
func expand(n *yaml.Node, path string, lookup func(string) (string, bool)) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return nil
		}
		// "${VAR}" quoted whole — the only way to write a reference inside a
		// flow mapping — takes the type of the value, like a plain one.
		whole := strings.HasPrefix(n.Value, "${") && strings.Index(n.Value, "}") == len(n.Value)-1
		var missing []string
		n.Value = expandVars(n.Value, func(name string) string {
			name, def, hasDef := strings.Cut(name, ":-")
			if v, ok := lookup(name); ok && v != "" {
				return v
			}
			if hasDef {
				return def
			}
			missing = append(missing, name)
			return ""
		})
		if len(missing) > 0 {
			return fmt.Errorf("%s: environment variable %s is not set (line %d)", path, strings.Join(missing, ", "), n.Line)
		}
		// A plain scalar's type was resolved from the text before expansion
		// ("${PORT}" is a string); resolve it again from the expanded value.
		if n.Style == 0 || whole && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			n.Tag, n.Style = "", 0
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := expand(n.Content[i+1], join(path, n.Content[i].Value), lookup); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := expand(c, fmt.Sprintf("%s[%d]", path, i), lookup); err != nil {
				return err
			}
		}
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := expand(c, path, lookup); err != nil {
				return err
			}
		}
	}
	return nil
}
