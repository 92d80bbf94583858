package s3

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/notify"
)

// Seeds are real-format examples of each format; the fuzzers assert that no
// input panics and that whatever Parse accepts yields well-formed events.
// One fuzzer per format starts from that format's corpus only, so that its
// mutations stay close to it.

func recordSeeds() []string {
	return []string{
		recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "photos/red+flower.jpg", Size: 1024, ETag: "d41d8cd98f00b204e9800998ecf8427e", Sequencer: "0055AED6DCD90281E5"})),
		recordsBody(awsRecord("ObjectRemoved:Delete", "media", obj{Key: "a%2Fb%2Bc.png", VersionID: "3HL4kqtJlcpXroDTDmJ", Sequencer: "0055AED6DCD90281E6"})),
		recordsBody(awsRecord("ObjectRemoved:DeleteMarkerCreated", "media", obj{Key: "%C3%A9t%C3%A9.jpg", VersionID: "v", Sequencer: "0A"})),
		recordsBody(awsRecord("LifecycleExpiration:Delete", "media", obj{Key: "old.log", Sequencer: "0B"}),
			awsRecord("ObjectTagging:Put", "media", obj{Key: "t", Size: 1})),
		recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "bad%zz", Size: 1})),
		cephBody("ObjectCreated:Put", "media", "dir/a+b 100%.jpg", "1024"),
		testEventBody("media"),
		`{"Records":[]}`,
	}
}

func snsSeeds() []string {
	return []string{
		snsWrap(recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "a+b", Size: 3, Sequencer: "0A"}))),
		snsWrap(testEventBody("media")),
		snsWrap(eventBridgeBody("Object Deleted", "media", ebObj{Key: "k", VersionID: "v", Sequencer: "0A"}, "DeleteObject", "Delete Marker Created")),
		snsWrap("not json"),
	}
}

func eventBridgeSeeds() []string {
	return []string{
		eventBridgeBody("Object Created", "media", ebObj{Key: "example-key", Size: 5, ETag: "b1946ac92492d2347c6235b4d2611184", VersionID: "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", Sequencer: "617f08299329d189"}, "PutObject", ""),
		eventBridgeBody("Object Deleted", "media", ebObj{Key: "example+key", VersionID: "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF", Sequencer: "617f0837b476e463"}, "DeleteObject", "Delete Marker Created"),
		eventBridgeBody("Object Deleted", "media", ebObj{Key: "k", VersionID: "v", Sequencer: "617f0837b476e463"}, "Lifecycle Expiration", "Permanently Deleted"),
		eventBridgeBody("Object Restore Completed", "media", ebObj{Key: "k"}, "", ""),
	}
}

func minioSeeds() []string {
	return []string{
		minioBody("s3:ObjectCreated:Put", "media", "photos/x y+z.png", obj{Size: 7, ETag: "37b51d194a7513e45b56f6524f2d51f2", Sequencer: "17A9E1B2C3D4E5F6", ContentType: "image/png"}),
		minioBody("s3:ObjectRemoved:DeleteMarkerCreated", "media", "a", obj{VersionID: "v", Sequencer: "17A9E1B2C3D4E5F7"}),
		minioBody("s3:ObjectRemoved:NoOP", "media", "a", obj{Sequencer: "17A9E1B2C3D4E5F7"}),
		minioBody("s3:ObjectAccessed:Get", "media", "a", obj{Size: 1}),
	}
}

