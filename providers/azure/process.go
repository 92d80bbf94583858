package azure

import (
	"github.com/imgly/syncer/notify"
)

// skipReasons maps this parser's reasons onto notify's one vocabulary.
var skipReasons = map[Reason]notify.SkipReason{
	ReasonEventType: notify.SkipUnsupported,
	ReasonDirectory: notify.SkipUnsupported,
	ReasonEventGrid: notify.SkipUnsupported,
	ReasonMalformed: notify.SkipMalformed,
}

// parse is the parser the queue driver and the webhook plug into the
// kernel: Parse, with its skips in notify's vocabulary. Events of every
// container are returned: the Router routes them to the sources that watch
// their container (one queue may serve several sources) and counts the rest.
func parse(body []byte) (notify.Parsed, error) {
	res, err := Parse(body)
	if err != nil {
		return notify.Parsed{}, err
	}
	p := notify.Parsed{Events: res.Events, Format: "eventgrid", Skips: make([]notify.Skip, len(res.Skips))}
	for i, s := range res.Skips {
		detail := s.Detail
		if detail == "" {
			detail = string(s.Reason)
		}
		p.Skips[i] = notify.Skip{Reason: skipReasons[s.Reason], Code: string(s.Reason), Type: s.Type, ID: s.ID, Detail: detail}
	}
	return p, nil
}
