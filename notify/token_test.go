package notify

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRequestToken(t *testing.T) {
	for _, c := range []struct {
		auth, path, want string
		ok               bool
	}{
		{auth: "Bearer abc", want: "abc", ok: true},
		{auth: "bearer abc", want: "abc", ok: true},
		{auth: "Basic abc"},
		{auth: "Bearer "},
		{auth: "Bearer"},
		{},
		{path: "from-path", auth: "Bearer abc", want: "from-path", ok: true},
	} {
		r := httptest.NewRequest(http.MethodGet, "/sources", nil)
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		if c.path != "" {
			r.SetPathValue("token", c.path)
		}
		if got, ok := RequestToken(r); got != c.want || ok != c.ok {
			t.Errorf("%+v: got %q, %v", c, got, ok)
		}
	}
}
