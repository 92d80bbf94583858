package examples_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/livetest"
)

// readmeScripts are the files README.md's ```js blocks are excerpts of,
// each run by a test of this package: TestSubscriber,
// TestReadmeLiveEditors and TestReadmeAssetAPI.
var readmeScripts = []string{"subscriber/subscriber.mjs", "readme/live-editors.mjs", "readme/asset-api.mjs"}

// rootDir is a directory laid out like the repository's root for a copy of
// file: clients/ and internal/ are the repository's, node_modules/ is
// testenv's. A snippet written for a file at the root (bare imports as
// after an npm install, ./clients/js/index.js) runs there as it is.
func rootDir(t *testing.T, file string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(file)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"node_modules": filepath.Join(livetest.Testenv(t), "node_modules"),
		"clients":      filepath.Join(root, "clients"),
		"internal":     filepath.Join(root, "internal"),
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestReadmeLiveEditors runs the README's syncAssetSources snippet
// (readme/live-editors.mjs): an upload reaches the engine, stop() undoes it.
func TestReadmeLiveEditors(t *testing.T) {
	node := livetest.Node(t, "@cesdk/node")
	const token = "readme-live-token"
	s := livetest.Start(t, livetest.Options{
		Sources:   []string{"cloud-images"},
		Configure: func(c *config.Config) { c.HTTP.Auth.Tokens = []string{token} },
	})
	cmd := exec.Command(node, "live-editors.mjs")
	cmd.Dir = rootDir(t, "readme/live-editors.mjs")
	cmd.Env = append(os.Environ(), "SYNCER_URL="+s.URL, "SYNCER_TOKEN="+token)
	t.Logf("%v", s.Run(t, 2*time.Minute, cmd))
}

// TestReadmeAssetAPI runs the README's plugin snippet (readme/asset-api.mjs)
// against a source that needs a token, carried in the path.
func TestReadmeAssetAPI(t *testing.T) {
	node := livetest.Node(t, "@cesdk/node", "@imgly/plugin-remote-asset-source-web")
	const token = "readme-asset-token"
	s := livetest.Start(t, livetest.Options{
		Sources:   []string{"media"},
		Configure: func(c *config.Config) { c.HTTP.Auth.Tokens = []string{token} },
	})
	arrived := subscribeArrivals(t, s.NATSURL, "syncer.changed.media")
	s.Put(t, "media", "photos/readme.png", []byte("readme bytes"), "image/png")
	waitFor(t, "the upload's event", func() bool { _, ok := arrived("photos/readme.png"); return ok })
	cmd := exec.Command(node, "asset-api.mjs")
	cmd.Dir = rootDir(t, "readme/asset-api.mjs")
	cmd.Env = append(os.Environ(), "SYNCER_URL="+s.URL, "SYNCER_TOKEN="+token)
	t.Logf("%v", s.Run(t, 2*time.Minute, cmd))
}

// waitFor polls cond (a cheap read of state another goroutine records)
// until it holds, for at most 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
}

// fence is one fenced block of a Markdown file.
type fence struct {
	lang string
	line int // of the opening fence
	text string
}

// fences returns the fenced blocks of md.
func fences(md string) []fence {
	var out []fence
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		open := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(open, "```") {
			continue
		}
		f := fence{lang: strings.TrimPrefix(open, "```"), line: i + 1}
		var b strings.Builder
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			b.WriteString(lines[i] + "\n")
		}
		f.text = b.String()
		out = append(out, f)
	}
	return out
}

