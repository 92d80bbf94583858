package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
)

const testToken = "s3cr3t-t0ken-for-tests"

// inspectWorker is `syncer run` with two local sources and a bearer token.
type inspectWorker struct {
	p          *proc
	config     string
	url        string
	dirA, dirB string
}

func startInspectWorker(t *testing.T) *inspectWorker {
	t.Helper()
	dir := t.TempDir()
	w := &inspectWorker{dirA: filepath.Join(dir, "a"), dirB: filepath.Join(dir, "b")}
	for path, body := range map[string]string{
		filepath.Join(w.dirA, "img", "one.png"): "1", filepath.Join(w.dirA, "img", "two.jpg"): "22",
		filepath.Join(w.dirB, "three.svg"): "333",
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	w.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	w.config = writeConfig(t, fmt.Sprintf(`
nats: {url: embedded, listen: "127.0.0.1:%d", storeDir: %q}
catalog: {path: %q}
http: {listen: "127.0.0.1:%d", auth: {tokens: [%q]}}
events: {coalesceWindow: 10ms}
sources:
  - {id: a, provider: local, path: %q, settle: 0s, schedule: "@every 1h"}
  - {id: b, provider: local, path: %q, settle: 0s, schedule: "@every 1h"}
`, freePort(t), filepath.Join(dir, "nats"), filepath.Join(dir, "catalog"), port, testToken, w.dirA, w.dirB))
	w.p = start(t, nil, "run", "--config", w.config)
	waitHTTP(t, w.url+"/healthz", w.p)
	return w
}

// TestInspectRunningWorker: status and catalog commands against a running
// worker (GET /status, /catalog/stats, /catalog/sources/{id}/objects).
func TestInspectRunningWorker(t *testing.T) {
	w := startInspectWorker(t)
	env := []string{"SYNCER_TOKEN=" + testToken}

	// The start-up scans commit 2 and 1 objects; the locked catalog sends
	// stats to the worker named by the config's http.listen.
	deadline := time.Now().Add(30 * time.Second)
	var stats string
	for {
		code, stdout, stderr := runCLIEnv(t, env, "catalog", "stats", "--config", w.config)
		stats = stdout
		if code == 0 && strings.Contains(stdout, "a\tobjects=2\tlastSeq=2\t") && strings.Contains(stdout, "b\tobjects=1\tlastSeq=1\t") {
			break
		}
		if code != 0 || time.Now().After(deadline) {
			t.Fatalf("catalog stats via the worker: exit %d, stdout %q, stderr %q; worker: %s", code, stdout, stderr, w.p.stderr)
		}
		time.Sleep(200 * time.Millisecond) // polling another process's scans
	}
	code, byURL, stderr := runCLIEnv(t, env, "catalog", "stats", "--url", w.url)
	if code != 0 || byURL != stats {
		t.Errorf("catalog stats --url: exit %d, %q (want %q), stderr %q", code, byURL, stats, stderr)
	}

	// status, table.
	code, table, stderr := runCLIEnv(t, env, "status", "--url", w.url)
	if code != 0 {
		t.Fatalf("status: exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	// The embedded catalog: this replica owns everything, no lease columns.
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "NATS nats://127.0.0.1:") || !strings.Contains(lines[0], "connected, embedded") ||
		!strings.HasPrefix(lines[1], "Replica ") ||
		strings.Join(strings.Fields(lines[3]), " ") != "SOURCE PROVIDER BUCKET PREFIX OBJECTS LAST-SEQ PUBLISHED PENDING LAST-SCAN RESULT NEXT-SCAN" {
		t.Fatalf("status table:\n%s", table)
	}
	for i, want := range []string{"a local " + w.dirA + " - 2 2 ", "b local " + w.dirB + " - 1 1 "} {
		row := strings.Join(strings.Fields(lines[4+i]), " ")
		if !strings.HasPrefix(row, want) || !strings.Contains(row, " ago ok in ") {
			t.Errorf("status row %q, want %q… ago ok in …", row, want)
		}
	}
	if code, byConfig, _ := runCLIEnv(t, env, "status", "--config", w.config); code != 0 ||
		strings.Split(byConfig, "\n")[3] != lines[3] {
		t.Errorf("status --config: exit %d:\n%s", code, byConfig)
	}

	// status, JSON.
	code, raw, stderr := runCLI(t, "status", "--url", w.url, "--token", testToken, "-o", "json")
	if code != 0 {
		t.Fatalf("status -o json: exit %d, stderr %q", code, stderr)
	}
	var doc statusDoc
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, raw)
	}
	if doc.Version == "" || doc.StartedAt.IsZero() || time.Since(doc.StartedAt) > time.Hour ||
		!strings.HasPrefix(doc.NATS.URL, "nats://") || !doc.NATS.Connected || !doc.NATS.Embedded || len(doc.Sources) != 2 {
		t.Fatalf("status: %s", raw)
	}
	for i, want := range []struct {
		id, bucket string
		objects    uint64
	}{{"a", w.dirA, 2}, {"b", w.dirB, 1}} {
		s := doc.Sources[i]
		if s.ID != want.id || s.Provider != "local" || s.Bucket != want.bucket || s.Objects != want.objects ||
			s.LastSeq != want.objects || s.PublishedSeq+s.OutboxPending != s.LastSeq ||
			s.LastScan == nil || s.LastScan.Result != "ok" || uint64(s.LastScan.Listed) != want.objects || s.NextScanAt == nil {
			t.Errorf("source %d: %+v", i, s)
		}
	}

	// Without the token: one clear line, and the token is never echoed.
	code, _, stderr = runCLI(t, "status", "--url", w.url)
	if code != 1 || stderr != "syncer: "+w.url+": unauthorized: give --token or SYNCER_TOKEN\n" {
		t.Errorf("status without a token: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "status", "--url", w.url, "--token", "wrong-token")
	if code != 1 || !strings.Contains(stderr, "unauthorized") || strings.Contains(stderr, "wrong-token") {
		t.Errorf("status with a wrong token: exit %d, stderr %q", code, stderr)
	}

	// catalog ls over HTTP, by --url and through the locked catalog.
	code, ls, stderr := runCLIEnv(t, env, "catalog", "ls", "--url", w.url, "--source", "a")
	if code != 0 || strings.Count(ls, "\n") != 2 || !strings.Contains(ls, `"key":"img/one.png"`) || !strings.Contains(ls, `"key":"img/two.jpg"`) {
		t.Fatalf("catalog ls --url: exit %d, %q, stderr %q", code, ls, stderr)
	}
	if code, viaLock, stderr := runCLIEnv(t, env, "catalog", "ls", "--config", w.config, "--source", "a"); code != 0 || viaLock != ls {
		t.Errorf("catalog ls --config (locked): exit %d, %q, stderr %q", code, viaLock, stderr)
	}
	if code, out, _ := runCLIEnv(t, env, "catalog", "ls", "--url", w.url, "--source", "a", "--prefix", "img/t"); code != 0 ||
		strings.Count(out, "\n") != 1 || !strings.Contains(out, `"key":"img/two.jpg"`) {
		t.Errorf("catalog ls --prefix: exit %d, %q", code, out)
	}
	if code, out, _ := runCLIEnv(t, env, "catalog", "ls", "--url", w.url, "--source", "a", "--limit", "1"); code != 0 ||
		strings.Count(out, "\n") != 1 || !strings.Contains(out, `"key":"img/one.png"`) {
		t.Errorf("catalog ls --limit: exit %d, %q", code, out)
	}
	if code, _, stderr := runCLIEnv(t, env, "catalog", "ls", "--url", w.url, "--source", "nosuch"); code != 1 ||
		strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "nosuch") {
		t.Errorf("catalog ls of an unknown source: exit %d, stderr %q", code, stderr)
	}

	// Over HTTP prints exactly what the local path prints.
	if code := w.p.stop(t); code != 0 {
		t.Fatalf("worker exit %d", code)
	}
	if strings.Contains(w.p.stderr.String(), testToken) {
		t.Error("the worker logged the token")
	}
	if code, local, stderr := runCLI(t, "catalog", "ls", "--config", w.config, "--source", "a"); code != 0 || local != ls {
		t.Errorf("local catalog ls: exit %d, %q, want %q (stderr %q)", code, local, ls, stderr)
	}
	code, local, _ := runCLI(t, "catalog", "stats", "--config", w.config)
	// The remote stats were taken before the publisher caught up, so
	// compare the stable columns.
	if code != 0 || stableStats(local) != stableStats(stats) {
		t.Errorf("local catalog stats %q, via the worker %q", local, stats)
	}
}

func stableStats(s string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 4 {
			out = append(out, strings.Join(f[:3], "\t"))
		}
	}
	return strings.Join(out, "\n")
}

