package config

import (
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/schedule/cronspec"
)

var (
	sourceIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// A subject prefix is one or more NATS tokens without wildcards.
	subjectPrefixRe = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	streamRe        = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// Validate checks the configuration; each problem names its field. It does
// not know the provider kinds: what only a kind can check (its settings,
// which keys and transports it takes, the asset URI it can serve) ParseFor
// checks, and the worker when it opens a source.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.NATS.URL {
	case "":
		bad("nats.url", `is required: the NATS server events go to (nats://host:4222), or "embedded" to run one inside syncer`)
	default:
		if err := checkNATSURL(c.NATS.URL); err != nil {
			bad("nats.url", "%v", err)
		}
	}
	if err := checkListen(c.NATS.Listen); err != nil {
		bad("nats.listen", "%v", err)
	}
	c.NATS.validate(bad)
	c.Catalog.validate(bad)
	c.HTTP.validate(bad)
	if !streamRe.MatchString(c.NATS.Stream) {
		bad("nats.stream", "%q is not a valid stream name (use A-Z a-z 0-9 _ -)", c.NATS.Stream)
	}
	if !subjectPrefixRe.MatchString(c.NATS.SubjectPrefix) {
		bad("nats.subjectPrefix", "%q is not a valid NATS subject prefix (dot-separated tokens of A-Z a-z 0-9 _ -)", c.NATS.SubjectPrefix)
	}
	c.validateTuning(bad)
	c.validateSources(bad)
	return errors.Join(errs...)
}

// validate checks the HTTP listener, its connection limit, public URL and
// CORS origins.
func (h *HTTP) validate(bad func(field, format string, args ...any)) {
	if h.Listen != "off" {
		if err := checkListen(h.Listen); err != nil {
			bad("http.listen", `%v; or "off" for no listener`, err)
		}
	}
	if h.MaxConns < 0 || h.MaxConns > 0 && h.MaxConns < 512 {
		bad("http.maxConns", "%d: use 0 for the default (4096) or at least 512 (256 are kept from event streams)", h.MaxConns)
	}
	if h.PublicURL != "" {
		if err := checkHTTPURL(h.PublicURL); err != nil {
			bad("http.publicURL", "%v", err)
		}
	}
	for i, o := range h.CORS.AllowedOrigins {
		if o == "*" {
			continue
		}
		if u, err := neturl.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			bad(fmt.Sprintf("http.cors.allowedOrigins[%d]", i), "%q is not an origin (scheme://host[:port], no path) or \"*\"", o)
		}
	}
}

