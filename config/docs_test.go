package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docSnippet is one ```yaml block of a Markdown file.
type docSnippet struct {
	file string
	line int // of the opening fence
	text string
}

// yamlSnippets returns the ```yaml blocks of a Markdown text.
func yamlSnippets(file, md string) []docSnippet {
	var out []docSnippet
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```yaml" {
			continue
		}
		start := i
		var b strings.Builder
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			b.WriteString(lines[i])
			b.WriteByte('\n')
		}
		out = append(out, docSnippet{file: file, line: start + 1, text: b.String()})
	}
	return out
}

// docVars stands in for the environment a reader would set. Values that
// validation inspects are well-formed samples; anything else is a dummy.
func docVars(name string) (string, bool) {
	switch {
	case strings.Contains(name, "CONNECTION_STRING"):
		return "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net", true
	case strings.HasSuffix(name, "_KEY"):
		return "a2V5", true // base64
	case strings.HasSuffix(name, "_URL"):
		return "https://example.com", true
	}
	return "dummy-" + strings.ToLower(name), true
}

var topLevelNATS = regexp.MustCompile(`(?m)^nats:`)

// loadSnippet parses a snippet as `syncer config check` would. A snippet
// whose first line is "# fragment" is deliberately partial: it gets the
// nats.url every file needs (appended, so its lines keep their numbers).
func loadSnippet(s docSnippet) error {
	text := s.text
	if strings.HasPrefix(strings.TrimSpace(text), "# fragment") && !topLevelNATS.MatchString(text) {
		text += "nats: {url: embedded}\n"
	}
	_, err := parseAll([]byte(text), docVars)
	return err
}

// Every config snippet in README.md and docs/*.md loads: the docs never
// show a configuration syncer would refuse.
func TestDocSnippetsLoad(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../README.md"}, files...)
	n := 0
	for _, f := range files {
		md, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range yamlSnippets(filepath.Base(f), string(md)) {
			n++
			if err := loadSnippet(s); err != nil {
				t.Errorf("%s: the yaml block at line %d does not load:\n%v\n---\n%s", s.file, s.line, err, s.text)
			}
		}
	}
	if n == 0 {
		t.Fatal("no yaml blocks found in README.md and docs/: the extractor is broken")
	}
	t.Logf("%d yaml blocks loaded", n)
}

// The extractor and the fragment rule themselves, so the test above can fail.
func TestDocSnippetExtraction(t *testing.T) {
	md := "text\n```yaml\nnats: {url: embedded}\n```\n```sh\nls\n```\n```yaml\n# fragment\nevents: {maxChanges: 5}\n```\n```yaml\nevents: {maxChanges: 5}\n```\n"
	got := yamlSnippets("x.md", md)
	if len(got) != 3 || got[0].line != 2 || got[1].line != 8 {
		t.Fatalf("snippets = %+v", got)
	}
	if err := loadSnippet(got[0]); err != nil {
		t.Errorf("complete snippet: %v", err)
	}
	if err := loadSnippet(got[1]); err != nil {
		t.Errorf("fragment: %v", err)
	}
	if err := loadSnippet(got[2]); err == nil || !strings.Contains(err.Error(), "nats.url") {
		t.Errorf("a partial snippet not marked as a fragment loaded: %v", err)
	}
	bad := docSnippet{text: "nats: {url: embedded}\nevents: {coalesceWindow: 5}\n"}
	if err := loadSnippet(bad); err == nil {
		t.Error("a bad snippet loaded")
	}
}
