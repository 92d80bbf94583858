package notify

import (
	"net/http"
	"time"
)

// RefuseUnread readies w for an answer (401, 405) to a request whose body
// the handler will not read. Go's server would otherwise read up to 256 KiB
// of the unread body to keep the connection alive, before the answer
// (chunked or short bodies) and after it: a client trickling its body would
// hold the connection and wait for its answer as long as it likes. So the
// connection is closed after the answer and reading from it stops now: a
// refused client costs one short response.
func RefuseUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 {
		return // no body: the connection may stay for the next request
	}
	w.Header().Set("Connection", "close")
	// ErrNotSupported when w is not a server's connection (a recorder):
	// then there is no connection to hold either.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}
