package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/providers/kinds"
	"github.com/imgly/syncer/worker"
)

// client asks a running worker over its HTTP API.
type client struct {
	base  string // without trailing slash
	token string
	http  *http.Client
}

func newClient(base, token string) *client {
	if token == "" {
		token = os.Getenv("SYNCER_TOKEN")
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}
}

// urlFromListen is the URL to reach a worker listening on listen from this
// machine: a wildcard host is reached on loopback.
func urlFromListen(listen string) string {
	return "http://" + loopback(listen)
}

func loopback(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0", "::", "[::]":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// get fetches path and returns the response of a 200; any other outcome is
// one clear error. The token never appears in an error.
func (c *client) get(ctx context.Context, path string) (*http.Response, error) {
	return c.do(ctx, c.http, http.MethodGet, path, false)
}

// do sends a request and returns the response of a 200 — or, with anyJSON,
// of a 500 with a JSON body (a scan that failed, described); any other
// outcome is one clear error. The token never appears in an error.
func (c *client) do(ctx context.Context, hc *http.Client, method, path string, anyJSON bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("--url %q: %w", c.base, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("no syncer answering at %s", c.base)
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is said once, below
		}
		return nil, fmt.Errorf("%s %s%s: %w", method, c.base, path, err)
	}
	if resp.StatusCode == http.StatusOK || anyJSON && resp.StatusCode == http.StatusInternalServerError &&
		strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		if c.token == "" {
			return nil, fmt.Errorf("%s: unauthorized: give --token or SYNCER_TOKEN", c.base)
		}
		return nil, fmt.Errorf("%s: unauthorized: the worker does not accept this token", c.base)
	case http.StatusNotFound:
		if msg == "" || strings.HasPrefix(msg, "404 page not found") {
			return nil, fmt.Errorf("%s %s%s: not found (is this worker older than this syncer?)", method, c.base, path)
		}
		return nil, fmt.Errorf("%s: %s", c.base, msg)
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return nil, fmt.Errorf("%s %s%s: %s: %s", method, c.base, path, resp.Status, msg)
}

func (c *client) getJSON(ctx context.Context, path string, v any) ([]byte, error) {
	resp, err := c.get(ctx, path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s%s: %w", c.base, path, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("GET %s%s: not the JSON expected: %w", c.base, path, err)
	}
	return body, nil
}

// catalogLs prints a source's entries as the local `catalog ls` does: each
// is decoded and encoded again, so the output is ours, not the server's.
func (c *client) catalogLs(ctx context.Context, id, prefix string, limit int, stdout io.Writer) error {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/catalog/sources/" + url.PathEscape(id) + "/objects"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	enc := json.NewEncoder(stdout)
	for n := 0; limit == 0 || n < limit; n++ {
		var e catalog.Entry
		if err := dec.Decode(&e); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("GET %s%s: entry %d: %w", c.base, path, n+1, err)
		}
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}

func (c *client) catalogStats(ctx context.Context, stdout io.Writer) error {
	var doc struct {
		Sources []struct {
			ID          string `json:"id"`
			Objects     uint64 `json:"objects"`
			LastSeq     uint64 `json:"lastSeq"`
			Unpublished uint64 `json:"unpublished"`
		} `json:"sources"`
	}
	if _, err := c.getJSON(ctx, "/catalog/stats", &doc); err != nil {
		return err
	}
	for _, s := range doc.Sources {
		printStats(stdout, s.ID, s.Objects, s.LastSeq, s.Unpublished)
	}
	return nil
}

// statusDoc is the worker's GET /status: the worker's own type, so that
// the two cannot drift apart.
type statusDoc = worker.Status

func newStatusCmd(stdout io.Writer) *cobra.Command {
	var (
		path, output string
		remote       remoteFlags
	)
	c := &cobra.Command{
		Use:   "status [--url URL | --config FILE] [--output table|json]",
		Short: "Show a running worker's state: NATS, and per source the catalog, outbox and scans",
		Long: `Ask a running worker (GET /status) for its state and print it: the NATS connection and the
replica's id, then one row per source with its objects, last and published sequence numbers,
changes pending in the outbox, the last scan and its result, and when the next scan is due; with
a shared catalog (catalog.url) also the replica owning the source and when its lease expires.
--output json prints the worker's JSON as it is.

The worker is found at --url, else at the http.listen of --config, else at
http://127.0.0.1:8080. A bearer token comes from --token or $SYNCER_TOKEN.`,
		Example: `  syncer status
  syncer status --config syncer.yaml
  SYNCER_TOKEN=… syncer status --url http://syncer.internal:8080 --output json`,
		RunE: func(c *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usagef("--output %q: want table or json", output)
			}
			cl, err := statusClient(path, &remote)
			if err != nil {
				return err
			}
			return cmdStatus(c.Context(), cl, output, stdout, time.Now())
		},
	}
	c.Flags().StringVar(&path, "config", "", "find the worker at this configuration's http.listen")
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	remote.register(c, "the worker's URL (default http://127.0.0.1:8080)")
	return c
}

