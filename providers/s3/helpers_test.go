package s3

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// Builders of provider-format bodies, shaped after the examples in AWS's
// "Event message structure" and "EventBridge event message structure"
// pages, MinIO's webhook target and Ceph RGW's event record documentation.

// obj is the s3.object of a record.
type obj struct {
	Key       string `json:"key"`
	Size      any    `json:"size,omitempty"`
	ETag      string `json:"eTag,omitempty"`
	VersionID string `json:"versionId,omitempty"`
	Sequencer string `json:"sequencer,omitempty"`
	// MinIO extras.
	ContentType  string            `json:"contentType,omitempty"`
	UserMetadata map[string]string `json:"userMetadata,omitempty"`
}

// awsRecord is one AWS S3 event record (eventVersion 2.1) with a raw,
// already form-encoded key.
func awsRecord(name, bucket string, o obj) map[string]any {
	return map[string]any{
		"eventVersion": "2.1",
		"eventSource":  "aws:s3",
		"awsRegion":    "us-east-1",
		"eventTime":    "2026-11-27T10:11:12.345Z",
		"eventName":    name,
		"userIdentity": map[string]any{"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
		"requestParameters": map[string]any{
			"sourceIPAddress": "127.0.0.1",
		},
		"responseElements": map[string]any{
			"x-amz-request-id": "C3D13FE58DE4C810",
			"x-amz-id-2":       "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
		},
		"s3": map[string]any{
			"s3SchemaVersion": "1.0",
			"configurationId": "syncer",
			"bucket": map[string]any{
				"name":          bucket,
				"ownerIdentity": map[string]any{"principalId": "A3NL1KOZZKExample"},
				"arn":           "arn:aws:s3:::" + bucket,
			},
			"object": o,
		},
	}
}

// recordsBody is {"Records":[...]}.
func recordsBody(records ...map[string]any) string {
	return mustJSON(map[string]any{"Records": records})
}

// minioBody is MinIO's webhook body for one record: eventName keeps "s3:",
// the record's key is QueryEscape'd, the wrapper's Key is bucket/<raw key>.
func minioBody(name, bucket, key string, o obj) string {
	o.Key = url.QueryEscape(key)
	r := awsRecord(name, bucket, o)
	r["eventVersion"] = "2.0"
	r["eventSource"] = "minio:s3"
	r["awsRegion"] = ""
	r["responseElements"] = map[string]any{
		"x-amz-request-id":        "17A9E1B2C3D4E5F6",
		"x-minio-deployment-id":   "cd7a0eb7-a1f9-48d9-b21a-56366d75cfdd",
		"x-minio-origin-endpoint": "http://127.0.0.1:9000",
	}
	r["source"] = map[string]any{"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70"}
	return mustJSON(map[string]any{"EventName": name, "Key": bucket + "/" + key, "Records": []any{r}})
}

// cephBody is a Ceph RGW record: raw key, size as a string, a sequencer
// that does not order.
func cephBody(name, bucket, key string, size any) string {
	return mustJSON(map[string]any{"Records": []any{map[string]any{
		"eventVersion":      "2.2",
		"eventSource":       "ceph:s3",
		"awsRegion":         "default",
		"eventTime":         "2024-04-21T10:03:18.419013Z",
		"eventName":         name,
		"userIdentity":      map[string]any{"principalId": "tester"},
		"requestParameters": map[string]any{"sourceIPAddress": ""},
		"responseElements": map[string]any{
			"x-amz-request-id": "",
			"x-amz-id-2":       "3821-default-default",
		},
		"s3": map[string]any{
			"s3SchemaVersion": "1.0",
			"configurationId": "HTTPNotification",
			"bucket":          map[string]any{"name": bucket, "ownerIdentity": map[string]any{"principalId": "tester"}, "arn": "arn:aws:s3:default::" + bucket, "id": "89759221.14371.2"},
			"object": map[string]any{"key": key, "size": size, "eTag": "a60a3c6c6b8a2b0b3a4d1e5f6a7b8c9d",
				"versionId": "", "sequencer": "F7E6D75DC742D108", "metadata": []any{}, "tags": []any{}},
		},
		"eventId":    "1713693798.419013.a60a3c6c6b8a2b0b3a4d1e5f6a7b8c9d",
		"opaqueData": "",
	}}})
}

// snsWrap is the body SNS delivers to an SQS subscription with raw message
// delivery off.
func snsWrap(message string) string {
	return mustJSON(map[string]any{
		"Type":             "Notification",
		"MessageId":        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
		"TopicArn":         "arn:aws:sns:us-east-1:123456789012:syncer-s3",
		"Subject":          "Amazon S3 Notification",
		"Message":          message,
		"Timestamp":        "2026-11-27T10:11:12.500Z",
		"SignatureVersion": "1",
		"Signature":        "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
		"SigningCertURL":   "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
		"UnsubscribeURL":   "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:syncer-s3:c9135db0",
	})
}

// ebObj is the detail.object of an EventBridge event.
type ebObj struct {
	Key       string `json:"key"`
	Size      any    `json:"size,omitempty"`
	ETag      string `json:"etag,omitempty"`
	VersionID string `json:"version-id,omitempty"`
	Sequencer string `json:"sequencer,omitempty"`
}

// eventBridgeBody is an S3 event as an EventBridge rule delivers it to SQS.
func eventBridgeBody(detailType, bucket string, o ebObj, reason, deletionType string) string {
	detail := map[string]any{
		"version":           "0",
		"bucket":            map[string]any{"name": bucket},
		"object":            o,
		"request-id":        "N4N7GDK58NMKJ12R",
		"requester":         "123456789012",
		"source-ip-address": "1.2.3.4",
		"reason":            reason,
	}
	if deletionType != "" {
		detail["deletion-type"] = deletionType
	}
	return mustJSON(map[string]any{
		"version":     "0",
		"id":          "17793124-05d4-b198-2fde-7ededc63b103",
		"detail-type": detailType,
		"source":      "aws.s3",
		"account":     "123456789012",
		"time":        "2026-11-27T10:11:12Z",
		"region":      "us-east-1",
		"resources":   []string{"arn:aws:s3:::" + bucket},
		"detail":      detail,
	})
}

// testEventBody is what S3 sends when a notification configuration is set.
func testEventBody(bucket string) string {
	return mustJSON(map[string]any{
		"Service":   "Amazon S3",
		"Event":     "s3:TestEvent",
		"Time":      "2026-11-27T10:00:00.089Z",
		"Bucket":    bucket,
		"RequestId": "5582815E1AEA5ADF",
		"HostId":    "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// checkResult asserts the invariants every accepted body's events hold.
func checkResult(t testing.TB, res Result) {
	t.Helper()
	for i, ev := range res.Events {
		switch {
		case ev.Provider != Name:
			t.Fatalf("event %d: provider %q", i, ev.Provider)
		case ev.Bucket == "":
			t.Fatalf("event %d: empty bucket", i)
		case ev.Key == "":
			t.Fatalf("event %d: empty key", i)
		case !utf8.ValidString(ev.Key):
			t.Fatalf("event %d: key %q is not UTF-8", i, ev.Key)
		case ev.Object.Key != ev.Key:
			t.Fatalf("event %d: Object.Key %q != Key %q", i, ev.Object.Key, ev.Key)
		case ev.Kind != notify.Upsert && ev.Kind != notify.Delete:
			t.Fatalf("event %d: kind %v", i, ev.Kind)
		case ev.Kind == notify.Upsert && ev.Complete && ev.Object.ETag == "":
			t.Fatalf("event %d: an upsert without ETag must be completed by a stat", i)
		case ev.Object.Size < 0:
			t.Fatalf("event %d: size %d", i, ev.Object.Size)
		case ev.Sequencer != "" && !isPaddedHex(ev.Sequencer):
			t.Fatalf("event %d: sequencer %q is not %d lower-case hex digits", i, ev.Sequencer, SequencerWidth)
		case ev.Sequencer == "" && ev.Complete:
			t.Fatalf("event %d: an event without sequencer must be checked by a stat", i)
		}
	}
	for i, s := range res.Skips {
		switch s.Reason {
		case SkipIgnored, SkipTest, SkipMalformed:
		default:
			t.Fatalf("skip %d: kind %q", i, s.Reason)
		}
		if s.Detail == "" {
			t.Fatalf("skip %d: no reason", i)
		}
	}
}

func isPaddedHex(s string) bool {
	if len(s) != SequencerWidth {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}

// notificationsOf is the notification settings the kind decodes of src, as
// the worker gets them.
func notificationsOf(t testing.TB, src config.Source) Notifications {
	t.Helper()
	kinds, err := providers.NewRegistry(Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	src.Provider = Name
	_, c, err := src.Configure(kinds, "sources[0]")
	if err != nil {
		t.Fatalf("configure %s: %v", src.ID, err)
	}
	return c.Notifications.(Notifications)
}
