package worker

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/imgly/syncer/notify"
)

// addNotifications sets up the notification consumers and webhooks src
// configures, as its kind builds them (providers.Configured.Notifications,
// a notify.Offer): the worker knows no transport by name.
func (w *Worker) addNotifications(ctx context.Context, s *Source) error {
	if s.Kind.Notifications == nil {
		return nil
	}
	offer, ok := s.Kind.Notifications.(notify.Offer)
	if !ok {
		return fmt.Errorf("source %s: the kind's notification settings (%T) build no transports", s.Config.ID, s.Kind.Notifications)
	}
	eps, err := offer.Endpoints(ctx, notify.Env{App: w.router, Log: w.log, Reg: w.reg})
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if ep.Consumer != nil {
			w.consumers[ep.Name] = ep.Consumer
			w.notifiers = append(w.notifiers, &notifier{source: s.Config.ID, transport: ep.Transport, name: ep.Name, last: ep.Consumer})
		}
		if ep.Handler != nil {
			w.webhooks[ep.Path] = ep.Handler
			w.addWebhook(s.Config.ID, ep.Transport, ep.Handler)
		}
	}
	return nil
}

func (w *Worker) addWebhook(source, transport string, h http.Handler) {
	n := &notifier{source: source, transport: transport}
	n.last, _ = h.(interface{ LastMessageAt() time.Time })
	w.notifiers = append(w.notifiers, n)
}
