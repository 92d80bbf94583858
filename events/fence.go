package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/catalog"
)

// Fenced is an Outbox owned through a lease (several replicas on one
// catalog). Its publisher checks CheckPublish before every publish and
// publishes with the stream's expected last sequence of the subject, so
// that a replica that lost the lease while holding a batch it had read
// cannot put it after the new owner's events: whichever publishes first
// moves the subject's sequence, and the other's publish is refused.
type Fenced interface {
	Outbox
	// CheckPublish fails (wrapping catalog.ErrFenced) once the lease is
	// no longer surely held.
	CheckPublish() error
}

// errSubjectMoved: the subject's last sequence is not the one this
// publisher last saw (JetStream's wrong-last-sequence, code 10071).
var errSubjectMoved = errors.New("the subject's last message moved: another publisher, or an unacknowledged attempt, landed")

const codeWrongLastSeq = 10071

// fenceStops says whether err ends the publish attempts at once.
func fenceStops(err error) bool {
	return errors.Is(err, catalog.ErrFenced) || errors.Is(err, errSubjectMoved)
}

// resumeFence reads the subject's last sequence for a fenced outbox.
func (p *Publisher) resumeFence(ctx context.Context, o *outbox) error {
	f, ok := o.src.(Fenced)
	if !ok {
		return nil
	}
	if err := f.CheckPublish(); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := p.js.Stream(actx, p.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		o.subjSeq = 0
		return nil
	}
	if err != nil {
		return fmt.Errorf("read stream %s: %w", p.opts.Stream, err)
	}
	msg, err := stream.GetLastMsgForSubject(actx, Subject(p.opts.SubjectPrefix, o.src.ID()))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		o.subjSeq = 0
	case err != nil:
		return fmt.Errorf("read the last event of %s: %w", o.src.ID(), err)
	default:
		o.subjSeq = msg.Sequence
	}
	return nil
}

// fenceOpts checks a fenced outbox's lease and returns the publish options
// that make the stream refuse the event if the subject moved.
func (p *Publisher) fenceOpts(o *outbox) ([]jetstream.PublishOpt, error) {
	f, ok := o.src.(Fenced)
	if !ok {
		return nil, nil
	}
	if err := f.CheckPublish(); err != nil {
		return nil, err
	}
	return []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(o.subjSeq)}, nil
}

// fenceAcked records a fenced publish's new subject sequence, and turns a
// wrong-last-sequence refusal into errSubjectMoved.
func (p *Publisher) fenceAcked(o *outbox, ack *jetstream.PubAck, err error) error {
	if _, ok := o.src.(Fenced); !ok {
		return err
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == codeWrongLastSeq {
		return fmt.Errorf("%w: %v", errSubjectMoved, err)
	}
	if err == nil && !ack.Duplicate {
		// A duplicate passed the expected-sequence check first: the
		// subject did not move.
		o.subjSeq = ack.Sequence
	}
	return err
}
