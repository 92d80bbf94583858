package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// env is a lookup over a fixed map, so tests never depend on the process
// environment.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// withNATS appends the nats.url every file must have to a test document that
// is about something else and has no nats block. Appending keeps the lines
// the tests assert on.
func withNATS(doc string) string {
	if strings.Contains(doc, "nats:") || strings.HasPrefix(strings.TrimSpace(doc), "{") {
		return doc
	}
	return doc + "\nnats: {url: embedded}\n"
}

func parse(t *testing.T, doc string, vars map[string]string) *Config {
	t.Helper()
	doc = withNATS(doc)
	cfg, err := parseAll([]byte(doc), env(vars))
	if err != nil {
		t.Fatalf("Parse:\n%s\nerr: %v", doc, err)
	}
	return cfg
}

// parseErr parses doc and checks that the error contains every want.
func parseErr(t *testing.T, doc string, vars map[string]string, want ...string) error {
	t.Helper()
	doc = withNATS(doc)
	_, err := parseAll([]byte(doc), env(vars))
	if err == nil {
		t.Fatalf("Parse accepted:\n%s", doc)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	return err
}

// The "Config" block of issue 2, verbatim apart from the nats line, whose
// url offers two alternatives ("nats://..." | "embedded"), which is not YAML;
// each alternative is checked.
const issueExample = `
nats:    {url: %NATS%, stream: SYNCER, subjectPrefix: syncer.changed}
catalog: {path: ./data}
http:    {listen: "127.0.0.1:8080"}
sources:
  - id: cloud-images            # safe as one NATS subject token: [A-Za-z0-9_-]
    provider: s3                # s3 | local   (gcs, azure come in their own issues)
    bucket: my-bucket           # s3/gcs; ` + "`container`" + ` for azure; ` + "`path`" + ` for local
    prefix: images/             # optional
    include: ["*.jpg", "*.png"] # optional globs on the key below the prefix; ` + "`exclude`" + ` likewise
    schedule: "@every 5m"       # robfig/cron/v3 spec
    s3: {endpoint: "http://127.0.0.1:9000", region: us-east-1, pathStyle: true}
`

func TestIssueExample(t *testing.T) {
	for _, url := range []string{`"nats://127.0.0.1:4222"`, `"embedded"`} {
		cfg := parse(t, strings.Replace(issueExample, "%NATS%", url, 1), nil)
		if want := strings.Trim(url, `"`); cfg.NATS.URL != want {
			t.Errorf("nats.url = %q, want %q", cfg.NATS.URL, want)
		}
		if cfg.NATS.Stream != "SYNCER" || cfg.NATS.SubjectPrefix != "syncer.changed" {
			t.Errorf("nats = %+v", cfg.NATS)
		}
		if cfg.Catalog.Path != "./data" || cfg.HTTP.Listen != "127.0.0.1:8080" {
			t.Errorf("catalog %+v, http %+v", cfg.Catalog, cfg.HTTP)
		}
		if len(cfg.Sources) != 1 {
			t.Fatalf("sources = %+v", cfg.Sources)
		}
		s := cfg.Sources[0]
		if s.ID != "cloud-images" || s.Provider != "s3" || s.Bucket != "my-bucket" || s.Prefix != "images/" ||
			strings.Join(s.Include, ",") != "*.jpg,*.png" || s.Schedule != "@every 5m" ||
			s.S3 != (S3{Endpoint: "http://127.0.0.1:9000", Region: "us-east-1", PathStyle: true}) {
			t.Errorf("source = %+v", s)
		}
	}
}

// A file must say where NATS is: a file without nats.url, even an empty one,
// is an error, never a silent embedded server nobody else can reach.
func TestNATSURLRequired(t *testing.T) {
	for _, doc := range []string{"", "\n", "# only a comment\n", "{}\n", "nats: {stream: S}\n",
		"sources:\n  - {id: a, provider: local, path: /p}\n", "nats: {url: \"\"}\n"} {
		_, err := parseAll([]byte(doc), env(nil))
		if err == nil || !strings.Contains(err.Error(), "nats.url: is required") || !strings.Contains(err.Error(), "embedded") {
			t.Errorf("Parse(%q) = %v, want nats.url required", doc, err)
		}
	}
}

func TestEmptyFile(t *testing.T) {
	for _, doc := range []string{"nats: {url: embedded}\n", "nats:\n  url: embedded\n# only a comment\n"} {
		cfg := parse(t, doc, nil)
		checkDefaults(t, cfg)
		if len(cfg.Sources) != 0 {
			t.Errorf("sources = %+v", cfg.Sources)
		}
	}
}

func checkDefaults(t *testing.T, cfg *Config) {
	t.Helper()
	if cfg.NATS.URL != "embedded" || cfg.NATS.Stream != "SYNCER" || cfg.NATS.SubjectPrefix != "syncer.changed" ||
		cfg.NATS.Listen != "127.0.0.1:4222" {
		t.Errorf("nats defaults = %+v", cfg.NATS)
	}
	if cfg.Catalog.Path != "./data" || cfg.NATS.StoreDir != "./data/nats" {
		t.Errorf("catalog %q, nats store %q", cfg.Catalog.Path, cfg.NATS.StoreDir)
	}
	if cfg.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("http.listen = %q", cfg.HTTP.Listen)
	}
	if cfg.Events.CoalesceWindow != 250*time.Millisecond || cfg.Events.MaxChanges != 500 {
		t.Errorf("events defaults = %+v", cfg.Events)
	}
	if cfg.Log.Level != "info" || cfg.Log.Format != "text" {
		t.Errorf("log defaults = %+v", cfg.Log)
	}
}

