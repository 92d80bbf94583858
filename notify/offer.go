package notify

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Env is what a source's notification transports are built with: the
// caller's parts, not the file's.
type Env struct {
	App Applier
	Log *slog.Logger
	Reg prometheus.Registerer
}

// Endpoint is one notification transport of a source, as its kind built it:
// a queue consumer to run, or a webhook to serve.
type Endpoint struct {
	// Transport is the transport's name: the key under the source's
	// notifications and the "transport" label of its metrics ("sqs").
	Transport string
	// Name keys a consumer among the worker's ("sqs/<source id>").
	Name string
	// Consumer is a queue consumer; nil for a webhook.
	Consumer Runner
	// Path and Handler are a webhook's: where it is served
	// ("/webhooks/s3/<source id>") and the handler, which answers methods
	// itself.
	Path    string
	Handler http.Handler
}

// Runner is a queue consumer: it runs until ctx ends.
type Runner interface {
	Run(ctx context.Context) error
	LastMessageAt() time.Time
}

// Offer is a kind's typed notification settings of one source (what
// providers.Configured.Notifications holds): it builds the transports the
// source configures, so that the worker wires them without knowing a kind.
type Offer interface {
	Endpoints(ctx context.Context, env Env) ([]Endpoint, error)
}

// Check is what a transport's probe found, one row of `syncer config check
// --connect`.
type Check struct {
	// Transport names the transport ("sqs"); Target what was reached.
	Transport, Target string
	// Detail says what was found when it went well.
	Detail string
	// Err is what failed. When Op is set, Err is the SDK's error from that
	// call, which the caller shortens to the service's code and message.
	Op  string
	Err error
}

// Prober is an Offer whose transports can be checked without taking a
// message from them (a receive would hide it from the running worker).
type Prober interface {
	Probe(ctx context.Context) []Check
}
