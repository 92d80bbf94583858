package worker_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/schedule"
	"github.com/imgly/syncer/worker"
)

func postScan(t *testing.T, addr, id, query, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/admin/sources/"+id+"/scan"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func lastScan(t *testing.T, addr, token string) *worker.StatusScan {
	t.Helper()
	resp, body := get(t, addr, "/status", token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/status: %s %s", resp.Status, body)
	}
	var st worker.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st.Sources[0].LastScan
}

// A scan that would delete 9 of 10 objects is held on a running worker:
// /status, the gauge and the event stream show it; the admin endpoint,
// with an admin token only, releases it.
func TestGuardHeldAndReleasedOnWorker(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	dir := t.TempDir()
	files := map[string]string{}
	for i := range 10 {
		files[fmt.Sprintf("f%d.txt", i)] = "x"
	}
	writeFiles(t, dir, files)
	cfg := testConfig(t, n.URL, config.Source{ID: "loc", Provider: "local", Path: dir})
	cfg.HTTP.Auth.Tokens = []string{"data-token"}
	cfg.HTTP.Auth.AdminTokens = []string{"admin-token"}
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.loc")
	var all []string
	for k := range files {
		all = append(all, k)
	}
	sub.expect(added(sortedKeys(all)...)...)
	addr := w.HTTPAddr()
	if v := metric(t, addr, "syncer_source_guard_held", `source="loc"`); v != 0 || !hasLine(t, addr, `syncer_source_guard_held{source="loc"} 0`) {
		t.Fatalf("guard gauge at start %v, want a series at 0", v)
	}

	for i := 1; i < 10; i++ {
		if err := os.Remove(filepath.Join(dir, fmt.Sprintf("f%d.txt", i))); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, dir, map[string]string{"new.txt": "n"})
	w.scan(t, "loc")
	sub.expect(change{"added", "new.txt"}) // the addition applies
	w.drained(t)
	sub.none() // the deletions do not
	ls := lastScan(t, addr, "data-token")
	if ls.Result != schedule.ResultHeld || !strings.Contains(ls.Error, "held: would delete 9 of 10 (90% > 50%); release with syncer scan --allow-mass-delete") {
		t.Fatalf("/status lastScan %+v", ls)
	}
	if v := metric(t, addr, "syncer_source_guard_held", `source="loc"`); v != 1 {
		t.Fatalf("guard gauge %v after a held scan, want 1", v)
	}

	// Admin endpoints: never without an admin token; a data token is not one.
	for _, tok := range []string{"", "wrong", "data-token", "admin-token-but-longer"} {
		resp, body := postScan(t, addr, "loc", "?allowMassDelete=true", tok)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token %q: %s %s, want 401", tok, resp.Status, body)
		}
	}
	if resp, body := postScan(t, addr, "nope", "", "admin-token"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown source: %s %s", resp.Status, body)
	}
	if resp, body := postScan(t, addr, "loc", "?allowMassDelete=maybe", "admin-token"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad flag: %s %s", resp.Status, body)
	}
	w.drained(t)
	sub.none() // the refused requests changed nothing

	// Without allowMassDelete the scan is held again.
	resp, body := postScan(t, addr, "loc", "", "admin-token")
	var res worker.ScanResult
	if err := json.Unmarshal(body, &res); err != nil || resp.StatusCode != http.StatusOK || res.Result != "held" || res.Deleted != 0 {
		t.Fatalf("guarded admin scan: %s %s", resp.Status, body)
	}
	resp, body = postScan(t, addr, "loc", "?allowMassDelete=true", "admin-token")
	res = worker.ScanResult{}
	if err := json.Unmarshal(body, &res); err != nil || resp.StatusCode != http.StatusOK || res.Result != "ok" || res.Deleted != 9 || res.Listed != 2 {
		t.Fatalf("release: %s %s", resp.Status, body)
	}
	var gone []change
	for i := 1; i < 10; i++ {
		gone = append(gone, change{"deleted", fmt.Sprintf("f%d.txt", i)})
	}
	sub.expect(gone...)
	if ls := lastScan(t, addr, "data-token"); ls.Result != "ok" || ls.Error != "" {
		t.Fatalf("/status after release %+v", ls)
	}
	if v := metric(t, addr, "syncer_source_guard_held", `source="loc"`); v != 0 {
		t.Fatalf("guard gauge %v after release, want 0", v)
	}
}

// Without http.auth.adminTokens the admin endpoint refuses everyone, even
// on loopback where /status is open.
func TestAdminClosedWithoutAdminTokens(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := testConfig(t, n.URL, config.Source{ID: "loc", Provider: "local", Path: t.TempDir()})
	w := start(t, cfg)
	if resp, body := get(t, w.HTTPAddr(), "/status", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("/status on loopback: %s %s", resp.Status, body)
	}
	for _, tok := range []string{"", "anything"} {
		resp, body := postScan(t, w.HTTPAddr(), "loc", "?allowMassDelete=true", tok)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "http.auth.adminTokens") {
			t.Errorf("token %q: %s %s", tok, resp.Status, body)
		}
	}
}

// Deletions a notification reports are confirmed by the provider and are
// never held, however many.
func TestGuardDoesNotHoldNotificationDeletes(t *testing.T) {
	s3 := testkit.StartS3(t, nil)
	bucket := uniq("guard")
	s3.CreateBucket(t, bucket)
	for i := range 10 {
		s3.Put(t, bucket, fmt.Sprintf("k%d", i), []byte("v"), "text/plain")
	}
	n := testkit.StartNATS(t, t.TempDir(), 0)
	src := s3.SourceConfig("hook-src", bucket)
	src.Notifications.Webhook = &config.Webhook{Token: "hook-token"}
	cfg := testConfig(t, n.URL, src)
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.hook-src")
	startupScanned(t, w, "hook-src")
	var keys []string
	for i := range 10 {
		keys = append(keys, fmt.Sprintf("k%d", i))
	}
	sub.expect(added(keys...)...)
	var gone []change
	for i := range 9 {
		key := fmt.Sprintf("k%d", i)
		s3.Delete(t, bucket, key)
		body := minioBody(t, "s3:ObjectRemoved:Delete", bucket, key, 0, "", fmt.Sprintf("18A9E1B2C3D4E5%02X", i))
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+w.HTTPAddr()+"/webhooks/s3/hook-src", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer hook-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("webhook: %s", resp.Status)
		}
		gone = append(gone, change{"deleted", key})
	}
	sub.expectBy("notification", gone...)
	if v := metric(t, w.HTTPAddr(), "syncer_source_guard_held", `source="hook-src"`); v != 0 {
		t.Fatalf("guard gauge %v, want 0", v)
	}
}
