package s3

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
)

// webhook receives S3-compatible notifications (MinIO, Ceph RGW) POSTed
// over HTTP. The lead mounts it at /webhooks/s3/<source id>.
type webhook struct {
	app   notify.Applier
	p     *processor
	token notify.Secret
}

// NewWebhook returns the handler of src.Notifications.Webhook.
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
func NewWebhook(src config.Source, app notify.Applier, log *slog.Logger, reg prometheus.Registerer) http.Handler {
	h := &webhook{app: app, p: newProcessor(src, notify.TransportWebhook, log, reg)}
	if w := src.Notifications.Webhook; w != nil {
		h.token = notify.NewSecret(w.Token)
	}
	if !h.token.IsSet() {
		h.p.log.Error("s3 webhook has no token configured: refusing every request")
	}
	return h
}

func (h *webhook) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return h.token.Match(strings.TrimSpace(token))
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	attrs := []any{"remote", r.RemoteAddr}
	if !h.authorized(r) {
		h.p.m.messages.WithLabelValues(outUnauthorized).Inc()
		h.p.m.t.Count(notify.OutcomeUnauthorized, 1)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		h.p.once.Log(ctx, slog.LevelWarn, "unauthorized:"+host, "s3 webhook request without a valid token refused",
			append(attrs, "method", r.Method, "has_authorization", r.Header.Get("Authorization") != "")...)
		// Before reading any of the body: an unauthenticated sender gets
		// its answer at once and costs nothing more.
		notify.RefuseUnread(w, r)
		w.Header().Set("WWW-Authenticate", `Bearer realm="syncer"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodHead, http.MethodGet:
		w.WriteHeader(http.StatusOK)
		return
	default:
		notify.RefuseUnread(w, r)
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.p.m.messages.WithLabelValues(outTooLarge).Inc()
			h.p.m.t.Received()
			h.p.m.t.Count(notify.OutcomeMalformed, 1)
			h.p.once.Log(ctx, slog.LevelWarn, "too_large", "s3 webhook body too large refused",
				append(attrs, "limit", MaxBodySize, "content_length", r.ContentLength)...)
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		// The client went away or sent a broken body: nothing to apply.
		h.p.log.DebugContext(ctx, "s3 webhook body unreadable", append(attrs, "err", err)...)
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	events, err := h.p.prepare(ctx, body, attrs...)
	if err != nil {
		// The body is within MaxBodySize here (MaxBytesReader above), so
		// this is a malformed one.
		http.Error(w, "malformed notification", http.StatusBadRequest)
		return
	}
	if len(events) == 0 {
		h.p.m.messages.WithLabelValues(outSkipped).Inc()
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := h.app.Apply(h.p.m.t.Context(ctx), events); err != nil {
		h.p.m.messages.WithLabelValues(outApplyFailed).Inc()
		h.p.m.t.Count(notify.OutcomeFailed, len(events))
		h.p.log.WarnContext(ctx, "s3 webhook notification not applied; the sender should retry",
			append(attrs, "err", err, "events", len(events), "bucket", events[0].Bucket, "key", events[0].Key)...)
		http.Error(w, "not applied", http.StatusInternalServerError)
		return
	}
	h.p.m.messages.WithLabelValues(outApplied).Inc()
	w.WriteHeader(http.StatusOK)
}

// LastMessageAt is when the last authorized request arrived; zero before the
// first.
func (h *webhook) LastMessageAt() time.Time { return h.p.LastMessageAt() }
