package worker

import (
	"context"
)

// addNotifications sets up the notification consumers and webhooks src
// configures.
func (w *Worker) addNotifications(ctx context.Context, s *Source) error {
	return nil
}
