package s3

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// slowRefused sends a request line and headers to addr (host:port), then
// trickles a chunked body forever, and returns the status line the server
// answered with and how long that took. A server that waits for the body
// before answering makes this time out.
func slowRefused(t *testing.T, addr, requestLine, headers string) (string, time.Duration) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	began := time.Now()
	if _, err := io.WriteString(c, requestLine+"\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"+headers+"\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			if _, err := io.WriteString(c, "1\r\nx\r\n"); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer while the body trickles: %v", err)
	}
	return strings.TrimSpace(line), time.Since(began)
}

func TestWebhookRefusesWithoutReadingTheBody(t *testing.T) {
	w := newWebhookEnv(t, testToken)
	addr := strings.TrimPrefix(w.srv.URL, "http://")
	for _, tc := range []struct{ line, headers, want string }{
		{"POST /webhooks/s3/lib HTTP/1.1", "", "401"},
		{"POST /webhooks/s3/lib HTTP/1.1", "Authorization: Bearer wrong\r\n", "401"},
		{"PUT /webhooks/s3/lib HTTP/1.1", "Authorization: Bearer " + testToken + "\r\n", "405"},
	} {
		got, took := slowRefused(t, addr, tc.line, tc.headers)
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: answered %q, want %s", tc.line, got, tc.want)
		}
		if took > time.Second {
			t.Errorf("%s: answered after %v, want at once", tc.line, took)
		}
	}
}
