package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/providers"
	azurenotify "github.com/imgly/syncer/providers/azure"
	gcsprovider "github.com/imgly/syncer/providers/gcs"
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

func checkNotifications(ctx context.Context, kinds *providers.Registry, src config.Source, field string) []checkRow {
	n := src.Notifications
	var rows []checkRow
	if n.SQS != nil {
		rows = append(rows, checkSQS(ctx, src))
	}
	if n.PubSub != nil {
		rows = append(rows, checkPubSub(ctx, src))
	}
	if n.StorageQueue != nil {
		rows = append(rows, checkStorageQueue(ctx, kinds, src, field))
	}
	// Webhooks are served by syncer itself: nothing to connect to.
	if n.Webhook != nil {
		rows = append(rows, checkRow{check: "source " + src.ID + " webhook", target: "/webhooks/s3/" + src.ID,
			detail: "served by syncer run; point the bucket's webhook here"})
	}
	if n.EventGrid != nil {
		rows = append(rows, checkRow{check: "source " + src.ID + " eventGrid", target: "/webhooks/eventgrid/" + src.ID,
			detail: "served by syncer run; point the Event Grid subscription here"})
	}
	return rows
}

// checkSQS reads the queue's attributes: the queue exists and
// sqs:GetQueueAttributes is granted (ReceiveMessage would hide messages
// from the running worker, so it is not tried).
func checkSQS(ctx context.Context, src config.Source) checkRow {
	q := src.Notifications.SQS
	row := checkRow{check: "source " + src.ID + " sqs", target: q.QueueURL}
	region := q.Region
	if region == "" {
		region = regionOfQueueURL(q.QueueURL)
	}
	if region == "" {
		region = src.S3.Region
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	acfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		row.err = fmt.Errorf("load AWS config: %w", err)
		return row
	}
	client := sqs.NewFromConfig(acfg, func(o *sqs.Options) {
		if q.Endpoint != "" {
			o.BaseEndpoint = aws.String(q.Endpoint)
		}
	})
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameVisibilityTimeout,
		},
	})
	if err != nil {
		row.err = fmt.Errorf("GetQueueAttributes: %w", short(err))
		return row
	}
	row.detail = fmt.Sprintf("queue readable; about %s messages waiting",
		orDash(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]))
	return row
}

// regionOfQueueURL reads <region> of https://sqs.<region>.amazonaws.com/...
func regionOfQueueURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	parts := strings.Split(p.Hostname(), ".")
	if len(parts) >= 4 && parts[0] == "sqs" && parts[2] == "amazonaws" {
		return parts[1]
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// pubsubConsume is the permission the consumer needs on its subscription
// (in roles/pubsub.subscriber).
const pubsubConsume = "pubsub.subscriptions.consume"

// checkPubSub asks Pub/Sub which of the consumer's permissions the caller
// has on the subscription (TestIamPermissions needs no permission itself and
// answers NotFound for a missing subscription). A server without the IAM API
// (the emulator) is asked for the subscription instead.
func checkPubSub(ctx context.Context, src config.Source) checkRow {
	ps := src.Notifications.PubSub
	name := "projects/" + ps.Project + "/subscriptions/" + ps.Subscription
	row := checkRow{check: "source " + src.ID + " pubsub", target: name}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	copts, err := gcsprovider.ClientOptions(src.GCS.CredentialsFile, os.Getenv("PUBSUB_EMULATOR_HOST") != "")
	if err != nil {
		row.err = err
		return row
	}
	if ps.Endpoint != "" {
		copts = append(copts, option.WithEndpoint(ps.Endpoint))
	}
	client, err := pubsub.NewClient(ctx, ps.Project, copts...)
	if err != nil {
		row.err = fmt.Errorf("pubsub client: %w", err)
		return row
	}
	defer client.Close()
	res, err := client.SubscriptionAdminClient.TestIamPermissions(ctx, &iampb.TestIamPermissionsRequest{
		Resource: name, Permissions: []string{pubsubConsume},
	})
	if status.Code(err) == codes.Unimplemented {
		if _, err := client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name}); err != nil {
			row.err = fmt.Errorf("get subscription: %w", short(err))
			return row
		}
		row.detail = "subscription exists (this server has no IAM API: permissions not checked)"
		return row
	}
	if err != nil {
		row.err = fmt.Errorf("test permissions: %w", short(err))
		return row
	}
	for _, p := range res.GetPermissions() {
		if p == pubsubConsume {
			row.detail = "subscription exists; " + pubsubConsume + " granted"
			return row
		}
	}
	row.err = fmt.Errorf("%s is not granted on the subscription (roles/pubsub.subscriber)", pubsubConsume)
	return row
}

// checkStorageQueue peeks at the queue: it exists and messages may be
// read. Peeking changes nothing (a receive would hide messages from the
// running worker), and unlike the queue's properties it needs no more than
// the consumer's role, Storage Queue Data Message Processor.
func checkStorageQueue(ctx context.Context, kinds *providers.Registry, src config.Source, field string) checkRow {
	sq := src.Notifications.StorageQueue
	row := checkRow{check: "source " + src.ID + " storageQueue", target: sq.Queue}
	_, c, err := src.Configure(kinds, field)
	var svc *azqueue.ServiceClient
	if err == nil {
		svc, err = azurenotify.QueueService(c.Notifications)
	}
	if err != nil {
		row.err = err
		return row
	}
	row.target = strings.TrimSuffix(svc.URL(), "/") + "/" + sq.Queue
	if u, err := url.Parse(row.target); err == nil {
		u.RawQuery = "" // a SAS token is a secret
		row.target = u.String()
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	one := int32(1)
	res, err := svc.NewQueueClient(sq.Queue).PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: &one})
	if err != nil {
		row.err = fmt.Errorf("peek: %w", short(err))
		return row
	}
	row.detail = "queue readable"
	if len(res.Messages) > 0 {
		row.detail += "; messages waiting"
	}
	return row
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
