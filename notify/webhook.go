package notify

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// WebhookConfig is one transport's webhook: how it authenticates, which
// handshakes it answers and how it parses. The handler (NewWebhook) owns
// the rest: the order of the checks, the body limit, applying and the status
// codes.
type WebhookConfig struct {
	App    Applier
	Intake *Intake
	// Name names the webhook in log lines ("s3 webhook").
	Name string
	// Authorized says the request carries the configured secret (compared
	// in constant time, see Secret). It sees only the headers and the URL:
	// nothing is read before a request is authorized.
	Authorized func(r *http.Request) bool
	// Challenge, when set, is the WWW-Authenticate header of a 401.
	Challenge string
	// Allow lists the methods the transport answers; POST among them.
	Allow string
	// Preflight answers an authorized request that is not a POST (a
	// liveness probe, a CORS-style handshake) and reports whether it did;
	// the others get 405.
	Preflight func(w http.ResponseWriter, r *http.Request) bool
	// Handshake answers a POST that is a transport handshake (subscription
	// validation) rather than a delivery, and reports whether it did.
	Handshake func(w http.ResponseWriter, r *http.Request, body []byte) bool
	// Parse reads a delivery; an error answers 400.
	Parse func(body []byte) (Parsed, error)
	// MaxBody bounds a request body; larger ones answer 413.
	MaxBody int64
	// FailedHint is logged with a failed apply ("the sender should retry").
	FailedHint string
}

type webhook struct{ WebhookConfig }

// NewWebhook returns the handler of cfg:
//
//   - a request without the secret gets 401 before any of its body is
//     read, and nothing is parsed or applied;
//   - a request other than POST is the Preflight's, else 405;
//   - a body over MaxBody gets 413, a malformed one 400 (both counted);
//   - a handshake is answered by Handshake;
//   - otherwise 200 once Apply returned nil (also when every event was
//     skipped), and 500 when it failed, so that the sender retries.
func NewWebhook(cfg WebhookConfig) http.Handler { return &webhook{cfg} }

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	attrs := []any{"remote", r.RemoteAddr}
	in := h.Intake
	if !h.Authorized(r) {
		in.Deliver(DeliveryUnauthorized)
		in.T.Count(OutcomeUnauthorized, 1)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		in.once.Log(ctx, slog.LevelWarn, "unauthorized:"+host, h.Name+" request without a valid secret refused",
			append(attrs, "method", r.Method, "has_authorization", r.Header.Get("Authorization") != "")...)
		// Before reading any of the body: an unauthenticated sender gets
		// its answer at once and costs nothing more.
		RefuseUnread(w, r)
		if h.Challenge != "" {
			w.Header().Set("WWW-Authenticate", h.Challenge)
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost {
		if h.Preflight == nil || !h.Preflight(w, r) {
			RefuseUnread(w, r)
			w.Header().Set("Allow", h.Allow)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
		return
	}
	body, ok := h.read(w, r, attrs)
	if !ok {
		return
	}
	if h.Handshake != nil && h.Handshake(w, r, body) {
		return
	}
	in.T.Received()
	p, err := h.Parse(body)
	if err != nil {
		in.Refused(ctx, DeliveryMalformed, err, body, attrs...)
		http.Error(w, "malformed notification", http.StatusBadRequest)
		return
	}
	events := in.Take(ctx, p, attrs...)
	if len(events) == 0 {
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := h.App.Apply(in.T.Context(ctx), events); err != nil {
		in.Failed(ctx, events, err, h.FailedHint, attrs...)
		http.Error(w, "not applied", http.StatusInternalServerError)
		return
	}
	in.Deliver(DeliveryApplied)
	w.WriteHeader(http.StatusOK)
}

// read reads the body within MaxBody, answering the request itself when
// that fails.
func (h *webhook) read(w http.ResponseWriter, r *http.Request, attrs []any) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.MaxBody))
	if err == nil {
		return body, true
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		h.Intake.T.Received()
		h.Intake.Refused(r.Context(), DeliveryTooLarge, fmt.Errorf("body over %d bytes", h.MaxBody), nil,
			append(attrs, "content_length", r.ContentLength)...)
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	// The client went away or sent a broken body: nothing to apply.
	h.Intake.Log.DebugContext(r.Context(), h.Name+" body unreadable", append(attrs, "err", err)...)
	http.Error(w, "unreadable body", http.StatusBadRequest)
	return nil, false
}

// LastMessageAt is when the last authorized delivery arrived; zero before
// the first.
func (h *webhook) LastMessageAt() time.Time { return h.Intake.LastMessageAt() }

// BearerToken is the token of an "Authorization: Bearer <token>" header
// value; "" without one.
func BearerToken(v string) string {
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// Tally is the webhook's in-process count of deliveries and events.
func (h *webhook) Tally() *Tally { return h.Intake.Tally }
