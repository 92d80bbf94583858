package gcs

import (
	"context"

	"google.golang.org/api/option"

	"github.com/imgly/syncer/notify"
)

// TransportPubSub is the label "transport" of the notification metrics,
// and the key under a source's notifications.
const TransportPubSub = "pubsub"

// Notifications are the notification settings of one GCS source, as its
// Descriptor decodes them (providers.Configured.Notifications).
type Notifications struct {
	// Source is the source's id; Bucket its bucket; CredentialsFile its
	// gcs.credentialsFile, which Pub/Sub authenticates with as storage does.
	Source          string  `yaml:"-"`
	Bucket          string  `yaml:"-"`
	CredentialsFile string  `yaml:"-"`
	PubSub          *PubSub `yaml:"pubsub"`
}

// PubSub is a GCS notification subscription: notifications.pubsub.
type PubSub struct {
	Project      string `yaml:"project"`
	Subscription string `yaml:"subscription"`
	Endpoint     string `yaml:"endpoint"`
}

// Endpoints implements notify.Offer.
func (n Notifications) Endpoints(ctx context.Context, env notify.Env) ([]notify.Endpoint, error) {
	if n.PubSub == nil {
		return nil, nil
	}
	c, err := NewConsumer(ctx, n, env.App, env.Log, env.Reg, WithPubSubOptions(option.WithLogger(env.Log)))
	if err != nil {
		return nil, err
	}
	return []notify.Endpoint{{Transport: TransportPubSub, Name: "pubsub/" + n.Source, Consumer: c}}, nil
}
