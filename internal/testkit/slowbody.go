package testkit

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// SlowBodyAnswer sends a request line and headers to addr (host:port), then
// trickles a chunked body forever, and returns the status line the server
// answered with and how long that took. A server that waits for the body
// before answering (a webhook reading before it authenticates) makes this
// time out.
func SlowBodyAnswer(t testing.TB, addr, requestLine, headers string) (string, time.Duration) {
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
			case <-time.After(20 * time.Millisecond): // the trickle's pace
			}
		}
	}()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer while the body trickles: %v", err)
	}
	return strings.TrimSpace(line), time.Since(began)
}
