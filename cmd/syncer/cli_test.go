package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
)

// binary is syncer built once for the package's tests: static and
// stripped, as the README says to build it, so every test runs the binary
// an operator would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "syncer-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "syncer")
	// -buildvcs=auto: the environment may default to false, and the
	// version test wants the revision whenever there is one to stamp.
	build := exec.Command("go", "build", "-buildvcs=auto", "-trimpath", "-ldflags", "-s -w", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build syncer: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCLI runs the built binary to completion (at most 2 minutes).
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLIEnv(t, nil, args...)
}

// runCLIEnv is runCLI with extra environment variables ("K=V").
func runCLIEnv(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("syncer %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// proc is a syncer started in the background.
type proc struct {
	cmd    *exec.Cmd
	stdout *lineReader
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.stdout = newLineReader(out)
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // may have exited
		<-p.done
	})
	return p
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
	select {
	case <-p.done:
		return p.code
	case <-time.After(30 * time.Second):
		t.Fatalf("syncer did not stop within 30 s of SIGTERM; stderr: %s", p.stderr)
		return 0
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// lineReader hands out stdout lines as they arrive.
type lineReader struct{ lines chan string }

func newLineReader(r io.Reader) *lineReader {
	l := &lineReader{lines: make(chan string, 1024)}
	go func() {
		defer close(l.lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
	}()
	return l
}

// next waits up to d for the next line; ok is false on timeout or EOF.
func (l *lineReader) next(d time.Duration) (string, bool) {
	select {
	case s, ok := <-l.lines:
		return s, ok
	case <-time.After(d):
		return "", false
	}
}

// freePort is a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHTTP polls url until it answers 200 or the deadline passes.
func waitHTTP(t *testing.T, url string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("syncer exited %d; stderr: %s", p.code, p.stderr)
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond) // polling an external process
	}
	t.Fatalf("%s did not answer within 30 s; stderr: %s", url, p.stderr)
}

func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, s := range c.Commands() {
		walk(s, fn)
	}
}

// TestHelpEverywhere asks every command and group of the real tree, cobra's
// own included, for its help both ways.
func TestHelpEverywhere(t *testing.T) {
	root := newRoot(io.Discard, io.Discard)
	n := 0
	walk(root, func(c *cobra.Command) {
		if c.Hidden || strings.HasPrefix(c.Name(), "__") {
			return
		}
		path := strings.Fields(c.CommandPath())[1:]
		for _, h := range []string{"--help", "-h"} {
			n++
			code, stdout, stderr := runCLI(t, append(path, h)...)
			if code != 0 || stderr != "" {
				t.Errorf("%s %s: exit %d, stderr %q", c.CommandPath(), h, code, stderr)
				continue
			}
			for _, want := range []string{"Usage:", "Example", c.Short} {
				if !strings.Contains(stdout, want) {
					t.Errorf("%s %s: no %q in\n%s", c.CommandPath(), h, want, stdout)
				}
			}
			c.Flags().VisitAll(func(f *pflag.Flag) {
				if !strings.Contains(stdout, "--"+f.Name+" ") {
					t.Errorf("%s %s: flag --%s not in its help", c.CommandPath(), h, f.Name)
				}
				if strings.Contains(f.Usage, "`") {
					t.Errorf("%s: usage of --%s has a backtick", c.CommandPath(), f.Name)
				}
			})
		}
	})
	if n < 20 {
		t.Fatalf("only %d help pages checked; the tree walk is broken", n)
	}

	_, runHelp, _ := runCLI(t, "run", "--help")
	code, helpRun, stderr := runCLI(t, "help", "run")
	if code != 0 || helpRun != runHelp {
		t.Errorf("help run: exit %d, stderr %q, stdout differs from run --help:\n%s", code, stderr, helpRun)
	}
	code, helpTail, _ := runCLI(t, "help", "events", "tail")
	if code != 0 || !strings.Contains(helpTail, "--since") {
		t.Errorf("help events tail: exit %d:\n%s", code, helpTail)
	}
}

