package scheduler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/robfig/cron/v3"
)

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func mustParse(t *testing.T, spec string) cron.Schedule {
	s, err := parser.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJitterSpreadsNightlyRuns(t *testing.T) {
	s := New(5*time.Minute, func(string) {})
	s.clock = clockwork.NewFakeClockAt(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	nightly := mustParse(t, "0 2 * * *")
	seconds := map[int64]bool{}
	for i := 0; i < 500; i++ {
		key := fmt.Sprintf("infra/stacks/s%03d/default", i)
		s.Set(key, "0 2 * * *", nightly, time.UTC)
		next := s.Next(key)
		base := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
		if next.Before(base) || next.After(base.Add(5*time.Minute)) {
			t.Fatalf("%s next = %v, want within 5m after %v", key, next, base)
		}
		seconds[next.Unix()] = true
		// Deterministic: the same key gets the same time.
		s.Remove(key)
		s.Set(key, "0 2 * * *", nightly, time.UTC)
		if again := s.Next(key); !again.Equal(next) {
			t.Fatalf("jitter is not deterministic: %v then %v", next, again)
		}
	}
	if len(seconds) < 200 {
		t.Errorf("500 nightly workspaces start in only %d distinct seconds", len(seconds))
	}
}

func TestTimezone(t *testing.T) {
	s := New(0, func(string) {})
	s.clock = clockwork.NewFakeClockAt(time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	berlin, _ := time.LoadLocation("Europe/Berlin")
	s.Set("k", "0 2 * * *", mustParse(t, "0 2 * * *"), berlin)
	// 02:00 in Berlin in summer is 00:00 UTC: the next one is the day after.
	if got, want := s.Next("k").UTC(), time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next = %v, want %v", got, want)
	}
}

func TestRunFiresDueWorkspaces(t *testing.T) {
	var mu sync.Mutex
	fired := map[string]int{}
	s := New(time.Minute, func(k string) {
		mu.Lock()
		fired[k]++
		mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	s.Set("fast", "@every 1s", mustParse(t, "@every 1s"), nil)
	s.Set("slow", "@every 1h", mustParse(t, "@every 1h"), nil)
	time.Sleep(3500 * time.Millisecond)
	s.Remove("fast")
	mu.Lock()
	n := fired["fast"]
	mu.Unlock()
	// Three in 3.5 s; a loaded machine may delay one past the end.
	if n < 2 || n > 4 {
		t.Errorf("an @every 1s schedule fired %d times in 3.5s", n)
	}
	if fired["slow"] != 0 {
		t.Errorf("an hourly schedule fired")
	}
	if s.Len() != 1 {
		t.Errorf("len = %d after remove", s.Len())
	}
}

// never is a schedule with no next time, as robfig/cron returns for a cron
// that matches nothing ("0 0 30 2 *"). It counts how often it is asked.
type never struct{ calls *atomic.Int64 }

func (n never) Next(time.Time) time.Time {
	n.calls.Add(1)
	return time.Time{}
}

// once fires at one time, then never again.
type once struct {
	at    time.Time
	calls *atomic.Int64
}

func (o once) Next(t time.Time) time.Time {
	o.calls.Add(1)
	if t.Before(o.at) {
		return o.at
	}
	return time.Time{}
}

func TestScheduleThatNeverFiresDelaysNoOther(t *testing.T) {
	var neverCalls, onceCalls atomic.Int64
	fired := make(chan string, 100)
	s := New(time.Minute, func(k string) { fired <- k })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()

	// Set runs in a goroutine: before schedules could be parked, Set itself
	// looped forever under the lock, and the test must fail, not hang.
	registered := make(chan struct{})
	start := time.Now()
	go func() {
		s.Set("infra/stacks/feb30/default", "0 0 30 2 *", never{&neverCalls}, nil)
		s.Set("infra/stacks/once/default", "once", once{start.Add(500 * time.Millisecond), &onceCalls}, nil)
		s.Set("infra/stacks/web/default", "@every 1s", mustParse(t, "@every 1s"), nil)
		close(registered)
	}()
	select {
	case <-registered:
	case <-time.After(5 * time.Second):
		t.Fatal("Set of a schedule that never fires did not return")
	}
	if next := s.Next("infra/stacks/feb30/default"); !next.IsZero() {
		t.Errorf("next of a schedule that never fires = %v, want zero", next)
	}

	// The every-second schedule fires on time, three times in 3.5 s; the
	// one-off fires once; the one that never fires, never.
	deadline := time.After(3500 * time.Millisecond)
	count := map[string]int{}
	var firstWeb time.Duration
wait:
	for {
		select {
		case k := <-fired:
			count[k]++
			if k == "infra/stacks/web/default" && count[k] == 1 {
				firstWeb = time.Since(start)
			}
		case <-deadline:
			break wait
		}
	}
	if n := count["infra/stacks/web/default"]; n < 2 || n > 4 {
		t.Errorf("the every-second schedule fired %d times in 3.5 s", n)
	}
	// Due after one second; a loaded machine may add a little.
	if firstWeb == 0 || firstWeb > 1500*time.Millisecond {
		t.Errorf("the every-second schedule first fired after %v, want about 1s", firstWeb)
	}
	if n := count["infra/stacks/once/default"]; n != 1 {
		t.Errorf("the one-off schedule fired %d times, want 1", n)
	}
	if n := count["infra/stacks/feb30/default"]; n != 0 {
		t.Errorf("the schedule that never fires fired %d times", n)
	}
	// Parked, not polled: a busy loop would ask millions of times.
	if n := neverCalls.Load(); n > 5 {
		t.Errorf("the schedule that never fires was asked for its next time %d times", n)
	}
	if n := onceCalls.Load(); n > 10 {
		t.Errorf("the one-off schedule was asked for its next time %d times", n)
	}
	if s.Len() != 3 {
		t.Errorf("len = %d, want 3: parked schedules stay registered", s.Len())
	}

	// A parked workspace given a schedule that fires is queued again;
	// removing a parked one works.
	s.Set("infra/stacks/feb30/default", "@every 1s", mustParse(t, "@every 1s"), nil)
	s.Remove("infra/stacks/once/default")
	s.Remove("infra/stacks/web/default")
	timeout := time.After(3 * time.Second)
refire:
	for {
		select {
		case k := <-fired:
			if k == "infra/stacks/feb30/default" {
				break refire
			}
		case <-timeout:
			t.Error("a parked workspace given a new schedule did not fire")
			break refire
		}
	}
	if s.Len() != 1 {
		t.Errorf("len = %d after removing two, want 1", s.Len())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Error("Run did not return after cancel")
	}
}
