package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNATSSecurityOptionsLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, cert, key := write("ca.pem"), write("cert.pem"), write("key.pem")
	cfg := parse(t, `nats:
  url: tls://nats.example.com:4222
  user: syncer
  password: ${NATS_PASSWORD}
  jsDomain: hub
  replicas: 3
  tls: {ca: `+ca+`, cert: `+cert+`, key: `+key+`}
`, map[string]string{"NATS_PASSWORD": "s3cret"})
	n := cfg.NATS
	if n.User != "syncer" || n.Password != "s3cret" || n.JSDomain != "hub" || n.Replicas != 3 {
		t.Errorf("nats = %+v", n)
	}
	if n.TLS.CA != ca || n.TLS.Cert != cert || n.TLS.Key != key || !n.TLS.Enabled() {
		t.Errorf("nats.tls = %+v", n.TLS)
	}
	if cfg := parse(t, "nats: {url: embedded}\n", nil); cfg.NATS.Replicas != 1 || cfg.NATS.TLS.Enabled() {
		t.Errorf("defaults: replicas %d, tls %+v", cfg.NATS.Replicas, cfg.NATS.TLS)
	}
	seed := write("seed.nk")
	if cfg := parse(t, "nats: {url: embedded, nkeySeed: "+seed+"}\n", nil); cfg.NATS.NKeySeed != seed {
		t.Errorf("nkeySeed = %q", cfg.NATS.NKeySeed)
	}
	if cfg := parse(t, "nats: {url: embedded, token: ${T}}\n", map[string]string{"T": "tok"}); cfg.NATS.Token != "tok" {
		t.Errorf("token = %q", cfg.NATS.Token)
	}
}

func TestNATSSecurityOptionsAreValidated(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.pem")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		doc  string
		want []string
	}{
		{"nats: {url: embedded, tls: {ca: " + missing + "}}", []string{"nats.tls.ca", "missing.pem", "does not exist"}},
		{"nats: {url: embedded, tls: {ca: " + dir + "}}", []string{"nats.tls.ca", "is a directory"}},
		{"nats: {url: embedded, tls: {cert: " + file + "}}", []string{"nats.tls.key", "is required with nats.tls.cert"}},
		{"nats: {url: embedded, tls: {key: " + file + "}}", []string{"nats.tls.cert", "is required with nats.tls.key"}},
		{"nats: {url: embedded, credsFile: " + missing + "}", []string{"nats.credsFile", "does not exist"}},
		{"nats: {url: embedded, nkeySeed: " + missing + "}", []string{"nats.nkeySeed", "does not exist"}},
		{"nats: {url: embedded, replicas: 6}", []string{"nats.replicas", "6 is not from 1 to 5"}},
		{"nats: {url: embedded, replicas: -1}", []string{"nats.replicas"}},
		{"nats: {url: embedded, jsDomain: a.b}", []string{"nats.jsDomain"}},
		{"nats: {url: embedded, user: u}", []string{"nats.password", "is required with nats.user"}},
		{"nats: {url: embedded, password: hunter2}", []string{"nats.password", "needs nats.user"}},
		{"nats: {url: embedded, token: tok, user: u, password: p}", []string{"nats.user", "cannot be combined with nats.token"}},
	} {
		_, err := parseAll([]byte(tc.doc), env(nil))
		if err == nil {
			t.Errorf("%s: loaded", tc.doc)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tc.doc, err, w)
			}
		}
	}
}

// Secrets from the environment never appear in a validation error.
func TestNATSSecretsStayOutOfErrors(t *testing.T) {
	doc := "nats: {url: embedded, token: ${TOK}, user: u, password: ${PW}, replicas: 9}\n"
	_, err := parseAll([]byte(doc), env(map[string]string{"TOK": "tok-SECRET-1", "PW": "pw-SECRET-2"}))
	if err == nil {
		t.Fatal("loaded")
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error shows a secret: %v", err)
	}
}
