package worker

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/imgly/syncer/config"
)

// Users of the embedded server when it serves WebSocket clients.
const (
	embeddedUser = "syncer"
	browserUser  = "browser"
)

// websocketOptions configures the embedded server's WebSocket listener
// (nats.websocket): browsers connect without credentials as a read-only
// user that may subscribe to syncer's subjects (and its inbox), and publish
// only the JetStream API requests an ordered consumer on syncer's stream
// needs: no publishing on syncer's subjects, no stream or consumer
// deletion. Plain TCP clients without credentials stay what they were, a
// user with every permission, on the listener nats.listen (loopback by
// default). Config validation has required TLS off loopback.
func websocketOptions(cfg config.NATS) func(*natsserver.Options) error {
	ws := cfg.Websocket
	return func(o *natsserver.Options) error {
		host, port, err := splitHostPort(ws.Listen)
		if err != nil {
			return fmt.Errorf("nats.websocket.listen %q: %w", ws.Listen, err)
		}
		if port == 0 {
			port = -1 // nats-server's "any free port"
		}
		o.Websocket = natsserver.WebsocketOpts{
			Host: host, Port: port, NoAuthUser: browserUser,
			AllowedOrigins: ws.AllowedOrigins, NoTLS: ws.TLS.Cert == "",
		}
		if ws.TLS.Cert != "" {
			cert, err := tls.LoadX509KeyPair(ws.TLS.Cert, ws.TLS.Key)
			if err != nil {
				return fmt.Errorf("nats.websocket.tls: load %s and %s: %w", ws.TLS.Cert, ws.TLS.Key, err)
			}
			o.Websocket.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		}
		// Nobody logs in with these passwords; they only make the users
		// unreachable by name. Clients without credentials get a user by
		// the listener they use (NoAuthUser).
		users := []*natsserver.User{
			{Username: embeddedUser, Password: randomSecret(), AllowedConnectionTypes: map[string]struct{}{"STANDARD": {}}},
			{Username: browserUser, Password: randomSecret(), AllowedConnectionTypes: map[string]struct{}{"WEBSOCKET": {}},
				Permissions: BrowserPermissions(cfg.Stream, cfg.SubjectPrefix)},
		}
		if cfg.User != "" {
			users[0].Username, users[0].Password = cfg.User, cfg.Password
		}
		o.Users = users
		o.NoAuthUser = users[0].Username
		return nil
	}
}

// BrowserPermissions are a read-only browser's: subscribe to the events
// and its replies; publish only what an ordered consumer on the stream
// needs (stream info, consumer create/info, pull requests). docs/editors.md
// shows the same as nats-server configuration.
func BrowserPermissions(stream, prefix string) *natsserver.Permissions {
	api := "$JS.API."
	return &natsserver.Permissions{
		Publish: &natsserver.SubjectPermission{Allow: []string{
			api + "INFO",
			api + "STREAM.INFO." + stream,
			api + "CONSUMER.CREATE." + stream,
			api + "CONSUMER.CREATE." + stream + ".>",
			api + "CONSUMER.INFO." + stream + ".>",
			api + "CONSUMER.MSG.NEXT." + stream + ".>",
		}},
		Subscribe: &natsserver.SubjectPermission{Allow: []string{prefix + ".>", "_INBOX.>"}},
	}
}

func randomSecret() string {
	b := make([]byte, 24)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