func TestDefaults(t *testing.T) {
	cfg := parse(t, `
catalog: {path: /var/lib/syncer}
sources:
  - {id: a, provider: s3, bucket: b}
  - {id: g, provider: gcs, bucket: b}
  - {id: l, provider: local, path: /srv}
  - {id: s, provider: s3, bucket: b, schedule: "*/2 * * * *", s3: {region: eu-west-1}}
`, nil)
	if cfg.NATS.StoreDir != "/var/lib/syncer/nats" {
		t.Errorf("nats.storeDir = %q, want it below catalog.path", cfg.NATS.StoreDir)
	}
	want := []struct{ schedule, region string }{
		{"@every 5m", "us-east-1"},
		{"@every 5m", ""}, // the S3 region default is for S3 only
		{"@every 5m", ""},
		{"*/2 * * * *", "eu-west-1"},
	}
	for i, w := range want {
		s := cfg.Sources[i]
		if s.Schedule != w.schedule || s.S3.Region != w.region {
			t.Errorf("sources[%d]: schedule %q region %q, want %q %q", i, s.Schedule, s.S3.Region, w.schedule, w.region)
		}
	}
}

// A window written as 0 turns coalescing off; only a missing one takes the
// default.
func TestCoalesceWindowZeroIsKept(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want time.Duration
	}{
		{"events: {coalesceWindow: 0s}\n", 0},
		{"events: {coalesceWindow: \"0\"}\n", 0},
		{"events: {maxChanges: 10}\n", DefaultCoalesceWindow},
		{"events: {coalesceWindow: 40ms}\n", 40 * time.Millisecond},
	} {
		cfg := parse(t, tc.yaml, nil)
		if got := cfg.Events.CoalesceWindow; got != tc.want {
			t.Errorf("%q: coalesceWindow %v, want %v", tc.yaml, got, tc.want)
		}
	}
}

// Sub-second and fractional intervals validate (the scheduler runs them
// exactly: cronspec.Parse), down to the floor.
func TestSubSecondSchedule(t *testing.T) {
	cfg := parse(t, `
sources:
  - {id: a, provider: s3, bucket: b, schedule: "@every 250ms"}
  - {id: b, provider: s3, bucket: b, schedule: "@every 100ms"}
  - {id: c, provider: s3, bucket: b, schedule: "@every 1.5s"}
`, nil)
	for i, want := range []string{"@every 250ms", "@every 100ms", "@every 1.5s"} {
		if got := cfg.Sources[i].Schedule; got != want {
			t.Errorf("sources[%d].schedule = %q, want %q", i, got, want)
		}
	}
}

