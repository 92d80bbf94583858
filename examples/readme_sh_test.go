package examples_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// shellCheck checks the commands of README.md's ```sh blocks against the
// tree: programs exist, syncer's subcommands and flags are syncer's.
type shellCheck struct {
	t      *testing.T
	root   string
	syncer string // built on first use
}

func newShellCheck(t *testing.T) *shellCheck {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return &shellCheck{t: t, root: root}
}

// check checks every command line of block.
func (c *shellCheck) check(block string) error {
	for _, line := range strings.Split(block, "\n") {
		words := shellWords(line)
		for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
			words = words[1:] // VAR=value before the command
		}
		if len(words) == 0 {
			continue
		}
		if err := c.command(words); err != nil {
			return fmt.Errorf("%q: %w", strings.TrimSpace(line), err)
		}
	}
	return nil
}

func (c *shellCheck) command(words []string) error {
	switch prog := words[0]; {
	case prog == "syncer" || prog == "./syncer":
		return c.syncerCommand(words[1:])
	case prog == "go" && len(words) >= 3 && words[1] == "run":
		if err := c.goPackage(words[2]); err != nil {
			return err
		}
		if words[2] == "./cmd/syncer" {
			return c.syncerCommand(words[3:])
		}
		return nil
	case prog == "go" && len(words) >= 3 && words[1] == "build":
		return c.goPackage(words[len(words)-1])
	case prog == "go":
		return fmt.Errorf("no check for go %s", words[1])
	case strings.Contains(prog, "/"):
		st, err := os.Stat(filepath.Join(c.root, prog))
		if err != nil || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file of the tree", prog)
		}
		return nil
	default:
		_, err := exec.LookPath(prog)
		return err
	}
}

// goPackage says pkg ("./cmd/syncer") is a directory of Go files.
func (c *shellCheck) goPackage(pkg string) error {
	m, _ := filepath.Glob(filepath.Join(c.root, pkg, "*.go"))
	if len(m) == 0 {
		return fmt.Errorf("%s is not a Go package of the tree", pkg)
	}
	return nil
}

// syncerCommand checks args (a subcommand, then flags and their values)
// against syncer's own help: the subcommand is one (its usage line names
// it) and every --flag is listed.
func (c *shellCheck) syncerCommand(args []string) error {
	var sub, flags []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "-"):
			name, _, _ := strings.Cut(a, "=")
			flags = append(flags, name)
		case len(flags) == 0:
			sub = append(sub, a)
		}
	}
	if len(sub) == 0 {
		return fmt.Errorf("no subcommand")
	}
	out, err := exec.Command(c.binary(), append(sub, "--help")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("syncer %s --help: %v\n%s", strings.Join(sub, " "), err, out)
	}
	help := string(out)
	usage := "  syncer " + strings.Join(sub, " ")
	if !strings.Contains(help, usage+" ") && !strings.Contains(help, usage+"\n") {
		return fmt.Errorf("syncer has no command %q", strings.Join(sub, " "))
	}
	for _, f := range flags {
		if !strings.Contains(help, f+" ") {
			return fmt.Errorf("syncer %s has no flag %s", strings.Join(sub, " "), f)
		}
	}
	return nil
}

func (c *shellCheck) binary() string {
	if c.syncer == "" {
		bin := filepath.Join(c.t.TempDir(), "syncer")
		build := exec.Command("go", "build", "-o", bin, "./cmd/syncer")
		build.Dir = c.root
		if out, err := build.CombinedOutput(); err != nil {
			c.t.Fatalf("build syncer: %v\n%s", err, out)
		}
		c.syncer = bin
	}
	return c.syncer
}

// shellWords splits a command line as sh would for the simple lines of a
// README: words separated by blanks, "double" or 'single' quoted words
// kept whole, a # that begins a word starting a comment.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		case r == '#' && !inWord:
			return words
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// The checker itself can fail.
func TestShellCheck(t *testing.T) {
	if got := shellWords(`A=1 go build -ldflags "-s -w" -o x ./cmd/syncer   # c`); strings.Join(got, "|") != "A=1|go|build|-ldflags|-s -w|-o|x|./cmd/syncer" {
		t.Fatalf("shellWords: %q", got)
	}
	c := newShellCheck(t)
	for _, bad := range []string{
		"syncer scna --config x", "syncer scan --allow-mass-deletes", "syncer events tial",
		"go run ./cmd/nothere", "scripts/nothere.sh", "no-such-program-xyz arg",
	} {
		if c.check(bad) == nil {
			t.Errorf("%q passed", bad)
		}
	}
	if err := c.check("syncer events tail --source x -n 3   # ok\n\ncp a b\n"); err != nil {
		t.Error(err)
	}
}