func TestUsageErrorsOneLine(t *testing.T) {
	cases := []struct {
		args      []string
		want, see string
	}{
		{nil, "missing command", "syncer"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, "syncer"},
		{[]string{"scan", "--bogus"}, "unknown flag: --bogus", "syncer scan"},
		{[]string{"events", "tail", "-x"}, "unknown shorthand flag: 'x'", "syncer events tail"},
		{[]string{"scan", "--source", "x"}, "--config is required", "syncer scan"},
		{[]string{"scan", "--config", "x.yaml"}, "--source is required", "syncer scan"},
		{[]string{"scan", "extra"}, `unknown command "extra"`, "syncer scan"},
		{[]string{"catalog", "ls", "--limit", "many"}, `invalid argument "many"`, "syncer catalog ls"},
		{[]string{"events"}, "missing subcommand", "syncer events"},
		{[]string{"events", "frob"}, `unknown command "frob" for "syncer events"`, "syncer events"},
		{[]string{"catalog"}, "missing subcommand", "syncer catalog"},
		{[]string{"config", "chek"}, `(did you mean "check"?)`, "syncer config"},
		{[]string{"help", "frob"}, `unknown help topic "frob"`, "syncer help"},
		{[]string{"events", "tail", "--since", "yesterday"}, `--since "yesterday"`, "syncer events tail"},
		{[]string{"events", "tail", "--all", "--since", "1h"}, "exclude each other", "syncer events tail"},
		{[]string{"status", "-o", "yaml"}, `--output "yaml"`, "syncer status"},
	}
	for _, tc := range cases {
		code, stdout, stderr := runCLI(t, tc.args...)
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		if code != 2 || stdout != "" || len(lines) != 2 ||
			!strings.HasPrefix(lines[0], "syncer: ") || !strings.Contains(lines[0], tc.want) ||
			lines[1] != fmt.Sprintf("See '%s --help'.", tc.see) {
			t.Errorf("syncer %v: exit %d, stdout %q, stderr %q; want exit 2, one line with %q and See '%s --help'.",
				tc.args, code, stdout, stderr, tc.want, tc.see)
		}
	}
	if _, _, stderr := runCLI(t, "scan", "--bogus"); strings.Count(stderr, "bogus") != 1 {
		t.Errorf("unknown flag named %d times: %q", strings.Count(stderr, "bogus"), stderr)
	}
}

// builtRevision is the revision the toolchain stamped into the binary, ""
// when it had none (no VCS, or a git worktree the toolchain does not read).
func builtRevision(t *testing.T) string {
	t.Helper()
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}

func TestVersion(t *testing.T) {
	rev := builtRevision(t)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, %s", args, code, stderr)
		}
		if rev == "" {
			t.Logf("the toolchain stamped no VCS revision here; %v printed %q", args, stdout)
			if stdout != "syncer dev\n" && !regexp.MustCompile(`^syncer v\S+ \(go1\.`).MatchString(stdout) {
				t.Errorf("%v: %q", args, stdout)
			}
			continue
		}
		re := regexp.MustCompile(`^syncer v\S+ \(revision ` + rev[:7] + `(-dirty)?, go1\.\d+[^)]*\)\n$`)
		if !re.MatchString(stdout) {
			t.Errorf("%v: %q does not match %s", args, stdout, re)
		}
	}
}

