package notify

import "net/http"

// RequestToken is the bearer token of a request to the asset API or its
// event streams: the path form (/t/{token}/..., for clients that cannot
// set headers) or "Authorization: Bearer <token>". It only extracts the
// token; callers compare it with Secret.Match, in constant time.
func RequestToken(r *http.Request) (string, bool) {
	if t := r.PathValue("token"); t != "" {
		return t, true
	}
	t := BearerToken(r.Header.Get("Authorization"))
	return t, t != ""
}
