package notify

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// applier fails any Apply that contains the key "bad" and records the
// calls it gets.
type applier struct{ calls [][]string }

func (a *applier) Apply(_ context.Context, evs []Event) error {
	var keys []string
	for _, e := range evs {
		keys = append(keys, e.Key)
	}
	a.calls = append(a.calls, keys)
	if slices.Contains(keys, "bad") {
		return errors.New("cannot apply bad")
	}
	return nil
}

func msgs(keys ...string) [][]Event {
	var out [][]Event
	for _, k := range keys {
		out = append(out, []Event{{Key: k}})
	}
	return out
}

func TestApplyEach(t *testing.T) {
	a := &applier{}
	if errs := ApplyEach(context.Background(), a, msgs("a", "b")); errs[0] != nil || errs[1] != nil || len(a.calls) != 1 {
		t.Fatalf("good batch: errs %v, calls %v; want one call", errs, a.calls)
	}

	a = &applier{}
	errs := ApplyEach(context.Background(), a, msgs("a", "bad", "c"))
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("batch with a bad message: errs %v, want only the second failed", errs)
	}
	if len(a.calls) != 4 {
		t.Fatalf("calls %v: want the batch, then each message", a.calls)
	}

	a = &applier{}
	if errs := ApplyEach(context.Background(), a, msgs("bad")); errs[0] == nil || len(a.calls) != 1 {
		t.Fatalf("one bad message: errs %v, calls %v; want one failed call", errs, a.calls)
	}
}

func TestHexSequencer(t *testing.T) {
	for in, want := range map[string]string{
		"0A":      "000a",
		" a ":     "000a",
		"00000ff": "00ff", // leading zeros do not count towards the width
		"":        "",
		"0":       "", // all zeros: no order
		"12g4":    "",
		"fffff":   "", // wider than 4
	} {
		got, ok := HexSequencer(in, 4)
		if got != want || ok != (want != "") {
			t.Errorf("HexSequencer(%q, 4) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