// TestReadmeBlocks: every fenced block of README.md is checked by a test.
//   - yaml: config's TestDocSnippetsLoad loads every block fenced exactly
//     "```yaml" (the same rule as its extractor);
//   - js: a contiguous run of whole lines of one of readmeScripts, which
//     this package's tests run;
//   - json: the event, which decodes into events.CloudEvent with no field
//     unknown or lost;
//   - sh: every command exists (programs on PATH or in the tree, syncer's
//     subcommands and their flags as its --help gives them).
//
// Any other block fails: a new kind needs its check here first.
func TestReadmeBlocks(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	scripts := map[string]string{}
	for _, f := range readmeScripts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		scripts[f] = string(b)
	}
	sh := newShellCheck(t)
	kinds := map[string]int{}
	for _, f := range fences(string(readme)) {
		kinds[f.lang]++
		var err error
		switch f.lang {
		case "yaml":
			// loaded by config.TestDocSnippetsLoad
		case "js":
			err = excerptOf(f.text, scripts)
		case "json":
			err = checkEvent(f.text)
		case "sh":
			err = sh.check(f.text)
		default:
			err = fmt.Errorf("no test covers a ```%s block", f.lang)
		}
		if err != nil {
			t.Errorf("README.md:%d: ```%s block: %v\n---\n%s", f.line, f.lang, err, f.text)
		}
	}
	if kinds["js"] < 3 || kinds["sh"] == 0 || kinds["yaml"] == 0 || kinds["json"] == 0 {
		t.Fatalf("blocks found %v: the extractor is broken", kinds)
	}
	t.Logf("README.md blocks checked: %v", kinds)
}

// excerptOf says whether block is a run of whole lines of one of scripts.
func excerptOf(block string, scripts map[string]string) error {
	for _, s := range scripts {
		if i := strings.Index("\n"+s, "\n"+block); i >= 0 && block != "" {
			return nil
		}
	}
	return fmt.Errorf("not verbatim (whole lines, contiguous) in any of %v", readmeScripts)
}

// checkEvent decodes the README's event strictly and encodes it again: the
// same JSON means every field is one syncer has, and has the type it shows.
func checkEvent(text string) error {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	var ev events.CloudEvent
	if err := dec.Decode(&ev); err != nil {
		return fmt.Errorf("does not decode as events.CloudEvent: %v", err)
	}
	if ev.Type != events.Type || ev.SpecVersion != "1.0" {
		return fmt.Errorf("type %q, specversion %q", ev.Type, ev.SpecVersion)
	}
	again, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	var a, b any
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		return err
	}
	if err := json.Unmarshal(again, &b); err != nil {
		return err
	}
	if !reflect.DeepEqual(normalTimes(a), normalTimes(b)) {
		return fmt.Errorf("does not survive a round trip through events.CloudEvent:\n%s", again)
	}
	return nil
}

// normalTimes rewrites RFC 3339 strings to one form, since Go writes
// "21:57:13.810Z" as "21:57:13.81Z".
func normalTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalTimes(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalTimes(e)
		}
	case string:
		if tm, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return tm.UTC().Format(time.RFC3339Nano)
		}
	}
	return v
}

// The block checks themselves can fail.
func TestReadmeChecks(t *testing.T) {
	scripts := map[string]string{"x.mjs": "const a = 1;\nconst b = 2;\nconst c = 3;\n"}
	if err := excerptOf("const b = 2;\nconst c = 3;\n", scripts); err != nil {
		t.Errorf("whole lines: %v", err)
	}
	for _, bad := range []string{"b = 2;\n", "const a = 1;\nconst c = 3;\n", "const b = 2; \n", ""} {
		if excerptOf(bad, scripts) == nil {
			t.Errorf("%q passed as an excerpt", bad)
		}
	}
	ok := `{"specversion": "1.0", "id": "x", "source": "/s", "type": "io.syncer.contents.changed.v1", "subject": "s",
	  "time": "2026-11-27T21:57:14.266Z", "datacontenttype": "application/json",
	  "data": {"sourceId": "s", "firstSeq": 1, "lastSeq": 1, "changes": [{"seq": 1, "op": "added", "key": "k", "size": 1, "detectedBy": "scan"}]}}`
	if err := checkEvent(ok); err != nil {
		t.Errorf("a good event: %v", err)
	}
	for what, bad := range map[string]string{
		"unknown field": strings.Replace(ok, `"size": 1`, `"size": 1, "colour": "red"`, 1),
		"wrong type":    strings.Replace(ok, `"size": 1`, `"size": "1"`, 1),
		"other type":    strings.Replace(ok, "contents.changed.v1", "contents.changed.v2", 1),
	} {
		if checkEvent(bad) == nil {
			t.Errorf("an event with a %s passed", what)
		}
	}
	if got := fences("a\n```sh\nls\n```\n  ```js\nx\n  ```\n"); len(got) != 2 || got[0].lang != "sh" || got[1].line != 5 || got[1].text != "x\n" {
		t.Errorf("fences: %+v", got)
	}
}
