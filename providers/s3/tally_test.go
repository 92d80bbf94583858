package s3

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/notify"
)

// The kernel's tally labels under the names these tests used before the
// kernel counted for every transport.
const (
	outApplied      = notify.DeliveryApplied
	outSkipped      = notify.DeliverySkipped
	outMalformed    = notify.DeliveryMalformed
	outTooLarge     = notify.DeliveryTooLarge
	outApplyFailed  = notify.DeliveryApplyFailed
	outUnauthorized = notify.DeliveryUnauthorized

	recEvent     = notify.EventsTaken
	recIgnored   = string(notify.SkipUnsupported)
	recTest      = string(notify.SkipTest)
	recMalformed = string(notify.SkipMalformed)
)

// metrics is a transport's tally as these tests read it.
type metrics struct {
	messages *prometheus.CounterVec // per delivery
	records  *prometheus.CounterVec // per record
}

func tallyOf(t *notify.Tally) *metrics { return &metrics{messages: t.Deliveries, records: t.Events} }

func webhookTally(h http.Handler) *metrics {
	return tallyOf(h.(interface{ Tally() *notify.Tally }).Tally())
}
