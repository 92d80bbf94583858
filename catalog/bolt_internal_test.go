package catalog

import bolt "go.etcd.io/bbolt"

// bolt is the bbolt file under a catalog opened by Open, for tests that
// look at or tamper with it directly.
func (c *Catalog) bolt() *bolt.DB { return c.b.(*boltCatalog).db }