func TestUnknownKeys(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want string
	}{
		{"natz: {}\n", "natz: unknown key (line 1)"},
		{"nats:\n  url: embedded\n  strem: X\n", "nats.strem: unknown key (line 3)"},
		{"events:\n  coalesce: 1s\n", "events.coalesce: unknown key (line 2)"},
		{"sources:\n  - id: a\n    provider: s3\n    bucket: b\n    s3:\n      pathStlye: true\n",
			"sources[0].s3.pathStlye: unknown key (line 6)"},
		{"sources:\n  - {id: a, provider: s3, bucket: b}\n  - id: c\n    buckett: d\n",
			"sources[1].buckett: unknown key (line 4)"},
		{"sources:\n  - id: a\n    provider: s3\n    bucket: b\n    notifications:\n      sqs:\n        queueURL: q\n        waitTimeSeconds: 20\n",
			"sources[0].notifications.sqs.waitTimeSeconds: unknown key (line 8)"},
		{"sources:\n  - id: a\n    provider: azure\n    container: c\n    azure: {accountURL: u, accountKEY: k}\n",
			"sources[0].azure.accountKEY: unknown key (line 5)"},
		// Keys are case-sensitive: the file spells them as documented.
		{"HTTP: {listen: x}\n", "HTTP: unknown key (line 1)"},
	} {
		parseErr(t, tc.doc, nil, tc.want)
	}
}

func TestExpansion(t *testing.T) {
	vars := map[string]string{
		"BUCKET": "assets",
		"PS":     "true",
		"MAX":    "42",
		"WIN":    "1s",
		"TOKEN":  "s3cr3t: {not yaml} # nor a comment",
		"EMPTY":  "",
	}
	cfg := parse(t, `
events:
  maxChanges: ${MAX}
  coalesceWindow: ${WIN}
sources:
  - id: a
    provider: s3
    bucket: ${BUCKET}
    prefix: ${PREFIX:-images/}
    schedule: ${SCHED:-@every 1m}
    include: ["${GLOB:-*.jpg}", "*.${EXT:-png}"]
    s3:
      endpoint: http://${HOST:-127.0.0.1}:${PORT:-9000}
      pathStyle: ${PS}
      region: ${EMPTY:-eu-central-1}
    notifications:
      webhook:
        token: ${TOKEN}
`, vars)
	if cfg.Events.MaxChanges != 42 || cfg.Events.CoalesceWindow != time.Second {
		t.Errorf("events = %+v", cfg.Events)
	}
	s := cfg.Sources[0]
	if s.Bucket != "assets" || s.Prefix != "images/" || s.Schedule != "@every 1m" {
		t.Errorf("source = %+v", s)
	}
	if strings.Join(s.Include, ",") != "*.jpg,*.png" {
		t.Errorf("include = %q", s.Include)
	}
	if s.S3.Endpoint != "http://127.0.0.1:9000" || !s.S3.PathStyle {
		t.Errorf("s3 = %+v", s.S3)
	}
	// An empty variable counts as unset, so its default applies.
	if s.S3.Region != "eu-central-1" {
		t.Errorf("s3.region = %q, want the default of an empty variable", s.S3.Region)
	}
	// Expansion happens after parsing: YAML syntax in a value stays data.
	if s.Notifications.Webhook == nil || s.Notifications.Webhook.Token != vars["TOKEN"] {
		t.Errorf("webhook = %+v", s.Notifications.Webhook)
	}
}

func TestExpansionTypedFields(t *testing.T) {
	cfg := parse(t, `
events:
  maxChanges: ${MAX:-77}
sources:
  - id: a
    provider: s3
    bucket: ${NUM}
    s3:
      pathStyle: ${PS}
    notifications:
      sqs:
        queueURL: http://127.0.0.1:4566/000000000000/q
        concurrency: ${N}
        waitTime: ${W:-250ms}
`, map[string]string{"PS": "true", "N": "42", "NUM": "0x1F"})
	s := cfg.Sources[0]
	if !s.S3.PathStyle {
		t.Errorf("pathStyle from ${PS}=true: %v", s.S3.PathStyle)
	}
	if q := s.Notifications.SQS; q.Concurrency != 42 || q.WaitTime != 250*time.Millisecond {
		t.Errorf("sqs = %+v", q)
	}
	if cfg.Events.MaxChanges != 77 {
		t.Errorf("maxChanges from a default = %d", cfg.Events.MaxChanges)
	}
	// A value that looks like a number stays verbatim in a string field.
	if s.Bucket != "0x1F" {
		t.Errorf("bucket = %q, want 0x1F", s.Bucket)
	}
	// A quoted placeholder is a string, as YAML says, wherever it lands.
	cfg = parse(t, "sources:\n  - {id: a, provider: s3, bucket: \"${NUM}\"}\n", map[string]string{"NUM": "0012"})
	if cfg.Sources[0].Bucket != "0012" {
		t.Errorf("quoted bucket = %q", cfg.Sources[0].Bucket)
	}
}

