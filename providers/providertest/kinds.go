package providertest

import (
	"errors"

	"github.com/imgly/syncer/providers"
)

// retryable reports whether err is of a kind a later attempt may cure
// (throttled, transient): what a cancelled call or a missing bucket must not
// be classified as.
func retryable(err error) bool {
	return errors.Is(err, providers.ErrThrottled) || errors.Is(err, providers.ErrTransient)
}
