package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/smithy-go"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// checkTimeout bounds each check, so that one unreachable endpoint does not
// hide the rest of the table.
const checkTimeout = 15 * time.Second

// checkRow is one line of Check's table.
type checkRow struct {
	check, target string
	detail        string
	err           error
	// skipped: not tried because a check it depends on failed (counted
	// by that one).
	skipped bool
}

func skip(r *checkRow, why string) {
	r.skipped, r.detail = true, why
}

// Check connects to everything cfg names and reports, one line each, what
// works and what does not: per source it lists one page and stats one key;
// per notification transport it checks that the queue or subscription
// exists and that syncer may consume it; it connects to NATS and looks up
// the stream. It reads only: nothing is created, received, deleted or
// published (a missing stream is reported with whether syncer may create
// it). Sources are opened as their kind in kinds says. The table goes to
// out; the error is non-nil if any check failed.
func Check(ctx context.Context, cfg *config.Config, kinds *providers.Registry, out io.Writer) error {
	var rows []checkRow
	add := func(r ...checkRow) { rows = append(rows, r...) }
	for i, src := range cfg.Sources {
		add(checkSource(ctx, kinds, src, fmt.Sprintf("sources[%d]", i))...)
		add(checkNotifications(ctx, kinds, src, fmt.Sprintf("sources[%d]", i))...)
	}
	add(checkNATS(ctx, cfg)...)

	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tTARGET\tRESULT\tDETAIL")
	failed := 0
	for _, r := range rows {
		result, detail := "ok", r.detail
		switch {
		case r.skipped:
			result = "skipped"
		case r.err != nil:
			failed++
			result, detail = "FAIL", oneLine(r.err.Error())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.check, r.target, result, detail)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write check table: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks failed", failed, len(rows))
	}
	return nil
}

// oneLine keeps a table cell to one readable line: SDK errors span lines
// and carry request ids.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 240
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// short is what failed, without the SDK's wrapping: the provider's error
// kind, then the service's code and message (not the request dump).
func short(err error) error {
	var (
		kind string
		api  smithy.APIError
		re   *azcore.ResponseError
	)
	if k := providers.KindErr(err); k != nil {
		kind = k.Error() + ": "
	}
	switch st, isGRPC := status.FromError(err); {
	case errors.As(err, &api):
		return fmt.Errorf("%s%s: %s", kind, api.ErrorCode(), api.ErrorMessage())
	case errors.As(err, &re):
		return fmt.Errorf("%s%d %s", kind, re.StatusCode, re.ErrorCode)
	case isGRPC && st.Code() != codes.Unknown:
		return fmt.Errorf("%s%s: %s", kind, st.Code(), st.Message())
	}
	return fmt.Errorf("%s%w", kind, err)
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, checkTimeout)
}

// checkSource lists the first page of the source and stats one key of it.
// It opens the source as a probe: nothing is created (a missing local
// directory fails the check instead).
func checkSource(ctx context.Context, kinds *providers.Registry, src config.Source, field string) []checkRow {
	name := "source " + src.ID
	p, c, err := openProvider(ctx, kinds, src, field, providers.OpenOptions{Probe: true})
	target := c.Location
	list := checkRow{check: name + " list", target: target}
	stat := checkRow{check: name + " stat", target: target}
	if err != nil {
		list.err = fmt.Errorf("open: %w", err)
		skip(&stat, "the source did not open")
		return []checkRow{list, stat}
	}
	defer p.Close()
	lctx, cancel := withTimeout(ctx)
	page, err := p.ListPage(lctx, src.Prefix, "")
	cancel()
	if err != nil {
		list.err = short(err)
		skip(&stat, "the listing failed")
		return []checkRow{list, stat}
	}
	more := ""
	if page.Next != "" {
		more = " (more pages)"
	}
	list.detail = fmt.Sprintf("%d objects on the first page%s", len(page.Objects), more)
	// The first key when there is one; otherwise a key that does not
	// exist, whose "not found" shows that stat is allowed.
	key, wantMissing := src.Prefix+".syncer-config-check", true
	if len(page.Objects) > 0 {
		key, wantMissing = page.Objects[0].Key, false
	}
	sctx, cancel := withTimeout(ctx)
	o, err := p.Stat(sctx, key)
	cancel()
	switch {
	case wantMissing && errors.Is(err, providers.ErrNotFound):
		stat.detail = fmt.Sprintf("%s: not found, as expected (the prefix is empty)", key)
	case err != nil:
		stat.err = fmt.Errorf("%s: %w", key, short(err))
	default:
		stat.detail = fmt.Sprintf("%s: %d bytes", o.Key, o.Size)
	}
	return []checkRow{list, stat}
}

