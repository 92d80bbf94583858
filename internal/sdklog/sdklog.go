// Package sdklog routes the cloud SDKs' own logging into log/slog, so that
// with a JSON handler every line the process writes is one JSON object. The
// AWS SDK otherwise prints plain text to stderr ("SDK 2026/01/02 WARN ...").
package sdklog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"
)

// AWS returns a smithy-go logger writing to log: the SDK's warnings at
// warn, everything else (debug output, the request and retry logs
// ClientLogMode enables) at debug.
func AWS(log *slog.Logger) logging.Logger {
	return awsLogger{log: log, ctx: context.Background()}
}

type awsLogger struct {
	log *slog.Logger
	ctx context.Context
}

func (l awsLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	if !l.log.Enabled(l.ctx, level) {
		return
	}
	l.log.Log(l.ctx, level, fmt.Sprintf(format, v...), "sdk", "aws")
}

// WithContext implements logging.ContextLogger: lines carry the request's
// context to the handler.
func (l awsLogger) WithContext(ctx context.Context) logging.Logger {
	return awsLogger{log: l.log, ctx: ctx}
}

// AWSOptions are the config-loading options that send an AWS client's
// logging to log; at debug level they also log retries.
func AWSOptions(log *slog.Logger) []func(*awsconfig.LoadOptions) error {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithLogger(AWS(log))}
	if log.Enabled(context.Background(), slog.LevelDebug) {
		opts = append(opts, awsconfig.WithClientLogMode(aws.LogRetries))
	}
	return opts
}

// The Azure SDK has one process-wide log listener (azcore/log.SetListener),
// not one per client; it is installed once and writes to the logger of the
// worker that routed it last.
var (
	azureOnce sync.Once
	azureLog  atomic.Pointer[slog.Logger]
)

// RouteAzure sends the Azure SDK's retry and response-error logging to log
// at debug level. The SDK logs every attempt of every request there, which is
// too much for anything but debugging; the errors themselves reach syncer's
// own log lines through the calls that failed.
func RouteAzure(log *slog.Logger) {
	azureLog.Store(log)
	azureOnce.Do(func() {
		azlog.SetEvents(azlog.EventRetryPolicy, azlog.EventResponseError)
		azlog.SetListener(func(ev azlog.Event, msg string) {
			if l := azureLog.Load(); l != nil {
				l.Debug(msg, "sdk", "azure", "event", string(ev))
			}
		})
	})
}
