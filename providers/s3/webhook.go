package s3

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/notify"
)

// NewWebhook returns the handler of n.Webhook: S3-compatible
// notifications (MinIO, Ceph RGW) POSTed over HTTP, mounted at
// /webhooks/s3/<source id>. It is notify.NewWebhook with S3's parser and
// these rules:
//
//   - Every request needs "Authorization: Bearer <token>" (MinIO's
//     auth_token, Ceph's push-endpoint header); without it, or with a
//     wrong one, the answer is 401 and nothing is parsed or applied. A
//     source without a token refuses every request.
//   - HEAD and GET answer 200: MinIO checks a webhook target is up with an
//     authenticated HEAD before it sends events.
//   - POST bodies over MaxBodySize get 413, malformed ones 400 (both
//     counted); an empty body is a connectivity probe and gets 200.
//   - Otherwise 200 once Apply returned nil (also when every record was
//     ignored or named another bucket), and 500 when Apply failed, so that
//     the sender retries.
func NewWebhook(n Notifications, app notify.Applier, log *slog.Logger, reg prometheus.Registerer) http.Handler {
	in := notify.NewIntake(reg, log, n.Source, TransportWebhook)
	var token notify.Secret
	if w := n.Webhook; w != nil {
		token = notify.NewSecret(w.Token)
	}
	if !token.IsSet() {
		in.Log.Error("s3 webhook has no token configured: refusing every request")
	}
	return notify.NewWebhook(notify.WebhookConfig{
		App:    app,
		Intake: in,
		Name:   "s3 webhook",
		Authorized: func(r *http.Request) bool {
			return token.Match(notify.BearerToken(r.Header.Get("Authorization")))
		},
		Challenge: `Bearer realm="syncer"`,
		Allow:     "GET, HEAD, POST",
		Preflight: func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodHead && r.Method != http.MethodGet {
				return false
			}
			w.WriteHeader(http.StatusOK)
			return true
		},
		Parse:      parse,
		MaxBody:    MaxBodySize,
		FailedHint: "the sender should retry",
	})
}
