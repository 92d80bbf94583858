package azure

import (
	"github.com/imgly/syncer/notify"
)

// parse is the parser the queue driver and the webhook plug into the
// kernel: Parse, whose skips are in notify's vocabulary already. Events of every
// container are returned: the Router routes them to the sources that watch
// their container (one queue may serve several sources) and counts the rest.
func parse(body []byte) (notify.Parsed, error) {
	res, err := Parse(body)
	if err != nil {
		return notify.Parsed{}, err
	}
	p := notify.Parsed{Events: res.Events, Format: "eventgrid", Skips: res.Skips}
	return p, nil
}