// cephSeeds are Ceph RGW webhook bodies: raw keys, sizes as strings, a
// sequencer that does not order, the multisite and lifecycle event names.
func cephSeeds() []string {
	return []string{
		cephBody("ObjectCreated:Put", "media", "dir/a+b 100%.jpg", "1024"),
		cephBody("ObjectCreated:CompleteMultipartUpload", "media", "big.bin", 5368709120),
		cephBody("ObjectRemoved:Delete", "media", "gone.txt", "0"),
		cephBody("ObjectRemoved:DeleteMarkerCreated", "media", "v.txt", nil),
		cephBody("ObjectLifecycle:Expiration:Current", "media", "old/ünïcode.log", "12"),
		cephBody("ObjectSynced:Create", "media", "replica", "3"),
		cephBody("ObjectSynced:Delete", "media", "replica", "0"),
		cephBody("s3:ObjectCreated:Copy", "media", "%2F", "-1"),
		cephBody("ObjectCreated:Put", "", "k", "1"),
	}
}

func fuzzParser(f *testing.F, seeds ...[]string) {
	for _, set := range seeds {
		for _, s := range set {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Parse(body)
		// Parse is pure: the same bytes give the same answer.
		res2, err2 := Parse(body)
		if !reflect.DeepEqual(res, res2) || errString(err) != errString(err2) {
			t.Fatalf("Parse is not deterministic:\n%+v, %v\n%+v, %v", res, err, res2, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error of unknown kind: %v", err)
			}
			if len(res.Events) != 0 || len(res.Skips) != 0 {
				t.Fatalf("refused body with a result: %+v", res)
			}
			return
		}
		checkResult(t, res)
		checkFuzzResult(t, body, res)
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkFuzzResult asserts what checkResult does not: the format is a known
// one, Inner is set exactly for SNS, a delete carries no size or ETag, and
// a body with no records' worth of events yields a skip that says why.
func checkFuzzResult(t *testing.T, body []byte, res Result) {
	t.Helper()
	switch res.Format {
	case FormatRecords, FormatMinIO, FormatEventBridge, FormatTestEvent, FormatEmpty:
		if res.Inner != "" {
			t.Fatalf("format %q with inner %q", res.Format, res.Inner)
		}
	case FormatSNS:
		switch res.Inner {
		case FormatRecords, FormatMinIO, FormatEventBridge, FormatTestEvent:
		case "":
			// SubscriptionConfirmation and the like: skipped, not parsed.
			if len(res.Events) != 0 {
				t.Fatalf("SNS without an inner format has events: %+v", res.Events)
			}
		default:
			t.Fatalf("SNS wrapping %q", res.Inner)
		}
	default:
		t.Fatalf("unknown format %q", res.Format)
	}
	if res.Format == FormatEmpty && strings.TrimSpace(string(body)) != "" {
		t.Fatalf("non-blank body %q read as empty", body)
	}
	for i, ev := range res.Events {
		if ev.Kind == notify.Delete && (ev.Object.Size != 0 || ev.Object.ETag != "" || ev.Object.ContentType != "") {
			t.Fatalf("event %d: a delete with object details %+v", i, ev.Object)
		}
		if ev.Sequencer != "" && len(ev.Sequencer) != SequencerWidth {
			t.Fatalf("event %d: sequencer %q is not %d wide", i, ev.Sequencer, SequencerWidth)
		}
		if ev.Object.Version == "null" {
			t.Fatalf("event %d: the \"null\" version id was kept", i)
		}
		if !ev.Time.IsZero() && ev.Time.Location() != time.UTC {
			t.Fatalf("event %d: time %v is not UTC", i, ev.Time)
		}
	}
}

func FuzzParse(f *testing.F) {
	fuzzParser(f, recordSeeds(), snsSeeds(), eventBridgeSeeds(), minioSeeds(), cephSeeds(), []string{"", "{}", "null"})
}

func FuzzParseRecords(f *testing.F) { fuzzParser(f, recordSeeds()) }

func FuzzParseSNS(f *testing.F) { fuzzParser(f, snsSeeds()) }

func FuzzParseEventBridge(f *testing.F) { fuzzParser(f, eventBridgeSeeds()) }

func FuzzParseMinIO(f *testing.F) { fuzzParser(f, minioSeeds()) }

func FuzzParseCeph(f *testing.F) { fuzzParser(f, cephSeeds()) }