// Only ${NAME} and ${NAME:-default} are placeholders: any other dollar sign
// is data, also in a value that holds a placeholder too.
func TestExpansionLiteralDollars(t *testing.T) {
	cfg := parse(t, `
sources:
  - id: a
    provider: s3
    bucket: b
    prefix: "$HOME/${SUB}/$$/$1/$"
    notifications:
      webhook:
        token: "pa$word-${SUFFIX}"
`, map[string]string{"SUB": "x", "SUFFIX": "s", "HOME": "/root", "word": "WRONG"})
	s := cfg.Sources[0]
	if s.Prefix != "$HOME/x/$$/$1/$" {
		t.Errorf("prefix = %q", s.Prefix)
	}
	if s.Notifications.Webhook.Token != "pa$word-s" {
		t.Errorf("token = %q", s.Notifications.Webhook.Token)
	}
	// A variable's value is not expanded again, and an unterminated "${"
	// is kept as written.
	cfg = parse(t, "sources:\n  - {id: a, provider: s3, bucket: \"${B}\", prefix: \"${P}/${open\"}\n",
		map[string]string{"B": "${P}", "P": "p"})
	if s := cfg.Sources[0]; s.Bucket != "${P}" || s.Prefix != "p/${open" {
		t.Errorf("bucket %q prefix %q", s.Bucket, s.Prefix)
	}
	// Without any placeholder nothing changes either.
	cfg = parse(t, "sources:\n  - {id: a, provider: s3, bucket: b, prefix: \"a$b\"}\n", nil)
	if cfg.Sources[0].Prefix != "a$b" {
		t.Errorf("prefix = %q", cfg.Sources[0].Prefix)
	}
}

func TestExpansionMissingVar(t *testing.T) {
	parseErr(t, "sources:\n  - id: a\n    provider: s3\n    bucket: ${BUCKET}\n", nil,
		"sources[0].bucket", "BUCKET", "not set", "line 4")
	parseErr(t, "nats:\n  url: nats://${HOST}:${PORT}\n", map[string]string{"HOST": "h"},
		"nats.url", "PORT")
	// Set but empty, without a default: as good as unset.
	parseErr(t, "catalog: {path: \"${DIR}\"}\n", map[string]string{"DIR": ""}, "catalog.path", "DIR")
	// The error names the variable, never a value.
	err := parseErr(t, "sources:\n  - {id: a, provider: s3, bucket: b, notifications: {webhook: {token: \"${TOK}x${MISSING}\"}}}\n",
		map[string]string{"TOK": "supersecret"}, "sources[0].notifications.webhook.token", "MISSING")
	if strings.Contains(err.Error(), "supersecret") {
		t.Errorf("error leaks a secret: %v", err)
	}
}

func TestDurations(t *testing.T) {
	cfg := parse(t, `
events: {coalesceWindow: 250ms}
sources:
  - id: q
    provider: azure
    container: c
    azure: {accountURL: "https://a.blob.core.windows.net"}
    notifications:
      storageQueue: {queue: events, visibilityTimeout: 1m30s}
`, nil)
	if cfg.Events.CoalesceWindow != 250*time.Millisecond {
		t.Errorf("coalesceWindow = %v", cfg.Events.CoalesceWindow)
	}
	if v := cfg.Sources[0].Notifications.StorageQueue.VisibilityTimeout; v != 90*time.Second {
		t.Errorf("visibilityTimeout = %v", v)
	}
	parseErr(t, "events: {coalesceWindow: soon}\n", nil, "soon")
	parseErr(t, "events: {coalesceWindow: -1s}\n", nil, "events.coalesceWindow", "negative")
	if v := parse(t, "notify: {verifyAfter: 30s}\n", nil).Notify.VerifyAfter; v != 30*time.Second {
		t.Errorf("notify.verifyAfter = %v", v)
	}
	if v := parse(t, "nats: {url: embedded}\n", nil).Notify.VerifyAfter; v != DefaultVerifyAfter {
		t.Errorf("notify.verifyAfter default = %v, want %v", v, DefaultVerifyAfter)
	}
	parseErr(t, "notify: {verifyAfter: -1s}\n", nil, "notify.verifyAfter", "negative")
}

