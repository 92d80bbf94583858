package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/providers/local"
)

// Type errors name the field path and the line, as unknown keys do, and
// never show yaml.v3's Go-typed message.
func TestTypeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"duration as int", "nats: {url: embedded}\nhttp:\n  listen: off\nevents:\n  coalesceWindow: 5\n",
			[]string{`events.coalesceWindow: 5 is not a duration; write it with a unit, e.g. "250ms" (line 5)`}},
		{"duration as word", "nats: {url: embedded}\nevents: {coalesceWindow: soon}\n",
			[]string{"events.coalesceWindow: soon is not a duration", "(line 2)"}},
		{"duration quoted", "nats: {url: embedded}\nnotify:\n  verifyAfter: \"ten seconds\"\n",
			[]string{`notify.verifyAfter: "ten seconds" is not a duration`, "(line 3)"}},
		{"include not a list", "nats: {url: embedded}\nsources:\n  - id: a\n    provider: s3\n    bucket: b\n    include: \"*.jpg\"\n",
			[]string{"sources[0].include: must be a list, not a single value (line 6)"}},
		{"bool", "nats: {url: embedded}\nsources:\n  - id: a\n    provider: s3\n    bucket: b\n    s3: {pathStyle: maybe}\n",
			[]string{"sources[0].s3.pathStyle: maybe is not true or false (line 6)"}},
		{"int", "nats: {url: embedded}\nevents:\n  maxChanges: lots\n",
			[]string{"events.maxChanges: lots is not a whole number (line 3)"}},
		{"int as float", "nats: {url: embedded}\nevents:\n  maxChanges: 2.5\n",
			[]string{"events.maxChanges: 2.5 is not a whole number (line 3)"}},
		{"float", "nats: {url: embedded}\nnotify:\n  statRate: fast\n",
			[]string{"notify.statRate: fast is not a number (line 3)"}},
		{"mapping for a string", "nats:\n  url: {host: x}\n",
			[]string{"nats.url: must be a single value, not a mapping (line 2)"}},
		{"list for a mapping", "nats: [a, b]\n",
			[]string{"nats: must be a mapping of keys (url, stream, subjectPrefix, credsFile, …), not a list (line 1)"}},
		{"sources not a list", "nats: {url: embedded}\nsources: 5\n",
			[]string{"sources: must be a list, not a single value (line 2)"}},
		{"source not a mapping", "nats: {url: embedded}\nsources:\n  - just-a-name\n",
			[]string{"sources[0]: must be a mapping of keys", "(line 3)"}},
		{"in a sequence", "nats: {url: embedded}\nsources:\n  - id: a\n    provider: s3\n    bucket: b\n    exclude: [\"*.tmp\", {x: y}]\n",
			[]string{"sources[0].exclude[1]: must be a single value, not a mapping (line 6)"}},
		{"through an alias", "nats: {url: embedded}\nx: &w 5\n",
			[]string{"x: unknown key (line 2)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := parseErr(t, tc.doc, nil, tc.want...)
			for _, never := range []string{"unmarshal", "!!", "time.Duration", "config.", "panic"} {
				if strings.Contains(err.Error(), never) {
					t.Errorf("error %q shows yaml.v3's or Go's view (%q)", err, never)
				}
			}
		})
	}
}

// Every type error is reported at once, with the unknown keys.
func TestTypeErrorsReportsAll(t *testing.T) {
	parseErr(t, "nats: {url: embedded}\nevents: {coalesceWindow: 5, maxChanges: x}\nlog: {lvl: debug}\n", nil,
		"events.coalesceWindow", "events.maxChanges", "log.lvl: unknown key (line 3)")
}

// A value that came from ${VAR} is never echoed in a type error: it may be
// a secret. The error names the variable instead.
func TestTypeErrorNeverEchoesExpandedValue(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"nats: {url: embedded}\nevents:\n  maxChanges: ${SECRET}\n", "events.maxChanges: the value (from ${SECRET}) is not a whole number (line 3)"},
		{"nats: {url: embedded}\nevents: {coalesceWindow: \"${SECRET}\"}\n", "events.coalesceWindow: the value (from ${SECRET}) is not a duration"},
		{"nats: {url: embedded}\nsources:\n  - {id: a, provider: s3, bucket: b, s3: {pathStyle: \"x${SECRET}\"}}\n",
			"sources[0].s3.pathStyle: the value (from ${SECRET}) is not true or false (line 3)"},
	} {
		err := parseErr(t, tc.doc, map[string]string{"SECRET": "hunter2-very-secret"}, tc.want)
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
}