func statusClient(path string, remote *remoteFlags) (*client, error) {
	if remote.url != "" {
		return remote.client(nil), nil
	}
	if path == "" {
		return newClient("http://127.0.0.1:8080", remote.token), nil
	}
	cfg, err := config.LoadFor(path, kinds.All())
	if err != nil {
		return nil, err
	}
	cl := remote.client(cfg)
	if cl == nil {
		return nil, fmt.Errorf("%s: http.listen is off, so the worker cannot be asked; give --url", path)
	}
	return cl, nil
}

func cmdStatus(ctx context.Context, cl *client, output string, stdout io.Writer, now time.Time) error {
	var doc statusDoc
	body, err := cl.getJSON(ctx, "/status", &doc)
	if err != nil {
		return err
	}
	if output == "json" {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
		_, err := fmt.Fprintf(stdout, "%s\n", bytes.TrimRight(body, "\n"))
		return err
	}
	printStatus(stdout, &doc, now)
	return nil
}

func printStatus(w io.Writer, doc *statusDoc, now time.Time) {
	state := "connected"
	if !doc.NATS.Connected {
		state = "NOT CONNECTED"
	}
	if doc.NATS.Embedded {
		state += ", embedded"
	}
	fmt.Fprintf(w, "NATS %s (%s)\n", dash(doc.NATS.URL), state)
	if doc.Replica != "" {
		fmt.Fprintf(w, "Replica %s\n", doc.Replica)
	}
	fmt.Fprintln(w)
	leases := shared(doc)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	header := "SOURCE\tPROVIDER\tBUCKET\tPREFIX\tOBJECTS\tLAST-SEQ\tPUBLISHED\tPENDING\tLAST-SCAN\tRESULT\tNEXT-SCAN"
	if leases {
		header += "\tOWNER\tLEASE"
	}
	fmt.Fprintln(tw, header)
	for i := range doc.Sources {
		fmt.Fprintln(tw, statusRow(&doc.Sources[i], leases, now))
	}
	tw.Flush()
	// What the table cannot hold, an operator needs first: why a scan
	// failed, and notifications that are not running.
	var notes []string
	for _, s := range doc.Sources {
		if s.LastScan != nil && s.LastScan.Result == "held" && s.LastScan.Error != "" {
			// The error says "held: would delete …" and how to release.
			notes = append(notes, fmt.Sprintf("%s: last scan %s", s.ID, s.LastScan.Error))
		} else if s.LastScan != nil && s.LastScan.Error != "" {
			result := dash(s.LastScan.Result)
			if s.LastError != nil && s.LastError.Kind != "" {
				result += " (" + s.LastError.Kind + ")"
			}
			notes = append(notes, fmt.Sprintf("%s: last scan %s: %s", s.ID, result, s.LastScan.Error))
		}
		if s.RestingUntil != nil {
			notes = append(notes, fmt.Sprintf("%s: the store throttled it; scheduled scans rest %s", s.ID, until(now, *s.RestingUntil)))
		}
		for _, n := range s.Notifications {
			if n.State != "running" {
				notes = append(notes, fmt.Sprintf("%s: %s notifications %s", s.ID, dash(n.Transport), dash(n.State)))
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	}
}

// shared says the worker runs on a shared catalog, where sources have
// owners other than it and leases: only then does the table show them
// (with the embedded catalog this replica owns everything, leaseless).
func shared(doc *statusDoc) bool {
	for _, s := range doc.Sources {
		if s.LeaseExpires != nil || s.Owner != doc.Replica {
			return true
		}
	}
	return false
}

// statusRow is a source's line of the status table.
func statusRow(s *worker.SourceStatus, leases bool, now time.Time) string {
	lastScan, result := "-", "-"
	if s.LastScan != nil {
		lastScan = ago(now, s.LastScan.StartedAt)
		result = dash(s.LastScan.Result)
	}
	next := "-"
	if s.NextScanAt != nil && !s.NextScanAt.IsZero() {
		next = until(now, *s.NextScanAt)
	}
	row := fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s",
		s.ID, dash(s.Provider), dash(s.Bucket), dash(s.Prefix), s.Objects, s.LastSeq, s.PublishedSeq,
		s.OutboxPending, lastScan, result, next)
	if !leases {
		return row
	}
	lease := "-"
	if e := s.LeaseExpires; e != nil {
		lease = "expires " + until(now, *e)
		if !e.After(now) {
			lease = "expired " + ago(now, *e)
		}
	}
	return row + "\t" + dash(s.Owner) + "\t" + lease
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if t.After(now) {
		return "just now"
	}
	return human(now.Sub(t)) + " ago"
}

func until(now, t time.Time) string {
	if !t.After(now) {
		return "now"
	}
	return "in " + human(t.Sub(now))
}

// human is a duration as kubectl shows ages: the one or two largest units.
func human(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 10*60:
		if s%60 == 0 {
			return fmt.Sprintf("%dm", s/60)
		}
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	case s < 3600:
		return fmt.Sprintf("%dm", s/60)
	case s < 3*3600:
		if s/60%60 == 0 {
			return fmt.Sprintf("%dh", s/3600)
		}
		return fmt.Sprintf("%dh%dm", s/3600, s/60%60)
	case s < 48*3600:
		return fmt.Sprintf("%dh", s/3600)
	}
	return fmt.Sprintf("%dd", s/86400)
}