func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want []string
	}{
		{"s3 without bucket", "sources:\n  - {id: a, provider: s3}\n", []string{"sources[0].bucket", "required"}},
		{"gcs without bucket", "sources:\n  - {id: a, provider: gcs}\n", []string{"sources[0].bucket"}},
		{"azure without container", "sources:\n  - {id: a, provider: azure, azure: {accountURL: u}}\n",
			[]string{"sources[0].container"}},
		{"azure without account", "sources:\n  - {id: a, provider: azure, container: c}\n",
			[]string{"sources[0].azure.accountURL"}},
		{"azure key without name", "sources:\n  - {id: a, provider: azure, container: c, azure: {accountURL: u, accountKey: k}}\n",
			[]string{"sources[0].azure.accountName"}},
		{"local without path", "sources:\n  - {id: a, provider: local}\n", []string{"sources[0].path"}},
		{"bad cron", "sources:\n  - {id: a, provider: s3, bucket: b, schedule: \"every five minutes\"}\n",
			[]string{"sources[0].schedule", "every five minutes"}},
		{"bad cron fields", "sources:\n  - {id: a, provider: s3, bucket: b, schedule: \"61 * * * *\"}\n",
			[]string{"sources[0].schedule"}},
		{"interval under the floor", "sources:\n  - {id: a, provider: s3, bucket: b}\n  - id: c\n    provider: s3\n    bucket: b\n    schedule: \"@every 50ms\"\n",
			[]string{`sources[1].schedule: "@every 50ms" is not a valid schedule`, "shorter than the minimum of 100ms", "(line 6)"}},
		{"duplicate id", "sources:\n  - {id: a, provider: s3, bucket: b}\n  - {id: a, provider: local, path: /x}\n",
			[]string{"sources[1].id", "already used by sources[0]"}},
		{"third duplicate", "sources:\n  - {id: a, provider: s3, bucket: b}\n  - {id: b, provider: s3, bucket: b}\n  - {id: b, provider: s3, bucket: b}\n",
			[]string{"sources[2].id", "already used by sources[1]"}},
		{"missing id", "sources:\n  - {provider: s3, bucket: b}\n", []string{"sources[0].id", "required"}},
		{"dotted id", "sources:\n  - {id: a.b, provider: s3, bucket: b}\n", []string{"sources[0].id", `"a.b"`}},
		{"spaced id", "sources:\n  - {id: a b, provider: s3, bucket: b}\n", []string{"sources[0].id"}},
		{"wildcard id", "sources:\n  - {id: \"a>*\", provider: s3, bucket: b}\n", []string{"sources[0].id"}},
		{"unicode id", "sources:\n  - {id: bilder-ä, provider: s3, bucket: b}\n", []string{"sources[0].id"}},
		{"missing provider", "sources:\n  - {id: a, bucket: b}\n", []string{"sources[0].provider", "required"}},
		{"unknown provider", "sources:\n  - {id: a, provider: ftp, bucket: b}\n", []string{"sources[0].provider", `"ftp"`}},
		{"sqs on gcs", "sources:\n  - {id: a, provider: gcs, bucket: b, notifications: {sqs: {queueURL: q}}}\n",
			[]string{"sources[0].notifications.sqs", "s3"}},
		{"webhook on local", "sources:\n  - {id: a, provider: local, path: /p, notifications: {webhook: {token: t}}}\n",
			[]string{"sources[0].notifications.webhook"}},
		{"pubsub on s3", "sources:\n  - {id: a, provider: s3, bucket: b, notifications: {pubsub: {project: p, subscription: s}}}\n",
			[]string{"sources[0].notifications.pubsub", "gcs"}},
		{"storage queue on gcs", "sources:\n  - {id: a, provider: gcs, bucket: b, notifications: {storageQueue: {queue: q}}}\n",
			[]string{"sources[0].notifications.storageQueue", "azure"}},
		{"event grid on s3", "sources:\n  - {id: a, provider: s3, bucket: b, notifications: {eventGrid: {secret: s}}}\n",
			[]string{"sources[0].notifications.eventGrid", "azure"}},
		{"webhook without token", "sources:\n  - {id: a, provider: s3, bucket: b, notifications: {webhook: {}}}\n",
			[]string{"sources[0].notifications.webhook.token", "required"}},
		{"sqs without queue", "sources:\n  - {id: a, provider: s3, bucket: b, notifications: {sqs: {region: r}}}\n",
			[]string{"sources[0].notifications.sqs.queueURL"}},
		{"pubsub without subscription", "sources:\n  - {id: a, provider: gcs, bucket: b, notifications: {pubsub: {project: p}}}\n",
			[]string{"sources[0].notifications.pubsub.subscription"}},
		{"event grid without secret", "sources:\n  - {id: a, provider: azure, container: c, azure: {connectionString: x}, notifications: {eventGrid: {}}}\n",
			[]string{"sources[0].notifications.eventGrid.secret"}},
		{"bad include glob", "sources:\n  - {id: a, provider: s3, bucket: b, include: [\"*.jpg\", \"[a\"]}\n",
			[]string{"sources[0].include[1]"}},
		{"bad exclude glob", "sources:\n  - {id: a, provider: s3, bucket: b, exclude: [\"\"]}\n",
			[]string{"sources[0].exclude[0]"}},
		{"stream", "nats: {stream: my.stream}\n", []string{"nats.stream"}},
		{"subject prefix wildcard", "nats: {subjectPrefix: \"syncer.>\"}\n", []string{"nats.subjectPrefix"}},
		{"subject prefix empty token", "nats: {subjectPrefix: \"syncer..changed\"}\n", []string{"nats.subjectPrefix"}},
		{"max changes", "events: {maxChanges: -1}\n", []string{"events.maxChanges"}},
		{"log level", "log: {level: verbose}\n", []string{"log.level"}},
		{"log format", "log: {format: xml}\n", []string{"log.format"}},
	} {
		t.Run(tc.name, func(t *testing.T) { parseErr(t, tc.doc, nil, tc.want...) })
	}
}

