package kinds_test

import (
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/kinds"
)

func spec(t *testing.T, doc string) providers.Spec {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	return providers.Spec{ID: "x", Field: "sources[0]", Prefix: "p/", Node: n.Content[0], Lines: n.Content[0]}
}

// Every kind configures a minimal source, names its bucket and location,
// and claims its keys and transports alone.
func TestEveryKindConfigures(t *testing.T) {
	r := kinds.All()
	if got := strings.Join(r.Names(), ","); got != "s3,gcs,azure,local" {
		t.Fatalf("kinds %s", got)
	}
	for name, tc := range map[string]struct{ doc, bucket, location string }{
		"s3":    {"{bucket: b}", "b", "s3://b/p/"},
		"gcs":   {"{bucket: b}", "b", "gs://b/p/"},
		"azure": {"{container: c, azure: {connectionString: \"AccountName=a;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/a\"}}", "c", "azure://c/p/"},
		"local": {"{path: /tmp/x}", "", "/tmp/x"},
	} {
		d, ok := r.Lookup(name)
		if !ok {
			t.Fatalf("%s not registered", name)
		}
		got, err := d.Configure(spec(t, tc.doc))
		if err != nil || got.Bucket != tc.bucket || got.Location != tc.location || got.Open == nil || got.Settings == nil {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
	seen := map[string]string{}
	for _, d := range r.Kinds() {
		for _, k := range append(slices.Clone(d.Fields), d.Transports...) {
			if other, dup := seen[k]; dup && k != "bucket" {
				t.Errorf("%q is claimed by %s and %s", k, other, d.Name)
			}
			seen[k] = d.Name
		}
	}
}

// A kind's problems name the field and its line; a missing bucket is one.
func TestKindProblemsNameFieldAndLine(t *testing.T) {
	d, _ := kinds.All().Lookup("gcs")
	_, err := d.Configure(spec(t, "id: x\ngcs:\n  endpoint: nope\n"))
	for _, want := range []string{"sources[0].bucket: is required for provider gcs", "sources[0].gcs.endpoint: ", "(line 3)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v lacks %q", err, want)
		}
	}
}

func TestRegistryRefusesDuplicatesAndUnknown(t *testing.T) {
	d, _ := kinds.All().Lookup("s3")
	if _, err := providers.NewRegistry(d, d); err == nil {
		t.Error("a kind registered twice was accepted")
	}
	if _, err := kinds.All().Order("ftp"); err == nil || !strings.Contains(err.Error(), `"ftp" is not one of s3, gcs, azure, local`) {
		t.Errorf("Order(ftp) = %v, want the known kinds listed", err)
	}
}
