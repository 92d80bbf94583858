package azure

import (
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/notify/notifytest"
)

// The suite must be able to fail: each case is run, in a child test process,
// against a Storage Queue driver broken the way the case is there to catch
// (notifytest.BrokenDrivers), and the child must report that the case
// failed. A child is the only honest way: a failing *testing.T fails its
// parents.
const brokenEnv = "NOTIFYTEST_BROKEN"

func TestSuiteCatchesBrokenDrivers(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("in a child")
	}
	azuriteQueue(t)
	names := make([]string, 0, len(notifytest.BrokenDrivers))
	for name := range notifytest.BrokenDrivers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // the children mostly wait for a case to time out
			for _, c := range notifytest.BrokenDrivers[name].Cases {
				cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^TestBrokenQueue$/^"+c+"$", "-test.v", "-test.count=1")
				cmd.Env = append(os.Environ(), brokenEnv+"="+name)
				out, err := cmd.CombinedOutput()
				if err == nil {
					t.Errorf("%s: case %s passed against the broken driver:\n%s", name, c, out)
					continue
				}
				if !strings.Contains(string(out), "--- FAIL: TestBrokenQueue/"+c+" ") {
					t.Errorf("%s: case %s did not fail (%v):\n%s", name, c, err, out)
				}
			}
		})
	}
}

// TestBrokenQueue is the child: the suite against the driver named by
// brokenEnv.
func TestBrokenQueue(t *testing.T) {
	b, ok := notifytest.BrokenDrivers[os.Getenv(brokenEnv)]
	if !ok {
		t.Skip("run by TestSuiteCatchesBrokenDrivers")
	}
	h := queueHarness(b.Wrap)
	h.Wait = 5 * time.Second // each case fails by timing out; a passing one takes well under a second
	notifytest.Run(t, h)
}