// Every problem is reported at once, each naming its field.
func TestValidationReportsAll(t *testing.T) {
	err := parseErr(t, `
log: {level: loud}
sources:
  - {id: "x y", provider: s3}
  - {id: ok, provider: local, schedule: nope}
`, nil)
	for _, w := range []string{"log.level", "sources[0].id", "sources[0].bucket", "sources[1].path", "sources[1].schedule"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %s", err, w)
		}
	}
}

func TestValidSources(t *testing.T) {
	cfg := parse(t, `
sources:
  - id: s3-src_1
    provider: s3
    bucket: b
    notifications:
      sqs: {queueURL: "http://127.0.0.1:4566/000000000000/q"}
      webhook: {token: t}
  - id: G
    provider: gcs
    bucket: b
    notifications: {pubsub: {project: p, subscription: s}}
  - id: az
    provider: azure
    container: c
    azure: {connectionString: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"}
    notifications:
      storageQueue: {queue: events}
      eventGrid: {secret: s, header: X-Secret}
  - id: az2
    provider: azure
    container: c
    azure: {accountURL: "https://n.blob.core.windows.net", accountName: n, accountKey: a2V5}
  - {id: l, provider: local, path: ., schedule: "@hourly"}
log: {level: DEBUG, format: json}
`, nil)
	if len(cfg.Sources) != 5 {
		t.Fatalf("sources = %d", len(cfg.Sources))
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "syncer.yaml")
	if err := os.WriteFile(p, []byte("nats: {url: embedded}\nsources:\n  - {id: a, provider: local, path: /p}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadAll(p)
	if err != nil || len(cfg.Sources) != 1 {
		t.Fatalf("Load = %+v, %v", cfg, err)
	}
	if _, err := loadAll(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("sources:\n  - {id: a, provider: s3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadAll(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "sources[0].bucket") {
		t.Fatalf("Load(bad) err = %v, want the path and the field", err)
	}
}

func TestMalformedYAML(t *testing.T) {
	for _, doc := range []string{"sources: [\n", "nats: {url: a\n", "\tnats: x\n", "sources: 5\n", "nats: [a, b]\n"} {
		if _, err := parseAll([]byte(doc), env(nil)); err == nil {
			t.Errorf("Parse(%q) succeeded", doc)
		}
	}
}

func TestQuotedWholeReferenceTakesTheValuesType(t *testing.T) {
	env := map[string]string{"PS": "true", "N": "7", "B": "0123"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := parseAll([]byte(`
nats: {url: embedded}
events: {maxChanges: "${N}"}
sources:
  - {id: a, provider: s3, bucket: "${B}", s3: {pathStyle: "${PS}"}}
`), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Sources[0].S3.PathStyle || cfg.Events.MaxChanges != 7 || cfg.Sources[0].Bucket != "0123" {
		t.Fatalf("got pathStyle %v, maxChanges %d, bucket %q", cfg.Sources[0].S3.PathStyle, cfg.Events.MaxChanges, cfg.Sources[0].Bucket)
	}
}