// validateTuning checks the events, notify and log settings.
func (c *Config) validateTuning(bad func(field, format string, args ...any)) {
	if c.Events.CoalesceWindow < 0 {
		bad("events.coalesceWindow", "must not be negative")
	}
	if c.Notify.StatRate < 0 {
		bad("notify.statRate", "must not be negative")
	}
	if c.Notify.StatBurst < 0 {
		bad("notify.statBurst", "must not be negative")
	}
	if c.Notify.StatConcurrency < 0 {
		bad("notify.statConcurrency", "must not be negative")
	}
	if c.Notify.VerifyAfter < 0 {
		bad("notify.verifyAfter", "must not be negative")
	}
	if c.Events.MaxChanges < 1 {
		bad("events.maxChanges", "must be at least 1")
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
}

// validateSources checks each source: its id (unique), schedule, globs,
// provider, calls, scale and assets.
func (c *Config) validateSources(bad func(field, format string, args ...any)) {
	seen := map[string]int{}
	for i := range c.Sources {
		s := &c.Sources[i]
		f := fmt.Sprintf("sources[%d]", i)
		switch {
		case s.ID == "":
			bad(f+".id", "is required")
		case !sourceIDRe.MatchString(s.ID):
			bad(f+".id", "%q must be usable as one NATS subject token: only A-Z a-z 0-9 _ -", s.ID)
		default:
			if j, dup := seen[s.ID]; dup {
				bad(f+".id", "%q is already used by sources[%d]", s.ID, j)
			}
			seen[s.ID] = i
		}
		if _, err := cronspec.Parse(s.Schedule); err != nil {
			bad(f+".schedule", "%q is not a valid schedule (a cron spec or \"@every <duration>\"): %v%s", s.Schedule, err, s.lineOf("schedule"))
		}
		for j, g := range s.Include {
			if err := checkGlob(g); err != nil {
				bad(fmt.Sprintf("%s.include[%d]", f, j), "%v", err)
			}
		}
		for j, g := range s.Exclude {
			if err := checkGlob(g); err != nil {
				bad(fmt.Sprintf("%s.exclude[%d]", f, j), "%v", err)
			}
		}
		s.validateProvider(f, bad)
		s.validateCalls(f, bad)
		s.validateScale(f, bad)
		s.validateAssets(f, bad)
	}
}

// lineOf is " (line N)" for the source's key as parsed, "" when it has no
// line (a default, or a configuration built in code).
func (s *Source) lineOf(key string) string {
	if n := providers.Find(s.node, key); n != nil {
		return fmt.Sprintf(" (line %d)", n.Line)
	}
	return ""
}

// validateProvider checks the notification blocks; the kind's own
// settings, and which blocks it offers, are its kind's (resolveKinds).
func (s *Source) validateProvider(f string, bad func(field, format string, args ...any)) {
	n := &s.Notifications
	url := func(field, v string) {
		if v == "" {
			return
		}
		if err := checkHTTPURL(v); err != nil {
			bad(f+"."+field, "%v", err)
		}
	}
	if q := n.SQS; q != nil {
		url("notifications.sqs.queueURL", q.QueueURL)
		url("notifications.sqs.endpoint", q.Endpoint)
		if q.Concurrency < 0 {
			bad(f+".notifications.sqs.concurrency", "must not be negative")
		}
		if q.VisibilityTimeout < 0 {
			bad(f+".notifications.sqs.visibilityTimeout", "must not be negative")
		}
		if q.WaitTime < 0 {
			bad(f+".notifications.sqs.waitTime", "must not be negative")
		}
	}
	if ps := n.PubSub; ps != nil && ps.Endpoint != "" {
		if err := checkHostPort(ps.Endpoint); err != nil {
			bad(f+".notifications.pubsub.endpoint", "%v", err)
		}
	}
	if n.StorageQueue != nil {
		s.validateStorageQueue(f+".notifications.storageQueue", bad)
	}
	if n.SQS != nil && n.SQS.QueueURL == "" {
		bad(f+".notifications.sqs.queueURL", "is required")
	}
	if n.Webhook != nil && n.Webhook.Token == "" {
		bad(f+".notifications.webhook.token", "is required: the webhook refuses unauthenticated requests")
	}
	if n.PubSub != nil {
		if n.PubSub.Project == "" {
			bad(f+".notifications.pubsub.project", "is required")
		}
		if n.PubSub.Subscription == "" {
			bad(f+".notifications.pubsub.subscription", "is required")
		}
	}
	if n.EventGrid != nil && n.EventGrid.Secret == "" {
		bad(f+".notifications.eventGrid.secret", "is required: the webhook refuses unauthenticated requests")
	}
}

// Storage Queue limits, as providers/azure's consumer applies them at start-up.
const (
	poisonQueueSuffix  = "-poison"
	maxQueueVisibility = 7 * 24 * time.Hour
)

// validateStorageQueue checks what providers/azure.NewQueueConsumer would
// refuse at start-up, so that `config check` refuses it first.
func (s *Source) validateStorageQueue(f string, bad func(field, format string, args ...any)) {
	sq := s.Notifications.StorageQueue
	if sq.Queue == "" {
		bad(f+".queue", "is required")
	} else if err := checkQueueName(sq.Queue); err != nil {
		bad(f+".queue", "%v", err)
	} else {
		switch {
		case sq.PoisonQueue == "":
			if err := checkQueueName(sq.Queue + poisonQueueSuffix); err != nil {
				bad(f+".queue", "the poison queue's default name (queue + %q) %v; set poisonQueue", poisonQueueSuffix, strings.TrimPrefix(err.Error(), fmt.Sprintf("%q ", sq.Queue+poisonQueueSuffix)))
			}
		case sq.PoisonQueue == sq.Queue:
			bad(f+".poisonQueue", "must differ from the queue")
		}
	}
	if sq.PoisonQueue != "" {
		if err := checkQueueName(sq.PoisonQueue); err != nil {
			bad(f+".poisonQueue", "%v", err)
		}
	}
	if sq.VisibilityTimeout < 0 {
		bad(f+".visibilityTimeout", "must not be negative")
	} else if sq.VisibilityTimeout.Round(time.Second) > maxQueueVisibility {
		bad(f+".visibilityTimeout", "%v exceeds the service's limit of 7 days (168h)", sq.VisibilityTimeout)
	}
	if sq.MaxDequeueCount < 0 {
		bad(f+".maxDequeueCount", "must not be negative")
	}
	switch {
	case sq.ConnectionString != "":
		if err := checkConnectionString(sq.ConnectionString, "Queue"); err != nil {
			bad(f+".connectionString", "%v", err)
		}
	case sq.AccountURL != "":
		if err := checkHTTPURL(sq.AccountURL); err != nil {
			bad(f+".accountURL", "%v", err)
		}
	case s.Azure.ConnectionString != "":
		// The consumer reuses the source's connection string: it must
		// name the queue service too.
		if err := checkConnectionString(s.Azure.ConnectionString, "Queue"); err != nil {
			bad(f+".connectionString", "is required: azure.connectionString cannot reach the queue service (%v)", err)
		}
	default:
		if !derivesQueueURL(s.Azure.AccountURL) {
			bad(f+".accountURL", "is required: it cannot be derived from azure.accountURL (only https://ACCOUNT.blob.… becomes https://ACCOUNT.queue.…)")
		}
	}
}

// derivesQueueURL reports whether the consumer can derive the queue service
// URL from the blob account URL, as providers/azure does.
func derivesQueueURL(blobURL string) bool {
	u, err := neturl.Parse(blobURL)
	if err != nil || blobURL == "" {
		return false
	}
	acct, rest, ok := strings.Cut(u.Host, ".")
	return ok && acct != "" && strings.HasPrefix(rest, "blob.")
}

// MaxRequestTimeout is the longest requestTimeout accepted: a longer one
// would let a stalled store hold a source for most of an hour.
const MaxRequestTimeout = time.Hour

// validateCalls checks requestTimeout, followSymlinks and guard.
func (s *Source) validateCalls(f string, bad func(field, format string, args ...any)) {
	switch {
	case s.RequestTimeout < 0:
		bad(f+".requestTimeout", "must not be negative (0 for the default, 30s)")
	case s.RequestTimeout > MaxRequestTimeout:
		bad(f+".requestTimeout", "%s is longer than %s", s.RequestTimeout, MaxRequestTimeout)
	}
	if p := s.Guard.Percent(); p < 0 || p > 100 {
		bad(f+".guard.maxDeletePercent", "%d is not from 0 to 100", p)
	}
	if s.Guard.MaxDeletes < 0 {
		bad(f+".guard.maxDeletes", "must not be negative (0 for no count limit)")
	}
}

// validate checks nats' security options. Errors name the field and the
// file, never a secret's value.
func (n *NATS) validate(bad func(field, format string, args ...any)) {
	var auth []string
	for _, a := range []struct{ field, v string }{
		{"credsFile", n.CredsFile}, {"nkeySeed", n.NKeySeed}, {"token", n.Token}, {"user", n.User},
	} {
		if a.v != "" {
			auth = append(auth, "nats."+a.field)
		}
	}
	if len(auth) > 1 {
		bad(auth[1], "cannot be combined with %s: set one way to authenticate", auth[0])
	}
	if n.Password != "" && n.User == "" {
		bad("nats.password", "needs nats.user")
	}
	if n.User != "" && n.Password == "" {
		bad("nats.password", "is required with nats.user (use ${VAR} to keep it out of the file)")
	}
	for _, f := range []struct{ field, path string }{
		{"nats.credsFile", n.CredsFile}, {"nats.nkeySeed", n.NKeySeed},
		{"nats.tls.ca", n.TLS.CA}, {"nats.tls.cert", n.TLS.Cert}, {"nats.tls.key", n.TLS.Key},
	} {
		if f.path == "" {
			continue
		}
		if err := checkReadable(f.path); err != nil {
			bad(f.field, "%v", err)
		}
	}
	if (n.TLS.Cert == "") != (n.TLS.Key == "") {
		if n.TLS.Cert == "" {
			bad("nats.tls.cert", "is required with nats.tls.key (a client certificate and its key go together)")
		} else {
			bad("nats.tls.key", "is required with nats.tls.cert (a client certificate and its key go together)")
		}
	}
	if n.Replicas < 1 || n.Replicas > 5 {
		bad("nats.replicas", "%d is not from 1 to 5", n.Replicas)
	}
	if n.JSDomain != "" && !streamRe.MatchString(n.JSDomain) {
		bad("nats.jsDomain", "%q is not a valid JetStream domain (use A-Z a-z 0-9 _ -)", n.JSDomain)
	}
	n.Websocket.validate(n, bad)
}

// checkReadable checks that path is a regular file this process can read.
// It reports the path, which is not a secret; the contents never.
func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("file %s does not exist", path)
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("file %s is not readable by this process", path)
		}
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", path)
	}
	return nil
}

