package s3

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/notify"
)

func parseOK(t *testing.T, body string) Result {
	t.Helper()
	res, err := Parse([]byte(body))
	if err != nil {
		t.Fatalf("Parse: %v\nbody: %s", err, body)
	}
	checkResult(t, res)
	return res
}

func oneEvent(t *testing.T, res Result) notify.Event {
	t.Helper()
	if len(res.Events) != 1 || len(res.Skips) != 0 {
		t.Fatalf("want one event and no skips, got %+v", res)
	}
	return res.Events[0]
}

func TestParseAWSCreated(t *testing.T) {
	body := recordsBody(awsRecord("ObjectCreated:Put", "media", obj{
		Key: "photos/red+flower.jpg", Size: 1024, ETag: "d41d8cd98f00b204e9800998ecf8427e", Sequencer: "0055AED6DCD90281E5",
	}))
	res := parseOK(t, body)
	if res.Format != FormatRecords {
		t.Fatalf("format %q", res.Format)
	}
	ev := oneEvent(t, res)
	want := notify.Event{
		Provider: "s3", Bucket: "media", Key: "photos/red flower.jpg", Kind: notify.Upsert, Complete: true,
		Sequencer: strings.Repeat("0", SequencerWidth-16) + "55aed6dcd90281e5", ID: "C3D13FE58DE4C810",
		Time: time.Date(2026, 11, 27, 10, 11, 12, 345e6, time.UTC),
	}
	want.Object.Key, want.Object.Size, want.Object.ETag = want.Key, 1024, "d41d8cd98f00b204e9800998ecf8427e"
	want.Object.LastModified = want.Time
	if ev != want {
		t.Fatalf("got  %+v\nwant %+v", ev, want)
	}
	for _, name := range []string{"ObjectCreated:Post", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload", "ObjectCreated:SomethingNew"} {
		ev := oneEvent(t, parseOK(t, recordsBody(awsRecord(name, "media", obj{Key: "k", Size: 1, ETag: "e", Sequencer: "01"}))))
		if ev.Kind != notify.Upsert || !ev.Complete {
			t.Errorf("%s: kind %v complete %v", name, ev.Kind, ev.Complete)
		}
	}
	// What the catalog needs is missing: the applier stats the key.
	for _, o := range []obj{{Key: "k", Size: 1, Sequencer: "01"}, {Key: "k", Size: 1, ETag: "e"}} {
		if ev := oneEvent(t, parseOK(t, recordsBody(awsRecord("ObjectCreated:Put", "media", o)))); ev.Complete {
			t.Errorf("%+v: complete", o)
		}
	}
	if ev := oneEvent(t, parseOK(t, strings.Replace(recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "k", Size: 1, ETag: "e", Sequencer: "01"})), `"size":1,`, "", 1))); ev.Complete {
		t.Errorf("a create without size is complete: %+v", ev)
	}
}

func TestParseKeyDecoding(t *testing.T) {
	cases := []struct{ raw, want string }{
		{"red+flower.jpg", "red flower.jpg"},
		{"a%2Fb%2Fc.png", "a/b/c.png"},
		{"dir/x+y%2Bz.png", "dir/x y+z.png"},
		{"c%2B%2B/notes.txt", "c++/notes.txt"},
		{"100%25+sure.txt", "100% sure.txt"},
		{"test%2F10%3A47%3A07.log", "test/10:47:07.log"},
		{"%C3%A9t%C3%A9/%F0%9F%98%80.jpg", "été/😀.jpg"},
		{"été/日本語.jpg", "été/日本語.jpg"}, // raw UTF-8 in the JSON string
		{"folder%2F", "folder/"},
	}
	for _, c := range cases {
		for _, format := range []string{"aws", "sns", "eventbridge"} {
			var body string
			switch format {
			case "aws":
				body = recordsBody(awsRecord("ObjectCreated:Put", "b", obj{Key: c.raw, Size: 3, Sequencer: "0A"}))
			case "sns":
				body = snsWrap(recordsBody(awsRecord("ObjectCreated:Put", "b", obj{Key: c.raw, Size: 3, Sequencer: "0A"})))
			case "eventbridge":
				body = eventBridgeBody("Object Created", "b", ebObj{Key: c.raw, Size: 3, Sequencer: "0A"}, "PutObject", "")
			}
			ev := oneEvent(t, parseOK(t, body))
			if ev.Key != c.want || ev.Object.Key != c.want {
				t.Errorf("%s %q: key %q, want %q", format, c.raw, ev.Key, c.want)
			}
		}
		// MinIO escapes with QueryEscape itself.
		ev := oneEvent(t, parseOK(t, minioBody("s3:ObjectCreated:Put", "b", c.want, obj{Size: 3, Sequencer: "17A9E1B2C3D4E5F6"})))
		if ev.Key != c.want {
			t.Errorf("minio %q: key %q", c.want, ev.Key)
		}
	}
}

