package limiter

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// quiet never samples on its own: tests step it by hand.
func quiet(o Options) *Limiter {
	o.Interval = time.Hour
	o.System = fixed{}
	return New(o)
}

// fixed is a machine whose readings never change: every sample unknown.
type fixed struct{}

func (fixed) Read() (Reading, error) { return Reading{}, nil }

func TestAdmit(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type run struct {
		at       int // ms after t0
		account  string
		requests int
		wait     time.Duration
	}
	tests := []struct {
		name      string
		budgets   []Budget
		throttled string // an account a run reported throttling on, before the runs
		runs      []run
	}{
		{"runs spread at the budget once the bucket is empty", []Budget{{"aws-prod", 20}}, "", []run{
			{0, "aws-prod", 10, 0},
			{0, "aws-prod", 10, 0}, // one second of the budget at once
			{0, "aws-prod", 10, 500 * time.Millisecond},
			{0, "aws-prod", 10, time.Second},
			{250, "aws-prod", 10, 1250 * time.Millisecond},
		}},
		{"a quiet account refills", []Budget{{"aws-prod", 20}}, "", []run{
			{0, "aws-prod", 20, 0},
			{1000, "aws-prod", 20, 0},
			{1500, "aws-prod", 20, 500 * time.Millisecond},
		}},
		{"a run larger than the bucket waits for a bucket and leaves debt", []Budget{{"aws-prod", 20}}, "", []run{
			{0, "aws-prod", 50, 0},
			{0, "aws-prod", 10, 2 * time.Second},
		}},
		{"accounts do not share a budget; one without any never waits", []Budget{{"aws-prod", 10}, {"aws-dev", 10}}, "", []run{
			{0, "aws-prod", 10, 0},
			{0, "aws-dev", 10, 0},
			{0, "aws-prod", 10, time.Second},
			{0, "gcp", 1000, 0},
			{0, "", 1000, 0},
		}},
		{"after throttling the budget in force is halved", []Budget{{"aws-prod", 20}}, "aws-prod", []run{
			{0, "aws-prod", 20, 0},
			{0, "aws-prod", 10, time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0
			l := quiet(Options{Budgets: tt.budgets, Now: func() time.Time { return now }})
			if tt.throttled != "" {
				l.Report("k", tt.throttled, 0, 1)
			}
			for i, r := range tt.runs {
				now = at(r.at)
				if got, _ := l.reserve(now, r.account, r.requests); got != r.wait {
					t.Errorf("run %d (%d requests of %q at %dms) waits %v, want %v", i, r.requests, r.account, r.at, got, r.wait)
				}
			}
		})
	}
}

func TestAdmitCancelledGivesTokensBack(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	l := quiet(Options{Budgets: []Budget{{"aws-prod", 10}}, Now: func() time.Time { return t0 }})
	if wait, _ := l.reserve(t0, "aws-prod", 10); wait != 0 {
		t.Fatalf("the first run waits %v", wait)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// This one would wait a second; it gives up instead.
	if err := l.Admit(ctx, "aws-prod", 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("Admit with an ended context: %v", err)
	}
	if wait, _ := l.reserve(t0, "aws-prod", 10); wait != time.Second {
		t.Errorf("after a cancelled admission the next run waits %v, want 1s (the cancelled run's tokens back)", wait)
	}
	// Without a budget, Admit returns at once even with an ended context.
	if err := l.Admit(ctx, "gcp", 10); err != nil {
		t.Errorf("an account without a budget: %v", err)
	}
}

func TestParallelism(t *testing.T) {
	l := quiet(Options{Budgets: []Budget{{"tiny", 4}, {"big", 80}}})
	for _, tt := range []struct {
		account string
		want    int
	}{{"tiny", 4}, {"big", DefaultParallelism}, {"unknown", DefaultParallelism}} {
		if got := l.Parallelism(tt.account); got != tt.want {
			t.Errorf("Parallelism(%q) = %d, want %d", tt.account, got, tt.want)
		}
	}
	l.Report("k", "big", 40, 2)
	l.Report("k", "gcp", 40, 1)
	if got := l.Parallelism("big"); got != 5 {
		t.Errorf("after throttling, Parallelism(big) = %d, want 5", got)
	}
	if got := l.Parallelism("gcp"); got != 5 {
		t.Errorf("after throttling, Parallelism(gcp) = %d, want 5", got)
	}
	for range DefaultThresholds.Cooldown + 5 {
		l.step(Sample{CPU: -1, Mem: -1})
	}
	if got := l.Parallelism("big"); got != DefaultParallelism {
		t.Errorf("once calm, Parallelism(big) = %d, want %d again", got, DefaultParallelism)
	}
}

func TestEstimate(t *testing.T) {
	l := quiet(Options{})
	state := func(n int, ok bool) func() (int, bool) { return func() (int, bool) { return n, ok } }
	if got := l.Estimate("a", "aws", state(0, false)); got != DefaultRequests {
		t.Errorf("nothing known: %d, want %d", got, DefaultRequests)
	}
	if got := l.Estimate("a", "aws", state(42, true)); got != 42 {
		t.Errorf("from the local state: %d, want 42", got)
	}
	l.Report("a", "aws", 30, 0)
	l.Report("b", "aws", 11, 0)
	if got := l.Estimate("a", "aws", state(42, true)); got != 30 {
		t.Errorf("after a run: %d, want its 30 requests", got)
	}
	if got := l.Estimate("c", "aws", state(0, false)); got != 21 {
		t.Errorf("a new workspace of the account: %d, want the account's average 21", got)
	}
	if got := l.Estimate("c", "gcp", nil); got != DefaultRequests {
		t.Errorf("a new workspace of a new account: %d, want %d", got, DefaultRequests)
	}
}

func TestAcquireInOrder(t *testing.T) {
	l := quiet(Options{Floor: 2, Ceiling: 2})
	ctx := context.Background()
	r1, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := l.Acquire(ctx)
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range 3 {
		// One at a time into the queue, so their order is known.
		queued := make(chan struct{})
		wg.Go(func() {
			go func() {
				for {
					l.mu.Lock()
					n := len(l.waiters)
					l.mu.Unlock()
					if n == i+1 {
						close(queued)
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
			rel, err := l.Acquire(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			rel()
		})
		<-queued
	}
	// A waiter that gives up leaves the queue without a slot.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire past its deadline: %v", err)
	}
	r1()
	r1() // a second release gives nothing back
	wg.Wait()
	if len(order) != 3 || order[0] != 0 || order[1] != 1 || order[2] != 2 {
		t.Errorf("waiters got slots in order %v, want [0 1 2]", order)
	}
	l.mu.Lock()
	inUse := l.inUse
	l.mu.Unlock()
	if inUse != 1 {
		t.Errorf("%d slots in use after the waiters are done, want 1 (r2's)", inUse)
	}
	r2()
	if p := l.Peak(); p != 2 {
		t.Errorf("peak %d, want 2", p)
	}
}

// load is a machine whose CPU is as busy as its field says.
type load struct {
	mu   sync.Mutex
	busy float64
	r    Reading
}

func (m *load) Read() (Reading, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.r.CPUTotal += 1000
	m.r.CPUBusy += uint64(m.busy * 1000)
	m.r.MemTotal, m.r.MemAvailable = 100, 80
	return m.r, nil
}

func (m *load) set(busy float64) {
	m.mu.Lock()
	m.busy = busy
	m.mu.Unlock()
}

// TestAdaptsToLoad runs the sampler for real on a machine whose load the
// test sets: with the CPU idle and runs waiting the limit climbs from the
// floor to the ceiling; a saturated CPU brings it back down to the floor.
func TestAdaptsToLoad(t *testing.T) {
	m := &load{busy: 0.2}
	l := New(Options{Floor: 2, Ceiling: 16, Interval: 5 * time.Millisecond, System: m})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	held := make(chan func(), 32)
	for range 20 {
		wg.Go(func() {
			rel, err := l.Acquire(ctx)
			if err == nil {
				held <- rel
			}
		})
	}
	waitFor(t, "the limit to reach the ceiling", func() bool { return l.Limit() == 16 })
	if p := l.Peak(); p != 16 {
		t.Errorf("peak %d, want 16", p)
	}
	m.set(1)
	waitFor(t, "the limit to fall to the floor", func() bool { return l.Limit() == 2 })
	cancel()
	wg.Wait()
	close(held)
	for rel := range held {
		rel()
	}
	waitFor(t, "the sampler to stop", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return !l.sampling
	})
}

func TestThrottlingShrinksTheLimit(t *testing.T) {
	var seen []string
	l := quiet(Options{Floor: 2, Ceiling: 32})
	l.Observe(func(account string, n int) { seen = append(seen, account) })
	l.st.Limit = 16
	l.Report("k", "aws-prod", 20, 3)
	l.step(Sample{CPU: 0.1, Mem: 0.9})
	if got := l.Limit(); got != 8 {
		t.Errorf("after a throttled run the limit is %d, want 8", got)
	}
	if len(seen) != 1 || seen[0] != "aws-prod" {
		t.Errorf("observed %v, want the one throttled run of aws-prod", seen)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
