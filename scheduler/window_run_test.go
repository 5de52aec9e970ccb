package scheduler

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

type firing struct {
	key string
	at  time.Time
}

// harness runs a real Scheduler on a fake clock.
type harness struct {
	t     *testing.T
	s     *Scheduler
	clock *clockwork.FakeClock
	fired chan firing
}

func newHarness(t *testing.T, start time.Time) *harness {
	t.Helper()
	h := &harness{t: t, clock: clockwork.NewFakeClockAt(start), fired: make(chan firing, 1024)}
	h.s = New(5*time.Minute, func(k string) { h.fired <- firing{k, h.clock.Now()} })
	h.s.clock = h.clock
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.s.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

// next is the earliest next time of the registered workspaces, and which
// are due then.
func (h *harness) next() (time.Time, []string) {
	var at time.Time
	var keys []string
	for _, k := range h.s.Keys() {
		n := h.s.Next(k)
		switch {
		case n.IsZero():
		case at.IsZero() || n.Before(at):
			at, keys = n, []string{k}
		case n.Equal(at):
			keys = append(keys, k)
		}
	}
	return at, keys
}

// until moves the clock from due time to due time up to end, and returns
// what fired, in order.
func (h *harness) until(end time.Time) []firing {
	h.t.Helper()
	var out []firing
	for {
		at, keys := h.next()
		if at.IsZero() || at.After(end) {
			h.clock.Advance(end.Sub(h.clock.Now()))
			return out
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// Run waits on its timer: the clock can move.
		if err := h.clock.BlockUntilContext(ctx, 1); err != nil {
			cancel()
			h.t.Fatal("Run is not waiting on its timer")
		}
		cancel()
		h.clock.Advance(at.Sub(h.clock.Now()))
		// Wait for these; a workspace Run fired before next() saw it due
		// arrives among them.
		waiting := map[string]bool{}
		for _, k := range keys {
			waiting[k] = true
		}
		for len(waiting) > 0 {
			select {
			case f := <-h.fired:
				out = append(out, f)
				delete(waiting, f.key)
			case <-time.After(5 * time.Second):
				h.t.Fatalf("%v due at %v; not fired", keys, at)
			}
		}
	}
}

func TestWindowFiresOncePerDayAtTheSlot(t *testing.T) {
	loc := berlin(t)
	type ws struct {
		key      string
		expected time.Duration
	}
	fleet := func(n int, d func(int) time.Duration) []ws {
		out := make([]ws, n)
		for i := range out {
			out[i] = ws{fmt.Sprintf("infra/stacks/s%02d/default", i), d(i)}
		}
		return out
	}
	tests := []struct {
		name     string
		spec     string // the cron picking the days
		window   string
		loc      *time.Location
		from, to time.Time
		fleet    []ws
		picks    func(day time.Time) bool
	}{
		{name: "nightly over the night the clock springs forward", spec: "@daily", window: "01:00-05:00", loc: loc,
			from: time.Date(2026, 3, 26, 12, 0, 0, 0, loc), to: time.Date(2026, 4, 2, 12, 0, 0, 0, loc),
			fleet: fleet(12, func(i int) time.Duration { return time.Duration(5+i*3) * time.Minute }),
			picks: func(time.Time) bool { return true }},
		{name: "nightly over the night the clock falls back", spec: "@daily", window: "01:00-05:00", loc: loc,
			from: time.Date(2026, 10, 22, 12, 0, 0, 0, loc), to: time.Date(2026, 10, 29, 12, 0, 0, 0, loc),
			fleet: fleet(12, func(i int) time.Duration { return time.Duration(5+i*3) * time.Minute }),
			picks: func(time.Time) bool { return true }},
		{name: "a window past midnight", spec: "@daily", window: "22:00-02:00", loc: time.UTC,
			from: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), to: time.Date(2026, 6, 5, 12, 0, 0, 0, time.UTC),
			fleet: fleet(8, func(i int) time.Duration { return 25 * time.Minute }),
			picks: func(time.Time) bool { return true }},
		{name: "weekdays: the cron picks the day, the window the time", spec: "0 0 * * 1-5", window: "01:00-05:00", loc: loc,
			from: time.Date(2026, 6, 1, 12, 0, 0, 0, loc), to: time.Date(2026, 6, 15, 12, 0, 0, 0, loc),
			fleet: fleet(5, func(i int) time.Duration { return 10 * time.Minute }),
			picks: func(d time.Time) bool { return d.Weekday() != time.Saturday && d.Weekday() != time.Sunday }},
		{name: "more work than the window: still all inside", spec: "@daily", window: "01:00-03:00", loc: loc,
			from: time.Date(2026, 6, 1, 12, 0, 0, 0, loc), to: time.Date(2026, 6, 4, 12, 0, 0, 0, loc),
			fleet: fleet(30, func(i int) time.Duration { return time.Duration(10+i) * time.Minute }),
			picks: func(time.Time) bool { return true }},
		{name: "never-run workspaces", spec: "@daily", window: "01:00-05:00", loc: loc,
			from: time.Date(2026, 6, 1, 12, 0, 0, 0, loc), to: time.Date(2026, 6, 4, 12, 0, 0, 0, loc),
			fleet: fleet(6, func(i int) time.Duration { return 0 }),
			picks: func(time.Time) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWindow(tt.window)
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, tt.from)
			var items []Item
			for _, x := range tt.fleet {
				h.s.SetSpec(x.key, Spec{Text: tt.spec, Schedule: mustParse(t, tt.spec), Location: tt.loc, Window: &w, Expected: x.expected})
				items = append(items, Item{Key: x.key, Expected: x.expected})
			}
			// A cron workspace beside them keeps its own times.
			h.s.Set("infra/stacks/cron/default", "30 12 * * *", mustParse(t, "30 12 * * *"), tt.loc)
			got := h.until(tt.to)

			// What each picked day's window should see: every workspace
			// once, at its slot in that day's window.
			want := map[string]bool{}
			for day := tt.from.AddDate(0, 0, -1); !day.After(tt.to); day = day.AddDate(0, 0, 1) {
				start, end := w.On(day)
				if !tt.picks(day) || !start.After(tt.from) || end.After(tt.to) {
					continue
				}
				slots := Slots(end.Sub(start), items)
				for _, x := range tt.fleet {
					want[x.key+"@"+start.Add(slots[x.key]).UTC().Format(time.RFC3339Nano)] = true
				}
			}
			seen := map[string]bool{}
			perWindow := map[string]int{}
			for _, f := range got {
				if f.key == "infra/stacks/cron/default" {
					// 12:30 plus its jitter (at most five minutes).
					if l := f.at.In(tt.loc); l.Hour() != 12 || l.Minute() < 30 || l.Minute() >= 35 {
						t.Errorf("the cron workspace fired at %v", l)
					}
					continue
				}
				id := f.key + "@" + f.at.UTC().Format(time.RFC3339Nano)
				if !want[id] {
					t.Errorf("%s fired at %v: not its slot on a picked day", f.key, f.at.In(tt.loc))
				}
				seen[id] = true
				// Inside the window of the day it started on, or of the day before.
				local := f.at.In(tt.loc)
				inside := false
				for _, back := range []int{0, -1} {
					if start, end := w.On(local.AddDate(0, 0, back)); !f.at.Before(start) && f.at.Before(end) {
						inside = true
						perWindow[f.key+"@"+start.Format(time.RFC3339)]++
					}
				}
				if !inside {
					t.Errorf("%s fired at %v, outside the window %s", f.key, local, w)
				}
			}
			for id := range want {
				if !seen[id] {
					t.Errorf("did not fire: %s", id)
				}
			}
			for k, n := range perWindow {
				if n != 1 {
					t.Errorf("%s: fired %d times in one window", k, n)
				}
			}
			if len(want) == 0 {
				t.Fatal("the case expects no firing: it tests nothing")
			}
		})
	}
}

