package azure

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/providertest"
)

// blobCreated writes a BlobCreated event in the Event Grid schema the way
// the service does: the subject carries the raw name (here possibly
// damaged), data.url the percent-encoded one.
func blobCreated(container, subjectName, name, etag string, size int, seq string) string {
	data := fmt.Sprintf(`"api": "PutBlob", "contentType": "image/png", "blobType": "BlockBlob", "url": %q, "sequencer": %q`,
		"https://devstoreaccount1.blob.core.windows.net/"+container+"/"+url.PathEscape(name), seq)
	if etag != "" {
		data += fmt.Sprintf(`, "eTag": %q, "contentLength": %d`, etag, size)
	}
	return fmt.Sprintf(`{"topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
  "subject": %q, "eventType": "Microsoft.Storage.BlobCreated", "eventTime": %q, "id": %q,
  "data": {%s}, "dataVersion": "", "metadataVersion": "1"}`,
		"/blobServices/default/containers/"+container+"/blobs/"+subjectName, time.Now().UTC().Format(time.RFC3339Nano), "c-"+seq, data)
}

func blobDeleted(container, name, seq string) string {
	return fmt.Sprintf(`{"specversion": "1.0", "type": "Microsoft.Storage.BlobDeleted",
  "source": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
  "subject": %q, "id": %q, "time": %q,
  "data": {"api": "DeleteBlob", "blobType": "BlockBlob", "url": %q, "sequencer": %q}}`,
		"/blobServices/default/containers/"+container+"/blobs/"+name, "d-"+seq, time.Now().UTC().Format(time.RFC3339Nano),
		"https://devstoreaccount1.blob.core.windows.net/"+container+"/"+url.PathEscape(name), seq)
}

// TestEndToEnd runs Event Grid messages through the queue consumer, the
// real applier and the catalog, against blobs in Azurite, and checks that
// the catalog then agrees with a listing: a scan after the notifications
// would find nothing to change.
func TestEndToEnd(t *testing.T) {
	blobURL := os.Getenv("SYNCER_TEST_AZURITE_BLOB")
	if blobURL == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SYNCER_TEST_AZURITE_BLOB is not set: the test command must start Azurite in CI")
		}
		t.Skip("SYNCER_TEST_AZURITE_BLOB not set (e.g. http://127.0.0.1:10000/devstoreaccount1): start Azurite to run")
	}
	tq := newTestQueue(t)
	ctx := context.Background()

	conn := "DefaultEndpointsProtocol=http;AccountName=" + devAccount + ";AccountKey=" + devKey +
		";BlobEndpoint=" + strings.TrimRight(blobURL, "/") + ";QueueEndpoint=" + tq.endpoint + ";"
	admin, err := azblob.NewClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	container := uniqueName("syncer-e2e-")
	if _, err := admin.CreateContainer(ctx, container, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.DeleteContainer(context.Background(), container, nil) })

	src := Notifications{Source: "az", Account: Config{ConnectionString: conn}, StorageQueue: &StorageQueue{Queue: tq.name}}
	prov, err := New(ctx, Config{ID: src.Source, Container: container, ConnectionString: conn})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cat.Close() })
	csrc := cat.Source(src.Source, prov.Order())
	router, err := notify.NewRouter([]notify.Route{{
		SourceID: src.Source, Provider: "azure", Bucket: container, Store: prov, Catalog: csrc,
		Filter: providers.Filter{Prefix: "", Exclude: []string{"*.tmp"}},
	}}, notify.RouterOptions{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}

	put := func(name string, body string) string {
		resp, err := admin.UploadBuffer(ctx, container, name, []byte(body), nil)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Trim(string(*resp.ETag), `"`) // Event Grid sends ETags unquoted
	}
	emoji := "emoji/😀.png"
	tagEmoji := put(emoji, "smile")
	tagSpace := put("a b+c.png", "space")
	put("gone.png", "soon gone")
	put("incomplete.png", "12345678")
	put("skip.tmp", "filtered")
	if _, err := admin.DeleteBlob(ctx, container, "gone.png", nil); err != nil {
		t.Fatal(err)
	}

	tq.send(t,
		// The subject lost the emoji, as Event Grid does; the URL has it.
		b64(blobCreated(container, "emoji/\uFFFD\uFFFD.png", emoji, tagEmoji, len("smile"), "0A")),
		blobCreated(container, "a b+c.png", "a b+c.png", tagSpace, len("space"), "0b"),
		// Out of order: the deletion (newer sequencer) before the creation.
		blobDeleted(container, "gone.png", "00000000000000000000000000000002"),
		b64(blobCreated(container, "gone.png", "gone.png", "0x1", 9, "1")),
		// No ETag: the applier stats the blob.
		blobCreated(container, "incomplete.png", "incomplete.png", "", 0, "5"),
		// Outside the source's filters.
		blobCreated(container, "skip.tmp", "skip.tmp", "0x2", 8, "6"),
		// A duplicate.
		blobCreated(container, "a b+c.png", "a b+c.png", tagSpace, len("space"), "0b"),
	)
	start(t, src, router, nil)
	eventually(t, 15*time.Second, "queue drained", func() bool { return count(t, tq.q) == 0 })

	var got []string
	err = csrc.Range(ctx, "", func(e catalog.Entry) error {
		got = append(got, e.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a b+c.png", emoji, "incomplete.png"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("catalog holds %q, want %q", got, want)
	}
	// The catalog matches a listing of the container: nothing left for a
	// scan to change (ETags from events and from listings agree).
	for _, o := range providertest.ListAll(t, prov, "") {
		e, ok, err := csrc.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		if o.Key == "skip.tmp" {
			if ok {
				t.Error("filtered key in the catalog")
			}
			continue
		}
		if !ok || catalog.Changed(e.Object, o) {
			t.Errorf("%q: catalog %+v, listing %+v", o.Key, e.Object, o)
		}
	}
	changes, err := csrc.Outbox(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 3 {
		t.Errorf("%d changes in the outbox, want 3 (duplicate and stale events add none): %+v", len(changes), changes)
	}
}
