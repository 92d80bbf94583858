package worker

import (
	"context"
	"net/http"
	"time"

	"google.golang.org/api/option"

	"github.com/imgly/syncer/internal/sdklog"
	"github.com/imgly/syncer/notify"

	azurenotify "github.com/imgly/syncer/notify/azure"
	gcsnotify "github.com/imgly/syncer/notify/gcs"
	s3notify "github.com/imgly/syncer/notify/s3"
)

// addNotifications sets up the notification consumers and webhooks src
// configures. Webhooks are served at /webhooks/<kind>/<source id>.
func (w *Worker) addNotifications(ctx context.Context, s *Source) error {
	n := s.Config.Notifications
	id := s.Config.ID
	if n.SQS != nil {
		c, err := s3notify.NewSQSConsumer(ctx, s.Config, w.router, w.log, w.reg,
			s3notify.WithAWSOptions(sdklog.AWSOptions(w.log)...))
		if err != nil {
			return err
		}
		w.consumers["sqs/"+id] = c
		w.notifiers = append(w.notifiers, &notifier{source: id, transport: notify.TransportSQS, name: "sqs/" + id, last: c})
	}
	if n.Webhook != nil {
		// The handler answers methods itself: MinIO probes with HEAD.
		h := s3notify.NewWebhook(s.Config, w.router, w.log, w.reg)
		w.webhooks["/webhooks/s3/"+id] = h
		w.addWebhook(id, notify.TransportWebhook, h)
	}
	if n.PubSub != nil {
		c, err := gcsnotify.NewConsumer(ctx, s.Config, w.router, w.log, w.reg,
			gcsnotify.WithPubSubOptions(option.WithLogger(w.log)))
		if err != nil {
			return err
		}
		w.consumers["pubsub/"+id] = c
		w.notifiers = append(w.notifiers, &notifier{source: id, transport: notify.TransportPubSub, name: "pubsub/" + id, last: c})
	}
	if n.StorageQueue != nil {
		routeAzureLogs(w.log)
		c, err := azurenotify.NewQueueConsumer(ctx, s.Config, w.router, w.log, w.reg)
		if err != nil {
			return err
		}
		w.consumers["storagequeue/"+id] = c
		w.notifiers = append(w.notifiers, &notifier{source: id, transport: notify.TransportStorageQueue, name: "storagequeue/" + id, last: c})
	}
	if n.EventGrid != nil {
		h := azurenotify.NewWebhook(s.Config, w.router, w.log, w.reg)
		w.webhooks["/webhooks/eventgrid/"+id] = h
		w.addWebhook(id, notify.TransportEventGrid, h)
	}
	return nil
}

func (w *Worker) addWebhook(source, transport string, h http.Handler) {
	n := &notifier{source: source, transport: transport}
	n.last, _ = h.(interface{ LastMessageAt() time.Time })
	w.notifiers = append(w.notifiers, n)
}
