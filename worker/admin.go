package worker

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/imgly/syncer/schedule"
)

// ScanResult is the body of POST /admin/sources/{id}/scan. The field names
// are a contract: `syncer scan --url` reads them.
type ScanResult struct {
	Source          string  `json:"source"`
	Result          string  `json:"result"` // ok, held, failed, cancelled
	Error           string  `json:"error,omitempty"`
	Listed          int     `json:"listed"`
	Matched         int     `json:"matched"`
	Added           int     `json:"added"`
	Modified        int     `json:"modified"`
	Deleted         int     `json:"deleted"`
	DurationSeconds float64 `json:"durationSeconds"`
	ResumedAfter    string  `json:"resumedAfter,omitempty"`
}

// NewScanResult describes a reconciliation's outcome.
func NewScanResult(id string, res schedule.Result, err error, cancelled bool) ScanResult {
	out := ScanResult{
		Source: id, Result: schedule.ResultOK, Listed: res.Listed, Matched: res.Matched,
		Added: res.Added, Modified: res.Modified, Deleted: res.Deleted,
		DurationSeconds: res.Duration.Seconds(), ResumedAfter: res.ResumedAfter,
	}
	switch {
	case err != nil && cancelled:
		out.Result, out.Error = schedule.ResultCancelled, err.Error()
	case err != nil:
		out.Result, out.Error = schedule.ResultFailed, err.Error()
	case res.Held != nil:
		out.Result, out.Error = schedule.ResultHeld, res.Held.Error()
	}
	return out
}

// serveAdminScan runs one reconciliation of a source now and answers with
// its result. allowMassDelete=true lifts the source's guard for this scan
// only: that is how an operator releases a held scan on a running worker.
func (w *Worker) serveAdminScan(rw http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	allow := false
	if v := r.URL.Query().Get("allowMassDelete"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(rw, http.StatusBadRequest, fmt.Sprintf("allowMassDelete %q: want true or false", v))
			return
		}
		allow = b
	}
	// A scan of a large bucket outlasts any write timeout of the server;
	// the answer is one small body at the end.
	http.NewResponseController(rw).SetWriteDeadline(time.Time{}) //nolint:errcheck // not every writer has deadlines
	if allow {
		w.log.Warn("scan requested with the mass-deletion guard lifted", "source", id, "remote", r.RemoteAddr)
	}
	// Bound to the request: a client that goes away cancels the scan,
	// which then applies no deletions.
	ctx := r.Context()
	res, err := w.scanWith(ctx, id, schedule.ScanOptions{AllowMassDelete: allow})
	switch {
	case errors.Is(err, schedule.ErrNoSource):
		writeError(rw, http.StatusNotFound, fmt.Sprintf("no source %q", id))
		return
	case errors.Is(err, ErrNotOwner):
		writeError(rw, http.StatusConflict, err.Error())
		return
	case errors.Is(err, schedule.ErrBusy):
		writeError(rw, http.StatusConflict, fmt.Sprintf("source %q: a scan is already running; try again when it has ended", id))
		return
	}
	out := NewScanResult(id, res, err, ctx.Err() != nil)
	if err != nil {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusInternalServerError)
	}
	writeJSON(rw, out)
}
