// Command s3server serves an in-memory gofakes3 bucket on loopback for the
// scan benchmarks, pre-filled with n objects whose keys look like real asset
// keys. It runs as its own process so that the RSS measured for `syncer scan`
// and for the listing baseline is theirs alone.
//
// When the bucket is filled it prints one line to stdout:
//
//	READY url=http://127.0.0.1:PORT bucket=NAME objects=N fill=1.234s
//
// GET /_lists answers with the number of list requests served so far.
//
// and serves until SIGINT or SIGTERM.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0: any free port)")
	bucket := flag.String("bucket", "bench", "bucket to create and fill")
	n := flag.Int("n", 0, "objects to put before reporting ready")
	workers := flag.Int("workers", 16, "concurrent writers")
	via := flag.String("via", "backend", `how to fill: "backend" (straight into the s3mem store, fast) or "http" (PutObject through the S3 API)`)
	listDelay := flag.Duration("listdelay", 0, "latency added to every list request (real S3 answers a page in 50-300 ms)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("s3server: ")

	if err := run(*addr, *bucket, *n, *workers, *via, *listDelay); err != nil {
		log.Fatal(err)
	}
}

func run(addr, bucket string, n, workers int, via string, listDelay time.Duration) error {
	if via != "backend" && via != "http" {
		return fmt.Errorf("-via %q: want backend or http", via)
	}
	if workers < 1 {
		workers = 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	var lists atomic.Int64
	srv := &http.Server{Handler: countLists(delayLists(gofakes3.New(backend).Server(), listDelay), &lists), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	url := "http://" + ln.Addr().String()

	start := time.Now()
	put := func(key string, body []byte) error {
		_, err := backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader(body), int64(len(body)), nil)
		return err
	}
	if via == "http" {
		client := awss3.New(awss3.Options{
			Region:       "us-east-1",
			BaseEndpoint: aws.String(url),
			UsePathStyle: true,
			Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
			// gofakes3 stores aws-chunked bodies raw unless checksums are
			// only sent when required (see shared/notes/emulators.md).
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
			ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		})
		put = func(key string, body []byte) error {
			_, err := client.PutObject(ctx, &awss3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body), ContentType: aws.String("image/jpeg"),
			})
			return err
		}
	}
	if err := fill(ctx, n, workers, put); err != nil {
		return err
	}
	fmt.Printf("READY url=%s bucket=%s objects=%d fill=%s\n", url, bucket, n, time.Since(start).Round(time.Millisecond))

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// key is the i-th benchmark key, about 60 bytes, shaped like the keys of a
// real asset library: library/images/<year>/<month>/<day>/<id>/photo-<id>-1080p.jpg.
// Days are spread round-robin so that key order differs from put order, as
// it does in a bucket filled over time.
func key(i int) string {
	id := fmt.Sprintf("%010d", i)
	return "library/images/2026/11/" + strconv.Itoa(1+i%28) + "/" + id + "/photo-" + id + "-1080p.jpg"
}

// fill puts n objects with workers concurrent writers. Bodies are tiny but
// distinct, so every object has its own ETag as in a real bucket.
func fill(ctx context.Context, n, workers int, put func(key string, body []byte) error) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := put(key(i), []byte("jpeg "+strconv.Itoa(i))); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("put %s: %w", key(i), err) })
					return
				}
				if (i+1)%200000 == 0 {
					fmt.Fprintf(os.Stderr, "s3server: %d objects put\n", i+1)
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// countLists counts the list requests h serves, and answers GET /_lists
// with the count so far (for the benchmarks' requests per run).
func countLists(h http.Handler, n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/_lists" {
			fmt.Fprintln(w, n.Load())
			return
		}
		if r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
			n.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

// delayLists answers each list request (a GET of the bucket: ListObjectsV2)
// d late, the way a store far away does: the latency-injecting proxy of the
// parallel listing benchmark, in this process so that it costs the measured
// client nothing.
func delayLists(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