// The README's flow mapping with a bare reference parses, whatever the
// secret holds: YAML syntax in a value stays data.
func TestExpansionInFlowMappings(t *testing.T) {
	for _, secret := range []string{"plain", "a}b", "a: b", "x # not a comment", "line1\nline2", "{[,]}", `"quoted"`, "'", "- item", "&anchor *alias"} {
		vars := map[string]string{"WEBHOOK_TOKEN": secret, "BUCKET": "assets", "MAX": "9"}
		cfg := parse(t, `
nats: {url: embedded}
events: {maxChanges: ${MAX}}
sources:
  - {id: a, provider: s3, bucket: ${BUCKET}, notifications: {webhook: {token: ${WEBHOOK_TOKEN}}}}
  - id: b
    provider: s3
    bucket: "${BUCKET}-2"
    include: [${GLOB:-*.jpg}, '${BUCKET}']
    notifications: {webhook: {token: '${WEBHOOK_TOKEN}'}}
`, vars)
		if got := cfg.Sources[0].Notifications.Webhook.Token; got != secret {
			t.Errorf("flow token = %q, want %q", got, secret)
		}
		if got := cfg.Sources[1].Notifications.Webhook.Token; got != secret {
			t.Errorf("single-quoted token = %q, want %q", got, secret)
		}
		if cfg.Sources[0].Bucket != "assets" || cfg.Sources[1].Bucket != "assets-2" || cfg.Events.MaxChanges != 9 {
			t.Errorf("bucket %q %q maxChanges %d", cfg.Sources[0].Bucket, cfg.Sources[1].Bucket, cfg.Events.MaxChanges)
		}
		if strings.Join(cfg.Sources[1].Include, ",") != "*.jpg,assets" {
			t.Errorf("include = %q", cfg.Sources[1].Include)
		}
	}
	// A missing variable in a flow mapping names the field and the line.
	parseErr(t, "nats: {url: embedded}\nsources:\n  - {id: a, provider: s3, bucket: b, notifications: {webhook: {token: ${WEBHOOK_TOKEN}}}}\n",
		nil, "sources[0].notifications.webhook.token: environment variable WEBHOOK_TOKEN is not set (line 3)")
	// A default may hold flow syntax too.
	cfg := parse(t, "nats: {url: embedded}\nsources:\n  - {id: a, provider: s3, bucket: b, prefix: ${P:-x,y: z}}\n", nil)
	if cfg.Sources[0].Prefix != "x,y: z" {
		t.Errorf("prefix = %q", cfg.Sources[0].Prefix)
	}
	// A reference in a key is not expanded and shows as written.
	parseErr(t, "nats: {url: embedded}\n${K}: 1\n", map[string]string{"K": "events"}, "${K}: unknown key (line 2)")
	// Typed from the value, in a flow mapping too.
	cfg = parse(t, "nats: {url: embedded}\nevents: {coalesceWindow: ${W}}\n", map[string]string{"W": "2s"})
	if cfg.Events.CoalesceWindow != 2*time.Second {
		t.Errorf("coalesceWindow = %v", cfg.Events.CoalesceWindow)
	}
}

// A file that spells the placeholder prefix itself keeps it verbatim.
func TestExpansionPlaceholderCollision(t *testing.T) {
	cfg := parse(t, "nats: {url: embedded}\nsources:\n  - {id: a, provider: s3, bucket: b, prefix: __syncer_env_0__, notifications: {webhook: {token: ${T}}}}\n",
		map[string]string{"T": "tok"})
	if s := cfg.Sources[0]; s.Prefix != "__syncer_env_0__" || s.Notifications.Webhook.Token != "tok" {
		t.Errorf("prefix %q token %q", s.Prefix, s.Notifications.Webhook.Token)
	}
}

