package gcs

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgly/syncer/providers"
)

// TestCredentialsReachTheStore checks the client New builds without an
// emulator: the listing check sits beneath authentication, so the service
// account's token must still be fetched and sent with every listing. The
// token endpoint and the JSON API are one loopback server.
func TestCredentialsReachTheStore(t *testing.T) {
	var tokens, lists atomic.Int64
	var body atomic.Value
	body.Store(`{"kind":"storage#objects","items":[{"name":"x","bucket":"b","size":"1","generation":"7","etag":"e","updated":"2024-01-01T00:00:00Z"}]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/token":
			tokens.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"tok-123","token_type":"Bearer","expires_in":3600}`))
		case r.Method == http.MethodGet && r.URL.Path == "/storage/v1/b/b/o":
			lists.Add(1)
			if got := r.Header.Get("Authorization"); got != "Bearer tok-123" {
				http.Error(w, `{"error":{"code":401,"message":"no token"}}`, http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body.Load().(string)))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "p", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "syncer@p.iam.gserviceaccount.com", "client_id": "1",
		"token_uri": srv.URL + "/token",
	})
	file := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(file, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	p, err := New(context.Background(), Config{ID: "t", Bucket: "b", CredentialsFile: file, Endpoint: srv.URL + "/storage/v1/"}, WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pg, err := p.ListPage(ctx, "", "")
	if err != nil || len(pg.Objects) != 1 || pg.Objects[0].Key != "x" || pg.Objects[0].Version != "7" {
		t.Fatalf("listing: %+v, %v", pg, err)
	}
	if tokens.Load() != 1 || lists.Load() != 1 {
		t.Errorf("%d token and %d listing requests, want 1 and 1", tokens.Load(), lists.Load())
	}
	// The check runs on this client too.
	body.Store(`{}`)
	if _, err := p.ListPage(ctx, "", ""); !errors.Is(err, providers.ErrNotListing) {
		t.Errorf("authenticated listing of {}: %v, want ErrNotListing", err)
	}
}
