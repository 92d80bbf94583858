package events

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/internal/retry"
)

// headroom is what the headers of an event take besides its id, with
// room for an id suffix (see publish) and what NATS adds.
const headroom = len("NATS/1.0\r\n\r\n") +
	len("Content-Type: \r\n") + len(ContentType) +
	len("Nats-Msg-Id: \r\n") +
	len("Nats-Expected-Stream: \r\n") + 64

// limit is the largest message, headers and body, NATS takes now: the
// server's max_payload, the stream's max_msg_size and what the last
// rejection taught, whichever is least; 0 when none is known yet.
func (p *Publisher) limit() int {
	l := p.nc.MaxPayload()
	for _, v := range []int64{p.maxMsgSize.Load(), p.rejected.Load()} {
		if v > 0 && (l <= 0 || v < l) {
			l = v
		}
	}
	return int(max(l, 0))
}

// budget is what the body of an event with id may take; 0 for no bound.
func (p *Publisher) budget(id string) int {
	l := p.limit()
	if l == 0 {
		return 0
	}
	return max(l-headroom-len(id)-len(p.opts.Stream), 1)
}

// cut makes the event of the longest prefix of changes that fits the
// size limit. A change that does not fit even alone is not listed but
// named in the event's skipped list, so that the ranges of events stay
// contiguous and the source goes on.
func (p *Publisher) cut(sourceID string, changes []catalog.Change) *batch {
	full := New(p.opts.Instance, sourceID, changes, time.Now())
	budget := p.budget(full.ID)
	if budget == 0 {
		return &batch{ev: full, changes: changes}
	}
	// The encoding measured is the one published: encoding an event of
	// hundreds of changes twice was most of the publisher's CPU time.
	if body, err := json.Marshal(full); err != nil || len(body) <= budget {
		return &batch{ev: full, changes: changes, body: body}
	}
	// The envelope of the whole range: the prefix's has no more digits.
	env := full
	env.Data.Changes = []Change{}
	base := encodedLen(env)
	const skipCost = 100 // a skipped entry, generously
	total, n := base, 0
	var skip map[uint64]bool
	for i, c := range full.Data.Changes {
		size := encodedLen(c) + 1 // and a comma
		if base+size+skipCost > budget {
			if total+skipCost > budget && n > 0 {
				break
			}
			if skip == nil {
				skip = map[uint64]bool{}
			}
			skip[c.Seq] = true
			total += skipCost
		} else {
			if total+size > budget && n > 0 {
				break
			}
			total += size
		}
		n = i + 1
	}
	return p.batchOf(sourceID, changes[:n], skip)
}

// batchOf builds the event of changes, naming those in skip as skipped.
func (p *Publisher) batchOf(sourceID string, changes []catalog.Change, skip map[uint64]bool) *batch {
	ev := New(p.opts.Instance, sourceID, changes, time.Now())
	if len(skip) > 0 {
		kept := ev.Data.Changes[:0]
		for i, c := range ev.Data.Changes {
			if skip[c.Seq] {
				ev.Data.Skipped = append(ev.Data.Skipped, Skipped{
					Seq: c.Seq, Op: c.Op, KeyBytes: len(changes[i].Object.Key), Reason: ReasonTooLarge,
				})
				continue
			}
			kept = append(kept, c)
		}
		ev.Data.Changes = kept
	}
	return &batch{ev: ev, changes: changes, skip: skip}
}

// split answers a rejection of b as too big: later events are cut below
// its size, and b is replaced by the event of the first half of its
// range (the rest is cut again from the outbox), or, for a range of one,
// by the event naming that change as skipped.
func (p *Publisher) split(ctx context.Context, sourceID string, b *batch, cause error) *batch {
	if msg, err := p.messageOf(sourceID, b); err == nil {
		size := int64(len(msg.Data) + headroom + len(b.ev.ID))
		for {
			cur := p.rejected.Load()
			if cur > 0 && cur <= size-1 || p.rejected.CompareAndSwap(cur, size-1) {
				break
			}
		}
	}
	if len(b.changes) > 1 {
		half := b.changes[:len(b.changes)/2]
		p.log.Warn("event rejected as too big; publishing its range in halves", "source", sourceID, "id", b.ev.ID,
			"changes", len(b.changes), "firstSeq", b.ev.Data.FirstSeq, "lastSeq", b.ev.Data.LastSeq, "err", cause)
		return p.batchOf(sourceID, half, b.skip)
	}
	if b.skip[b.changes[0].Seq] {
		// Even the event naming the change as skipped was refused: the
		// limit is absurdly small. Keep trying rather than lose track.
		p.log.Error("event of one skipped change rejected as too big; retrying", "source", sourceID, "id", b.ev.ID, "err", cause)
		retry.Sleep(ctx, pauseBackoff.Delay(1))
		return b
	}
	return p.batchOf(sourceID, b.changes, map[uint64]bool{b.changes[0].Seq: true})
}

// tooBig says whether err is NATS or JetStream refusing a message for its
// size: the same message will never be accepted.
func tooBig(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == codeMsgTooBig {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "maximum payload") || strings.Contains(s, "message size exceeds maximum")
}

func encodedLen(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}
