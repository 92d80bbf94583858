// Package config reads syncer's YAML configuration: strict (an unknown key is
// an error naming its path), with ${VAR} expansion from the environment and
// validation messages that name the field.
package config

import (
	"cmp"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// Config is the whole file.
type Config struct {
	NATS    NATS     `yaml:"nats"`
	Catalog Catalog  `yaml:"catalog"`
	HTTP    HTTP     `yaml:"http"`
	Events  Events   `yaml:"events"`
	Log     Log      `yaml:"log"`
	Notify  Notify   `yaml:"notify"`
	Sources []Source `yaml:"sources"`
}

// Notify tunes the notification apply path shared by all sources.
type Notify struct {
	// StatRate bounds the stats per second made to complete notifications
	// (a versioned delete may leave the object; a Ceph record has no
	// sequencer), StatBurst the burst above it, StatConcurrency the stats
	// in flight.
	StatRate        float64 `yaml:"statRate"`
	StatBurst       int     `yaml:"statBurst"`
	StatConcurrency int     `yaml:"statConcurrency"`
	// VerifyAfter is the age past which even a complete notification is
	// checked by a stat before it is applied: a late one may describe a
	// state that a scan has already seen replaced.
	VerifyAfter time.Duration `yaml:"verifyAfter"`
}

// DefaultVerifyAfter is notify.verifyAfter's default: well past the seconds
// a provider normally takes to deliver, so only a backlog pays for stats.
const DefaultVerifyAfter = 10 * time.Second

// NATS says where events go.
type NATS struct {
	// URL of the NATS server (several comma-separated), or "embedded" to
	// run one in-process. Required: a file must say where events go.
	URL           string `yaml:"url"`
	Stream        string `yaml:"stream"`
	SubjectPrefix string `yaml:"subjectPrefix"`
	// Authentication: at most one of CredsFile (a .creds file: JWT and
	// nkey seed), NKeySeed (a file holding an nkey seed), Token, or
	// User with Password. Put secrets in the environment (${VAR}); they
	// never appear in logs, errors or /status.
	CredsFile string `yaml:"credsFile"`
	NKeySeed  string `yaml:"nkeySeed"`
	Token     string `yaml:"token" json:"-"`
	User      string `yaml:"user"`
	Password  string `yaml:"password" json:"-"`
	TLS       TLS    `yaml:"tls"`
	// JSDomain is the JetStream domain of the stream (a leaf node's hub,
	// say); empty for the local account's JetStream.
	JSDomain string `yaml:"jsDomain"`
	// Replicas of the stream syncer creates (1..5, default 1). A stream
	// that exists is left as its owner configured it.
	Replicas int `yaml:"replicas"`
	// Embedded server settings, used when URL is "embedded".
	Listen   string `yaml:"listen"`
	StoreDir string `yaml:"storeDir"`
	// Websocket is the embedded server's WebSocket listener for browsers.
	Websocket Websocket `yaml:"websocket"`
}

// TLS secures the NATS connection. Any field set makes the connection
// require TLS.
type TLS struct {
	// CA is a PEM file of the certificates the server's is checked
	// against (default: the system's).
	CA string `yaml:"ca"`
	// Cert and Key are a PEM client certificate and its key, for servers
	// that verify clients (mTLS). Both or neither.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// InsecureSkipVerify accepts any server certificate: for tests only.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
}

// Enabled says whether any TLS setting is made.
func (t TLS) Enabled() bool {
	return t.CA != "" || t.Cert != "" || t.Key != "" || t.InsecureSkipVerify
}

// Catalog says where the catalog lives: a directory for the embedded
// bbolt file (Path, default ./data), or a PostgreSQL database shared by
// replicas (URL, postgres://...; see catalog.go).
type Catalog struct {
	Path string `yaml:"path"`
	URL  string `yaml:"url"`
}

// HTTP is the health, metrics and webhook listener.
type HTTP struct {
	// Listen is "host:port" (default 127.0.0.1:8080), or "off" for no
	// listener (a one-shot job, or tests that call Worker.Handler).
	Listen string `yaml:"listen"`
	Auth   Auth   `yaml:"auth"`
	// CORS lets editors on other origins call the asset API.
	CORS CORS `yaml:"cors"`
	// PublicURL is the absolute URL clients reach this listener at
	// (https://syncer.example.com), used in the URLs the asset API hands
	// out for local sources; default: the request's own host.
	PublicURL string `yaml:"publicURL"`
	// MaxConns caps open connections (0: the default, 4,096). Event
	// streams may hold all but 256 of them, which stay for health checks,
	// webhooks and the APIs.
	MaxConns int `yaml:"maxConns"`
}

// CORS is the asset API's cross-origin policy.
type CORS struct {
	// AllowedOrigins are the origins (https://editor.example.com) whose
	// pages may call the asset API; "*" allows any.
	AllowedOrigins []string `yaml:"allowedOrigins"`
}

// Auth holds the bearer tokens the HTTP side accepts. Endpoints that serve
// data (/status, /catalog/...) take any of Tokens; admin endpoints take any
// of AdminTokens. With no tokens, data endpoints are open only on a loopback
// listener.
type Auth struct {
	Tokens      []string `yaml:"tokens"`
	AdminTokens []string `yaml:"adminTokens"`
}

// Events tunes how changes become events.
type Events struct {
	// CoalesceWindow gathers the changes of one source detected this close
	// together into one event.
	CoalesceWindow time.Duration `yaml:"coalesceWindow"`
	// MaxChanges caps the changes listed in one event; larger bursts split.
	MaxChanges int `yaml:"maxChanges"`
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Source is one bucket (or container, or directory) plus prefix and filters.
type Source struct {
	ID       string `yaml:"id"`
	Provider string `yaml:"provider"`
	Bucket   string `yaml:"bucket"`
	// Container is Azure's name for a bucket.
	Container string   `yaml:"container"`
	Path      string   `yaml:"path"`
	Prefix    string   `yaml:"prefix"`
	Include   []string `yaml:"include"`
	Exclude   []string `yaml:"exclude"`
	Schedule  string   `yaml:"schedule"`

	S3    S3    `yaml:"s3"`
	GCS   GCS   `yaml:"gcs"`
	Azure Azure `yaml:"azure"`

	Notifications Notifications `yaml:"notifications"`

	// Assets is how the source is served as an IMG.LY remote asset source.
	Assets Assets `yaml:"assets"`

	// Provider calls and the local provider's reach (see validateCalls).
	//
	// RequestTimeout bounds each provider call (one list page, one stat);
	// 0 means providers.DefaultRequestTimeout (30s). A store that accepts a
	// request and never answers then fails the scan instead of holding the
	// source forever.
	RequestTimeout time.Duration `yaml:"requestTimeout"`
	// FollowSymlinks lets the local provider follow symbolic links that stay
	// inside its path (default false: links are not listed). Links leading
	// out of the path are never followed.
	FollowSymlinks bool `yaml:"followSymlinks"`
	// Settle (local provider) is how long a file must stay unchanged before
	// a scan announces it, so that a file still being written is announced
	// once, complete. Unset: local.DefaultSettle; 0 announces files as soon
	// as a scan sees them.
	Settle *time.Duration `yaml:"settle"`
	// Watch (local provider) turns the directory watch off with false;
	// unset or true, changes are seen as they happen (see scale.go).
	Watch *bool `yaml:"watch"`
	// ListConcurrency is how many key ranges a scan lists at once; 0 picks
	// it from the bucket, 1 lists in one sequence (see scale.go).
	ListConcurrency int `yaml:"listConcurrency"`

	// Guard is the mass-deletion guard: a scan that would delete more than
	// it allows applies its additions and modifications, not its deletions.
	Guard Guard `yaml:"guard"`

	// node is the source's mapping as parsed, for line numbers in the
	// kinds' errors; nil for a Source built in code.
	node *yaml.Node
}

// DefaultMaxDeletePercent is guard.maxDeletePercent when unset.
const DefaultMaxDeletePercent = 50

// Guard limits the deletions one scan may apply (rclone's --max-delete,
// also as a share of the source). Deletions from notifications, which the
// provider confirmed one by one, are never held.
type Guard struct {
	// MaxDeletePercent holds a scan that would delete more than this
	// percentage of the objects the catalog recorded before it: 0..100,
	// default 50 (nil until defaults are set; 0 holds every deletion).
	MaxDeletePercent *int `yaml:"maxDeletePercent"`
	// MaxDeletes holds a scan that would delete more than this many
	// objects; 0 (the default) sets no count limit.
	MaxDeletes int `yaml:"maxDeletes"`
}

// Percent is MaxDeletePercent, or its default when unset.
func (g Guard) Percent() int {
	if g.MaxDeletePercent == nil {
		return DefaultMaxDeletePercent
	}
	return *g.MaxDeletePercent
}

// Assets configures a source's asset API (GET /sources/{id}/...).
type Assets struct {
	// Disabled takes the source off the asset API.
	Disabled bool `yaml:"disabled"`
	// ID is the asset source id an editor registers (default: the source id).
	ID string `yaml:"id"`
	// Name is the manifest's name.en (default: the source id).
	Name string `yaml:"name"`
	// URI says how an asset's uri is made: "presign" (a signed GET URL of
	// the store, valid for TTL; the default for s3, gcs and azure),
	// "public" (PublicBaseURL + the escaped key), or "serve" (syncer serves
	// the file itself; local sources only, and their default).
	URI string `yaml:"uri"`
	// TTL is how long a presigned URL stays valid (default 1h, at most 7 days).
	TTL time.Duration `yaml:"ttl"`
	// PublicBaseURL is where the objects are public (a CDN); with it, uri
	// defaults to "public".
	PublicBaseURL string `yaml:"publicBaseURL"`
	// ThumbnailURL is a template for thumbUri with {key}, {url} and
	// {width} (e.g. an imgproxy or Thumbor URL); default: the uri.
	ThumbnailURL string `yaml:"thumbnailURL"`
	// Index keeps secondary indexes for the sort orders (newest first, by
	// name, by size), so a sorted page of a source with millions of objects
	// is a cursor walk (sub-millisecond at 1M) instead of a pass over every
	// object (~0.1-0.2 s at 1M). They cost about 2.75x the catalog's size
	// and raise a first import's memory; off by default.
	Index bool `yaml:"index"`
	// Tokens, when set, are the only bearer tokens that may read this
	// source (instead of http.auth.tokens).
	Tokens  []string `yaml:"tokens"`
	Credits *Credit  `yaml:"credits"`
	License *Credit  `yaml:"license"`
}

// Credit is a name and an optional URL, for the manifest's credits/license.
type Credit struct {
	Name string `yaml:"name" json:"name"`
	URL  string `yaml:"url" json:"url,omitempty"`
}

// Asset URI modes.
const (
	AssetURIPresign = "presign"
	AssetURIPublic  = "public"
	AssetURIServe   = "serve"
	// DefaultAssetTTL is assets.ttl's default.
	DefaultAssetTTL = time.Hour
	// MaxAssetTTL is the longest presigned URL S3 allows (7 days).
	MaxAssetTTL = 7 * 24 * time.Hour
)

// Mode is URI, or its default when unset: "public" with a PublicBaseURL,
// else "presign" for a store that signs URLs, else "serve".
func (a *Assets) Mode(presigns bool) string {
	switch {
	case a.URI != "":
		return a.URI
	case a.PublicBaseURL != "":
		return AssetURIPublic
	case !presigns:
		return AssetURIServe
	}
	return AssetURIPresign
}

// EffectiveTTL is TTL, or DefaultAssetTTL when unset.
func (a *Assets) EffectiveTTL() time.Duration {
	if a.TTL == 0 {
		return DefaultAssetTTL
	}
	return a.TTL
}

// S3, GCS and Azure are the YAML shape of the kinds' blocks, kept in Source
// so that the file decodes strictly (and Sources built in code, in tests,
// can set them). Their meaning — validation, defaults, what the adapter and
// the notification transports do with them — is the kind's own Config and
// Notifications (providers/s3.Config, …), decoded by its Descriptor;
// ParseFor writes its defaults back here. Nothing outside config reads them
// to run a source.

// S3 holds S3 and S3-compatible settings. Credentials come from the standard
// AWS chain (environment, shared config, IRSA), never from this file.
type S3 struct {
	Endpoint  string `yaml:"endpoint"`
	Region    string `yaml:"region"`
	PathStyle bool   `yaml:"pathStyle"`
}

// GCS holds Google Cloud Storage settings. Without CredentialsFile the
// Application Default Credentials apply; STORAGE_EMULATOR_HOST is respected.
type GCS struct {
	CredentialsFile string `yaml:"credentialsFile"`
	Endpoint        string `yaml:"endpoint"`
}

// Azure holds Azure Blob settings. One way to authenticate: a connection
// string, an account key, a SAS token, or none of them for
// DefaultAzureCredential (workload identity on AKS).
type Azure struct {
	AccountURL       string `yaml:"accountURL"`
	ConnectionString string `yaml:"connectionString"`
	AccountName      string `yaml:"accountName"`
	AccountKey       string `yaml:"accountKey"`
	SASToken         string `yaml:"sasToken"`
}

// Notifications are a source's fast paths. Any number may be set.
type Notifications struct {
	SQS          *SQS          `yaml:"sqs"`
	Webhook      *Webhook      `yaml:"webhook"`
	PubSub       *PubSub       `yaml:"pubsub"`
	StorageQueue *StorageQueue `yaml:"storageQueue"`
	EventGrid    *EventGrid    `yaml:"eventGrid"`
}

// SQS is an SQS queue receiving S3 notifications (raw, SNS-wrapped or
// EventBridge).
type SQS struct {
	QueueURL          string        `yaml:"queueURL"`
	Endpoint          string        `yaml:"endpoint"`
	Region            string        `yaml:"region"`
	Concurrency       int           `yaml:"concurrency"`
	VisibilityTimeout time.Duration `yaml:"visibilityTimeout"`
	WaitTime          time.Duration `yaml:"waitTime"`
}

// Webhook is an S3-compatible (MinIO, Ceph) notification webhook, served at
// /webhooks/s3/<source id> and authenticated with a bearer token.
type Webhook struct {
	Token string `yaml:"token"`
}

// PubSub is a GCS notification subscription.
type PubSub struct {
	Project      string `yaml:"project"`
	Subscription string `yaml:"subscription"`
	Endpoint     string `yaml:"endpoint"`
}

// StorageQueue is an Azure Storage Queue receiving Event Grid events.
type StorageQueue struct {
	Queue             string        `yaml:"queue"`
	AccountURL        string        `yaml:"accountURL"`
	ConnectionString  string        `yaml:"connectionString"`
	PoisonQueue       string        `yaml:"poisonQueue"`
	MaxDequeueCount   int           `yaml:"maxDequeueCount"`
	VisibilityTimeout time.Duration `yaml:"visibilityTimeout"`
}

// EventGrid is an Event Grid webhook, served at /webhooks/eventgrid/<source
// id>, authenticated with a secret in a query parameter or header.
type EventGrid struct {
	Secret string `yaml:"secret"`
	// Header, when set, names the header carrying the secret; otherwise the
	// query parameter "code" does.
	Header string `yaml:"header"`
}

// Defaults.
const (
	DefaultStream         = "SYNCER"
	DefaultSubjectPrefix  = "syncer.changed"
	DefaultSchedule       = "@every 5m"
	DefaultCoalesceWindow = 250 * time.Millisecond
	DefaultMaxChanges     = 500
	// The notification apply path's stat budget, which the apply path
	// also falls back on: 1000 stats a second, bursts of 200, 16 in flight.
	DefaultStatRate        = notify.DefaultStatRate
	DefaultStatBurst       = notify.DefaultStatBurst
	DefaultStatConcurrency = notify.DefaultStatConcurrency
)

// Load reads, expands, decodes and validates the file at path, all but the
// provider kinds' own settings (see LoadFor).
func Load(path string) (*Config, error) { return load(path, nil) }

func load(path string, kinds *providers.Registry) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := parseWith(data, os.LookupEnv, kinds)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes and validates a configuration, all but the provider kinds'
// own settings (see ParseFor). lookup resolves ${VAR}.
func Parse(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	return parseWith(data, lookup, nil)
}

func parseWith(data []byte, lookup func(string) (string, bool), kinds *providers.Registry) (*Config, error) {
	cfg, r, err := decode(data, lookup)
	if err != nil {
		return nil, err
	}
	cfg.setDefaults()
	var kerr error
	if kinds != nil {
		kerr = cfg.resolveKinds(kinds)
	}
	return cfg, r.hide(errors.Join(kerr, cfg.Validate()))
}

// decode parses, expands and decodes data without defaults or validation.
// Its errors never show a value that came from the environment.
func decode(data []byte, lookup func(string) (string, bool)) (*Config, *refs, error) {
	text, r := substitute(data)
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		// A syntax error may quote the text near it; put the references
		// back as written (never a variable's value: none is expanded yet).
		return nil, nil, fmt.Errorf("%s", r.restore(err.Error()))
	}
	cfg := &Config{}
	if root.Kind != 0 { // not an empty file
		if err := r.expand(&root, "", lookup); err != nil {
			return nil, nil, err
		}
		if errs := r.check(&root, typeOf(cfg), ""); len(errs) > 0 {
			return nil, nil, errors.Join(errs...)
		}
		if err := root.Decode(cfg); err != nil {
			return nil, nil, scrub(err)
		}
		// Each source keeps its node: the kinds' errors name lines.
		if seq := providers.Find(&root, "sources"); seq != nil && len(seq.Content) == len(cfg.Sources) {
			for i, n := range seq.Content {
				cfg.Sources[i].node = n
			}
		}
	}
	return cfg, r, nil
}

func (c *Config) setDefaults() {
	if c.NATS.Stream == "" {
		c.NATS.Stream = DefaultStream
	}
	if c.NATS.SubjectPrefix == "" {
		c.NATS.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.NATS.Replicas == 0 {
		c.NATS.Replicas = 1
	}
	if c.NATS.Listen == "" {
		c.NATS.Listen = "127.0.0.1:4222"
	}
	if c.Catalog.Path == "" && c.Catalog.URL == "" {
		c.Catalog.Path = "./data"
	}
	if c.NATS.StoreDir == "" {
		c.NATS.StoreDir = cmp.Or(c.Catalog.Path, "./data") + "/nats"
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8080"
	}
	if c.Events.CoalesceWindow == 0 {
		c.Events.CoalesceWindow = DefaultCoalesceWindow
	}
	if c.Events.MaxChanges == 0 {
		c.Events.MaxChanges = DefaultMaxChanges
	}
	if c.Notify.StatRate == 0 {
		c.Notify.StatRate = DefaultStatRate
	}
	if c.Notify.StatBurst == 0 {
		c.Notify.StatBurst = DefaultStatBurst
	}
	if c.Notify.StatConcurrency == 0 {
		c.Notify.StatConcurrency = DefaultStatConcurrency
	}
	if c.Notify.VerifyAfter == 0 {
		c.Notify.VerifyAfter = DefaultVerifyAfter
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Schedule == "" {
			s.Schedule = DefaultSchedule
		}
		if s.Guard.MaxDeletePercent == nil {
			p := DefaultMaxDeletePercent
			s.Guard.MaxDeletePercent = &p
		}
		s.Assets.TTL = s.Assets.EffectiveTTL()
		// assets.uri and the kinds' own defaults (s3.region) are their
		// kind's to set: see resolveKinds.
	}
}

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
	if c.HTTP.Listen != "off" {
		if err := checkListen(c.HTTP.Listen); err != nil {
			bad("http.listen", `%v; or "off" for no listener`, err)
		}
	}
	if c.HTTP.MaxConns < 0 || c.HTTP.MaxConns > 0 && c.HTTP.MaxConns < 512 {
		bad("http.maxConns", "%d: use 0 for the default (4096) or at least 512 (256 are kept from event streams)", c.HTTP.MaxConns)
	}
	if c.HTTP.PublicURL != "" {
		if err := checkHTTPURL(c.HTTP.PublicURL); err != nil {
			bad("http.publicURL", "%v", err)
		}
	}
	for i, o := range c.HTTP.CORS.AllowedOrigins {
		if o == "*" {
			continue
		}
		if u, err := neturl.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			bad(fmt.Sprintf("http.cors.allowedOrigins[%d]", i), "%q is not an origin (scheme://host[:port], no path) or \"*\"", o)
		}
	}
	if !streamRe.MatchString(c.NATS.Stream) {
		bad("nats.stream", "%q is not a valid stream name (use A-Z a-z 0-9 _ -)", c.NATS.Stream)
	}
	if !subjectPrefixRe.MatchString(c.NATS.SubjectPrefix) {
		bad("nats.subjectPrefix", "%q is not a valid NATS subject prefix (dot-separated tokens of A-Z a-z 0-9 _ -)", c.NATS.SubjectPrefix)
	}
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
		if _, err := cron.ParseStandard(s.Schedule); err != nil {
			bad(f+".schedule", "%q is not a valid cron spec: %v", s.Schedule, err)
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
	return errors.Join(errs...)
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
