package scheduler

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// many is n items of one account with durations from dur(i).
func many(n int, dur func(i int) time.Duration) []Item {
	out := make([]Item, n)
	for i := range out {
		out[i] = Item{Key: fmt.Sprintf("infra/stacks/s%03d/default", i), Expected: dur(i)}
	}
	return out
}

func minutes(m int) func(int) time.Duration {
	return func(int) time.Duration { return time.Duration(m) * time.Minute }
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestSlots(t *testing.T) {
	loc := berlin(t)
	nightly := Window{Start: time.Hour, End: 5 * time.Hour}
	length := func(w Window, day time.Time) time.Duration {
		start, end := w.On(day)
		return end.Sub(start)
	}
	springForward := time.Date(2026, 3, 29, 0, 0, 0, 0, loc) // 02:00 becomes 03:00
	fallBack := time.Date(2026, 10, 25, 0, 0, 0, 0, loc)     // 03:00 becomes 02:00 again

	tests := []struct {
		name   string
		window time.Duration
		items  []Item
		// fit: every run ends inside the window, and the runs of an
		// account whose budget lets one run at a time do not overlap.
		fit bool
		// longestFirst: within an account, a longer run never starts
		// after a shorter one.
		longestFirst bool
		// minSpan: the first and the last start are at least this far apart.
		minSpan time.Duration
	}{
		{name: "no items", window: 4 * time.Hour, fit: true},
		{name: "one run", window: 4 * time.Hour, items: many(1, minutes(30)), fit: true},
		{name: "a hundred one-minute runs spread over four hours", window: 4 * time.Hour,
			items: many(100, minutes(1)), fit: true, minSpan: 3 * time.Hour},
		{name: "all fit: long and short runs end inside the window", window: 4 * time.Hour,
			items: many(40, func(i int) time.Duration { return time.Duration(1+i%7*i%5) * time.Minute }), fit: true, minSpan: 2 * time.Hour},
		{name: "exactly the window's worth of work", window: time.Hour, items: many(60, minutes(1)), fit: true},
		{name: "never-run workspaces: the hash alone places them", window: 4 * time.Hour,
			items: many(50, minutes(0)), fit: true, minSpan: 3 * time.Hour},
		{name: "never-run workspaces count as the mean of the known", window: time.Hour,
			items: append(many(10, minutes(3)), Item{Key: "new/a"}, Item{Key: "new/b"}), fit: true},
		{name: "more work than the window: all inside, longest first", window: 4 * time.Hour,
			items: many(500, func(i int) time.Duration { return time.Duration(1+i%9) * time.Minute }), longestFirst: true, minSpan: 3 * time.Hour},
		{name: "one run longer than the window starts at its start", window: time.Hour,
			items: append(many(3, minutes(10)), Item{Key: "huge", Expected: 3 * time.Hour}), longestFirst: true},
		{name: "accounts are spread apart", window: time.Hour,
			items: append(
				accountOf("prod", 0, many(30, minutes(2))),
				accountOf("dev", 0, many(30, minutes(2)))...), fit: true},
		{name: "an account whose budget lets two runs overlap", window: time.Hour,
			items: accountOf("prod", 2, many(50, minutes(2))), fit: true, minSpan: 45 * time.Minute},
		{name: "a NaN weight counts as one", window: time.Hour,
			items: accountOf("prod", nanWeight(), many(20, minutes(2))), fit: true},
		{name: "DST: 01:00-05:00 in Berlin on the day the clock springs forward lasts three hours",
			window: length(nightly, springForward), items: many(60, minutes(3)), fit: true},
		{name: "DST: the same window on the day the clock falls back lasts five hours",
			window: length(nightly, fallBack), items: many(60, minutes(5)), fit: true},
		{name: "DST: more work than the short day's window", window: length(nightly, springForward),
			items: many(60, minutes(4)), longestFirst: true},
		{name: "an empty window puts everything at its start", window: 0, items: many(3, minutes(1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Slots(tt.window, tt.items)
			if len(got) != len(tt.items) {
				t.Fatalf("%d slots for %d items", len(got), len(tt.items))
			}
			// Deterministic, whatever the order of the items.
			shuffled := append([]Item(nil), tt.items...)
			rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			again := Slots(tt.window, shuffled)
			for k, v := range got {
				if again[k] != v {
					t.Fatalf("slot of %s is %v, then %v with the items in another order", k, v, again[k])
				}
			}
			var first, last time.Duration = tt.window, 0
			for _, it := range tt.items {
				s, ok := got[it.Key]
				switch {
				case !ok:
					t.Fatalf("no slot for %s", it.Key)
				case tt.window <= 0 && s != 0:
					t.Errorf("slot of %s = %v in an empty window", it.Key, s)
				case tt.window > 0 && (s < 0 || s >= tt.window):
					t.Errorf("slot of %s = %v, outside the window [0, %v)", it.Key, s, tt.window)
				}
				first, last = min(first, s), max(last, s)
			}
			if len(tt.items) > 1 && last-first < tt.minSpan {
				t.Errorf("starts span %v, want at least %v", last-first, tt.minSpan)
			}
			if tt.fit {
				checkFit(t, tt.window, tt.items, got)
			}
			if tt.longestFirst {
				checkLongestFirst(t, tt.items, got)
			}
		})
	}
}

func accountOf(account string, weight float64, items []Item) []Item {
	for i := range items {
		items[i].Key = account + "/" + items[i].Key
		items[i].Account, items[i].Weight = account, weight
	}
	return items
}

func nanWeight() float64 {
	zero := 0.0
	return zero / zero
}

// checkFit: every run ends inside the window; runs of an account without
// a budget that lets them overlap do not.
func checkFit(t *testing.T, window time.Duration, items []Item, got map[string]time.Duration) {
	t.Helper()
	mean := meanKnown(items)
	byAccount := map[string][]Item{}
	for _, it := range items {
		d := it.Expected
		if d <= 0 {
			d = mean
		}
		if end := got[it.Key] + d; end > window {
			t.Errorf("%s (%v) starts at %v and ends at %v, after the window's %v", it.Key, d, got[it.Key], end, window)
		}
		it.Expected = d
		byAccount[it.Account] = append(byAccount[it.Account], it)
	}
	for account, g := range byAccount {
		if g[0].Weight > 1 {
			continue
		}
		sort.Slice(g, func(i, j int) bool { return got[g[i].Key] < got[g[j].Key] })
		for i := 1; i < len(g); i++ {
			if prevEnd := got[g[i-1].Key] + g[i-1].Expected; prevEnd > got[g[i].Key]+time.Microsecond {
				t.Errorf("account %q: %s starts at %v, before %s ends at %v", account, g[i].Key, got[g[i].Key], g[i-1].Key, prevEnd)
			}
		}
	}
}

func checkLongestFirst(t *testing.T, items []Item, got map[string]time.Duration) {
	t.Helper()
	for _, a := range items {
		for _, b := range items {
			if a.Account == b.Account && a.Expected > b.Expected && got[a.Key] > got[b.Key] {
				t.Fatalf("%s (%v) starts at %v, after the shorter %s (%v) at %v", a.Key, a.Expected, got[a.Key], b.Key, b.Expected, got[b.Key])
			}
		}
	}
}

// TestSlotsStable: a workspace added or removed moves every other slot by
// at most its own expected duration; a changed duration, by at most the
// change.
func TestSlotsStable(t *testing.T) {
	base := many(80, func(i int) time.Duration { return time.Duration(1+i%4) * time.Minute })
	window := 4 * time.Hour
	before := Slots(window, base)
	tests := []struct {
		name  string
		items []Item
		bound time.Duration
	}{
		{"one added", append(append([]Item(nil), base...), Item{Key: "infra/stacks/new/default", Expected: 7 * time.Minute}), 7 * time.Minute},
		{"one removed", append(append([]Item(nil), base[:40]...), base[41:]...), base[40].Expected},
		{"one slower by two minutes", func() []Item {
			c := append([]Item(nil), base...)
			c[10].Expected += 2 * time.Minute
			return c
		}(), 2 * time.Minute},
		{"another account's workspace added", append(append([]Item(nil), base...), Item{Key: "dev/x", Account: "dev", Expected: time.Hour}), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := Slots(window, tt.items)
			moved := 0
			for _, it := range base {
				a, ok := after[it.Key]
				if !ok {
					continue
				}
				d := a - before[it.Key]
				if d < 0 {
					d = -d
				}
				if d > tt.bound+time.Microsecond {
					t.Errorf("%s moved by %v, more than %v", it.Key, d, tt.bound)
				}
				if d > 0 {
					moved++
				}
			}
			if tt.bound > 0 && moved == 0 {
				t.Errorf("no slot moved: the change was not seen")
			}
		})
	}
}
