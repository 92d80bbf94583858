// Package config reads syncer's YAML configuration: strict (an unknown key is
// an error naming its path), with ${VAR} expansion from the environment and
// validation messages that name the field.
package config

import (
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imgly/syncer/notify"
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