func TestParseBadKeys(t *testing.T) {
	for _, raw := range []string{"%zz.jpg", "bad%", "%FF%FE.jpg", ""} {
		body := recordsBody(
			awsRecord("ObjectCreated:Put", "b", obj{Key: raw, Size: 1, Sequencer: "01"}),
			awsRecord("ObjectCreated:Put", "b", obj{Key: "good", Size: 1, Sequencer: "01"}),
		)
		res := parseOK(t, body)
		if len(res.Events) != 1 || res.Events[0].Key != "good" {
			t.Fatalf("%q: the good record must still apply: %+v", raw, res.Events)
		}
		if len(res.Skips) != 1 || res.Skips[0].Reason != SkipMalformed || res.Skips[0].Key != raw {
			t.Fatalf("%q: skips %+v", raw, res.Skips)
		}
		eb := parseOK(t, eventBridgeBody("Object Created", "b", ebObj{Key: raw, Size: 1}, "PutObject", ""))
		if len(eb.Events) != 0 || len(eb.Skips) != 1 || eb.Skips[0].Reason != SkipMalformed {
			t.Fatalf("eventbridge %q: %+v", raw, eb)
		}
	}
}

func TestParseSequencer(t *testing.T) {
	seq := func(s string) string {
		ev := oneEvent(t, parseOK(t, recordsBody(awsRecord("ObjectRemoved:Delete", "b", obj{Key: "k", Sequencer: s}))))
		return ev.Sequencer
	}
	// Different lengths and cases order as numbers once padded.
	ordered := []string{"1", "0F", "ff", "100", "0055AED6DCD90281E5", "0055aed6dcd90281e6", "1055AED6DCD90281E5"}
	for i := 1; i < len(ordered); i++ {
		a, b := seq(ordered[i-1]), seq(ordered[i])
		if !(a < b) {
			t.Errorf("%s (%s) should sort before %s (%s)", ordered[i-1], a, ordered[i], b)
		}
	}
	if seq("0A") != seq("a") || seq("000000000000000000000000000000000000000000A") != seq("a") {
		t.Error("leading zeros and case must not matter")
	}
	// Unusable sequencers: unordered, and a delete is then left to a stat.
	for _, s := range []string{"", "0", "Happy Sequencer", "12g4", strings.Repeat("f", SequencerWidth+1)} {
		ev := oneEvent(t, parseOK(t, recordsBody(awsRecord("ObjectRemoved:Delete", "b", obj{Key: "k", Sequencer: s}))))
		if ev.Sequencer != "" || ev.Complete {
			t.Errorf("sequencer %q: got %q complete=%v", s, ev.Sequencer, ev.Complete)
		}
	}
	// The widest sequencer that fits is kept as is.
	wide := strings.Repeat("f", SequencerWidth)
	if got := seq(wide); got != wide {
		t.Errorf("32-digit sequencer: %q", got)
	}
}