func TestListenAndURLValidation(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"http port only", "nats: {url: embedded}\nhttp: {listen: \"8080\"}\n",
			[]string{`http.listen: "8080" has no host; write "127.0.0.1:8080"`, `":8080"`}},
		{"http no port", "nats: {url: embedded}\nhttp: {listen: localhost}\n", []string{`http.listen: "localhost" is not host:port`}},
		{"http port range", "nats: {url: embedded}\nhttp: {listen: \"127.0.0.1:70000\"}\n", []string{"http.listen", "0 to 65535"}},
		{"http named port", "nats: {url: embedded}\nhttp: {listen: \"127.0.0.1:http\"}\n", []string{"http.listen", `port "http"`}},
		{"nats listen", "nats: {url: embedded, listen: \"4222\"}\n", []string{`nats.listen: "4222" has no host`}},
		{"nats url no scheme", "nats: {url: \"127.0.0.1:4222\"}\n", []string{`nats.url: "127.0.0.1:4222" has no scheme; write "nats://127.0.0.1:4222"`}},
		{"nats url scheme", "nats: {url: \"http://n:4222\"}\n", []string{"nats.url", `scheme "http"`}},
		{"nats url no host", "nats: {url: \"nats://:4222\"}\n", []string{"nats.url", "no host"}},
		{"nats url list", "nats: {url: \"nats://a:4222,,nats://b:4222\"}\n", []string{"nats.url", "empty entry"}},
		{"nats url second bad", "nats: {url: \"nats://a:4222, b:4222\"}\n", []string{"nats.url", `"b:4222" has no scheme`}},
		{"s3 endpoint", "nats: {url: embedded}\nsources:\n  - {id: a, provider: s3, bucket: b, s3: {endpoint: \"127.0.0.1:9000\"}}\n",
			[]string{"sources[0].s3.endpoint", "http:// or https://"}},
		{"s3 endpoint scheme", "nats: {url: embedded}\nsources:\n  - {id: a, provider: s3, bucket: b, s3: {endpoint: \"ftp://h\"}}\n",
			[]string{"sources[0].s3.endpoint", `scheme "ftp"`}},
		{"gcs endpoint", "nats: {url: embedded}\nsources:\n  - {id: a, provider: gcs, bucket: b, gcs: {endpoint: \"http://\"}}\n",
			[]string{"sources[0].gcs.endpoint", "no host"}},
		{"azure account url", "nats: {url: embedded}\nsources:\n  - {id: a, provider: azure, container: c, azure: {accountURL: \"https//a.blob.core.windows.net\"}}\n",
			[]string{"sources[0].azure.accountURL", "absolute"}},
		{"sqs queue url", "nats: {url: embedded}\nsources:\n  - {id: a, provider: s3, bucket: b, notifications: {sqs: {queueURL: my-queue}}}\n",
			[]string{"sources[0].notifications.sqs.queueURL", "absolute"}},
		{"sqs endpoint", "nats: {url: embedded}\nsources:\n  - {id: a, provider: s3, bucket: b, notifications: {sqs: {queueURL: \"https://sqs.eu-west-1.amazonaws.com/1/q\", endpoint: \"http://h:99999\"}}}\n",
			[]string{"sources[0].notifications.sqs.endpoint", "0 to 65535"}},
		{"pubsub endpoint url", "nats: {url: embedded}\nsources:\n  - {id: a, provider: gcs, bucket: b, notifications: {pubsub: {project: p, subscription: s, endpoint: \"http://127.0.0.1:8085\"}}}\n",
			[]string{"sources[0].notifications.pubsub.endpoint", "host:port"}},
		{"storage queue url", "nats: {url: embedded}\nsources:\n  - {id: a, provider: azure, container: c, azure: {accountURL: \"https://a.blob.core.windows.net\"}, notifications: {storageQueue: {queue: events, accountURL: \"queue.example\"}}}\n",
			[]string{"sources[0].notifications.storageQueue.accountURL", "absolute"}},
	} {
		t.Run(tc.name, func(t *testing.T) { parseErr(t, tc.doc, nil, tc.want...) })
	}
	cfg := parse(t, `
nats: {url: "nats://a:4222, tls://b:4443,ws://c,wss://user:pw@d:443", listen: ":4222"}
http: {listen: "[::1]:0"}
sources:
  - {id: a, provider: s3, bucket: b, s3: {endpoint: "http://127.0.0.1:9000"}, notifications: {sqs: {queueURL: "https://sqs.eu-west-1.amazonaws.com/1/q"}}}
  - {id: g, provider: gcs, bucket: b, gcs: {endpoint: "http://127.0.0.1:4443/storage/v1/"}, notifications: {pubsub: {project: p, subscription: s, endpoint: "127.0.0.1:8085"}}}
`, nil)
	if len(cfg.Sources) != 2 {
		t.Fatal(cfg.Sources)
	}
	if parse(t, "nats: {url: embedded}\nhttp: {listen: \"off\"}\n", nil).HTTP.Listen != "off" {
		t.Error(`http.listen "off" rejected`)
	}
}