// TestWindowSlotsMoveMidWindow: when the slots move during a window (a
// run finished and its duration changed the spread), a workspace that has
// fired does not fire again in it, and one whose slot moved into the past
// fires at once, still inside it.
func TestWindowSlotsMoveMidWindow(t *testing.T) {
	loc := berlin(t)
	w := Window{Start: time.Hour, End: 5 * time.Hour}
	h := newHarness(t, time.Date(2026, 6, 1, 0, 0, 0, 0, loc))
	daily := mustParse(t, "@daily")
	var keys []string
	for i := range 10 {
		k := fmt.Sprintf("infra/stacks/s%02d/default", i)
		keys = append(keys, k)
		h.s.SetSpec(k, Spec{Text: "nightly", Schedule: daily, Location: loc, Window: &w, Expected: 10 * time.Minute})
	}
	// Up to half of the first night's runs.
	var early []firing
	for len(early) < 5 {
		at, _ := h.next()
		early = append(early, h.until(at)...)
	}
	firedEarly := map[string]bool{}
	for _, f := range early {
		firedEarly[f.key] = true
	}
	// The ones still to run turn out long: they now go first, before now.
	moved := h.clock.Now()
	var waiting []string
	for _, k := range keys {
		if !firedEarly[k] {
			waiting = append(waiting, k)
			h.s.SetExpected(k, 10*time.Hour)
		}
	}
	rest := h.until(time.Date(2026, 6, 2, 12, 0, 0, 0, loc))
	count := map[string]int{}
	firedNow := 0
	for _, f := range append(early, rest...) {
		if second, _ := w.On(time.Date(2026, 6, 2, 0, 0, 0, 0, loc)); !f.at.Before(second) {
			continue // the second night
		}
		count[f.key]++
		if start, end := w.On(time.Date(2026, 6, 1, 0, 0, 0, 0, loc)); f.at.Before(start) || !f.at.Before(end) {
			t.Errorf("%s fired at %v, outside the window", f.key, f.at.In(loc))
		}
		if f.at.Equal(moved) {
			firedNow++
		}
	}
	for _, k := range keys {
		if count[k] != 1 {
			t.Errorf("%s fired %d times in the first night, want once", k, count[k])
		}
	}
	if firedNow == 0 {
		t.Errorf("no workspace whose slot moved into the past fired at once (waiting: %v)", waiting)
	}
	// The second night: every workspace once, the long ones first.
	second := map[string]time.Time{}
	for _, f := range rest {
		if start, _ := w.On(time.Date(2026, 6, 2, 0, 0, 0, 0, loc)); !f.at.Before(start) {
			if _, dup := second[f.key]; dup {
				t.Errorf("%s fired twice in the second night", f.key)
			}
			second[f.key] = f.at
		}
	}
	if len(second) != len(keys) {
		t.Errorf("%d workspaces fired in the second night, want %d", len(second), len(keys))
	}
	for _, long := range waiting {
		for k, at := range second {
			if firedEarly[k] && at.Before(second[long]) {
				t.Errorf("short %s ran at %v before long %s at %v", k, at, long, second[long])
			}
		}
	}
}