func TestParseDeletes(t *testing.T) {
	cases := []struct {
		name      string
		versionID string
		kind      notify.Kind
		complete  bool
	}{
		{"ObjectRemoved:Delete", "", notify.Delete, true},
		// Deleting one version of a versioned object: maybe not the current one.
		{"ObjectRemoved:Delete", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nrjfkd", notify.Delete, false},
		{"ObjectRemoved:Delete", "null", notify.Delete, false},
		{"ObjectRemoved:DeleteMarkerCreated", "", notify.Delete, true},
		{"ObjectRemoved:DeleteMarkerCreated", "Zo7Ab.6aXcKQZ0qZ3lP2oBZ9vDE5k0nO", notify.Delete, true},
		{"LifecycleExpiration:Delete", "", notify.Delete, true},
		{"LifecycleExpiration:Delete", "v1", notify.Delete, false},
		{"LifecycleExpiration:DeleteMarkerCreated", "v2", notify.Delete, true},
		{"s3:ObjectRemoved:Delete", "", notify.Delete, true},
		{"s3:ObjectRemoved:DeleteAllVersions", "", notify.Delete, true},
		{"ObjectRemoved:SomethingNew", "", notify.Delete, false},
	}
	for _, c := range cases {
		ev := oneEvent(t, parseOK(t, recordsBody(awsRecord(c.name, "b", obj{Key: "a+b", VersionID: c.versionID, Sequencer: "005B"}))))
		if ev.Kind != c.kind || ev.Complete != c.complete || ev.Key != "a b" {
			t.Errorf("%s version %q: kind %v complete %v key %q", c.name, c.versionID, ev.Kind, ev.Complete, ev.Key)
		}
		if ev.Object.Size != 0 || ev.Object.ETag != "" {
			t.Errorf("%s: a delete carries no size or etag: %+v", c.name, ev.Object)
		}
		want := c.versionID
		if want == "null" {
			want = ""
		}
		if ev.Object.Version != want {
			t.Errorf("%s: version %q", c.name, ev.Object.Version)
		}
	}
}

func TestParseIgnored(t *testing.T) {
	names := []string{
		"ObjectRestore:Post", "ObjectRestore:Completed", "ObjectRestore:Delete",
		"LifecycleTransition", "IntelligentTiering", "ObjectTagging:Put", "ObjectTagging:Delete",
		"ObjectAcl:Put", "Replication:OperationFailedReplication", "Replication:OperationReplicatedAfterThreshold",
		"ReducedRedundancyLostObject",
		"s3:ObjectAccessed:Get", "s3:ObjectAccessed:Head", "s3:Scanner:ManyVersions", "s3:ObjectRemoved:NoOP",
		"s3:ObjectCreated:PutTagging", "s3:ObjectCreated:PutRetention", "s3:LifecycleDelMarkerExpiration:Delete",
		"s3:BucketCreated", "SomethingElse", "",
	}
	for _, name := range names {
		res := parseOK(t, recordsBody(awsRecord(name, "b", obj{Key: "k", Size: 1})))
		if len(res.Events) != 0 || len(res.Skips) != 1 || res.Skips[0].Reason != SkipIgnored || res.Skips[0].Type != name {
			t.Errorf("%q: %+v", name, res)
		}
	}
}

func TestParseEventVersion(t *testing.T) {
	for _, v := range []string{"2.0", "2.1", "2.2", "2.3", "2.6", "2.10", "2"} {
		r := awsRecord("ObjectCreated:Put", "b", obj{Key: "k", Size: 1})
		r["eventVersion"] = v
		oneEvent(t, parseOK(t, recordsBody(r)))
	}
	for _, v := range []string{"1.0", "3.0", "", "2.x", "2.", "20.1", "two"} {
		r := awsRecord("ObjectCreated:Put", "b", obj{Key: "k", Size: 1})
		r["eventVersion"] = v
		res := parseOK(t, recordsBody(r))
		if len(res.Events) != 0 || len(res.Skips) != 1 || res.Skips[0].Reason != SkipMalformed {
			t.Errorf("eventVersion %q: %+v", v, res)
		}
	}
}

func TestParseTestEvent(t *testing.T) {
	res := parseOK(t, testEventBody("media"))
	if res.Format != FormatTestEvent || len(res.Events) != 0 || len(res.Skips) != 1 || res.Skips[0].Reason != SkipTest || res.Skips[0].Bucket != "media" {
		t.Fatalf("raw: %+v", res)
	}
	res = parseOK(t, snsWrap(testEventBody("media")))
	if res.Format != FormatSNS || res.Inner != FormatTestEvent || len(res.Skips) != 1 || res.Skips[0].Reason != SkipTest {
		t.Fatalf("in SNS: %+v", res)
	}
	res = parseOK(t, "  \n")
	if res.Format != FormatEmpty || len(res.Skips) != 1 || res.Skips[0].Reason != SkipTest {
		t.Fatalf("empty: %+v", res)
	}
}

func TestParseSNS(t *testing.T) {
	inner := recordsBody(
		awsRecord("ObjectCreated:Put", "media", obj{Key: "a.png", Size: 5, ETag: "abc", Sequencer: "0A"}),
		awsRecord("ObjectRemoved:DeleteMarkerCreated", "media", obj{Key: "b.png", VersionID: "v", Sequencer: "0B"}),
	)
	res := parseOK(t, snsWrap(inner))
	if res.Format != FormatSNS || res.Inner != FormatRecords || len(res.Events) != 2 {
		t.Fatalf("%+v", res)
	}
	if res.Events[0].Key != "a.png" || res.Events[1].Kind != notify.Delete || !res.Events[1].Complete {
		t.Fatalf("%+v", res.Events)
	}
	// EventBridge -> SNS -> SQS.
	res = parseOK(t, snsWrap(eventBridgeBody("Object Created", "media", ebObj{Key: "c.png", Size: 1, Sequencer: "0C"}, "PutObject", "")))
	if res.Inner != FormatEventBridge || len(res.Events) != 1 {
		t.Fatalf("%+v", res)
	}
	// Not a notification.
	res = parseOK(t, strings.Replace(snsWrap(inner), `"Type":"Notification"`, `"Type":"SubscriptionConfirmation"`, 1))
	if len(res.Events) != 0 || len(res.Skips) != 1 || res.Skips[0].Reason != SkipIgnored {
		t.Fatalf("%+v", res)
	}
	for _, msg := range []string{"not json", "", snsWrap(inner), "[1]", `{"foo":1}`} {
		if _, err := Parse([]byte(snsWrap(msg))); !errors.Is(err, ErrMalformed) {
			t.Errorf("SNS message %.40q: err %v", msg, err)
		}
	}
}

func TestParseEventBridge(t *testing.T) {
	body := eventBridgeBody("Object Created", "media", ebObj{
		Key: "photos/red+flower.jpg", Size: 5, ETag: "b1946ac92492d2347c6235b4d2611184",
		VersionID: "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", Sequencer: "617f08299329d189",
	}, "PutObject", "")
	res := parseOK(t, body)
	ev := oneEvent(t, res)
	if res.Format != FormatEventBridge || ev.Kind != notify.Upsert || ev.Complete || ev.Key != "photos/red flower.jpg" ||
		ev.Object.Size != 5 || ev.Object.ETag != "b1946ac92492d2347c6235b4d2611184" || ev.Object.Version != "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e" ||
		ev.Sequencer != strings.Repeat("0", SequencerWidth-16)+"617f08299329d189" || ev.ID != "17793124-05d4-b198-2fde-7ededc63b103" ||
		!ev.Time.Equal(time.Date(2026, 11, 27, 10, 11, 12, 0, time.UTC)) {
		t.Fatalf("%+v", ev)
	}
	deletes := []struct {
		deletionType, versionID string
		complete                bool
	}{
		{"Delete Marker Created", "v1", true},
		{"Permanently Deleted", "v1", false},
		{"Permanently Deleted", "", true},
		{"", "", true},
	}
	for _, d := range deletes {
		ev := oneEvent(t, parseOK(t, eventBridgeBody("Object Deleted", "media", ebObj{Key: "k", VersionID: d.versionID, Sequencer: "617f08299329d18a"}, "DeleteObject", d.deletionType)))
		if ev.Kind != notify.Delete || ev.Complete != d.complete {
			t.Errorf("%+v: kind %v complete %v", d, ev.Kind, ev.Complete)
		}
	}
	for _, dt := range []string{"Object Restore Initiated", "Object Restore Completed", "Object Restore Expired",
		"Object Storage Class Changed", "Object Access Tier Changed", "Object ACL Updated", "Object Tags Added", "Object Tags Deleted"} {
		res := parseOK(t, eventBridgeBody(dt, "media", ebObj{Key: "k"}, "", ""))
		if len(res.Events) != 0 || len(res.Skips) != 1 || res.Skips[0].Reason != SkipIgnored || res.Skips[0].Type != dt {
			t.Errorf("%s: %+v", dt, res)
		}
	}
	other := strings.Replace(body, `"source":"aws.s3"`, `"source":"aws.ec2"`, 1)
	if res := parseOK(t, other); len(res.Events) != 0 || len(res.Skips) != 1 || res.Skips[0].Reason != SkipIgnored {
		t.Errorf("foreign source: %+v", res)
	}
	if _, err := Parse([]byte(`{"version":"0","detail-type":"Object Created","source":"aws.s3","detail":"x"}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("string detail: %v", err)
	}
}

func TestParseMinIO(t *testing.T) {
	body := minioBody("s3:ObjectCreated:Put", "media", "photos/x y+z.png", obj{
		Size: 7, ETag: "37b51d194a7513e45b56f6524f2d51f2", Sequencer: "17A9E1B2C3D4E5F6", ContentType: "image/png",
		UserMetadata: map[string]string{"content-type": "image/png"},
	})
	if !strings.Contains(body, `photos%2Fx+y%2Bz.png`) {
		t.Fatalf("builder does not escape like MinIO: %s", body)
	}
	res := parseOK(t, body)
	ev := oneEvent(t, res)
	if res.Format != FormatMinIO || ev.Key != "photos/x y+z.png" || ev.Object.ContentType != "image/png" || !ev.Complete ||
		ev.Sequencer != strings.Repeat("0", SequencerWidth-16)+"17a9e1b2c3d4e5f6" {
		t.Fatalf("%+v", ev)
	}
	del := oneEvent(t, parseOK(t, minioBody("s3:ObjectRemoved:DeleteMarkerCreated", "media", "a", obj{VersionID: "v", Sequencer: "17A9E1B2C3D4E5F7"})))
	if del.Kind != notify.Delete || !del.Complete {
		t.Fatalf("%+v", del)
	}
	if res := parseOK(t, minioBody("s3:ObjectRemoved:NoOP", "media", "a", obj{Sequencer: "17A9E1B2C3D4E5F7"})); len(res.Events) != 0 || res.Skips[0].Reason != SkipIgnored {
		t.Fatalf("%+v", res)
	}
}

func TestParseCeph(t *testing.T) {
	// Ceph sends keys raw: a "+" is a plus and "%" a percent sign.
	res := parseOK(t, cephBody("ObjectCreated:Put", "media", "dir/a+b 100%.jpg", "1024"))
	ev := oneEvent(t, res)
	if ev.Key != "dir/a+b 100%.jpg" || ev.Object.Size != 1024 || ev.Sequencer != "" || ev.Complete || ev.ID == "" {
		t.Fatalf("%+v", ev)
	}
	ev = oneEvent(t, parseOK(t, cephBody("s3:ObjectRemoved:Delete", "media", "k", 0)))
	if ev.Kind != notify.Delete || ev.Complete {
		t.Fatalf("a Ceph delete is left to a stat: %+v", ev)
	}
	ev = oneEvent(t, parseOK(t, cephBody("ObjectLifecycle:Expiration:Current", "media", "k", 0)))
	if ev.Kind != notify.Delete || ev.Complete {
		t.Fatalf("%+v", ev)
	}
	for _, name := range []string{"ObjectLifecycle:Expiration:NonCurrent", "ObjectLifecycle:Expiration:DeleteMarker", "ObjectLifecycle:Transition:Current"} {
		if res := parseOK(t, cephBody(name, "media", "k", 0)); len(res.Events) != 0 {
			t.Errorf("%s: %+v", name, res)
		}
	}
	if res := parseOK(t, cephBody("ObjectCreated:Put", "media", "k", "-1")); len(res.Events) != 0 || res.Skips[0].Reason != SkipMalformed {
		t.Fatalf("negative size: %+v", res)
	}
	if res := parseOK(t, cephBody("ObjectCreated:Put", "media", "k", "big")); len(res.Events) != 0 || res.Skips[0].Reason != SkipMalformed {
		t.Fatalf("bad size: %+v", res)
	}
	// Ceph has been seen writing a space for the "T".
	r := strings.Replace(cephBody("ObjectCreated:Put", "media", "k", 1), "2024-04-21T10:03:18.419013Z", "2021-04-29 03:44:09.933439Z", 1)
	if ev := oneEvent(t, parseOK(t, r)); ev.Time.IsZero() {
		t.Fatal("time not parsed")
	}
}

func TestParseMalformed(t *testing.T) {
	bodies := []string{
		"not json", "null", "[]", `[{"Records":[]}]`, `"Records"`, "{}", `{"foo":"bar"}`,
		`{"Records":"x"}`, `{"Records":[1]`, `{"Records":[]} trailing`,
		`{"Service":"Amazon S3","Event":"s3:SomethingElse"}`,
		`{"Type":"Notification","Message":1}`,
		`{"detail-type":"Object Created","source":"aws.s3"}`,
	}
	for _, b := range bodies {
		if res, err := Parse([]byte(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err %v res %+v", b, err, res)
		}
	}
	// A malformed record inside a well-formed body is a skip, not an error.
	res := parseOK(t, `{"Records":[1, {"eventVersion":"2.1","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":""},"object":{"key":"k"}}}]}`)
	if len(res.Events) != 0 || len(res.Skips) != 2 || res.Skips[0].Reason != SkipMalformed || res.Skips[1].Reason != SkipMalformed {
		t.Fatalf("%+v", res)
	}
	// An empty Records array is a valid body with nothing in it.
	if res := parseOK(t, `{"Records":[]}`); len(res.Events)+len(res.Skips) != 0 {
		t.Fatalf("%+v", res)
	}
	big := recordsBody(awsRecord("ObjectCreated:Put", "b", obj{Key: strings.Repeat("x", MaxBodySize), Size: 1}))
	if _, err := Parse([]byte(big)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
}

// Parse tells the formats apart.
func TestParseDetectsFormat(t *testing.T) {
	records := recordsBody(awsRecord("ObjectCreated:Put", "b", obj{Key: "k", Size: 1}))
	for body, want := range map[string][2]Format{
		records:                     {FormatRecords},
		snsWrap(records):            {FormatSNS, FormatRecords},
		testEventBody("b"):          {FormatTestEvent},
		snsWrap(testEventBody("b")): {FormatSNS, FormatTestEvent},
		eventBridgeBody("Object Created", "b", ebObj{Key: "k", Size: 1}, "PutObject", ""): {FormatEventBridge},
		minioBody("s3:ObjectCreated:Put", "b", "k", obj{Size: 1}):                         {FormatMinIO},
		"": {FormatEmpty},
	} {
		res, err := Parse([]byte(body))
		if err != nil || res.Format != want[0] || res.Inner != want[1] {
			t.Errorf("%.60s: format %q/%q, err %v; want %q/%q", body, res.Format, res.Inner, err, want[0], want[1])
		}
	}
}

func TestSupportedEventVersion(t *testing.T) {
	for v, want := range map[string]bool{"2.0": true, "2.1": true, "2.99": true, "2": true, "1.9": false, "3.0": false, "": false, "2.": false, "2.1.0": false, " 2.1": false} {
		if got := supportedEventVersion(v); got != want {
			t.Errorf("%q: %v", v, got)
		}
	}
}
