package worker

import (
	"github.com/imgly/syncer/live"
)

// newLive builds the server-sent events endpoints over the opened sources,
// with the asset API's access rules: the data endpoints' tokens, narrowed
// per source by assets.tokens.
func (w *Worker) newLive() (*live.Server, error) {
	srcs := make([]live.Source, 0, len(w.sources))
	for _, s := range w.sources {
		srcs = append(srcs, live.Source{ID: s.Config.ID, Tokens: s.Config.Assets.Tokens})
	}
	return live.New(live.Options{
		NATS: w.nc, Domain: w.cfg.NATS.JSDomain, Stream: w.cfg.NATS.Stream, SubjectPrefix: w.cfg.NATS.SubjectPrefix,
		Sources: srcs, Open: w.auth.open, Allowed: w.auth.matches, AllowedOrigins: w.cfg.HTTP.CORS.AllowedOrigins,
		Heartbeat: w.opts.SSEHeartbeat, Published: w.pub.Published, Log: w.log,
	})
}
