package s3

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
)

const testToken = "s3cr3t-t0ken"

type webhookEnv struct {
	srv *httptest.Server
	rec *recorder
	m   *metrics
}

func newWebhookEnv(t *testing.T, token string) *webhookEnv {
	t.Helper()
	src := config.Source{ID: "lib", Provider: "s3", Bucket: "media"}
	if token != "" {
		src.Notifications.Webhook = &config.Webhook{Token: token}
	}
	rec := newRecorder()
	h := NewWebhook(notificationsOf(t, src), rec, testLogger(t), prometheus.NewRegistry())
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &webhookEnv{srv: srv, rec: rec, m: webhookTally(h)}
}

func (w *webhookEnv) do(t *testing.T, method, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, w.srv.URL+"/webhooks/s3/lib", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWebhookApplies(t *testing.T) {
	w := newWebhookEnv(t, testToken)
	body := minioBody("s3:ObjectCreated:Put", "media", "photos/x y+z.png", obj{Size: 7, ETag: "37b51d194a7513e45b56f6524f2d51f2", Sequencer: "17A9E1B2C3D4E5F6", ContentType: "image/png"})
	if code, _ := w.do(t, http.MethodPost, "Bearer "+testToken, body); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	// The scheme is case-insensitive.
	del := minioBody("s3:ObjectRemoved:Delete", "media", "gone.png", obj{Sequencer: "17A9E1B2C3D4E5F7"})
	if code, _ := w.do(t, http.MethodPost, "bearer "+testToken, del); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	// Ceph RGW posts plain records with raw keys.
	if code, _ := w.do(t, http.MethodPost, "Bearer "+testToken, cephBody("ObjectCreated:Put", "media", "ceph/a+b.png", 3)); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	applied, _ := w.rec.snapshot()
	if len(applied) != 3 || applied[0].Key != "photos/x y+z.png" || applied[0].Object.ContentType != "image/png" ||
		applied[1].Key != "gone.png" || applied[1].Kind != notify.Delete || !applied[1].Complete || applied[2].Key != "ceph/a+b.png" {
		t.Fatalf("%+v", applied)
	}
	if n := counter(w.m.messages, outApplied); n != 3 {
		t.Fatalf("applied = %d", n)
	}
}

func TestWebhookAuth(t *testing.T) {
	w := newWebhookEnv(t, testToken)
	body := minioBody("s3:ObjectCreated:Put", "media", "a.png", obj{Size: 1, Sequencer: "01"})
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + testToken + "x", "Basic " + testToken, testToken, "Bearer s3cr3t"} {
		for _, method := range []string{http.MethodPost, http.MethodHead, http.MethodGet, http.MethodPut} {
			code, _ := w.do(t, method, auth, body)
			if code != http.StatusUnauthorized {
				t.Errorf("%s with %q: status %d", method, auth, code)
			}
		}
	}
	if applied, calls := w.rec.snapshot(); len(applied) != 0 || len(calls) != 0 {
		t.Fatalf("unauthenticated requests applied: %+v", calls)
	}
	if n := counter(w.m.messages, outUnauthorized); n != 32 {
		t.Fatalf("unauthorized = %d", n)
	}
	if n := counter(w.m.records, recEvent); n != 0 {
		t.Fatalf("unauthenticated bodies were parsed: %d", n)
	}

	// A source without a token refuses everything, even a request that
	// sends no token at all.
	open := newWebhookEnv(t, "")
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		if code, _ := open.do(t, http.MethodPost, auth, body); code != http.StatusUnauthorized {
			t.Errorf("tokenless source with %q: %d", auth, code)
		}
	}
	if applied, _ := open.rec.snapshot(); len(applied) != 0 {
		t.Fatal("tokenless source applied")
	}
}

