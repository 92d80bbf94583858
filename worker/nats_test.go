package worker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/worker"
)

// logWatch is a log sink a test waits on: wait returns once a line holds
// every part, or fails the test at the deadline.
type logWatch struct {
	mu   sync.Mutex
	b    strings.Builder
	kick chan struct{}
}

func newLogWatch() *logWatch { return &logWatch{kick: make(chan struct{}, 1)} }

func (l *logWatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *logWatch) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logWatch) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count is the number of lines holding every part.
func (l *logWatch) count(parts ...string) int {
	n := 0
	for line := range strings.SplitSeq(l.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

func (l *logWatch) wait(t *testing.T, n int, parts ...string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for l.count(parts...) < n {
		select {
		case <-l.kick:
		case <-deadline:
			t.Fatalf("log has %d of %d lines with %q:\n%s", l.count(parts...), n, parts, l.String())
		}
	}
}

// waitConnected waits until nc is connected.
func waitConnected(t *testing.T, nc *nats.Conn) {
	t.Helper()
	ch := nc.StatusChanged(nats.CONNECTED)
	defer nc.RemoveStatusListener(ch)
	if nc.IsConnected() {
		return
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("not connected: %v", nc.LastError())
	}
}

func withUserInfo(raw, user, pass string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	u.User = url.UserPassword(user, pass)
	return u.String()
}

// Issue 11, finding 4: the server rejects syncer's password for a while
// (a rotation done in the wrong order). nats.go's default gives up after
// two equal auth errors; syncer keeps reconnecting, logs the rejections,
// and publishes again once the password is accepted.
func TestNATSAuthBlipRecoversByItself(t *testing.T) {
	users := func(syncerPass string) string {
		return fmt.Sprintf("authorization { users = [ {user: syncer, password: %q}, {user: reader, password: r} ] }", syncerPass)
	}
	store := t.TempDir()
	n := testkit.StartNATSProcess(t, store, users("pw-1"))
	s3 := testkit.StartS3(t, nil)
	s3.CreateBucket(t, "bkt")
	s3.Put(t, "bkt", "a.jpg", []byte("a"), "")
	cfg := testConfig(t, n.URL, s3.SourceConfig("src", "bkt"))
	cfg.NATS.User, cfg.NATS.Password = "syncer", "pw-1"
	logs := newLogWatch()
	w := startWithLog(t, cfg, logs.logger())
	sub := subscribe(t, withUserInfo(n.URL, "reader", "r"), cfg.NATS.Stream, "syncer.changed.src")
	w.scan(t, "src")
	sub.expect(change{"added", "a.jpg"})

	n.Reload(t, store, users("pw-2"))
	// More rejections than nats.go's default tolerates.
	logs.wait(t, 3, "level=ERROR", "nats error", "uthorization")
	s3.Put(t, "bkt", "b.jpg", []byte("b"), "")
	w.scan(t, "src") // committed to the outbox while NATS refuses
	n.Reload(t, store, users("pw-1"))
	sub.expect(change{"added", "b.jpg"})
	logs.wait(t, 1, "nats reconnected")
	if strings.Contains(logs.String(), "pw-1") || strings.Contains(logs.String(), "pw-2") {
		t.Error("the log shows a password")
	}
	select {
	case err := <-w.done:
		t.Fatalf("worker stopped: %v", err)
	default:
	}
}

// startWithLog is start with the test's log rather than a quiet one.
func startWithLog(t *testing.T, cfg *config.Config, log *slog.Logger) *running {
	t.Helper()
	w, err := worker.New(context.Background(), cfg, worker.Options{Log: log, FlushTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("worker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Worker: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files in a temporary directory.
type testPKI struct {
	dir                                          string
	ca, serverCert, serverKey, client, clientKey string
	pool                                         *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{dir: dir}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syncer test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)
	p.ca = p.write(t, "ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.client, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startTLSNATS starts nats-server requiring TLS and, with mtls, a client
// certificate of the test CA.
func startTLSNATS(t *testing.T, p *testPKI, mtls bool) *testkit.ConfiguredNATS {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if mtls {
		tc.ClientAuth, tc.ClientCAs = tls.RequireAndVerifyClientCert, p.pool
	}
	return testkit.StartNATSWith(t, t.TempDir(), func(o *natsserver.Options) {
		o.TLS, o.TLSConfig, o.TLSVerify, o.TLSTimeout = true, tc, mtls, 2
	})
}

func TestNATSTLSWithCAAndClientCertificate(t *testing.T) {
	p := newTestPKI(t)
	n := startTLSNATS(t, p, true)
	logs := newLogWatch()
	nc, err := worker.Connect(n.URL, config.NATS{TLS: config.TLS{CA: p.ca, Cert: p.client, Key: p.clientKey}}, "t", logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitConnected(t, nc)
	if !nc.TLSRequired() {
		t.Error("connection is not TLS")
	}
}

// TLS failures reach the log: no client certificate for an mTLS server,
// and a server certificate of a CA syncer was not given.
func TestNATSTLSFailuresAreLogged(t *testing.T) {
	p := newTestPKI(t)
	other := newTestPKI(t)
	n := startTLSNATS(t, p, true)
	for _, tc := range []struct {
		name string
		tls  config.TLS
		want string
	}{
		{"no client certificate", config.TLS{CA: p.ca}, "certificate"},
		{"unknown CA", config.TLS{CA: other.ca, Cert: p.client, Key: p.clientKey}, "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := newLogWatch()
			nc, err := worker.Connect(n.URL, config.NATS{TLS: tc.tls}, "t", logs.logger())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			logs.wait(t, 1, "level=WARN", "nats connect attempt failed", tc.want)
			if nc.IsConnected() {
				t.Error("connected")
			}
		})
	}
}

func TestNATSTokenUserAndNKeyAuth(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		n := testkit.StartNATSWith(t, t.TempDir(), func(o *natsserver.Options) { o.Authorization = "tok-secret" })
		nc, err := worker.Connect(n.URL, config.NATS{Token: "tok-secret"}, "t", newLogWatch().logger())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		waitConnected(t, nc)

		logs := newLogWatch()
		bad, err := worker.Connect(n.URL, config.NATS{Token: "tok-wrong"}, "t", logs.logger())
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
		logs.wait(t, 1, "uthorization")
		if strings.Contains(logs.String(), "tok-wrong") {
			t.Error("the log shows the token")
		}
	})
	t.Run("user", func(t *testing.T) {
		n := testkit.StartNATSWith(t, t.TempDir(), func(o *natsserver.Options) {
			o.Users = []*natsserver.User{{Username: "u", Password: "p-secret"}}
		})
		nc, err := worker.Connect(n.URL, config.NATS{User: "u", Password: "p-secret"}, "t", newLogWatch().logger())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		waitConnected(t, nc)
	})
	t.Run("nkey", func(t *testing.T) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		seed, _ := kp.Seed()
		seedFile := filepath.Join(t.TempDir(), "user.nk")
		if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		n := testkit.StartNATSWith(t, t.TempDir(), func(o *natsserver.Options) {
			o.Nkeys = []*natsserver.NkeyUser{{Nkey: pub}}
		})
		nc, err := worker.Connect(n.URL, config.NATS{NKeySeed: seedFile}, "t", newLogWatch().logger())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		waitConnected(t, nc)
		if _, err := worker.Connect(n.URL, config.NATS{NKeySeed: filepath.Join(t.TempDir(), "none")}, "t", nil); err == nil || !strings.Contains(err.Error(), "nats.nkeySeed") {
			t.Errorf("missing seed file: %v", err)
		}
	})
}
