package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// secretMarker is what every ${VAR} resolves to in FuzzParse (inside values
// shaped for the field the name suggests), and userinfoMarker the password
// in the URLs it returns. leaks reports either in a text, compared
// case-insensitively so that a lowered or partly quoted value still counts.
const (
	secretMarker   = "Zq7s3cretMARKER"
	userinfoMarker = "Pw9userinfoSECRET"
)

func leaks(s string) bool { return leaksSecret(s) || leaksUserinfo(s) }

func leaksSecret(s string) bool { return strings.Contains(strings.ToLower(s), "s3cret") }

func leaksUserinfo(s string) bool { return strings.Contains(strings.ToLower(s), "userinfo") }

// fuzzLookup resolves every variable to a value holding the marker, shaped
// like what the name suggests so that validation goes past the first check;
// UNSET_* is unset and EMPTY_* is empty, so that defaults and the "not set"
// error are reached too.
func fuzzLookup(name string) (string, bool) {
	switch {
	case strings.HasPrefix(name, "UNSET"):
		return "", false
	case strings.HasPrefix(name, "EMPTY"):
		return "", true
	case strings.Contains(name, "CONNECTION_STRING"):
		return "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + secretMarker + ";EndpointSuffix=core.windows.net", true
	case strings.HasSuffix(name, "_URL"):
		return "https://user:" + userinfoMarker + "@example.com/", true
	case strings.HasSuffix(name, "_KEY"):
		return secretMarker + "==", true
	case strings.HasPrefix(name, "MULTI"):
		// YAML syntax in a value must stay a value.
		return secretMarker + ": [x, {y: z}]\n- " + secretMarker, true
	}
	return secretMarker, true
}

// rawStrings matches Go raw string literals; the config tests' YAML
// documents are written as such.
var rawStrings = regexp.MustCompile("`[^`]*`")

// configSeeds are the YAML documents of README.md, docs/*.md and the config
// package's tests (every raw string literal that looks like YAML), plus a
// document with a reference in every kind of field.
func configSeeds(f *testing.F) []string {
	var out []string
	mds, _ := filepath.Glob("../docs/*.md")
	for _, p := range append([]string{"../README.md"}, mds...) {
		md, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, s := range yamlSnippets(filepath.Base(p), string(md)) {
			out = append(out, s.text)
		}
	}
	tests, _ := filepath.Glob("*_test.go")
	for _, p := range tests {
		if p == "fuzz_test.go" {
			continue
		}
		src, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range rawStrings.FindAllString(string(src), -1) {
			if s := strings.Trim(m, "`"); strings.Contains(s, ":") && len(s) > 8 {
				out = append(out, s, withNATS(s))
			}
		}
	}
	return append(out,
		"",
		"nats: {url: embedded}\n",
		`nats: {url: "${NATS_URL}", stream: "${STREAM}", credsFile: ${UNSET_CREDS:-/etc/creds}}
catalog: {path: ${CATALOG}}
http: {listen: "${LISTEN}", auth: {tokens: ["${TOKEN}"], adminTokens: [${ADMIN}]}}
events: {coalesceWindow: ${WINDOW}, maxChanges: "${MAX}"}
log: {level: ${LEVEL}, format: ${EMPTY_FORMAT:-json}}
notify: {statRate: ${RATE}, statBurst: ${BURST}, verifyAfter: ${VERIFY}}
sources:
  - id: ${ID}
    provider: ${PROVIDER}
    bucket: ${BUCKET}
    prefix: a/${PREFIX}/b
    include: ["${GLOB}"]
    schedule: "${SCHEDULE}"
    s3: {endpoint: "${S3_URL}", region: ${REGION}, pathStyle: ${PATHSTYLE}}
    notifications:
      sqs: {queueURL: "${QUEUE_URL}", concurrency: ${CONC}, waitTime: ${WAIT}}
      webhook: {token: ${MULTI_TOKEN}}
  - id: az
    provider: azure
    container: c
    azure: {connectionString: "${AZ_CONNECTION_STRING}", accountName: ${ACCOUNT}, accountKey: ${AZ_KEY}, sasToken: ${SAS}}
    notifications:
      storageQueue: {queue: ${QUEUE}, maxDequeueCount: ${UNSET_N}}
`,
		"nats: {url: embedded}\nsources:\n  - {id: g, provider: gcs, bucket: b, gcs: {credentialsFile: ${CREDS}}, notifications: {pubsub: {project: ${PROJECT}, subscription: ${SUB}}}}\n",
		"${KEY}: 1\nnats: {url: embedded}\n",
		"nats: {url: embedded}\nlog: {level: ${MULTI_LEVEL}}\n",
	)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzParse asserts that Parse never panics and is deterministic, that no
// error shows a value that came from a variable (the lookup answers with a
// marker secret), and that what it accepts validates again.
func FuzzParse(f *testing.F) {
	for _, s := range configSeeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseAll(data, fuzzLookup)
		cfg2, err2 := parseAll(data, fuzzLookup)
		if errText(err) != errText(err2) || !reflect.DeepEqual(cfg, cfg2) {
			t.Fatalf("Parse is not deterministic:\n%v\n%v", err, err2)
		}
		// The marker can only have come from the lookup when the document
		// does not hold it itself.
		fromLookup := !leaks(string(data))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			if fromLookup && (leaks(err.Error()) || leaksUserinfo(err.Error())) {
				t.Fatalf("error shows a variable's value:\n%v\n--- document:\n%s", err, data)
			}
			return
		}
		if cfg == nil {
			t.Fatal("no config and no error")
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config does not validate again: %v", err)
		}
		if cfg.NATS.URL == "" {
			t.Fatal("accepted a config without nats.url")
		}
	})
}
