package worker

import (
	"context"

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
		c, err := s3notify.NewSQSConsumer(ctx, s.Config, w.router, w.log, w.reg)
		if err != nil {
			return err
		}
		w.consumers["sqs/"+id] = c
	}
	if n.Webhook != nil {
		// The handler answers methods itself: MinIO probes with HEAD.
		w.webhooks["/webhooks/s3/"+id] = s3notify.NewWebhook(s.Config, w.router, w.log, w.reg)
	}
	if n.PubSub != nil {
		c, err := gcsnotify.NewConsumer(ctx, s.Config, w.router, w.log, w.reg)
		if err != nil {
			return err
		}
		w.consumers["pubsub/"+id] = c
	}
	if n.StorageQueue != nil {
		c, err := azurenotify.NewQueueConsumer(ctx, s.Config, w.router, w.log, w.reg)
		if err != nil {
			return err
		}
		w.consumers["storagequeue/"+id] = c
	}
	if n.EventGrid != nil {
		w.webhooks["/webhooks/eventgrid/"+id] = azurenotify.NewWebhook(s.Config, w.router, w.log, w.reg)
	}
	return nil
}
