package config

import (
	"github.com/imgly/syncer/providers"

	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// checkListen checks a "host:port" listen address. The host may be empty
// (all interfaces); the port must be a number, since a service name would
// depend on /etc/services.
func checkListen(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		if _, aerr := strconv.Atoi(v); aerr == nil {
			return fmt.Errorf("%q has no host; write \"127.0.0.1:%s\" (this machine only) or \":%s\" (all interfaces)", v, v, v)
		}
		return fmt.Errorf("%q is not host:port, e.g. \"127.0.0.1:8080\"", v)
	}
	if strings.ContainsAny(host, " /@?#") {
		return fmt.Errorf("%q: host %q is not a host name or IP address", v, host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", v, port)
	}
	return nil
}

// checkNATSURL checks nats.url: "embedded", or one or more comma-separated
// server URLs as nats.go's Connect takes them.
func checkNATSURL(v string) error {
	if v == "embedded" {
		return nil
	}
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			return fmt.Errorf("%s has an empty entry in its comma-separated list", redact(v))
		}
		if !strings.Contains(s, "://") {
			return fmt.Errorf("%s has no scheme; write \"nats://%s\", or \"embedded\" to run a server inside syncer", redact(s), strings.Trim(redact(s), `"`))
		}
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("%s is not a valid URL", redact(s))
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%s: scheme %q is not one of nats, tls, ws, wss", redact(s), u.Scheme)
		}
		if u.Hostname() == "" {
			return fmt.Errorf("%s has no host", redact(s))
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n > 65535 {
				return fmt.Errorf("%s: port %q is not a number from 0 to 65535", redact(s), p)
			}
		}
	}
	return nil
}

// checkHostPort checks a gRPC endpoint, "host:port" (Pub/Sub's).
func checkHostPort(v string) error {
	if strings.Contains(v, "://") {
		return fmt.Errorf("%s is a URL; the Pub/Sub endpoint is host:port, e.g. \"127.0.0.1:8085\" or \"pubsub.googleapis.com:443\"", redact(v))
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" {
		return fmt.Errorf("%s is not host:port, e.g. \"pubsub.googleapis.com:443\"", redact(v))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s: port %q is not a number from 0 to 65535", redact(v), port)
	}
	return nil
}

// checkQueueName applies Azure Storage Queue naming rules (as
// providers/azure's consumer does at start-up).
func checkQueueName(n string) error {
	if len(n) < 3 || len(n) > 63 || n[0] == '-' || n[len(n)-1] == '-' || strings.Contains(n, "--") {
		return fmt.Errorf("%q is not a queue name: 3 to 63 characters, no leading, trailing or double hyphen", n)
	}
	for _, c := range n {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%q is not a queue name: only lower-case letters, digits and hyphens", n)
		}
	}
	return nil
}

func redact(raw string) string { return providers.RedactURL(raw) }

func checkHTTPURL(raw string) error { return providers.CheckHTTPURL(raw) }

func checkConnectionString(cs, service string) error {
	return providers.CheckConnectionString(cs, service)
}
