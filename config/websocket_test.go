package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWebsocketConfig(t *testing.T) {
	cfg := parse(t, "nats: {url: embedded, websocket: {listen: \"127.0.0.1:8443\", allowedOrigins: [\"http://127.0.0.1:3000\"]}}\n", nil)
	if ws := cfg.NATS.Websocket; !ws.Enabled() || ws.Listen != "127.0.0.1:8443" || len(ws.AllowedOrigins) != 1 {
		t.Fatalf("websocket = %+v", ws)
	}
	if cfg := parse(t, "nats: {url: embedded}\n", nil); cfg.NATS.Websocket.Enabled() {
		t.Fatal("websocket enabled by default")
	}
	dir := t.TempDir()
	pem := filepath.Join(dir, "c.pem")
	if err := os.WriteFile(pem, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse(t, "nats: {url: embedded, websocket: {listen: \":8443\", tls: {cert: "+pem+", key: "+pem+"}}}\n", nil)
	for _, tc := range []struct {
		doc  string
		want []string
	}{
		{`nats: {url: embedded, websocket: {listen: ":8443"}}`, []string{"nats.websocket.tls", "is required", "loopback"}},
		{`nats: {url: embedded, websocket: {listen: "10.0.0.1:8443"}}`, []string{"nats.websocket.tls", "is required"}},
		{`nats: {url: "nats://n:4222", websocket: {listen: "127.0.0.1:8443"}}`, []string{"nats.websocket", "embedded"}},
		{`nats: {url: embedded, websocket: {listen: "8443"}}`, []string{"nats.websocket.listen", "has no host"}},
		{`nats: {url: embedded, websocket: {listen: ":8443", tls: {cert: ` + pem + `}}}`, []string{"nats.websocket.tls", "both cert and key"}},
		{`nats: {url: embedded, websocket: {listen: ":8443", tls: {cert: ` + dir + `/no.pem, key: ` + pem + `}}}`, []string{"nats.websocket.tls.cert", "does not exist"}},
		{`nats: {url: embedded, websocket: {listen: "127.0.0.1:1", allowedOrigins: ["editor.example.com"]}}`, []string{"nats.websocket.allowedOrigins[0]", "not an origin"}},
		{`nats: {url: embedded, websocket: {allowedOrigins: ["https://e.example.com"]}}`, []string{"nats.websocket.listen", "is required"}},
		{`nats: {url: embedded, websocket: {listen: "127.0.0.1:1", tsl: {}}}`, []string{"nats.websocket.tsl"}},
	} {
		_, err := Parse([]byte(tc.doc+"\n"), env(nil))
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
