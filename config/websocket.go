package config

import (
	"fmt"
	"net"
	neturl "net/url"
)

// Websocket serves NATS over WebSocket from the embedded server, for
// editors in browsers (docs/editors.md). Browsers connect as a read-only
// user: they may read syncer's subjects, never publish to them.
type Websocket struct {
	// Listen is "host:port"; empty: no WebSocket listener.
	Listen string `yaml:"listen"`
	// AllowedOrigins are the page origins allowed to connect
	// (https://editor.example.com); empty: any.
	AllowedOrigins []string `yaml:"allowedOrigins"`
	// TLS is the server certificate for wss://. Plain ws:// is allowed only
	// on a loopback listen address.
	TLS WebsocketTLS `yaml:"tls"`
}

// WebsocketTLS is a server certificate and its key (PEM files).
type WebsocketTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Enabled says a WebSocket listener is configured.
func (w Websocket) Enabled() bool { return w.Listen != "" }

// validate checks nats.websocket (n is the whole nats block).
func (w Websocket) validate(n *NATS, bad func(field, format string, args ...any)) {
	if !w.Enabled() {
		if w.TLS.Cert != "" || w.TLS.Key != "" || len(w.AllowedOrigins) > 0 {
			bad("nats.websocket.listen", "is required when other nats.websocket keys are set")
		}
		return
	}
	if n.URL != "embedded" {
		bad("nats.websocket", `is for the embedded server (nats.url: embedded); configure WebSocket on your NATS server instead (docs/editors.md)`)
	}
	if err := checkListen(w.Listen); err != nil {
		bad("nats.websocket.listen", "%v", err)
		return
	}
	for _, f := range []struct{ field, path string }{{"nats.websocket.tls.cert", w.TLS.Cert}, {"nats.websocket.tls.key", w.TLS.Key}} {
		if f.path != "" {
			if err := checkReadable(f.path); err != nil {
				bad(f.field, "%v", err)
			}
		}
	}
	switch {
	case (w.TLS.Cert == "") != (w.TLS.Key == ""):
		bad("nats.websocket.tls", "needs both cert and key")
	case w.TLS.Cert == "" && !loopbackListen(w.Listen):
		bad("nats.websocket.tls", "is required: %q is not a loopback address, and plain ws:// would carry events unencrypted to other hosts; set cert and key (wss://) or listen on 127.0.0.1", w.Listen)
	}
	for i, o := range w.AllowedOrigins {
		if u, err := neturl.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			bad(fmt.Sprintf("nats.websocket.allowedOrigins[%d]", i), "%q is not an origin (scheme://host[:port], no path)", o)
		}
	}
}

// loopbackListen says a "host:port" listens on this host only.
func loopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
