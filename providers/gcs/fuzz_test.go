package gcs

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/imgly/syncer/notify"
)

// FuzzParse (parse_test.go) mutates every attribute and the payload at
// once. The two targets here each hold one half steady so that mutations
// go deep into the other: the JSON_API_V1 payload under real attributes,
// and the attributes of a NONE notification. Both assert the documented
// properties, not only that nothing panics (checkFuzz).

// maxDetail bounds a skip's detail: it quotes at most 64 characters of
// any one input, so a huge payload never makes a huge log line.
const maxDetail = 2048

// checkFuzz runs Parse twice and asserts what either answer must hold.
func checkFuzz(t *testing.T, attrs map[string]string, data []byte) {
	t.Helper()
	evs, sk := Parse(attrs, data)
	evs2, sk2 := Parse(attrs, data)
	if !reflect.DeepEqual(evs, evs2) || !reflect.DeepEqual(sk, sk2) {
		t.Fatalf("Parse is not deterministic: %+v, %+v / %+v, %+v", evs, sk, evs2, sk2)
	}
	if sk != nil {
		if sk.Code == "" || sk.Detail == "" || evs != nil {
			t.Fatalf("skip %+v with events %+v", sk, evs)
		}
		if n := len(sk.Detail); n > maxDetail {
			t.Fatalf("skip detail is %d bytes long", n)
		}
		switch Reason(sk.Code) {
		case ReasonOverwritten, ReasonIgnoredType:
			if sk.Reason == notify.SkipMalformed {
				t.Fatalf("%s counted as malformed", sk.Code)
			}
		case ReasonUnknownType, ReasonMissingAttribute, ReasonBadAttribute, ReasonBadPayload:
			if sk.Reason != notify.SkipMalformed {
				t.Fatalf("%s not counted as malformed", sk.Code)
			}
		default:
			t.Fatalf("undocumented reason %q", sk.Code)
		}
		return
	}
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	checkWellFormed(t, attrs, ev)
	// The sequencer is generation.metageneration, 20 digits each; the
	// generation half is the attribute's, and a delete sorts after every
	// other event of its generation.
	if len(ev.Sequencer) != 2*seqWidth+1 {
		t.Fatalf("sequencer %q is not %d wide", ev.Sequencer, 2*seqWidth+1)
	}
	gen, meta, _ := strings.Cut(ev.Sequencer, ".")
	if want := notify.PadSequencer(strings.TrimLeft(attrs["objectGeneration"], "0"), seqWidth); gen != want && !(want == "" && gen == strings.Repeat("0", seqWidth)) {
		t.Fatalf("sequencer %q, objectGeneration %q", ev.Sequencer, attrs["objectGeneration"])
	}
	if ev.Kind == notify.Delete && meta != deletedMeta {
		t.Fatalf("delete sequencer %q does not sort last", ev.Sequencer)
	}
	if ev.Kind == notify.Upsert && meta == deletedMeta {
		t.Fatalf("upsert sequencer %q sorts like a delete", ev.Sequencer)
	}
	if attrs["payloadFormat"] == formatNone && ev.Kind == notify.Upsert && ev.Complete {
		t.Fatalf("an upsert without payload must be completed by a stat: %+v", ev)
	}
	if attrs["payloadFormat"] == formatJSON && ev.Complete && ev.Kind == notify.Upsert {
		// Complete means the payload named the size, etag and generation.
		var p map[string]any
		if json.Unmarshal(data, &p) != nil || p == nil {
			t.Fatalf("complete upsert from payload %q", data)
		}
	}
}

// FuzzParseJSONAPI mutates the JSON_API_V1 payload of each event type.
func FuzzParseJSONAPI(f *testing.F) {
	for _, s := range []struct{ typ, data string }{
		{"OBJECT_FINALIZE", exFinalizeJSON},
		{"OBJECT_METADATA_UPDATE", exMetadataJSON},
		{"OBJECT_DELETE", exDeleteJSON},
		{"OBJECT_ARCHIVE", exDeleteJSON},
		{"OBJECT_FINALIZE", exFakeFinalizeJSON},
		{"OBJECT_FINALIZE", `{"size":"1","etag":"e","generation":"1700000000123456","metageneration":"18446744073709551616"}`},
		{"OBJECT_FINALIZE", `{"name":"other","bucket":"my-bucket"}`},
		{"OBJECT_FINALIZE", `{"updated":"yesterday"}`},
		{"OBJECT_FINALIZE", `null`},
		{"OBJECT_FINALIZE", ``},
	} {
		f.Add(s.typ, []byte(s.data))
	}
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		attrs := exAttrs(typ, formatJSON)
		if typ == "" {
			delete(attrs, "eventType")
		}
		checkFuzz(t, attrs, data)
	})
}

// FuzzParseNone mutates the attributes of a payload-less (NONE)
// notification: the values GCS sets and one extra attribute.
func FuzzParseNone(f *testing.F) {
	seed := func(a map[string]string, extraKey, extraVal string) {
		f.Add(a["eventType"], a["bucketId"], a["objectId"], a["objectGeneration"], a["eventTime"], extraKey, extraVal)
	}
	for _, typ := range []string{"OBJECT_FINALIZE", "OBJECT_METADATA_UPDATE", "OBJECT_DELETE", "OBJECT_ARCHIVE", "OBJECT_INITIALIZE", "OBJECT_SOMETHING_NEW"} {
		seed(exAttrs(typ, formatNone), "", "")
	}
	seed(exAttrs("OBJECT_DELETE", formatNone), "overwrittenByGeneration", exGen2)
	seed(exAttrs("OBJECT_ARCHIVE", formatNone), "overwrittenByGeneration", exGen2)
	seed(exAttrs("OBJECT_FINALIZE", formatNone), "overwroteGeneration", exGen)
	seed(with(exAttrs("OBJECT_FINALIZE", formatNone), "objectGeneration", "9223372036854775808"), "", "")
	seed(with(exAttrs("OBJECT_FINALIZE", formatNone), "objectGeneration", "-1", "eventTime", "2023-11-14 22:13:20Z"), "", "")
	seed(with(exAttrs("OBJECT_FINALIZE", formatNone), "objectId", "é/\x00/ü"), "payloadFormat", "JSON_API_V1")
	f.Fuzz(func(t *testing.T, typ, bucket, object, gen, at, extraKey, extraVal string) {
		attrs := map[string]string{
			"eventType": typ, "payloadFormat": formatNone, "bucketId": bucket,
			"objectId": object, "objectGeneration": gen, "eventTime": at,
		}
		if extraKey != "" {
			attrs[extraKey] = extraVal
		}
		checkFuzz(t, attrs, nil)
	})
}
