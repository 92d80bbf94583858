package azure

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/notify"
)

// MaxBodySize bounds a webhook request: Event Grid caps an event, and a
// batch, at 1 MB.
const MaxBodySize = 1 << 20

// NewWebhook returns the handler of n.EventGrid: Event Grid
// deliveries over HTTP, mounted at /webhooks/eventgrid/<source id>. It is
// notify.NewWebhook with Event Grid's parser, authentication and handshakes:
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
func NewWebhook(n Notifications, app notify.Applier, log *slog.Logger, reg prometheus.Registerer) http.Handler {
	in := notify.NewIntake(reg, log, n.Source, TransportEventGrid)
	var secret notify.Secret
	var header string
	if eg := n.EventGrid; eg != nil {
		secret, header = notify.NewSecret(eg.Secret), eg.Header
	}
	if !secret.IsSet() {
		in.Log.Error("event grid webhook has no secret configured: refusing every request")
	}
	hs := handshakes{in: in}
	return notify.NewWebhook(notify.WebhookConfig{
		App:        app,
		Intake:     in,
		Name:       "event grid webhook",
		Authorized: func(r *http.Request) bool { return authorized(r, secret, header) },
		Allow:      "OPTIONS, POST",
		Preflight:  hs.abuseProtection,
		Handshake:  hs.validate,
		Parse:      parse,
		MaxBody:    MaxBodySize,
		FailedHint: "Event Grid will retry",
	})
}

// authorized finds the secret in the configured header (optionally as a
// bearer token) or, without one, in the query parameter "code".
func authorized(r *http.Request, secret notify.Secret, header string) bool {
	var got string
	if header != "" {
		got = strings.TrimSpace(r.Header.Get(header))
	} else {
		got = r.URL.Query().Get("code")
	}
	if got == "" {
		return false
	}
	ok := secret.Match(got)
	if token := notify.BearerToken(got); token != "" {
		ok = secret.Match(token) || ok
	}
	return ok
}

// handshakes are Event Grid's two subscription handshakes.
type handshakes struct{ in *notify.Intake }

// abuseProtection answers the CloudEvents webhook validation handshake
// (OPTIONS).
func (h handshakes) abuseProtection(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodOptions {
		return false
	}
	origin := strings.TrimSpace(r.Header.Get("WebHook-Request-Origin"))
	w.Header().Set("Allow", "OPTIONS, POST")
	if origin != "" {
		h.in.Deliver(notify.DeliveryHandshake)
		h.in.Log.InfoContext(r.Context(), "event grid cloudevents handshake answered", "origin", origin)
		w.Header().Set("WebHook-Allowed-Origin", origin)
		w.Header().Set("WebHook-Allowed-Rate", "*")
	}
	w.WriteHeader(http.StatusOK)
	return true
}

// validate answers the Event Grid schema's subscription validation.
func (h handshakes) validate(w http.ResponseWriter, r *http.Request, body []byte) bool {
	if !strings.EqualFold(r.Header.Get("aeg-event-type"), "SubscriptionValidation") {
		return false
	}
	ctx := r.Context()
	code, err := validationCode(body)
	if err != nil {
		h.in.T.Received()
		h.in.Refused(ctx, notify.DeliveryMalformed, err, body, "remote", r.RemoteAddr)
		http.Error(w, "malformed subscription validation", http.StatusBadRequest)
		return true
	}
	h.in.Deliver(notify.DeliveryHandshake)
	h.in.Log.InfoContext(ctx, "event grid subscription validation answered", "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		ValidationResponse string `json:"validationResponse"`
	}{code})
	return true
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