// Credentials in a URL never reach an error: neither user information nor
// a query (an Azure SAS).
func TestURLErrorsHideCredentials(t *testing.T) {
	for _, doc := range []string{
		"nats: {url: \"nats://alice:s3cret@:4222\"}\n",
		"nats: {url: \"http://alice:s3cret@n:4222\"}\n",
		"nats: {url: \"nats://alice:s3cret@h:4222,x\"}\n",
		"nats: {url: \"nats://alice:s3cret@h:4222%zz\"}\n",
		"nats: {url: embedded}\nsources:\n  - {id: a, provider: azure, container: c, azure: {accountURL: \"ftp://a.blob.core.windows.net/?sig=s3cret\"}}\n",
		"nats: {url: embedded}\nsources:\n  - {id: a, provider: s3, bucket: b, s3: {endpoint: \"http://alice:s3cret@h:99999\"}}\n",
		"nats: {url: embedded}\nsources:\n  - {id: a, provider: s3, bucket: b, s3: {endpoint: \"http://alice:s3cret@h%zz/\"}}\n",
	} {
		err := parseErr(t, doc, nil)
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks a credential: %v", err)
		}
	}
}

// What the Storage Queue consumer refuses at start-up, config check refuses
// first, naming the field.
func TestStorageQueueSettings(t *testing.T) {
	const src = "nats: {url: embedded}\nsources:\n  - id: a\n    provider: azure\n    container: c\n    azure: %s\n    notifications:\n      storageQueue: %s\n"
	const devKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	doc := func(az, sq string) string { return fmt.Sprintf(src, az, sq) }
	for _, tc := range []struct {
		name, az, sq string
		want         []string
	}{
		{"short name", `{accountURL: "https://a.blob.core.windows.net"}`, "{queue: q}", []string{"sources[0].notifications.storageQueue.queue", `"q"`, "3 to 63"}},
		{"upper case", `{accountURL: "https://a.blob.core.windows.net"}`, "{queue: Events}", []string{"sources[0].notifications.storageQueue.queue", "lower-case"}},
		{"poison too long", `{accountURL: "https://a.blob.core.windows.net"}`, "{queue: " + strings.Repeat("q", 60) + "}",
			[]string{"sources[0].notifications.storageQueue.queue", "poison", "poisonQueue"}},
		{"poison same", `{accountURL: "https://a.blob.core.windows.net"}`, "{queue: events, poisonQueue: events}", []string{"sources[0].notifications.storageQueue.poisonQueue", "differ"}},
		{"poison bad", `{accountURL: "https://a.blob.core.windows.net"}`, "{queue: events, poisonQueue: Bad_Name}", []string{"sources[0].notifications.storageQueue.poisonQueue"}},
		{"visibility", `{accountURL: "https://a.blob.core.windows.net"}`, "{queue: events, visibilityTimeout: 200h}", []string{"sources[0].notifications.storageQueue.visibilityTimeout", "7 days"}},
		{"negative dequeue", `{accountURL: "https://a.blob.core.windows.net"}`, "{queue: events, maxDequeueCount: -1}", []string{"sources[0].notifications.storageQueue.maxDequeueCount"}},
		{"not derivable", `{accountURL: "http://127.0.0.1:10000/devstoreaccount1"}`, "{queue: events}",
			[]string{"sources[0].notifications.storageQueue.accountURL", "is required", "derived"}},
		{"source conn string without queue", `{connectionString: "AccountName=x;AccountKey=a2V5;BlobEndpoint=http://h/x"}`, "{queue: events}", nil},
		{"bad queue conn string", `{accountURL: "https://a.blob.core.windows.net"}`, `{queue: events, connectionString: "not a connection string"}`,
			[]string{"sources[0].notifications.storageQueue.connectionString", "Name=value"}},
		{"conn string without key", `{accountURL: "https://a.blob.core.windows.net"}`, `{queue: events, connectionString: "AccountName=x"}`,
			[]string{"sources[0].notifications.storageQueue.connectionString", "AccountKey"}},
		{"dev storage", `{connectionString: "UseDevelopmentStorage=true"}`, "{queue: events}",
			[]string{"sources[0].azure.connectionString", "UseDevelopmentStorage"}},
		{"key not base64", `{accountURL: "https://a.blob.core.windows.net", accountName: a, accountKey: "not base64!"}`, "{queue: events}",
			[]string{"sources[0].azure.accountKey", "base64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil {
				// A source connection string with an AccountName derives the
				// queue endpoint, as the SDK does: valid.
				parse(t, doc(tc.az, tc.sq), nil)
				return
			}
			err := parseErr(t, doc(tc.az, tc.sq), nil, tc.want...)
			if strings.Contains(err.Error(), "a2V5") || strings.Contains(err.Error(), "not base64!") {
				t.Errorf("error leaks a key: %v", err)
			}
		})
	}
	for _, ok := range [][2]string{
		{`{accountURL: "https://a.blob.core.windows.net"}`, "{queue: events}"},
		{`{accountURL: "http://127.0.0.1:10000/devstoreaccount1"}`, `{queue: events, accountURL: "http://127.0.0.1:10001/devstoreaccount1"}`},
		{`{connectionString: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=` + devKey + `;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"}`,
			"{queue: events, poisonQueue: events-dead, visibilityTimeout: 168h, maxDequeueCount: 3}"},
	} {
		parse(t, doc(ok[0], ok[1]), nil)
	}
}

