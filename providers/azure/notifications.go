package azure

import (
	"context"
	"time"

	"github.com/imgly/syncer/notify"
)

// Transports (label "transport" of the notification metrics, and the keys
// under a source's notifications).
const (
	TransportStorageQueue = "storageQueue"
	TransportEventGrid    = "eventGrid"
)

// Notifications are the notification settings of one Azure source, as its
// Descriptor decodes them (providers.Configured.Notifications).
type Notifications struct {
	// Source is the source's id; Account its azure block, which the queue
	// client falls back on to authenticate as Blob does; RequestTimeout
	// its requestTimeout.
	Source         string        `yaml:"-"`
	Account        Config        `yaml:"-"`
	RequestTimeout time.Duration `yaml:"-"`
	StorageQueue   *StorageQueue `yaml:"storageQueue"`
	EventGrid      *EventGrid    `yaml:"eventGrid"`
}

// StorageQueue is an Azure Storage Queue receiving Event Grid events:
// notifications.storageQueue.
type StorageQueue struct {
	Queue             string        `yaml:"queue"`
	AccountURL        string        `yaml:"accountURL"`
	ConnectionString  string        `yaml:"connectionString"`
	PoisonQueue       string        `yaml:"poisonQueue"`
	MaxDequeueCount   int           `yaml:"maxDequeueCount"`
	VisibilityTimeout time.Duration `yaml:"visibilityTimeout"`
}

// EventGrid is an Event Grid webhook, served at /webhooks/eventgrid/<source
// id>, authenticated with a secret in a query parameter or header:
// notifications.eventGrid.
type EventGrid struct {
	Secret string `yaml:"secret"`
	// Header, when set, names the header carrying the secret; otherwise the
	// query parameter "code" does.
	Header string `yaml:"header"`
}

// Endpoints implements notify.Offer.
func (n Notifications) Endpoints(ctx context.Context, env notify.Env) ([]notify.Endpoint, error) {
	var out []notify.Endpoint
	if n.StorageQueue != nil {
		routeLogs(ctx, env.Log)
		c, err := NewQueueConsumer(ctx, n, env.App, env.Log, env.Reg)
		if err != nil {
			return nil, err
		}
		out = append(out, notify.Endpoint{Transport: TransportStorageQueue, Name: "storagequeue/" + n.Source, Consumer: c})
	}
	if n.EventGrid != nil {
		out = append(out, notify.Endpoint{Transport: TransportEventGrid, Path: "/webhooks/eventgrid/" + n.Source,
			Handler: NewWebhook(n, env.App, env.Log, env.Reg)})
	}
	return out, nil
}
