package livetest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// Testenv is the absolute path of the repository's testenv/ (whose
// node_modules hold node 22 and the npm packages the scripts load).
func Testenv(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testenv")
}

// Node is testenv's node 22, after checking that the packages are there:
// missing, the test fails in CI (the test command installs them) and is
// skipped elsewhere.
func Node(t testing.TB, packages ...string) string {
	t.Helper()
	env := Testenv(t)
	for _, p := range append([]string{".bin/node"}, packages...) {
		if _, err := os.Stat(filepath.Join(env, "node_modules", p)); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("testenv/node_modules lacks %s: the test command must run npm ci in testenv", p)
			}
			t.Skipf("testenv/node_modules lacks %s (cd testenv && npm ci)", p)
		}
	}
	return filepath.Join(env, "node_modules", ".bin", "node")
}

// Run runs cmd (a node script speaking the Op protocol), does what it asks
// on s, and returns its result line. It fails the test when the script
// fails, says so, or does not finish within timeout.
func (s *Syncer) Run(t testing.TB, timeout time.Duration, cmd *exec.Cmd) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Dir, c.Env = cmd.Dir, cmd.Env
	if c.Env == nil {
		c.Env = os.Environ()
	}
	c.Env = append(c.Env, "TESTENV="+Testenv(t))
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	var last string
	var transcript strings.Builder
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		transcript.WriteString(line + "\n")
		var op Op
		if err := json.Unmarshal([]byte(line), &op); err != nil || op.Op == "" {
			if strings.HasPrefix(line, `{"op"`) {
				t.Errorf("livetest: bad op %s: %v", line, err)
			}
			last = line
			continue
		}
		s.do(t, op)
		io.WriteString(stdin, "ok\n") //nolint:errcheck // a dead script fails below
	}
	if err := sc.Err(); err != nil {
		t.Errorf("livetest: reading the script's output: %v", err)
	}
	stdin.Close()
	werr := c.Wait()
	if os.Getenv("LIVETEST_VERBOSE") != "" {
		t.Logf("%s stderr:\n%s", filepath.Base(cmd.Args[len(cmd.Args)-1]), stderr.String())
	}
	var res map[string]any
	if json.Unmarshal([]byte(last), &res) != nil || werr != nil || res["ok"] != true {
		t.Fatalf("%s: %v (ctx: %v)\nstdout:\n%s\nstderr:\n%s", filepath.Base(cmd.Args[len(cmd.Args)-1]), werr, ctx.Err(),
			transcript.String(), stderr.String())
	}
	return res
}

func (s *Syncer) do(t testing.TB, op Op) {
	t.Helper()
	switch op.Op {
	case "put":
		s.Put(t, op.Bucket, op.Key, op.Body, op.ContentType)
	case "delete":
		s.Delete(t, op.Bucket, op.Key)
	case "stop":
		s.Stop(t)
	case "start":
		s.Start(t)
	case "burst":
		if op.Senders > 1 {
			s.burst(t, op)
			return
		}
		for i := range op.N {
			s.Put(t, op.Bucket, fmt.Sprintf("%s-%04d.png", op.Key, i), []byte("burst"), "image/png")
		}
	default:
		t.Fatalf("livetest: unknown op %q", op.Op)
	}
}

// burst puts op.N objects from op.Senders concurrent senders, each as fast
// as its PUTs (and their webhook announcements) return, as a bulk upload
// tool would.
func (s *Syncer) burst(t testing.TB, op Op) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, op.Senders)
	for c := range op.Senders {
		wg.Go(func() {
			for i := c; i < op.N; i += op.Senders {
				key := fmt.Sprintf("%s-%04d.png", op.Key, i)
				_, err := s.S3.Client.PutObject(context.Background(), &awss3.PutObjectInput{
					Bucket: aws.String(op.Bucket), Key: aws.String(key), Body: strings.NewReader("burst"),
					ContentType: aws.String("image/png"),
				})
				if err != nil {
					errs <- fmt.Errorf("put %s: %w", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("livetest: burst: %v", err)
	}
}