// A value the environment gave never shows in a validation error: the
// error names the variable instead, whichever field rejects it.
func TestValidationErrorsHideVariableValues(t *testing.T) {
	env := map[string]string{"LEVEL": "hunter2", "STREAM": "sec ret", "LISTEN": "s3cr3t-host", "SCHED": "every-now"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	doc := "nats: {url: embedded, stream: ${STREAM}}\nlog: {level: ${LEVEL}}\nhttp: {listen: ${LISTEN}}\n" +
		"sources:\n  - {id: a, provider: local, path: /tmp/x, schedule: \"${SCHED}\"}\n"
	_, err := parseAll([]byte(doc), lookup)
	if err == nil {
		t.Fatal("Parse accepted invalid values")
	}
	for name, v := range env {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error shows the value of %s:\n%v", name, err)
		}
		if !strings.Contains(err.Error(), "(from ${"+name+"})") {
			t.Errorf("error does not name ${%s}:\n%v", name, err)
		}
	}
	// A value written in the file is shown as it is: it is no secret.
	_, err = parseAll([]byte("nats: {url: embedded}\nlog: {level: loud}\n"), lookup)
	if err == nil || !strings.Contains(err.Error(), `"loud"`) {
		t.Errorf("error %v should quote the value written in the file", err)
	}
}

func TestSettle(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	cfg, err := parseAll([]byte("nats: {url: embedded}\nsources:\n  - {id: a, provider: local, path: /x}\n  - {id: b, provider: local, path: /y, settle: 0s}\n"), none)
	if err != nil {
		t.Fatal(err)
	}
	if got := settleOf(t, &cfg.Sources[0]); got != local.DefaultSettle {
		t.Errorf("unset settle = %v, want %v", got, local.DefaultSettle)
	}
	if got := settleOf(t, &cfg.Sources[1]); got != time.Duration(0) {
		t.Errorf("settle: 0s = %v, want 0", got)
	}
	for doc, want := range map[string]string{
		"  - {id: a, provider: local, path: /x, settle: -1s}\n": "sources[0].settle: -1s is not from 0 to 1h",
		"  - {id: a, provider: s3, bucket: b, settle: 1s}\n":    `sources[0].settle: applies to provider local, not "s3"`,
		"  - {id: a, provider: local, path: /x, settle: 2h}\n":  "sources[0].settle: 2h0m0s is not from 0 to 1h",
	} {
		_, err := parseAll([]byte("nats: {url: embedded}\nsources:\n"+doc), none)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", doc, err, want)
		}
	}
}
