package s3

import (
	"github.com/imgly/syncer/notify"
)

// parse is the parser the SQS driver and the webhook plug into the kernel:
// Parse, whose skips are in notify's vocabulary already. Events of every bucket are
// returned: the Router decides which source (if any) watches a bucket.
func parse(body []byte) (notify.Parsed, error) {
	res, err := Parse(body)
	if err != nil {
		return notify.Parsed{}, err
	}
	p := notify.Parsed{Events: res.Events, Format: string(res.Format), Skips: res.Skips}
	if res.Inner != "" {
		p.Format += "/" + string(res.Inner)
	}
	return p, nil
}
