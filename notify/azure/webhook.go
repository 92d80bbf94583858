package azure

import (
	"encoding/json"
	"errors"
	"fmt"
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

// MaxBodySize bounds a webhook request: Event Grid caps an event, and a
// batch, at 1 MB.
const MaxBodySize = 1 << 20

// webhook receives Event Grid deliveries over HTTP. The lead mounts it at
// /webhooks/eventgrid/<source id>.
type webhook struct {
	app    notify.Applier
	p      *processor
	secret notify.Secret
	header string
}

// NewWebhook returns the handler of src.Notifications.EventGrid.
//
//   - Every request, handshakes included, must carry the configured secret:
//     in the header named by EventGrid.Header when set (a "Bearer " prefix
//     is allowed), else in the query parameter "code" of the endpoint URL
//     registered with Event Grid. Without it, or with a wrong one, the
//     answer is 401 and nothing is parsed or applied. A source without a
//     secret refuses every request.
//   - Event Grid schema handshake: a POST with "aeg-event-type:
//     SubscriptionValidation" is answered 200 {"validationResponse": code}.
//   - CloudEvents abuse protection: an OPTIONS with WebHook-Request-Origin
//     is answered 200 with WebHook-Allowed-Origin (the same origin) and
//     WebHook-Allowed-Rate: *.
//   - Deliveries (one event or an array, either schema): 200 once Apply
//     returned nil (also when every event was ignored), 500 when it failed
//     so that Event Grid retries, 400 for a malformed body and 413 for one
//     over MaxBodySize (both counted; Event Grid does not retry those).
func NewWebhook(src config.Source, app notify.Applier, log *slog.Logger, reg prometheus.Registerer) http.Handler {
	h := &webhook{app: app, p: newProcessor(src, notify.TransportEventGrid, log, reg)}
	if eg := src.Notifications.EventGrid; eg != nil {
		h.secret, h.header = notify.NewSecret(eg.Secret), eg.Header
	}
	if !h.secret.IsSet() {
		h.p.log.Error("event grid webhook has no secret configured: refusing every request")
	}
	return h
}

func (h *webhook) authorized(r *http.Request) bool {
	var got string
	if h.header != "" {
		got = strings.TrimSpace(r.Header.Get(h.header))
	} else {
		got = r.URL.Query().Get("code")
	}
	if got == "" {
		return false
	}
	ok := h.secret.Match(got)
	if scheme, token, found := strings.Cut(got, " "); found && strings.EqualFold(scheme, "Bearer") {
		ok = h.secret.Match(strings.TrimSpace(token)) || ok
	}
	return ok
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	attrs := []any{"remote", r.RemoteAddr}
	if !h.authorized(r) {
		h.p.m.messages.WithLabelValues(outUnauthorized).Inc()
		h.p.m.t.Count(notify.OutcomeUnauthorized, 1)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		h.p.once.Log(ctx, slog.LevelWarn, "unauthorized:"+host, "event grid webhook request without a valid secret refused",
			append(attrs, "method", r.Method)...)
		// Before reading any of the body: an unauthenticated sender gets
		// its answer at once and costs nothing more.
		notify.RefuseUnread(w, r)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		h.abuseProtection(w, r)
		return
	default:
		notify.RefuseUnread(w, r)
		w.Header().Set("Allow", "OPTIONS, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.p.refused(ctx, outTooLarge, fmt.Errorf("body over %d bytes", MaxBodySize), nil,
				append(attrs, "content_length", r.ContentLength)...)
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		// The client went away or sent a broken body: nothing to apply.
		h.p.log.DebugContext(ctx, "event grid webhook body unreadable", append(attrs, "err", err)...)
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	if strings.EqualFold(r.Header.Get("aeg-event-type"), "SubscriptionValidation") {
		h.validate(w, r, body, attrs)
		return
	}
	events, err := h.p.prepare(ctx, body, attrs...)
	if err != nil {
		http.Error(w, "malformed event grid delivery", http.StatusBadRequest)
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
		h.p.log.WarnContext(ctx, "event grid delivery not applied; Event Grid will retry",
			append(attrs, "err", err, "events", len(events), "container", events[0].Bucket, "key", events[0].Key)...)
		http.Error(w, "not applied", http.StatusInternalServerError)
		return
	}
	h.p.m.messages.WithLabelValues(outApplied).Inc()
	w.WriteHeader(http.StatusOK)
}

// abuseProtection answers the CloudEvents webhook validation handshake.
func (h *webhook) abuseProtection(w http.ResponseWriter, r *http.Request) {
	origin := strings.TrimSpace(r.Header.Get("WebHook-Request-Origin"))
	w.Header().Set("Allow", "OPTIONS, POST")
	if origin != "" {
		h.p.m.messages.WithLabelValues(outValidation).Inc()
		h.p.log.InfoContext(r.Context(), "event grid cloudevents handshake answered", "origin", origin)
		w.Header().Set("WebHook-Allowed-Origin", origin)
		w.Header().Set("WebHook-Allowed-Rate", "*")
	}
	w.WriteHeader(http.StatusOK)
}

// validate answers the Event Grid schema's subscription validation.
func (h *webhook) validate(w http.ResponseWriter, r *http.Request, body []byte, attrs []any) {
	ctx := r.Context()
	code, err := validationCode(body)
	if err != nil {
		h.p.refused(ctx, outMalformed, err, body, attrs...)
		http.Error(w, "malformed subscription validation", http.StatusBadRequest)
		return
	}
	h.p.m.messages.WithLabelValues(outValidation).Inc()
	h.p.log.InfoContext(ctx, "event grid subscription validation answered", attrs...)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		ValidationResponse string `json:"validationResponse"`
	}{code})
}

// validationCode finds the code of a SubscriptionValidationEvent.
func validationCode(body []byte) (string, error) {
	elems, err := splitEvents(body)
	if err != nil {
		return "", err
	}
	for _, raw := range elems {
		var ev struct {
			EventType string `json:"eventType"`
			Data      struct {
				ValidationCode string `json:"validationCode"`
			} `json:"data"`
		}
		if json.Unmarshal(raw, &ev) != nil || !strings.EqualFold(ev.EventType, TypeSubscriptionValidation) {
			continue
		}
		if ev.Data.ValidationCode != "" {
			return ev.Data.ValidationCode, nil
		}
	}
	return "", fmt.Errorf("%w: no SubscriptionValidationEvent with a validationCode", ErrMalformed)
}

// LastMessageAt is when the last authorized delivery arrived; zero before
// the first.
func (h *webhook) LastMessageAt() time.Time { return h.p.LastMessageAt() }