// TestWindowStableAcrossRestarts: two schedulers given the same
// workspaces in another order agree on every next time; removing one
// workspace spreads the others again.
func TestWindowStableAcrossRestarts(t *testing.T) {
	loc := berlin(t)
	w := Window{Start: 22 * time.Hour, End: 2 * time.Hour}
	start := time.Date(2026, 3, 28, 12, 0, 0, 0, loc)
	daily := mustParse(t, "@daily")
	var keys []string
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("infra/stacks/s%02d/default", i))
	}
	register := func(order []string) *Scheduler {
		s := New(time.Minute, func(string) {})
		s.clock = clockwork.NewFakeClockAt(start)
		for _, k := range order {
			s.SetSpec(k, Spec{Text: "nightly", Schedule: daily, Location: loc, Window: &w, Expected: time.Duration(len(k)%7+1) * time.Minute})
		}
		return s
	}
	a := register(keys)
	reversed := append([]string(nil), keys...)
	sort.Sort(sort.Reverse(sort.StringSlice(reversed)))
	b := register(reversed)
	winStart, winEnd := w.On(start)
	for _, k := range keys {
		na, nb := a.Next(k), b.Next(k)
		if !na.Equal(nb) {
			t.Errorf("%s: next %v, after a restart %v", k, na, nb)
		}
		if na.Before(winStart) || !na.Before(winEnd) {
			t.Errorf("%s: next %v is outside tonight's window %v to %v", k, na, winStart, winEnd)
		}
	}
	// Same spec again: nothing moves. Another removed: others move a little.
	before := a.Next(keys[1])
	a.SetSpec(keys[1], Spec{Text: "nightly", Schedule: daily, Location: loc, Window: &w, Expected: time.Duration(len(keys[1])%7+1) * time.Minute})
	if !a.Next(keys[1]).Equal(before) {
		t.Errorf("setting the same schedule again moved the next time")
	}
	a.Remove(keys[0])
	if d := a.Next(keys[1]).Sub(before); d < -8*time.Minute || d > 8*time.Minute {
		t.Errorf("removing one workspace moved another by %v", d)
	}
	if !a.Next(keys[0]).IsZero() || a.Len() != len(keys)-1 {
		t.Errorf("a removed workspace is still scheduled")
	}
	// A workspace without a window ignores SetExpected; one moved to cron
	// leaves the window.
	a.SetSpec(keys[2], Spec{Text: "0 3 * * *", Schedule: mustParse(t, "0 3 * * *"), Location: loc})
	a.SetExpected(keys[2], time.Hour)
	if n := a.Next(keys[2]).In(loc); n.Hour() != 3 || n.Minute() != 0 && n.Minute() > 1 {
		t.Errorf("a cron workspace's next = %v, want about 03:00", n)
	}
}