// checkNotifications probes the source's notification transports through
// its kind (notify.Prober): the worker names none of them.
func checkNotifications(ctx context.Context, kinds *providers.Registry, src config.Source, field string) []checkRow {
	_, c, err := src.Configure(kinds, field)
	if err != nil {
		return nil // the source's list row reports it
	}
	p, ok := c.Notifications.(notify.Prober)
	if !ok {
		return nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var rows []checkRow
	for _, ck := range p.Probe(ctx) {
		row := checkRow{check: "source " + src.ID + " " + ck.Transport, target: ck.Target, detail: ck.Detail, err: ck.Err}
		if ck.Err != nil && ck.Op != "" {
			row.err = fmt.Errorf("%s: %w", ck.Op, short(ck.Err))
		}
		rows = append(rows, row)
	}
	return rows
}

// checkNATS connects once, without retrying, and looks the stream up.
func checkNATS(ctx context.Context, cfg *config.Config) []checkRow {
	conn := checkRow{check: "nats connect", target: RedactURL(cfg.NATS.URL)}
	stream := checkRow{check: "nats stream", target: cfg.NATS.Stream}
	if cfg.NATS.URL == "embedded" {
		conn.detail = "embedded: syncer run starts the server in-process"
		stream.detail = "created by syncer run in the embedded server"
		return []checkRow{conn, stream}
	}
	opts := []nats.Option{nats.Name("syncer config check"), nats.Timeout(5 * time.Second), nats.NoReconnect()}
	if cfg.NATS.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATS.CredsFile))
	}
	nc, err := nats.Connect(cfg.NATS.URL, opts...)
	if err != nil {
		conn.err = fmt.Errorf("connect: %w", err)
		skip(&stream, "NATS is not reachable")
		return []checkRow{conn, stream}
	}
	defer nc.Close()
	conn.detail = "connected to " + RedactURL(nc.ConnectedUrlRedacted()) + " (server " + nc.ConnectedServerVersion() + ")"
	js, err := jetstream.New(nc)
	if err != nil {
		stream.err = err
		return []checkRow{conn, stream}
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	subjects := make([]string, 0, len(cfg.Sources))
	for _, s := range cfg.Sources {
		subjects = append(subjects, cfg.NATS.SubjectPrefix+"."+s.ID)
	}
	s, err := js.Stream(ctx, cfg.NATS.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		ai, aerr := js.AccountInfo(ctx)
		switch {
		case aerr != nil:
			stream.err = fmt.Errorf("stream missing, and JetStream account info unavailable: %w", aerr)
		case ai.Limits.MaxStreams >= 0 && ai.Streams >= ai.Limits.MaxStreams:
			stream.err = fmt.Errorf("stream missing, and the account is at its limit of %d streams", ai.Limits.MaxStreams)
		default:
			stream.detail = "missing; syncer run creates it (JetStream enabled, the account may add streams)"
		}
		return []checkRow{conn, stream}
	}
	if err != nil {
		stream.err = fmt.Errorf("stream info: %w", short(err))
		return []checkRow{conn, stream}
	}
	info := s.CachedInfo()
	for _, subj := range subjects {
		if !anySubjectMatches(info.Config.Subjects, subj) {
			stream.err = fmt.Errorf("stream subjects %v do not capture %s", info.Config.Subjects, subj)
			return []checkRow{conn, stream}
		}
	}
	stream.detail = fmt.Sprintf("%d messages, subjects %s", info.State.Msgs, strings.Join(info.Config.Subjects, " "))
	return []checkRow{conn, stream}
}

// anySubjectMatches reports whether one of the filters (with NATS
// wildcards * and >) matches subject.
func anySubjectMatches(filters []string, subject string) bool {
	for _, f := range filters {
		if subjectMatches(f, subject) {
			return true
		}
	}
	return false
}

func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, t := range ft {
		if t == ">" {
			return i < len(st)
		}
		if i >= len(st) || (t != "*" && t != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}
