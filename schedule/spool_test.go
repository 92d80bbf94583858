package schedule

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

type spooled struct {
	key string
	seq uint64
}

func drainSpool(t *testing.T, s *spool) []spooled {
	t.Helper()
	var got []spooled
	if err := s.each(func(key string, seq uint64) error {
		got = append(got, spooled{key, seq})
		return nil
	}); err != nil {
		t.Fatalf("each: %v", err)
	}
	return got
}

func checkSpooled(t *testing.T, got, want []spooled) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("each returned %d candidates, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("candidate %d = {%q %d}, want {%q %d}", i, got[i].key, got[i].seq, want[i].key, want[i].seq)
		}
	}
}

func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("spill dir holds %d entries (first %q): the spool file must be unlinked at once", len(ents), ents[0].Name())
	}
}

func TestSpoolInMemory(t *testing.T) {
	dir := t.TempDir()
	s := newSpool(dir)
	defer s.close()
	if got := drainSpool(t, s); len(got) != 0 {
		t.Fatalf("empty spool returned %v", got)
	}
	var want []spooled
	for i := range memLimit - 1 {
		c := spooled{fmt.Sprintf("k%d", i), uint64(i) * 3}
		want = append(want, c)
		if err := s.add(c.key, c.seq); err != nil {
			t.Fatal(err)
		}
	}
	if s.file != nil {
		t.Fatal("spool spilled to a file below memLimit")
	}
	checkSpooled(t, drainSpool(t, s), want)
	if s.n != len(want) {
		t.Fatalf("n = %d, want %d", s.n, len(want))
	}
	emptyDir(t, dir)
}

func TestSpoolSpillsInOrder(t *testing.T) {
	dir := t.TempDir()
	s := newSpool(dir)
	defer s.close()

	// Keys of every shape: empty, arbitrary bytes (not UTF-8, NUL, varint-
	// looking bytes), long enough to span the file's write buffer, and
	// sequence numbers up to the largest.
	long := strings.Repeat("L", 70<<10)
	n := 2*memLimit + 123
	want := make([]spooled, 0, n)
	for i := range n {
		var key string
		switch i % 7 {
		case 0:
			key = fmt.Sprintf("key/%08d", i)
		case 1:
			key = ""
		case 2:
			key = string([]byte{0x00, 0xff, 0x80, byte(i), byte(i >> 8), 0xfe})
		case 3:
			key = "ä/\U0001F600/\uFF21 +%20"
		case 4:
			key = string([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
		case 5:
			if i%700 == 5 {
				key = long
			} else {
				key = "x"
			}
		case 6:
			key = "\x00"
		}
		seq := uint64(i)
		if i%11 == 0 {
			seq = 1<<64 - 1 - uint64(i)
		}
		want = append(want, spooled{key, seq})
		if err := s.add(key, seq); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
		if i == memLimit {
			if s.file == nil {
				t.Fatalf("no spill after %d candidates", i+1)
			}
			emptyDir(t, dir)
		}
	}
	if len(s.mem) >= memLimit {
		t.Fatalf("%d candidates held in memory, limit %d", len(s.mem), memLimit)
	}
	if s.n != n {
		t.Fatalf("n = %d, want %d", s.n, n)
	}
	checkSpooled(t, drainSpool(t, s), want)
	emptyDir(t, dir)
}

// Exactly memLimit candidates: all of them are in the file, none in memory.
func TestSpoolBoundary(t *testing.T) {
	for _, n := range []int{memLimit, memLimit + 1, 2 * memLimit, 2*memLimit + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			s := newSpool(dir)
			defer s.close()
			var want []spooled
			for i := range n {
				c := spooled{fmt.Sprint(i), uint64(i)}
				want = append(want, c)
				if err := s.add(c.key, c.seq); err != nil {
					t.Fatal(err)
				}
			}
			checkSpooled(t, drainSpool(t, s), want)
			emptyDir(t, dir)
		})
	}
}

func TestSpoolEachStops(t *testing.T) {
	s := newSpool(t.TempDir())
	defer s.close()
	for i := range memLimit + 10 {
		if err := s.add(fmt.Sprint(i), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	for _, stopAt := range []int{5, memLimit + 5} { // in the file part, then the memory part
		seen := 0
		err := s.each(func(string, uint64) error {
			if seen++; seen == stopAt {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || seen != stopAt {
			t.Fatalf("each with fn failing at %d: err %v after %d calls", stopAt, err, seen)
		}
	}
}

func TestSpoolBadDir(t *testing.T) {
	s := newSpool(t.TempDir() + "/missing")
	defer s.close()
	var err error
	for i := 0; i < memLimit && err == nil; i++ {
		err = s.add("k", 1)
	}
	if err == nil || !strings.Contains(err.Error(), "spool deletion candidates") {
		t.Fatalf("spilling into a missing dir: err = %v", err)
	}
}
