package azure

import (
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/testkit"
)

func TestWebhookRefusesWithoutReadingTheBody(t *testing.T) {
	srv, _ := newWebhookServer(t, &EventGrid{Secret: secret}, newRecorder())
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct{ line, headers, want string }{
		{"POST /?code=wrong HTTP/1.1", "", "401"},
		{"POST / HTTP/1.1", "", "401"},
		{"PUT /?code=" + secret + " HTTP/1.1", "", "405"},
	} {
		got, took := testkit.SlowBodyAnswer(t, addr, tc.line, tc.headers)
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: answered %q, want %s", tc.line, got, tc.want)
		}
		if took > time.Second {
			t.Errorf("%s: answered after %v, want at once", tc.line, took)
		}
	}
}
