package ownership_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/testkit"
)

// tcpProxy forwards to target until cut: then it forwards nothing, in
// neither direction, and holds every connection open — a partition, not a
// refusal, so the client only learns of it from its own timeouts. heal
// closes what the cut held and forwards again.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	held  []net.Conn
	heals chan struct{} // closed by heal
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, heals: make(chan struct{})}
	t.Cleanup(func() { ln.Close(); p.heal() })
	go p.serve()
	return p
}

func (p *tcpProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.held = append(p.held, in)
		cut := p.cut
		p.mu.Unlock()
		if cut {
			continue // held until heal closes it
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.held = append(p.held, out)
		p.mu.Unlock()
		go p.pipe(out, in)
		go p.pipe(in, out)
	}
}

// pipe copies until the cut; a chunk read during one is dropped, and the
// copy waits for the heal, which closes both ends.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		cut, heals := p.cut, p.heals
		p.mu.Unlock()
		if cut {
			<-heals
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

func (p *tcpProxy) partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
}

func (p *tcpProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.cut {
		return
	}
	for _, c := range p.held {
		c.Close()
	}
	p.held, p.cut = nil, false
	close(p.heals)
	p.heals = make(chan struct{})
}

// viaProxy is dsn with its host replaced by the proxy's address.
func viaProxy(t *testing.T, dsn, addr string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// A replica cut off from PostgreSQL (its connections silent, not closed)
// stops its sources once its lease can no longer be sure; the others take
// them over, and when the connection comes back it publishes nothing for
// them until it acquires a lease anew. Every change is seen exactly once.
func TestPartitionedOwner(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 80*time.Second)
	defer cancel()
	nats := testkit.StartNATS(t, t.TempDir(), 0)
	sub := subscribe(t, nats.URL)
	c := startCluster(t, nats.URL, 3)
	u, _ := url.Parse(c.dsn)
	proxy := startTCPProxy(t, u.Host)
	c.start("r1")
	c.start("r2")
	c.startVia("r3", viaProxy(t, c.dsn, proxy.ln.Addr().String()))
	c.waitOwned(ctx, 30*time.Second, func(o map[string]string) bool { return spread(o) })
	w := newWriter(t)
	wctx, stopWriting := context.WithCancel(ctx)
	written := make(chan struct{})
	go w.run(wctx, t, c.dirs, written)
	for deadline := time.Now().Add(15 * time.Second); c.lastSeq(ctx, "s1") < 5; {
		if time.Now().After(deadline) {
			t.Fatal("s1: no changes committed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := c.proc("r3")
	cutAt := len(p.log.String())
	proxy.partition()
	cut := time.Now()
	c.waitOwned(ctx, 2*moveBound, func(o map[string]string) bool {
		for _, r := range o {
			if r == "r3" {
				return false
			}
		}
		return true
	})
	t.Logf("r3 partitioned: its sources moved in %v", time.Since(cut))
	if took := time.Since(cut); took > moveBound {
		t.Errorf("sources moved %v after the partition, bound %v", took, moveBound)
	}
	proxy.heal()
	c.waitOwned(ctx, 20*time.Second, func(o map[string]string) bool {
		n := 0
		for _, r := range o {
			if r == "r3" {
				n++
			}
		}
		return n == 1
	})
	stopWriting()
	<-written
	c.check(ctx, sub, w)
	after := p.log.String()[cutAt:]
	if !strings.Contains(after, "not renewed in time") && !strings.Contains(after, "lease lost to another replica") {
		t.Errorf("r3 did not stop its sources while cut off")
	}
	// Before its local deadline passed it still held the lease and may
	// publish; from the moment it gave the source up, no more.
	stale := false
	for _, line := range strings.Split(after, "\n") {
		switch {
		case strings.Contains(line, "not renewed in time"), strings.Contains(line, "lease lost to another replica"):
			stale = true
		case strings.Contains(line, `msg="ownership: source acquired"`):
			stale = false
		case stale && strings.Contains(line, "msg=published "):
			t.Errorf("r3 published after giving its source up, before acquiring anew: %s", line)
		}
	}
	t.Logf("r3's log from the cut:\n%s", tail(after, 25))
}
