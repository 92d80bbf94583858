package s3

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// End to end: notification bodies on a real SQS-protocol queue (fauxqs) or
// POSTed to the webhook, through the consumer, the notify.Router (stats
// against gofakes3) into the bbolt catalog and its outbox.

type e2e struct {
	s3     *testkit.S3
	bucket string
	cat    *catalog.Source
	router *notify.Router
	reg    *prometheus.Registry
}

func newE2E(t *testing.T, versioned bool) *e2e {
	t.Helper()
	return newE2EWith(t, versioned, notify.RouterOptions{})
}

func newE2EWith(t *testing.T, versioned bool, opts notify.RouterOptions) *e2e {
	t.Helper()
	srv := testkit.StartS3(t, nil)
	const bucket = "media"
	srv.CreateBucket(t, bucket)
	if versioned {
		if _, err := srv.Client.PutBucketVersioning(t.Context(), &awss3.PutBucketVersioningInput{
			Bucket:                  aws.String(bucket),
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
		}); err != nil {
			t.Fatal(err)
		}
	}
	cat, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cat.Close() })
	reg := prometheus.NewRegistry()
	opts.Log, opts.Registerer = testLogger(t), reg
	prov, err := New(t.Context(), Config(srv.ProviderConfig(bucket)))
	if err != nil {
		t.Fatal(err)
	}
	src := cat.Source("lib", prov.Order())
	router, err := notify.NewRouter([]notify.Route{{
		SourceID: "lib", Provider: "s3", Bucket: bucket,
		Filter: providers.Filter{Prefix: "photos/"}, Store: prov, Catalog: src,
	}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &e2e{s3: srv, bucket: bucket, cat: src, router: router, reg: reg}
}

func (x *e2e) put(t *testing.T, key, body string) (etag, version string) {
	t.Helper()
	out, err := x.s3.Client.PutObject(t.Context(), &awss3.PutObjectInput{
		Bucket: aws.String(x.bucket), Key: aws.String(key), Body: strings.NewReader(body), ContentType: aws.String("image/png"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Trim(aws.ToString(out.ETag), `"`), aws.ToString(out.VersionId)
}

func (x *e2e) del(t *testing.T, key, version string) string {
	t.Helper()
	in := &awss3.DeleteObjectInput{Bucket: aws.String(x.bucket), Key: aws.String(key)}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	out, err := x.s3.Client.DeleteObject(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.VersionId)
}

func (x *e2e) entry(t *testing.T, key string) (catalog.Entry, bool) {
	t.Helper()
	e, ok, err := x.cat.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return e, ok
}

// changes returns the outbox's changes per key.
func (x *e2e) changes(t *testing.T) map[string][]catalog.Op {
	t.Helper()
	chs, err := x.cat.Outbox(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]catalog.Op{}
	for _, c := range chs {
		m[c.Object.Key] = append(m[c.Object.Key], c.Op)
	}
	return m
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// flakyApplier fails the first Apply that contains key: a crash between
// receiving a message and committing it.
type flakyApplier struct {
	notify.Applier
	key    string
	mu     sync.Mutex
	failed int
}

func (f *flakyApplier) Apply(ctx context.Context, events []notify.Event) error {
	f.mu.Lock()
	for _, ev := range events {
		if ev.Key == f.key && f.failed < 2 {
			// Fail the batch's Apply and the message's own retry within
			// the same delivery.
			f.failed++
			if len(events) == 1 {
				f.failed = 2
			}
			f.mu.Unlock()
			return errors.New("crashed before commit")
		}
	}
	f.mu.Unlock()
	return f.Applier.Apply(ctx, events)
}

func TestE2ESQS(t *testing.T) {
	const visibility = time.Second
	q := newEnv(t, visibility)
	x := newE2E(t, false)
	wrapped := q.topic(t, false)
	app := &flakyApplier{Applier: x.router, key: "photos/crash.png"}
	c := startConsumer(t, q, app, visibility, nil)
	m := tallyOf(c.Tally())
	applied := 0
	// send delivers one body and waits until the consumer has finished it.
	send := func(deliver func()) {
		t.Helper()
		before := counter(m.messages, outApplied) + counter(m.messages, outSkipped) + counter(m.messages, outMalformed)
		deliver()
		eventually(t, 20*time.Second, "the message to be handled", func() bool {
			return counter(m.messages, outApplied)+counter(m.messages, outSkipped)+counter(m.messages, outMalformed) > before
		})
	}

	// A create, form-encoded key: committed as the record says.
	etag, _ := x.put(t, "photos/red flower.png", "hello")
	created := recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "photos/red+flower.png", Size: 5, ETag: etag, Sequencer: "0A"}))
	send(func() { q.send(t, created) })
	e, ok := x.entry(t, "photos/red flower.png")
	if !ok || e.Size != 5 || e.ETag != md5hex("hello") || e.LastModified.IsZero() {
		t.Fatalf("entry %+v %v", e, ok)
	}
	applied++

	// A duplicate changes nothing.
	send(func() { q.send(t, created) })
	applied++

	// Reordering: the delete arrives before the create it follows; the
	// object is gone by now and must not be resurrected.
	x.put(t, "photos/late.png", "x")
	x.del(t, "photos/late.png", "")
	send(func() {
		q.send(t, recordsBody(awsRecord("ObjectRemoved:Delete", "media", obj{Key: "photos/late.png", Sequencer: "0F"})))
	})
	send(func() {
		q.send(t, recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "photos/late.png", Size: 1, Sequencer: "0E"})))
	})
	applied += 2
	if _, ok := x.entry(t, "photos/late.png"); ok {
		t.Fatal("a late create resurrected a deleted object")
	}

	// Through SNS, and from EventBridge; then deleted through EventBridge.
	etag, _ = x.put(t, "photos/sns.png", "sns!")
	send(func() {
		q.publish(t, wrapped, recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "photos/sns.png", Size: 4, ETag: etag, Sequencer: "10"})))
	})
	etag, _ = x.put(t, "photos/eb c++.png", "eventbridge")
	send(func() {
		q.send(t, eventBridgeBody("Object Created", "media", ebObj{Key: "photos/eb+c%2B%2B.png", Size: 11, ETag: etag, Sequencer: "11"}, "PutObject", ""))
	})
	applied += 2
	for _, k := range []string{"photos/sns.png", "photos/eb c++.png"} {
		if _, ok := x.entry(t, k); !ok {
			t.Fatalf("%s not in the catalog", k)
		}
	}
	x.del(t, "photos/eb c++.png", "")
	send(func() {
		q.send(t, eventBridgeBody("Object Deleted", "media", ebObj{Key: "photos/eb+c%2B%2B.png", Sequencer: "12"}, "DeleteObject", "Permanently Deleted"))
	})
	applied++
	if _, ok := x.entry(t, "photos/eb c++.png"); ok {
		t.Fatal("EventBridge delete not applied")
	}

	// Outside the source's prefix, another bucket, a test event: no change.
	x.put(t, "other/x.png", "x")
	send(func() {
		q.send(t, recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "other/x.png", Size: 1, Sequencer: "13"})))
	})
	applied++
	send(func() {
		q.send(t, recordsBody(awsRecord("ObjectCreated:Put", "elsewhere", obj{Key: "photos/x.png", Size: 1, Sequencer: "14"})))
	})
	applied++ // by the Router, which counts it foreign
	send(func() { q.publish(t, wrapped, testEventBody("media")) })

	// A crash between receive and commit: the message comes back after its
	// visibility timeout and is committed once.
	x.put(t, "photos/crash.png", "boom")
	start := time.Now()
	q.send(t, recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "photos/crash.png", Size: 4, Sequencer: "15"})))
	applied++
	eventually(t, 20*time.Second, "the crashed message to be committed", func() bool { return counter(m.messages, outApplied) == applied })
	if d := time.Since(start); d < visibility {
		t.Errorf("committed after %v: before the visibility timeout", d)
	}
	eventually(t, 10*time.Second, "the queue to drain", func() bool { return q.inQueue(t) == 0 })

	want := map[string][]catalog.Op{
		"photos/red flower.png": {catalog.Added},
		"photos/sns.png":        {catalog.Added},
		"photos/eb c++.png":     {catalog.Added, catalog.Deleted},
		"photos/crash.png":      {catalog.Added},
	}
	got := x.changes(t)
	if len(got) != len(want) {
		t.Fatalf("outbox %v, want %v", got, want)
	}
	for k, ops := range want {
		if strings.Join(opStrings(got[k]), ",") != strings.Join(opStrings(ops), ",") {
			t.Errorf("%s: %v, want %v", k, got[k], ops)
		}
	}
	if n := counter(m.messages, outApplyFailed); n != 1 {
		t.Errorf("apply_failed = %d", n)
	}
	// The Router, not the parser, decides that no source watches a bucket.
	foreign := testutil.ToFloat64(notify.NewMetrics(x.reg).Total.WithLabelValues("lib", TransportSQS, notify.OutcomeSkippedForeign))
	if foreign != 1 {
		t.Errorf("foreign = %v", foreign)
	}
}

