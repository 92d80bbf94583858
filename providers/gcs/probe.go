package gcs

import (
	"context"
	"fmt"
	"os"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/imgly/syncer/notify"
)

// pubsubConsume is the permission the consumer needs on its subscription
// (in roles/pubsub.subscriber).
const pubsubConsume = "pubsub.subscriptions.consume"

// Probe implements notify.Prober: Pub/Sub is asked which of the consumer's
// permissions the caller has on the subscription (TestIamPermissions needs
// no permission itself and answers NotFound for a missing subscription). A
// server without the IAM API (the emulator) is asked for the subscription
// instead.
func (n Notifications) Probe(ctx context.Context) []notify.Check {
	ps := n.PubSub
	if ps == nil {
		return nil
	}
	name := "projects/" + ps.Project + "/subscriptions/" + ps.Subscription
	c := notify.Check{Transport: TransportPubSub, Target: name}
	copts, err := ClientOptions(n.CredentialsFile, os.Getenv("PUBSUB_EMULATOR_HOST") != "")
	if err != nil {
		c.Err = err
		return []notify.Check{c}
	}
	if ps.Endpoint != "" {
		copts = append(copts, option.WithEndpoint(ps.Endpoint))
	}
	client, err := pubsub.NewClient(ctx, ps.Project, copts...)
	if err != nil {
		c.Err = fmt.Errorf("pubsub client: %w", err)
		return []notify.Check{c}
	}
	defer client.Close()
	res, err := client.SubscriptionAdminClient.TestIamPermissions(ctx, &iampb.TestIamPermissionsRequest{
		Resource: name, Permissions: []string{pubsubConsume},
	})
	switch {
	case status.Code(err) == codes.Unimplemented:
		if _, err := client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name}); err != nil {
			c.Op, c.Err = "get subscription", err
		} else {
			c.Detail = "subscription exists (this server has no IAM API: permissions not checked)"
		}
	case err != nil:
		c.Op, c.Err = "test permissions", err
	default:
		c.Err = fmt.Errorf("%s is not granted on the subscription (roles/pubsub.subscriber)", pubsubConsume)
		for _, p := range res.GetPermissions() {
			if p == pubsubConsume {
				c.Detail, c.Err = "subscription exists; "+pubsubConsume+" granted", nil
			}
		}
	}
	return []notify.Check{c}
}