// validateAssets checks the assets block.
func (s *Source) validateAssets(f string, bad func(field, format string, args ...any)) {
	a := &s.Assets
	f += ".assets"
	// Whether presign or serve suits the kind is the kind's (checkAssetsKind).
	switch a.URI {
	case "", AssetURIPresign, AssetURIServe:
	case AssetURIPublic:
		if a.PublicBaseURL == "" {
			bad(f+".publicBaseURL", `is required with uri "public"`)
		}
	default:
		bad(f+".uri", "%q is not one of presign, public, serve", a.URI)
	}
	if a.PublicBaseURL != "" {
		if err := checkHTTPURL(a.PublicBaseURL); err != nil {
			bad(f+".publicBaseURL", "%v", err)
		}
	}
	switch ttl := a.EffectiveTTL(); {
	case ttl < time.Second:
		bad(f+".ttl", "%v is shorter than 1s", ttl)
	case ttl > MaxAssetTTL:
		bad(f+".ttl", "%v is longer than 7 days (168h), the longest presigned URL S3 accepts", ttl)
	}
	if a.ThumbnailURL != "" {
		probe := strings.NewReplacer("{key}", "k", "{url}", "u", "{width}", "1").Replace(a.ThumbnailURL)
		if strings.ContainsAny(probe, "{}") {
			bad(f+".thumbnailURL", "has an unknown placeholder (known: {key}, {url}, {width})")
		} else if err := checkHTTPURL(probe); err != nil {
			bad(f+".thumbnailURL", "%v", err)
		}
	}
	if a.ID != "" && strings.TrimSpace(a.ID) == "" {
		bad(f+".id", "is blank")
	}
	for i, t := range a.Tokens {
		if t == "" {
			bad(fmt.Sprintf("%s.tokens[%d]", f, i), "is empty (is its ${VAR} set?)")
		}
	}
	for _, c := range []struct {
		field string
		v     *Credit
	}{{"credits", a.Credits}, {"license", a.License}} {
		if c.v == nil {
			continue
		}
		if c.v.Name == "" {
			bad(f+"."+c.field+".name", "is required")
		}
		if c.v.URL != "" {
			if err := checkHTTPURL(c.v.URL); err != nil {
				bad(f+"."+c.field+".url", "%v", err)
			}
		}
	}
}