// TestInspectNoWorker: nobody listening is one clear line.
func TestInspectNoWorker(t *testing.T) {
	url := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	for _, args := range [][]string{
		{"status", "--url", url},
		{"catalog", "stats", "--url", url},
		{"catalog", "ls", "--url", url, "--source", "a"},
	} {
		code, stdout, stderr := runCLI(t, args...)
		if code != 1 || stdout != "" || stderr != "syncer: no syncer answering at "+url+"\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	path := writeConfig(t, "nats: {url: embedded}\nhttp: {listen: \"off\"}\n")
	if code, _, stderr := runCLI(t, "status", "--config", path); code != 1 || !strings.Contains(stderr, "http.listen is off") {
		t.Errorf("status --config with http off: exit %d, stderr %q", code, stderr)
	}
}

func TestURLFromListen(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080", "0.0.0.0:8080": "http://127.0.0.1:8080",
		"[::]:9000": "http://127.0.0.1:9000", ":8080": "http://127.0.0.1:8080", "[::1]:8080": "http://[::1]:8080",
		"syncer.internal:8080": "http://syncer.internal:8080",
	} {
		if got := urlFromListen(listen); got != want {
			t.Errorf("urlFromListen(%q) = %q, want %q", listen, got, want)
		}
	}
}

// TestPrintStatus renders a canned /status document (the contract's
// example), independent of a running worker.
func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var doc statusDoc
	if err := json.Unmarshal([]byte(`{"version":"v1.2.3","revision":"1a2b3c4","startedAt":"2026-12-01T09:00:00Z",
	  "nats":{"url":"nats://nats:4222","connected":true,"embedded":false},
	  "sources":[
	    {"id":"a","provider":"s3","bucket":"b","prefix":"p/","objects":12,"lastSeq":40,"publishedSeq":38,"outboxPending":2,
	     "lastScan":{"startedAt":"2026-12-01T11:59:48Z","durationSeconds":0.41,"listed":12,"result":"ok","error":""},
	     "nextScanAt":"2026-12-01T12:04:00Z","notifications":[{"transport":"sqs","state":"running","lastMessageAt":"2026-12-01T11:59:00Z"}]},
	    {"id":"c","provider":"azure","bucket":"assets","prefix":"","objects":0,"lastSeq":0,"publishedSeq":0,"outboxPending":0,
	     "lastScan":{"startedAt":"2026-12-01T10:30:00Z","durationSeconds":1.5,"listed":0,"result":"failed","error":"list: 503 SlowDown"},
	     "lastError":{"kind":"throttled","error":"list: 503 SlowDown","at":"2026-12-01T10:30:01Z"},
	     "restingUntil":"2026-12-01T12:10:00Z",
	     "nextScanAt":null,"notifications":[{"transport":"storagequeue","state":"failing","lastMessageAt":null}]},
	    {"id":"d","provider":"local","bucket":"/srv/assets","prefix":"","objects":3,"lastSeq":3,"publishedSeq":3,"outboxPending":0}
	  ]}`), &doc); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	printStatus(&buf, &doc, now)
	var got []string
	for line := range strings.SplitSeq(strings.TrimRight(buf.String(), "\n"), "\n") {
		got = append(got, strings.Join(strings.Fields(line), " "))
	}
	want := []string{
		"NATS nats://nats:4222 (connected)",
		"",
		"SOURCE PROVIDER BUCKET PREFIX OBJECTS LAST-SEQ PUBLISHED PENDING LAST-SCAN RESULT NEXT-SCAN",
		"a s3 b p/ 12 40 38 2 12s ago ok in 4m",
		"c azure assets - 0 0 0 0 1h30m ago failed -",
		"d local /srv/assets - 3 3 3 0 - - -",
		"",
		"c: last scan failed (throttled): list: 503 SlowDown",
		"c: the store throttled it; scheduled scans rest in 10m",
		"c: storagequeue notifications failing",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// With a shared catalog the table names the replica asked and each
// source's owner and lease.
func TestPrintStatusReplicas(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var doc statusDoc
	if err := json.Unmarshal([]byte(`{"version":"v1","replica":"syncer-1","nats":{"url":"nats://nats:4222","connected":true},
	  "sources":[
	    {"id":"a","provider":"s3","bucket":"b","objects":1,"lastSeq":1,"publishedSeq":1,
	     "owner":"syncer-1","leaseExpires":"2026-12-01T12:00:04Z","nextScanAt":"2026-12-01T12:04:00Z"},
	    {"id":"b","provider":"s3","bucket":"c","objects":2,"lastSeq":2,"publishedSeq":2,
	     "owner":"syncer-0","leaseExpires":"2026-12-01T11:59:58Z"},
	    {"id":"c","provider":"gcs","bucket":"d","owner":"","leaseExpires":null}
	  ]}`), &doc); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	printStatus(&buf, &doc, now)
	var got []string
	for line := range strings.SplitSeq(strings.TrimRight(buf.String(), "\n"), "\n") {
		got = append(got, strings.Join(strings.Fields(line), " "))
	}
	want := []string{
		"NATS nats://nats:4222 (connected)",
		"Replica syncer-1",
		"",
		"SOURCE PROVIDER BUCKET PREFIX OBJECTS LAST-SEQ PUBLISHED PENDING LAST-SCAN RESULT NEXT-SCAN OWNER LEASE",
		"a s3 b - 1 1 1 0 - - in 4m syncer-1 expires in 4s",
		"b s3 c - 2 2 2 0 - - - syncer-0 expired 2s ago",
		"c gcs d - 0 0 0 0 - - - - -",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestClientContract checks the client's side of the HTTP contract
// (bearer token, NDJSON re-encoded as `catalog ls` prints it, error lines)
// against a server speaking it; the real worker is in
// TestInspectRunningWorker.
func TestClientContract(t *testing.T) {
	const entry = `{"key":"img/one.png","size":1,"seq":1}`
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			rw.WriteHeader(http.StatusUnauthorized)
			rw.Write([]byte(`{"error":"unauthorized"}`)) //nolint:errcheck
			return
		}
		switch r.URL.Path {
		case "/catalog/stats":
			rw.Write([]byte(`{"sources":[{"id":"a","objects":12,"lastSeq":40,"unpublished":2}]}`)) //nolint:errcheck
		case "/catalog/sources/a/objects":
			if r.URL.Query().Get("prefix") != "img/" || r.URL.Query().Get("limit") != "1" {
				t.Errorf("query %q", r.URL.RawQuery)
			}
			rw.Header().Set("Content-Type", "application/x-ndjson")
			rw.Write([]byte(entry + "\n")) //nolint:errcheck
		default:
			rw.WriteHeader(http.StatusNotFound)
			rw.Write([]byte(`{"error":"source \"x\" is not configured"}`)) //nolint:errcheck
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	var out strings.Builder
	if err := newClient(srv.URL, "good").catalogStats(ctx, &out); err != nil || out.String() != "a\tobjects=12\tlastSeq=40\tunpublished=2\n" {
		t.Errorf("stats: %v, %q", err, out.String())
	}
	out.Reset()
	if err := newClient(srv.URL+"/", "good").catalogLs(ctx, "a", "img/", 1, &out); err != nil {
		t.Fatal(err)
	}
	var e catalog.Entry
	if err := json.Unmarshal([]byte(entry), &e); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(e)
	if out.String() != string(want)+"\n" {
		t.Errorf("ls: %q, want %q", out.String(), want)
	}
	if err := newClient(srv.URL, "good").catalogLs(ctx, "x", "", 0, &out); err == nil || err.Error() != srv.URL+`: source "x" is not configured` {
		t.Errorf("unknown source: %v", err)
	}
	t.Setenv("SYNCER_TOKEN", "")
	if err := newClient(srv.URL, "").catalogStats(ctx, &out); err == nil || err.Error() != srv.URL+": unauthorized: give --token or SYNCER_TOKEN" {
		t.Errorf("no token: %v", err)
	}
	if err := newClient(srv.URL, "bad-secret").catalogStats(ctx, &out); err == nil || strings.Contains(err.Error(), "bad-secret") ||
		!strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("bad token: %v", err)
	}
	t.Setenv("SYNCER_TOKEN", "good")
	if err := newClient(srv.URL, "").catalogStats(ctx, io.Discard); err != nil {
		t.Errorf("token from SYNCER_TOKEN: %v", err)
	}
}
