package s3

import (
	"github.com/imgly/syncer/notify"
)

// skipReasons maps this parser's skip kinds onto notify's one vocabulary.
var skipReasons = map[SkipKind]notify.SkipReason{
	SkipIgnored:   notify.SkipUnsupported,
	SkipTest:      notify.SkipTest,
	SkipMalformed: notify.SkipMalformed,
}

// parse is the parser the SQS driver and the webhook plug into the kernel:
// Parse, with its skips in notify's vocabulary. Events of every bucket are
// returned: the Router decides which source (if any) watches a bucket.
func parse(body []byte) (notify.Parsed, error) {
	res, err := Parse(body)
	if err != nil {
		return notify.Parsed{}, err
	}
	p := notify.Parsed{Events: res.Events, Format: string(res.Format), Skips: make([]notify.Skip, len(res.Skips))}
	if res.Inner != "" {
		p.Format += "/" + string(res.Inner)
	}
	for i, s := range res.Skips {
		p.Skips[i] = notify.Skip{Reason: skipReasons[s.Kind], Code: string(s.Kind), Type: s.Name, Bucket: s.Bucket, Key: s.Key, Detail: s.Reason}
	}
	return p, nil
}
