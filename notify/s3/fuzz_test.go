package s3

import (
	"errors"
	"testing"
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

func fuzzParser(f *testing.F, seeds ...[]string) {
	for _, set := range seeds {
		for _, s := range set {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Parse(body)
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
	})
}

func FuzzParse(f *testing.F) {
	fuzzParser(f, recordSeeds(), snsSeeds(), eventBridgeSeeds(), minioSeeds(), []string{"", "{}", "null"})
}

func FuzzParseRecords(f *testing.F) { fuzzParser(f, recordSeeds()) }

func FuzzParseSNS(f *testing.F) { fuzzParser(f, snsSeeds()) }

func FuzzParseEventBridge(f *testing.F) { fuzzParser(f, eventBridgeSeeds()) }

func FuzzParseMinIO(f *testing.F) { fuzzParser(f, minioSeeds()) }