func opStrings(ops []catalog.Op) []string {
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = o.String()
	}
	return s
}

// TestE2EVersioned: deleting a non-current version leaves the object; a
// delete marker removes it.
func TestE2EVersioned(t *testing.T) {
	q := newEnv(t, 5*time.Second)
	x := newE2E(t, true)
	c := startConsumer(t, q, x.router, 5*time.Second, nil)
	wait := func(n int) {
		t.Helper()
		eventually(t, 20*time.Second, "the message to be applied", func() bool { return counter(tallyOf(c.Tally()).messages, outApplied) == n })
	}
	_, v1 := x.put(t, "photos/v.png", "one")
	etag2, v2 := x.put(t, "photos/v.png", "two!")
	if v1 == "" || v2 == "" || v1 == v2 {
		t.Fatalf("versioning not enabled: %q %q", v1, v2)
	}
	q.send(t, recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "photos/v.png", Size: 4, ETag: etag2, VersionID: v2, Sequencer: "20"})))
	wait(1)
	// gofakes3's HEAD omits x-amz-version-id, so the entry's Version stays
	// empty here; size and ETag tell the versions apart.
	if e, ok := x.entry(t, "photos/v.png"); !ok || e.Size != 4 || e.ETag != etag2 {
		t.Fatalf("entry %+v %v", e, ok)
	}

	// The old version is deleted: the current one stays.
	x.del(t, "photos/v.png", v1)
	q.send(t, recordsBody(awsRecord("ObjectRemoved:Delete", "media", obj{Key: "photos/v.png", VersionID: v1, Sequencer: "21"})))
	wait(2)
	if e, ok := x.entry(t, "photos/v.png"); !ok || e.ETag != etag2 {
		t.Fatalf("deleting a non-current version removed the object: %+v %v", e, ok)
	}

	// A plain delete creates a delete marker: the object is gone.
	marker := x.del(t, "photos/v.png", "")
	q.send(t, recordsBody(awsRecord("ObjectRemoved:DeleteMarkerCreated", "media", obj{Key: "photos/v.png", VersionID: marker, Sequencer: "22"})))
	wait(3)
	if _, ok := x.entry(t, "photos/v.png"); ok {
		t.Fatal("a delete marker did not remove the object")
	}
	if got := x.changes(t)["photos/v.png"]; strings.Join(opStrings(got), ",") != "added,deleted" {
		t.Fatalf("outbox %v", got)
	}
}

