package s3

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/notify"
)

// A receive whose connection stalls (the server accepts and never answers)
// is given up after the long-poll wait plus the source's requestTimeout; the
// consumer receives again and the next message is applied, instead of the
// poller hanging for good.
func TestSQSStalledReceiveIsGivenUp(t *testing.T) {
	e := newEnv(t, 5*time.Second)
	proxy := testkit.StartFaultProxy(t, e.endpoint, 1)
	isReceive := func(r *http.Request) bool {
		return strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".ReceiveMessage")
	}
	proxy.Next(1, isReceive, testkit.Stall())
	rec := newRecorder()
	src := config.Source{ID: "lib", Provider: "s3", Bucket: "media", RequestTimeout: time.Second,
		Notifications: config.Notifications{SQS: &config.SQS{
			QueueURL: e.queueURL, Endpoint: proxy.URL, Concurrency: 1, VisibilityTimeout: 5 * time.Second, WaitTime: time.Second,
		}}}
	c, err := NewSQSConsumer(t.Context(), notificationsOf(t, src), rec, testLogger(t), nil, WithAWSOptions(awsTestOptions()...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		proxy.Release()
		<-done
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := proxy.WaitStalled(wctx, 1); err != nil {
		t.Fatalf("the receive never reached the stall: %v", err)
	}
	e.send(t, recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "after-stall.png", Size: 1, Sequencer: "0A"})))
	rec.waitFor(t, 15*time.Second, "the message sent after the stall", func(ev []notify.Event) bool { return len(ev) == 1 })
}
