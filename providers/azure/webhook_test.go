package azure

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/notify"
)

const secret = "s3cr3t-value"

func newWebhookServer(t *testing.T, eg *EventGrid, app notify.Applier) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	src := Notifications{Source: "az", EventGrid: eg}
	srv := httptest.NewServer(NewWebhook(src, app, nil, reg))
	t.Cleanup(srv.Close)
	return srv, reg
}

func do(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var notification = map[string]string{"aeg-event-type": "Notification", "Content-Type": "application/json"}

func TestWebhookSubscriptionValidation(t *testing.T) {
	rec := newRecorder()
	srv, _ := newWebhookServer(t, &EventGrid{Secret: secret}, rec)
	hdr := map[string]string{"aeg-event-type": "SubscriptionValidation", "Content-Type": "application/json"}

	resp, body := do(t, "POST", srv.URL+"?code="+secret, egValidation, hdr)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	var got struct {
		ValidationResponse string `json:"validationResponse"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.ValidationResponse != "512d38b6-c7b8-40c8-89fe-f46f9e9622b6" {
		t.Errorf("reply %q (%v)", body, err)
	}

	// The handshake needs the secret too.
	if resp, _ := do(t, "POST", srv.URL, egValidation, hdr); resp.StatusCode != 401 {
		t.Errorf("unauthenticated handshake: status %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(t, "POST", srv.URL+"?code="+secret, `[{"eventType":"x"}]`, hdr); resp.StatusCode != 400 {
		t.Errorf("handshake without a code: status %d, want 400", resp.StatusCode)
	}
	if calls, _ := rec.snapshot(); calls != 0 {
		t.Errorf("handshakes applied %d times", calls)
	}
}

func TestWebhookCloudEventsHandshake(t *testing.T) {
	rec := newRecorder()
	srv, _ := newWebhookServer(t, &EventGrid{Secret: secret}, rec)
	hdr := map[string]string{"WebHook-Request-Origin": "eventgrid.azure.net"}

	resp, _ := do(t, "OPTIONS", srv.URL+"?code="+secret, "", hdr)
	if resp.StatusCode != 200 || resp.Header.Get("WebHook-Allowed-Origin") != "eventgrid.azure.net" || resp.Header.Get("WebHook-Allowed-Rate") == "" {
		t.Errorf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, "OPTIONS", srv.URL+"?code=wrong", "", hdr)
	if resp.StatusCode != 401 || resp.Header.Get("WebHook-Allowed-Origin") != "" {
		t.Errorf("unauthenticated OPTIONS: status %d, headers %v", resp.StatusCode, resp.Header)
	}
}

func TestWebhookAuth(t *testing.T) {
	t.Run("query", func(t *testing.T) {
		rec := newRecorder()
		srv, reg := newWebhookServer(t, &EventGrid{Secret: secret}, rec)
		for name, url := range map[string]string{
			"none": srv.URL, "wrong": srv.URL + "?code=nope", "prefix": srv.URL + "?code=" + secret[:4],
			"longer": srv.URL + "?code=" + secret + "x", "other param": srv.URL + "?secret=" + secret,
		} {
			if resp, _ := do(t, "POST", url, egCreated, notification); resp.StatusCode != 401 {
				t.Errorf("%s: status %d, want 401", name, resp.StatusCode)
			}
		}
		if calls, _ := rec.snapshot(); calls != 0 {
			t.Fatalf("unauthenticated requests applied %d times", calls)
		}
		if got := counter(t, reg, "syncer_notifications_total", notify.OutcomeUnauthorized); got != 5 {
			t.Errorf("unauthorized counted %v, want 5", got)
		}
		if resp, body := do(t, "POST", srv.URL+"?code="+secret, egCreated, notification); resp.StatusCode != 200 {
			t.Fatalf("authenticated: status %d %s", resp.StatusCode, body)
		}
		if calls, _ := rec.snapshot(); calls != 1 {
			t.Errorf("applied %d times, want 1", calls)
		}
	})
	t.Run("header", func(t *testing.T) {
		rec := newRecorder()
		srv, _ := newWebhookServer(t, &EventGrid{Secret: secret, Header: "X-Syncer-Secret"}, rec)
		// In header mode the query parameter does not count.
		if resp, _ := do(t, "POST", srv.URL+"?code="+secret, egCreated, notification); resp.StatusCode != 401 {
			t.Errorf("secret in the query in header mode: status %d, want 401", resp.StatusCode)
		}
		h := map[string]string{"X-Syncer-Secret": "wrong"}
		if resp, _ := do(t, "POST", srv.URL, egCreated, h); resp.StatusCode != 401 {
			t.Errorf("wrong header: status %d, want 401", resp.StatusCode)
		}
		if calls, _ := rec.snapshot(); calls != 0 {
			t.Fatalf("unauthenticated requests applied %d times", calls)
		}
		for _, v := range []string{secret, "Bearer " + secret} {
			if resp, body := do(t, "POST", srv.URL, egCreated, map[string]string{"X-Syncer-Secret": v}); resp.StatusCode != 200 {
				t.Errorf("header %q: status %d %s", v, resp.StatusCode, body)
			}
		}
	})
	t.Run("no secret configured", func(t *testing.T) {
		rec := newRecorder()
		srv, _ := newWebhookServer(t, nil, rec)
		if resp, _ := do(t, "POST", srv.URL+"?code=", egCreated, notification); resp.StatusCode != 401 {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
	})
}

func TestWebhookDeliveries(t *testing.T) {
	rec := newRecorder()
	srv, reg := newWebhookServer(t, &EventGrid{Secret: secret}, rec)
	url := srv.URL + "?code=" + secret

	// An Event Grid array: a creation, a deletion, an ignored tier change.
	batch := `[` + strings.Trim(egCreated, "[]") + `,` + egDeleted + `,` + strings.Trim(egTier, "[]") + `]`
	if resp, body := do(t, "POST", url, batch, notification); resp.StatusCode != 200 {
		t.Fatalf("array: status %d %s", resp.StatusCode, body)
	}
	_, evs := rec.snapshot()
	if len(evs) != 2 || evs[0].Kind != notify.Upsert || evs[1].Kind != notify.Delete {
		t.Fatalf("array applied %+v", evs)
	}
	// CloudEvents, structured single event and batch.
	ce := map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"}
	if resp, body := do(t, "POST", url, ceCreated, ce); resp.StatusCode != 200 {
		t.Fatalf("cloudevent: status %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "POST", url, ceRenamed, map[string]string{"Content-Type": "application/cloudevents-batch+json"}); resp.StatusCode != 200 {
		t.Fatalf("cloudevents batch: status %d %s", resp.StatusCode, body)
	}
	// Only ignored events: 200, nothing applied.
	if resp, _ := do(t, "POST", url, egTier, notification); resp.StatusCode != 200 {
		t.Errorf("ignored only: status %d", resp.StatusCode)
	}
	calls, evs := rec.snapshot()
	if calls != 3 || len(evs) != 5 {
		t.Errorf("%d calls, events %+v", calls, evs)
	}
	checkEvents(t, evs)
	// Applied is counted by the Router (here a recorder), not the transport.
	if got := counter(t, reg, "syncer_notifications_total", notify.OutcomeApplied); got != 0 {
		t.Errorf("applied counted %v by the transport, want 0", got)
	}
}

func TestWebhookBadRequests(t *testing.T) {
	rec := newRecorder()
	srv, reg := newWebhookServer(t, &EventGrid{Secret: secret}, rec)
	url := srv.URL + "?code=" + secret

	for _, b := range []string{"", "not json", `{"foo": 1}`, `[1,2]`} {
		if resp, _ := do(t, "POST", url, b, notification); resp.StatusCode != 400 {
			t.Errorf("body %q: status %d, want 400", b, resp.StatusCode)
		}
	}
	big := `[` + strings.Repeat(egDeleted+",", MaxBodySize/len(egDeleted)+1) + egDeleted + `]`
	if resp, _ := do(t, "POST", url, big, notification); resp.StatusCode != 413 {
		t.Errorf("oversize: status %d, want 413", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", url, "", nil); resp.StatusCode != 405 {
		t.Errorf("GET: status %d, want 405", resp.StatusCode)
	}
	if calls, _ := rec.snapshot(); calls != 0 {
		t.Errorf("bad requests applied %d times", calls)
	}
	// Too large counts as malformed: 4 + 1.
	if got := counter(t, reg, "syncer_notifications_total", notify.OutcomeMalformed); got != 5 {
		t.Errorf("malformed counted %v, want 5", got)
	}
}

// 200 only once Apply returned nil; its failure is a 500 so that Event Grid
// retries.
func TestWebhookApplyError(t *testing.T) {
	rec := newRecorder()
	rec.fail = func(int, []notify.Event) error { return errors.New("catalog unavailable") }
	srv, reg := newWebhookServer(t, &EventGrid{Secret: secret}, rec)
	if resp, _ := do(t, "POST", srv.URL+"?code="+secret, egCreated, notification); resp.StatusCode != 500 {
		t.Errorf("status %d, want 500", resp.StatusCode)
	}
	if got := counter(t, reg, "syncer_notifications_total", notify.OutcomeFailed); got != 1 {
		t.Errorf("apply failures counted %v, want 1", got)
	}
}
