package main

import (
	"context"
	"fmt"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/kinds"
)

// storedOrder is the key order the catalog records for src, which is how
// its keys are laid out; for a source the catalog has not recorded (never
// opened) it is its kind's.
func storedOrder(ctx context.Context, cat *catalog.Catalog, src config.Source) (providers.Order, error) {
	o, ok, err := cat.RecordedOrder(ctx, src.ID)
	if err != nil || ok {
		return o, err
	}
	o, err = kinds.All().Order(src.Provider)
	if err != nil {
		return 0, fmt.Errorf("source %s: %w", src.ID, err)
	}
	return o, nil
}
