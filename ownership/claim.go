package ownership

import (
	"fmt"
	"sync"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/catalog/pgcatalog"
)

// Claim is a held lease as this process sees it.
type Claim struct {
	Lease  pgcatalog.Lease
	cancel func()

	mu sync.Mutex
	// deadline is when the lease surely still holds by this process's
	// (monotonic) clock: the start of the last successful acquire or
	// renew plus the TTL. The database set the expiry from its clock at
	// a later instant, so the true expiry is no earlier.
	deadline time.Time
	expires  time.Time // the expiry the database reported
	release  bool
}

func newClaim(l pgcatalog.Lease, deadline time.Time) *Claim {
	return &Claim{Lease: l, deadline: deadline, expires: l.Expires}
}

func (c *Claim) extend(deadline, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline, c.expires = deadline, expires
}

// Valid says whether the lease surely holds now: checked before each
// publish, so that a process that was paused (SIGSTOP, a long GC, a VM
// stall) past its lease does not publish what it had read before.
func (c *Claim) Valid() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Before(c.deadline)
}

// Check is Valid as an error wrapping catalog.ErrFenced.
func (c *Claim) Check() error {
	if c.Valid() {
		return nil
	}
	return fmt.Errorf("%w (lease of %s, token %d, not renewed in time)", catalog.ErrFenced, c.Lease.Source, c.Lease.Token)
}

// Expires is the lease's expiry as the database last reported it.
func (c *Claim) Expires() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.expires
}

func (c *Claim) releasing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.release
}

// stop cancels the source's work; the lease is given up once the work has
// stopped (conditionally on the token, so a lease already lost is left
// alone). A stopping claim is neither renewed nor counted in the share.
func (c *Claim) stop() {
	c.mu.Lock()
	c.release = true
	c.mu.Unlock()
	c.cancel()
}