func TestWebhookProbesAndMethods(t *testing.T) {
	w := newWebhookEnv(t, testToken)
	auth := "Bearer " + testToken
	// MinIO checks the target with an authenticated HEAD.
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		if code, _ := w.do(t, m, auth, ""); code != http.StatusOK {
			t.Errorf("%s: %d", m, code)
		}
	}
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		if code, _ := w.do(t, m, auth, "{}"); code != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d", m, code)
		}
	}
	// An empty POST is a connectivity test.
	if code, _ := w.do(t, http.MethodPost, auth, ""); code != http.StatusOK {
		t.Errorf("empty POST: %d", code)
	}
	// So is an s3:TestEvent; ignored types and other buckets are
	// acknowledged too, so that the sender does not retry them.
	for _, body := range []string{
		testEventBody("media"),
		minioBody("s3:ObjectAccessed:Get", "media", "a", obj{Size: 1}),
		minioBody("s3:ObjectCreated:Put", "other", "a", obj{Size: 1, Sequencer: "01"}),
	} {
		if code, _ := w.do(t, http.MethodPost, auth, body); code != http.StatusOK {
			t.Errorf("%.50s: %d", body, code)
		}
	}
	// Only the other bucket's event reaches the applier: the Router decides
	// that no source watches it (see the notifytest suite).
	if _, calls := w.rec.snapshot(); len(calls) != 1 || len(calls[0]) != 1 || calls[0][0].Bucket != "other" {
		t.Fatalf("only the other bucket's event should be applied: %+v", calls)
	}
	for label, n := range map[string]int{recTest: 2, recIgnored: 1} {
		if got := counter(w.m.records, label); got != n {
			t.Errorf("records{%s} = %d, want %d", label, got, n)
		}
	}
	if n := counter(w.m.messages, outSkipped); n != 3 {
		t.Errorf("skipped = %d", n)
	}
}

func TestWebhookBadBodies(t *testing.T) {
	w := newWebhookEnv(t, testToken)
	auth := "Bearer " + testToken
	for _, body := range []string{"not json", "[]", `{"Records":"x"}`, `{"foo":1}`} {
		if code, _ := w.do(t, http.MethodPost, auth, body); code != http.StatusBadRequest {
			t.Errorf("%q: %d", body, code)
		}
	}
	if n := counter(w.m.messages, outMalformed); n != 4 {
		t.Errorf("malformed = %d", n)
	}
	big := strings.Repeat(" ", MaxBodySize) + "{}"
	if code, _ := w.do(t, http.MethodPost, auth, big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize: %d", code)
	}
	if n := counter(w.m.messages, outTooLarge); n != 1 {
		t.Errorf("too_large = %d", n)
	}
	if _, calls := w.rec.snapshot(); len(calls) != 0 {
		t.Fatal("bad bodies applied")
	}
}

func TestWebhookApplyFailure(t *testing.T) {
	w := newWebhookEnv(t, testToken)
	w.rec.fail = func(int, []notify.Event) error { return errors.New("catalog unavailable") }
	body := minioBody("s3:ObjectCreated:Put", "media", "a.png", obj{Size: 1, Sequencer: "01"})
	code, msg := w.do(t, http.MethodPost, "Bearer "+testToken, body)
	if code != http.StatusInternalServerError {
		t.Fatalf("status %d", code)
	}
	if strings.Contains(msg, "catalog") {
		t.Errorf("internal error leaked to the sender: %q", msg)
	}
	if n := counter(w.m.messages, outApplyFailed); n != 1 {
		t.Errorf("apply_failed = %d", n)
	}
	// The retry succeeds.
	w.rec.mu.Lock()
	w.rec.fail = nil
	w.rec.mu.Unlock()
	if code, _ := w.do(t, http.MethodPost, "Bearer "+testToken, body); code != http.StatusOK {
		t.Fatalf("retry: %d", code)
	}
}

// TestWebhookRequestContext: Apply runs with the request's context, so a
// sender that gives up cancels the work.
func TestWebhookRequestContext(t *testing.T) {
	src := config.Source{ID: "lib", Provider: "s3", Bucket: "media", Notifications: config.Notifications{Webhook: &config.Webhook{Token: testToken}}}
	rec := newRecorder()
	var got context.Context
	rec.block = func(ctx context.Context, _ []notify.Event) { got = ctx }
	h := NewWebhook(notificationsOf(t, src), rec, nil, nil)
	req := httptest.NewRequest(http.MethodPost, "/webhooks/s3/lib", strings.NewReader(minioBody("s3:ObjectCreated:Put", "media", "a", obj{Size: 1, Sequencer: "01"})))
	req.Header.Set("Authorization", "Bearer "+testToken)
	ctx, cancel := context.WithCancel(t.Context())
	req = req.WithContext(ctx)
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	cancel()
	if rr.Code != http.StatusOK || got == nil || got.Err() == nil {
		t.Fatalf("status %d, context %v", rr.Code, got)
	}
}
