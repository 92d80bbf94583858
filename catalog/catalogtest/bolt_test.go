package catalogtest_test

import (
	"testing"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/catalog/catalogtest"
)

func openBolt(t *testing.T) *catalog.Catalog {
	c, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBolt(t *testing.T) { catalogtest.Run(t, openBolt) }
