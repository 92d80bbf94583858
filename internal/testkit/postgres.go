package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresURLEnv names a PostgreSQL server for the tests (a URL whose user
// may create databases); without it, StartPostgres starts a throwaway
// cluster from the Debian binaries.
const PostgresURLEnv = "SYNCER_TEST_POSTGRES_URL"

// Postgres is a PostgreSQL server for tests; each test takes a database of
// its own with NewDatabase.
type Postgres struct {
	URL string // the server's admin URL (database "postgres")
}

// StartPostgres returns the server named by SYNCER_TEST_POSTGRES_URL, or
// starts a cluster (initdb into a temp dir, postgres on a free loopback
// port, fsync off) stopped when t ends. It skips t only when no PostgreSQL
// binaries are installed.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	if u := os.Getenv(PostgresURLEnv); u != "" {
		return &Postgres{URL: u}
	}
	bin := postgresBin()
	if bin == "" {
		t.Skip("PostgreSQL not installed (no /usr/lib/postgresql/*/bin/initdb): install Debian's postgresql package or set " + PostgresURLEnv)
	}
	var lastErr error
	for range 3 { // another process may take the free port first
		p, err := startCluster(t, bin)
		if err == nil {
			return p
		}
		lastErr = err
	}
	t.Fatalf("start PostgreSQL: %v", lastErr)
	return nil
}

// postgresBin is the newest installed server's bin directory, "" if none.
func postgresBin() string {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(found, func(a, b string) int { return versionOf(a) - versionOf(b) })
	if len(found) == 0 {
		return ""
	}
	return filepath.Dir(found[len(found)-1])
}

func versionOf(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

func startCluster(t testing.TB, bin string) (*Postgres, error) {
	dir, err := os.MkdirTemp("", "syncer-pg-")
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// initdb refuses to run as root: the cluster belongs to "postgres".
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and no postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	srv := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	stop := func() {
		srv.Process.Signal(syscall.SIGINT) //nolint:errcheck // fast shutdown; it may be gone already
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			srv.Process.Kill() //nolint:errcheck
			<-exited
		}
	}
	p := &Postgres{URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	if err := waitReady(p.URL, exited); err != nil {
		stop()
		log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	t.Cleanup(stop)
	return p, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady waits until the server accepts a connection, it exits, or 60 s
// pass (a loaded machine).
func waitReady(dsn string, exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready: %w", err)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("postgres exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// NewDatabase creates an empty database, dropped when t ends, and returns
// its URL.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "syncer_test_" + hex.EncodeToString(b[:])
	if err := p.exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if err := p.exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(p.URL)
	if err != nil {
		t.Fatalf("%s: %v", PostgresURLEnv, errors.New("not a URL"))
	}
	u.Path = "/" + name
	return u.String()
}

func (p *Postgres) exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