// TestRouterTrustsFreshEventsAndVerifiesLateOnes: a complete create is
// committed as it says while it is fresh, without a request to the store;
// one older than VerifyAfter is decided by the store's current state.
func TestRouterTrustsFreshEventsAndVerifiesLateOnes(t *testing.T) {
	x := newE2EWith(t, false, notify.RouterOptions{VerifyAfter: 10 * time.Second})
	etag, _ := x.put(t, "photos/real.png", "current")
	now := time.Now()
	create := func(key string, at time.Time, seq string) notify.Event {
		return notify.Event{Provider: "s3", Bucket: "media", Key: key, Kind: notify.Upsert, Complete: true,
			Sequencer: seq, Time: at, ID: key,
			Object: providers.Object{Key: key, Size: 3, ETag: "from-the-record", LastModified: at}}
	}
	err := x.router.Apply(t.Context(), []notify.Event{
		// Not in the store (gofakes3 would say so): a fresh event is
		// trusted, a late one is checked and found gone.
		create("photos/fresh.png", now.Add(-time.Second), "01"),
		create("photos/late.png", now.Add(-time.Minute), "01"),
		// Late, and the store has moved on: its state wins.
		create("photos/real.png", now.Add(-time.Minute), "01"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := x.entry(t, "photos/fresh.png"); !ok || e.ETag != "from-the-record" || e.Size != 3 {
		t.Fatalf("fresh create: entry %+v %v, want the record's state", e, ok)
	}
	if e, ok := x.entry(t, "photos/late.png"); ok {
		t.Fatalf("a late create of a key the store no longer has was applied: %+v", e)
	}
	if e, ok := x.entry(t, "photos/real.png"); !ok || e.ETag != etag || e.Size != int64(len("current")) {
		t.Fatalf("late create: entry %+v %v, want the store's ETag %s", e, ok, etag)
	}
}

// TestE2EWebhook: a MinIO-style POST commits through the router; a wrong
// token commits nothing.
func TestE2EWebhook(t *testing.T) {
	x := newE2E(t, false)
	src := config.Source{ID: "lib", Provider: "s3", Bucket: "media", Notifications: config.Notifications{Webhook: &config.Webhook{Token: testToken}}}
	srv := httptest.NewServer(NewWebhook(notificationsOf(t, src), x.router, testLogger(t), nil))
	t.Cleanup(srv.Close)
	post := func(token, body string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	etag, _ := x.put(t, "photos/minio dir/a+b.png", "minio")
	body := minioBody("s3:ObjectCreated:Put", "media", "photos/minio dir/a+b.png", obj{Size: 5, ETag: etag, Sequencer: "17A9E1B2C3D4E5F6"})
	if code := post("wrong", body); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	if _, ok := x.entry(t, "photos/minio dir/a+b.png"); ok {
		t.Fatal("applied without a valid token")
	}
	if code := post(testToken, body); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if e, ok := x.entry(t, "photos/minio dir/a+b.png"); !ok || e.Size != 5 {
		t.Fatalf("entry %+v %v", e, ok)
	}
}
