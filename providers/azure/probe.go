package azure

import (
	"context"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/imgly/syncer/notify"
)

// Probe implements notify.Prober: the queue is peeked at, so it exists and
// messages may be read. Peeking changes nothing (a receive would hide
// messages from the running worker), and unlike the queue's properties it
// needs no more than the consumer's role, Storage Queue Data Message
// Processor.
func (n Notifications) Probe(ctx context.Context) []notify.Check {
	var out []notify.Check
	if sq := n.StorageQueue; sq != nil {
		out = append(out, n.probeQueue(ctx, sq))
	}
	// The webhook is served by syncer itself: nothing to connect to.
	if n.EventGrid != nil {
		out = append(out, notify.Check{Transport: TransportEventGrid, Target: "/webhooks/eventgrid/" + n.Source,
			Detail: "served by syncer run; point the Event Grid subscription here"})
	}
	return out
}

func (n Notifications) probeQueue(ctx context.Context, sq *StorageQueue) notify.Check {
	c := notify.Check{Transport: TransportStorageQueue, Target: sq.Queue}
	svc, err := queueService(n.Account, sq)
	if err != nil {
		c.Err = err
		return c
	}
	c.Target = strings.TrimSuffix(svc.URL(), "/") + "/" + sq.Queue
	if u, err := url.Parse(c.Target); err == nil {
		u.RawQuery = "" // a SAS token is a secret
		c.Target = u.String()
	}
	one := int32(1)
	res, err := svc.NewQueueClient(sq.Queue).PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: &one})
	if err != nil {
		c.Op, c.Err = "peek", err
		return c
	}
	c.Detail = "queue readable"
	if len(res.Messages) > 0 {
		c.Detail += "; messages waiting"
	}
	return c
}
