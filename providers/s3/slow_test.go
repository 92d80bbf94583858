package s3

import (
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/testkit"
)

func TestWebhookRefusesWithoutReadingTheBody(t *testing.T) {
	w := newWebhookEnv(t, testToken)
	addr := strings.TrimPrefix(w.srv.URL, "http://")
	for _, tc := range []struct{ line, headers, want string }{
		{"POST /webhooks/s3/lib HTTP/1.1", "", "401"},
		{"POST /webhooks/s3/lib HTTP/1.1", "Authorization: Bearer wrong\r\n", "401"},
		{"PUT /webhooks/s3/lib HTTP/1.1", "Authorization: Bearer " + testToken + "\r\n", "405"},
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