// TestStaticBinary checks that the README's build is static, and starts.
func TestStaticBinary(t *testing.T) {
	f, err := elf.Open(binary)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a PT_INTERP program header: dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("DT_NEEDED %v (err %v): dynamically linked", libs, err)
	}
	if f.Section(".debug_info") != nil || f.Section(".symtab") != nil {
		t.Error("the binary is not stripped")
	}

	port := freePort(t)
	dir := t.TempDir()
	assets := filepath.Join(dir, "assets")
	if err := os.Mkdir(assets, 0o755); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, fmt.Sprintf(`
nats: {url: embedded, listen: "127.0.0.1:%d", storeDir: %q}
catalog: {path: %q}
http: {listen: "127.0.0.1:%d"}
sources:
  - {id: assets, provider: local, path: %q}
`, freePort(t), filepath.Join(dir, "nats"), filepath.Join(dir, "catalog"), port, assets))
	p := start(t, nil, "run", "--config", path)
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), p)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM; stderr: %s", code, p.stderr)
	}
	if regexp.MustCompile(`=\d{7,}\b`).MatchString(p.stderr.String()) {
		t.Errorf("a log line has nanoseconds:\n%s", p.stderr)
	}
}

// TestStartupFailures: every failure to start is one line naming what
// failed and why, exit 1, never a panic.
func TestStartupFailures(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.Addr().String()

	lockedDir := t.TempDir()
	held, err := catalog.Open(lockedDir)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	config := func(natsListen, httpListen, catalogDir string) string {
		return writeConfig(t, fmt.Sprintf(`
nats: {url: embedded, listen: %q, storeDir: %q}
catalog: {path: %q}
http: {listen: %q}
sources:
  - {id: assets, provider: local, path: %q}
`, natsListen, t.TempDir(), catalogDir, httpListen, t.TempDir()))
	}
	free := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	cases := []struct {
		name, config string
		want         []string
	}{
		{"http port in use", config(free(), busyAddr, t.TempDir()),
			[]string{"syncer: http.listen " + busyAddr + ": address already in use"}},
		{"nats port in use", config(busyAddr, free(), t.TempDir()),
			[]string{"syncer: nats.listen " + busyAddr + ": address already in use"}},
		{"http.listen without port", config(free(), "8080", t.TempDir()),
			[]string{"http.listen", `"8080" has no host`}},
		{"catalog locked", config(free(), free(), lockedDir),
			[]string{"syncer: catalog " + lockedDir + ": locked by another process (is another syncer using it?)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "run", "--config", tc.config)
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if code != 1 || len(lines) != 1 || !strings.HasPrefix(stderr, "syncer: ") {
				t.Errorf("exit %d, stderr %q; want exit 1 and one line", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			for _, bad := range []string{"panic", "goroutine"} {
				if strings.Contains(stdout+stderr, bad) {
					t.Errorf("output has %q: %s%s", bad, stdout, stderr)
				}
			}
		})
	}
}

// TestConfigErrorsExit1: a bad config is a failure (exit 1), one line per
// problem, each prefixed; not a usage error.
func TestConfigErrorsExit1(t *testing.T) {
	path := writeConfig(t, "nats: {url: embedded, stream: \"no spaces\"}\nevents: {maxChanges: -1}\n")
	for _, args := range [][]string{{"run", "--config", path}, {"config", "check", "--config", path}} {
		code, _, stderr := runCLI(t, args...)
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		if code != 1 || len(lines) != 2 || !strings.Contains(stderr, "nats.stream") || !strings.Contains(stderr, "events.maxChanges") {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and a line per problem", args, code, stderr)
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, "syncer: ") {
				t.Errorf("%v: line %q lacks the prefix", args, l)
			}
		}
	}
}

func TestHumanAges(t *testing.T) {
	for d, want := range map[time.Duration]string{
		12 * time.Second: "12s", 4 * time.Minute: "4m", 4*time.Minute + 12*time.Second: "4m12s",
		25 * time.Minute: "25m", 90 * time.Minute: "1h30m", 5 * time.Hour: "5h", 72 * time.Hour: "3d",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestLogDurationsReadable(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		newLogger(config.Log{Level: "info", Format: format}, &buf).Info("scan done", "took", 1500*time.Millisecond,
			slog.Group("g", "wait", 250*time.Millisecond))
		out := buf.String()
		if !strings.Contains(out, "1.5s") || !strings.Contains(out, "250ms") || strings.Contains(out, "1500000000") {
			t.Errorf("%s: %s", format, out)
		}
	}
}
