// Command sseload is the load client of bench/sse.sh: it holds N
// server-sent-event streams open against one syncer, reads its memory from
// /metrics before and after, then makes changes (a file written into the
// local source, a scan through the admin endpoint) and measures when each
// event reaches every stream.
//
//	sseload -url http://127.0.0.1:8080 -source bench -dir ./assets -admin TOKEN -n 10000
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	base, source, dir, admin string
	n, events, dialers       int
	interval, settle         time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.base, "url", "http://127.0.0.1:8080", "syncer's HTTP listener")
	flag.StringVar(&o.source, "source", "bench", "the local source's id")
	flag.StringVar(&o.dir, "dir", "", "the local source's directory (files are written there)")
	flag.StringVar(&o.admin, "admin", "", "an http.auth.adminTokens token (to trigger scans)")
	flag.IntVar(&o.n, "n", 10000, "concurrent streams")
	flag.IntVar(&o.events, "events", 5, "events to measure")
	flag.IntVar(&o.dialers, "dialers", 64, "streams opened concurrently")
	flag.DurationVar(&o.interval, "interval", 2*time.Second, "pause between events")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait after connecting before reading memory")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "sseload:", err)
		os.Exit(1)
	}
}

// arrival is when one stream received the event with lastSeq seq.
type arrival struct {
	seq uint64
	at  time.Time
	pub time.Time // the CloudEvent's time: when syncer cut the event
}

func run(o options) error {
	u, err := url.Parse(o.base)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-url %q: not an http URL", o.base)
	}
	if o.dir == "" || o.admin == "" {
		return errors.New("-dir and -admin are required")
	}
	before, err := metrics(o.base)
	if err != nil {
		return err
	}
	arrivals := make(chan arrival, o.n*o.events)
	var open atomic.Int64
	ready := make(chan error, o.n)
	sem := make(chan struct{}, o.dialers)
	start := time.Now()
	for range o.n {
		sem <- struct{}{}
		go func() {
			var once sync.Once
			release := func() { once.Do(func() { <-sem }) }
			err := stream(u.Host, "/sources/"+o.source+"/events", arrivals, func() { open.Add(1); release() })
			release()
			ready <- err
		}()
	}
	for open.Load() < int64(o.n) {
		select {
		case err := <-ready:
			return fmt.Errorf("after %d streams: %w", open.Load(), err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("only %d of %d streams open after 5 minutes", open.Load(), o.n)
		}
	}
	fmt.Printf("streams: %d open in %.1f s\n", o.n, time.Since(start).Seconds())
	time.Sleep(o.settle) // let the server's allocations settle before reading memory
	after, err := metrics(o.base)
	if err != nil {
		return err
	}
	report("memory per idle stream", before, after, o.n)
	for k := range o.events {
		if err := oneEvent(o, k, arrivals); err != nil {
			return err
		}
		time.Sleep(o.interval)
	}
	return nil
}

// oneEvent writes a file, scans, and waits until every stream has the
// event (or 60 s passed).
func oneEvent(o options, k int, arrivals <-chan arrival) error {
	name := filepath.Join(o.dir, fmt.Sprintf("sseload-%d-%d.txt", time.Now().UnixNano(), k))
	if err := os.WriteFile(name, []byte("x"), 0o644); err != nil {
		return err
	}
	t0 := time.Now()
	req, _ := http.NewRequest(http.MethodPost, o.base+"/admin/sources/"+o.source+"/scan", nil)
	req.Header.Set("Authorization", "Bearer "+o.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scan: status %d", resp.StatusCode)
	}
	scanned := time.Since(t0)
	var fromScan, fromPub []time.Duration
	var seq uint64
	deadline := time.After(60 * time.Second)
	for len(fromScan) < o.n {
		select {
		case a := <-arrivals:
			if seq == 0 {
				seq = a.seq
			}
			if a.seq != seq {
				return fmt.Errorf("event %d: a stream got lastSeq %d, others %d", k, a.seq, seq)
			}
			fromScan = append(fromScan, a.at.Sub(t0))
			fromPub = append(fromPub, a.at.Sub(a.pub))
		case <-deadline:
			return fmt.Errorf("event %d: %d of %d streams got it within 60 s", k, len(fromScan), o.n)
		}
	}
	fmt.Printf("event %d (lastSeq %d): reached %d streams; scan request %.0f ms; from the event's cut: %s; from the scan request: %s\n",
		k, seq, len(fromScan), ms(scanned), quantiles(fromPub), quantiles(fromScan))
	return nil
}

// stream holds one SSE stream on a raw connection (lighter than
// net/http's client per stream, so that the load client is not what is
// measured) and reports each contents-changed event.
func stream(host, path string, out chan<- arrival, opened func()) error {
	conn, err := net.Dial("tcp", host)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, host)
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	opened()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: ") && event == "contents-changed":
			now := time.Now()
			var ev struct {
				Time time.Time `json:"time"`
				Data struct {
					LastSeq uint64 `json:"lastSeq"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(line[len("data: "):]), &ev); err != nil {
				return err
			}
			out <- arrival{seq: ev.Data.LastSeq, at: now, pub: ev.Time}
		case line == "":
			event = ""
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("stream ended")
}

// metrics reads the Go runtime's memory figures from syncer's /metrics.
func metrics(base string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "process_resident_memory_bytes", "go_goroutines":
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				out[name] = f
			}
		}
	}
	return out, sc.Err()
}

func report(what string, before, after map[string]float64, n int) {
	d := func(k string) float64 { return after[k] - before[k] }
	heapStack := d("go_memstats_heap_inuse_bytes") + d("go_memstats_stack_inuse_bytes")
	fmt.Printf("%s: heap+stacks %.1f KB (heap %.1f KB, stacks %.1f KB), RSS %.1f KB, goroutines %.2f per stream\n", what,
		heapStack/float64(n)/1024, d("go_memstats_heap_inuse_bytes")/float64(n)/1024,
		d("go_memstats_stack_inuse_bytes")/float64(n)/1024, d("process_resident_memory_bytes")/float64(n)/1024,
		d("go_goroutines")/float64(n))
}

func quantiles(ds []time.Duration) string {
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return fmt.Sprintf("p50 %.0f ms, p99 %.0f ms, max %.0f ms", ms(q(0.50)), ms(q(0.99)), ms(ds[len(ds)-1]))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
