package worker_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers/kinds"
	"github.com/imgly/syncer/worker"
)

// checkEnv is one source per provider, each with its notification
// transport where the provider has one, on the emulators: gofakes3 +
// fauxqs, fake-gcs-server + pstest, Azurite blob + queue, a local
// directory, and an embedded NATS.
type checkEnv struct {
	s3    *testkit.S3
	nats  *testkit.NATS
	cfg   *config.Config
	local string
	sqs   *sqsQueue
}

func newCheckEnv(t *testing.T) *checkEnv {
	t.Helper()
	sqsEndpoint := needEnv(t, "SYNCER_TEST_SQS_ENDPOINT", "fauxqs")
	e := &checkEnv{s3: testkit.StartS3(t, nil), nats: testkit.StartNATS(t, t.TempDir(), 0)}

	e.s3.CreateBucket(t, "check-s3")
	e.s3.Put(t, "check-s3", "img/a.jpg", []byte("aaaa"), "image/jpeg")
	e.sqs = newSQSQueue(t, sqsEndpoint)
	s3src := e.s3.SourceConfig("s3src", "check-s3")
	s3src.Prefix = "img/"
	s3src.Notifications.SQS = &config.SQS{QueueURL: e.sqs.url, Endpoint: sqsEndpoint, Region: "us-east-1"}

	g := startGCS(t)
	b := g.bucket(t, "check-gcs", false)
	gcsPut(t, b, "a.png", "png")
	gcssrc := g.source("gcssrc", "check-gcs", true)

	az := startAzure(t, true)
	az.put(t, "b.txt", "bb")
	azsrc := az.source("azsrc")

	e.local = t.TempDir()
	if err := os.WriteFile(filepath.Join(e.local, "c.txt"), []byte("c"), 0o644); err != nil {
		t.Fatal(err)
	}
	localsrc := config.Source{ID: "localsrc", Provider: "local", Path: e.local}

	// A whole file, as `syncer config check --connect` would load it.
	cfg, err := config.Parse([]byte("nats: {url: \""+e.nats.URL+"\"}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sources = []config.Source{s3src, gcssrc, azsrc, localsrc}
	for i := range cfg.Sources {
		cfg.Sources[i].Schedule = "@every 1h"
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	return e
}

func (e *checkEnv) createStream(t *testing.T, subjects ...string) {
	t.Helper()
	if len(subjects) == 0 {
		subjects = []string{e.cfg.NATS.SubjectPrefix + ".>"}
	}
	nc, err := nats.Connect(e.nats.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name: e.cfg.NATS.Stream, Subjects: subjects,
	}); err != nil {
		t.Fatal(err)
	}
}

func (e *checkEnv) streamExists(t *testing.T) bool {
	t.Helper()
	nc, err := nats.Connect(e.nats.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	_, err = js.Stream(t.Context(), e.cfg.NATS.Stream)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// table parses Check's output into CHECK -> the rest of its line.
func table(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "CHECK") {
		t.Fatalf("no table:\n%s", out)
	}
	rows := map[string]string{}
	for _, l := range lines[1:] {
		// CHECK is "source <id> <what>" or "nats <what>": up to the
		// first run of two spaces.
		check, rest, _ := strings.Cut(l, "  ")
		rows[strings.TrimSpace(check)] = strings.TrimSpace(rest)
	}
	return rows
}

func result(row string) string {
	for _, f := range strings.Fields(row) {
		if f == "ok" || f == "FAIL" || f == "skipped" {
			return f
		}
	}
	return "?"
}

var allChecks = []string{
	"source s3src list", "source s3src stat", "source s3src sqs",
	"source gcssrc list", "source gcssrc stat", "source gcssrc pubsub",
	"source azsrc list", "source azsrc stat", "source azsrc storageQueue",
	"source localsrc list", "source localsrc stat",
	"nats connect", "nats stream",
}

func TestCheckAllGreen(t *testing.T) {
	e := newCheckEnv(t)
	e.createStream(t)
	var out bytes.Buffer
	if err := worker.Check(context.Background(), e.cfg, kinds.All(), &out); err != nil {
		t.Errorf("Check: %v\n%s", err, out.String())
	}
	rows := table(t, out.String())
	for _, c := range allChecks {
		row, ok := rows[c]
		if !ok {
			t.Errorf("no line for %q:\n%s", c, out.String())
			continue
		}
		if result(row) != "ok" {
			t.Errorf("%s: %s", c, row)
		}
	}
	if len(rows) != len(allChecks) {
		t.Errorf("%d lines, want %d:\n%s", len(rows), len(allChecks), out.String())
	}
	for c, want := range map[string]string{
		"source s3src stat": "img/a.jpg: 4 bytes", "source gcssrc stat": "a.png: 3 bytes",
		"source azsrc stat": "b.txt: 2 bytes", "source localsrc stat": "c.txt: 1 bytes",
	} {
		if !strings.Contains(rows[c], want) {
			t.Errorf("%s: %q lacks %q", c, rows[c], want)
		}
	}
	t.Logf("\n%s", out.String())
}

// TestCheckMissingStream: a stream that is not there yet is fine (syncer
// run creates it), and the check does not create it.
func TestCheckMissingStream(t *testing.T) {
	e := newCheckEnv(t)
	var out bytes.Buffer
	if err := worker.Check(context.Background(), e.cfg, kinds.All(), &out); err != nil {
		t.Errorf("Check: %v\n%s", err, out.String())
	}
	if row := table(t, out.String())["nats stream"]; result(row) != "ok" || !strings.Contains(row, "creates it") {
		t.Errorf("nats stream: %s", row)
	}
	if e.streamExists(t) {
		t.Error("Check created the stream")
	}
}

// TestCheckFailures: a missing bucket, missing queues and subscription, a
// missing directory and NATS down are each reported on their own line, the
// others stay green, and Check fails.
func TestCheckFailures(t *testing.T) {
	e := newCheckEnv(t)
	src := e.cfg.Sources
	src[0].Bucket = "no-such-bucket"
	src[0].Notifications.SQS.QueueURL = strings.TrimSuffix(e.sqs.url, "/") + "-missing"
	src[1].Notifications.PubSub.Subscription = "no-such-subscription"
	src[2].Notifications.StorageQueue.Queue = "no-such-queue"
	missingDir := filepath.Join(t.TempDir(), "missing")
	src[3].Path = missingDir
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.NATS.URL = "nats://user:secret-pw@" + l.Addr().String()
	l.Close()

	var out bytes.Buffer
	err = worker.Check(context.Background(), e.cfg, kinds.All(), &out)
	if err == nil {
		t.Fatalf("Check succeeded:\n%s", out.String())
	}
	if !strings.Contains(err.Error(), "6 of 13 checks failed") {
		t.Errorf("error %q", err)
	}
	rows := table(t, out.String())
	fail := map[string]string{
		"source s3src list":         "no-such-bucket",
		"source s3src sqs":          "GetQueueAttributes",
		"source gcssrc pubsub":      "no-such-subscription",
		"source azsrc storageQueue": "no-such-queue",
		"source localsrc list":      missingDir,
		"nats connect":              "connect",
	}
	for c, what := range fail {
		if row := rows[c]; result(row) != "FAIL" || !strings.Contains(row, what) {
			t.Errorf("%s: want FAIL naming %q, got %q", c, what, row)
		}
	}
	for _, c := range []string{"source s3src stat", "source localsrc stat", "nats stream"} {
		if result(rows[c]) != "skipped" {
			t.Errorf("%s: %s (depends on a failed check, want skipped)", c, rows[c])
		}
	}
	for _, c := range []string{"source gcssrc list", "source gcssrc stat", "source azsrc list", "source azsrc stat"} {
		if result(rows[c]) != "ok" {
			t.Errorf("%s: %s (unaffected, want ok)", c, rows[c])
		}
	}
	if strings.Contains(out.String(), "secret-pw") {
		t.Errorf("the NATS password is in the output:\n%s", out.String())
	}
	if _, err := os.Stat(missingDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Check created the missing directory (%v)", err)
	}
	// Nothing was written: the bucket holds what it held.
	res, err := e.s3.Client.ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: aws.String("check-s3")})
	if err != nil || len(res.Contents) != 1 {
		t.Errorf("bucket after Check: %v objects, err %v", len(res.Contents), err)
	}
	t.Logf("\n%s", out.String())
}

// TestCheckStreamSubjects: a stream that exists but does not capture a
// source's subject fails the check; one that names each subject passes.
func TestCheckStreamSubjects(t *testing.T) {
	e := newCheckEnv(t)
	e.cfg.Sources = e.cfg.Sources[3:] // the local source is enough here
	prefix := e.cfg.NATS.SubjectPrefix
	e.createStream(t, "other.>", prefix+".*.extra")
	var out bytes.Buffer
	if err := worker.Check(context.Background(), e.cfg, kinds.All(), &out); err == nil {
		t.Errorf("Check succeeded:\n%s", out.String())
	}
	if row := table(t, out.String())["nats stream"]; result(row) != "FAIL" || !strings.Contains(row, prefix+".localsrc") {
		t.Errorf("nats stream: %s", row)
	}

	e.cfg.NATS.Stream = "EXACT"
	nc, err := nats.Connect(e.nats.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "EXACT", Subjects: []string{prefix + ".localsrc"}}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := worker.Check(context.Background(), e.cfg, kinds.All(), &out); err != nil {
		t.Errorf("Check: %v\n%s", err, out.String())
	}
}
