// Package limiter decides how many terraform runs go at once, and when a
// run against a rate-limited cloud account may start.
//
// Real plans spend most of their time waiting on the cloud's API, so the
// number of CPUs is a poor limit, and a pass across many stacks of one
// account meets its API rate limit. Two limits work together:
//
//   - Slots (Acquire): an adaptive limit between a floor (the number of
//     CPUs) and a ceiling (trueline.hcl's limits { global }, check's
//     --parallel), sampled every second (Decide): it grows while runs wait,
//     the CPU and memory have room and no run reported throttling lately,
//     doubling until its first decrease and then one at a time; it shrinks
//     by half when a run reports throttling or memory is short, and by a
//     quarter when the CPU is saturated.
//   - Budgets (Admit): an account's requests per second (trueline.hcl's
//     budget blocks), a token bucket (golang.org/x/time/rate). A run of the
//     account takes as many tokens as requests it is expected to make
//     (Estimate: its last run's, else its local state's resources, else
//     the account's average) before it starts, so the runs of one account
//     spread out and the requests they make stay under the budget.
//
// A run reports what its output showed (Report, with Requests and
// Throttles): the requests refine the next estimate; throttling shrinks the
// slots, halves the account's -parallelism (Parallelism, terraform's 10 at
// most) and its budget in force, all of which climb back once the account
// is calm again.
package limiter

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/trueline/trueline/internal/ctxtime"
	"golang.org/x/time/rate"
)

// DefaultParallelism is terraform's own -parallelism, the most a run gets.
const DefaultParallelism = 10

// DefaultRequests is the requests a run is expected to make when nothing is
// known of its workspace or its account.
const DefaultRequests = 20

// DefaultInterval is how often the adaptive limit samples the machine.
const DefaultInterval = time.Second

// maxHistory bounds the workspaces whose last request count is kept; past
// it the history starts over.
const maxHistory = 100_000

// Budget is the API requests a second trueline lets the runs of one
// account make.
type Budget struct {
	Account           string
	RequestsPerSecond float64
}

// Options configure a Limiter.
type Options struct {
	// Ceiling is the most runs at once; zero means the number of CPUs.
	Ceiling int
	// Floor is the fewest runs at once the limit shrinks to, and where it
	// starts; zero means the number of CPUs (at most Ceiling).
	Floor   int
	Budgets []Budget
	// Interval is how often the machine is sampled; zero: DefaultInterval.
	Interval time.Duration
	// Thresholds; zero: DefaultThresholds.
	Thresholds Thresholds
	// System is where samples come from; nil: Proc (Linux). Without
	// readings the limit stays at the floor.
	System System
	Logger *slog.Logger
	// Now is the budgets' clock; nil: time.Now.
	Now func() time.Time
}

// Limiter holds the slots, the budgets and what runs reported. One
// Limiter serves every run of a process.
type Limiter struct {
	floor, ceiling int
	interval       time.Duration
	th             Thresholds
	sys            System
	log            *slog.Logger
	now            func() time.Time

	mu        sync.Mutex
	st        State
	inUse     int
	waiters   []*waiter
	throttled int // reported since the last sample
	sampling  bool
	peak      int
	accounts  map[string]*account
	history   map[string]int // the last run's requests, by workspace key
	observe   func(account string, throttled int)
}

type waiter struct {
	ready   chan struct{}
	granted bool
}

type account struct {
	budget float64
	bucket *rate.Limiter // nil without a budget
	state  AccountState
	// requests and runs give the account's average run, for workspaces
	// never seen.
	requests, runs int
}

// New returns a Limiter; a nil *Limiter is not usable.
func New(opts Options) *Limiter {
	cpus := runtime.NumCPU()
	l := &Limiter{ceiling: opts.Ceiling, floor: opts.Floor, interval: opts.Interval, th: opts.Thresholds,
		sys: opts.System, log: opts.Logger, now: opts.Now, accounts: map[string]*account{}, history: map[string]int{}}
	if l.ceiling <= 0 {
		l.ceiling = cpus
	}
	if l.floor <= 0 {
		l.floor = cpus
	}
	l.floor = min(l.floor, l.ceiling)
	if l.interval <= 0 {
		l.interval = DefaultInterval
	}
	if l.th == (Thresholds{}) {
		l.th = DefaultThresholds
	}
	if l.sys == nil {
		l.sys = Proc{}
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.st = State{Limit: l.floor, Threshold: l.ceiling, Calm: l.th.Cooldown}
	for _, b := range opts.Budgets {
		if b.RequestsPerSecond <= 0 || math.IsInf(b.RequestsPerSecond, 0) {
			continue
		}
		// A bucket holds one second of the budget, so a quiet account
		// lets no more than that through at once.
		burst := max(1, int(math.Ceil(b.RequestsPerSecond)))
		l.accounts[b.Account] = &account{budget: b.RequestsPerSecond,
			bucket: rate.NewLimiter(rate.Limit(b.RequestsPerSecond), burst),
			state:  AccountState{Parallelism: DefaultParallelism, Rate: b.RequestsPerSecond, Calm: l.th.Cooldown}}
	}
	return l
}

// Bounds are the floor and the ceiling of the limit.
func (l *Limiter) Bounds() (floor, ceiling int) { return l.floor, l.ceiling }

// Limit is how many runs may go at once now.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.Limit
}

// Peak is the highest number of runs that held slots at once.
func (l *Limiter) Peak() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peak
}

// Observe sets what is told of every run that reported throttling, with
// the run's account ("" for none) and its count (metrics).
func (l *Limiter) Observe(f func(account string, throttled int)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.observe = f
}

// Acquire waits for a slot, in the order runs asked, and returns the
// function that gives it back (once; later calls do nothing). It fails
// only when ctx ends first.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	l.mu.Lock()
	w := &waiter{ready: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.grant()
	l.startSampling()
	l.mu.Unlock()
	select {
	case <-w.ready:
	case <-ctx.Done():
		l.mu.Lock()
		granted := w.granted
		if !granted {
			for i, o := range l.waiters {
				if o == w {
					l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
					break
				}
			}
		}
		l.mu.Unlock()
		if granted {
			l.release()
		}
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() { once.Do(l.release) }, nil
}

func (l *Limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inUse--
	l.grant()
}

// grant hands free slots to the first waiters; l.mu is held.
func (l *Limiter) grant() {
	for l.inUse < l.st.Limit && len(l.waiters) > 0 {
		w := l.waiters[0]
		l.waiters = l.waiters[1:]
		w.granted = true
		l.inUse++
		close(w.ready)
	}
	l.peak = max(l.peak, l.inUse)
}

// startSampling starts the sampler unless it runs; l.mu is held. It stops
// by itself once no run holds or waits for a slot.
func (l *Limiter) startSampling() {
	if l.sampling {
		return
	}
	l.sampling = true
	go l.sample()
}

func (l *Limiter) sample() {
	prev, perr := l.sys.Read()
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for range t.C {
		cur, err := l.sys.Read()
		s := Sample{CPU: -1, Mem: -1}
		if err == nil && perr == nil {
			s.CPU, s.Mem = prev.between(cur)
		} else if err != nil {
			l.log.Debug("cannot read the machine's load; the run limit stays", "error", err)
		}
		prev, perr = cur, err
		if !l.step(s) {
			return
		}
	}
}

// step applies one sample; it reports whether sampling goes on.
func (l *Limiter) step(s Sample) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s.Throttled, l.throttled = l.throttled, 0
	s.InUse, s.Waiting = l.inUse, len(l.waiters)
	next, why := Decide(l.st, s, l.floor, l.ceiling, l.th)
	if next.Limit != l.st.Limit {
		l.log.Info("run limit changed", "from", l.st.Limit, "to", next.Limit, "why", why)
	}
	l.st = next
	l.grant()
	for _, a := range l.accounts {
		a.setState(a.state.tick(a.budget, l.th.Cooldown), l.now())
	}
	if l.inUse == 0 && len(l.waiters) == 0 {
		l.sampling = false
		return false
	}
	return true
}

// setState applies an account's state to its bucket.
func (a *account) setState(st AccountState, now time.Time) {
	if a.bucket != nil && st.Rate != a.state.Rate {
		a.bucket.SetLimitAt(now, rate.Limit(st.Rate))
	}
	a.state = st
}

// accountLocked returns an account's entry, made on first use; l.mu is held.
func (l *Limiter) accountLocked(name string) *account {
	a, ok := l.accounts[name]
	if !ok {
		a = &account{state: AccountState{Parallelism: DefaultParallelism, Calm: l.th.Cooldown}}
		l.accounts[name] = a
	}
	return a
}

// Budgeted reports whether an account has a budget.
func (l *Limiter) Budgeted(account string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.accounts[account]
	return ok && a.bucket != nil
}

// Parallelism is the -parallelism for a run of the account: terraform's
// 10, halved for every throttling report and climbing back once the
// account is calm, and never more than one second of its budget in force.
func (l *Limiter) Parallelism(account string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.accounts[account]
	if !ok {
		return DefaultParallelism
	}
	p := a.state.Parallelism
	if a.bucket != nil {
		p = min(p, max(1, int(a.state.Rate)))
	}
	return p
}

// Estimate is the requests a run of the workspace key is expected to
// make: its last run's; else what local says (the workspace's local
// state, say); else the average run of its account; else
// DefaultRequests.
func (l *Limiter) Estimate(key, account string, local func() (int, bool)) int {
	l.mu.Lock()
	n, ok := l.history[key]
	var avg int
	if a, found := l.accounts[account]; found && a.runs > 0 {
		avg = (a.requests + a.runs - 1) / a.runs
	}
	l.mu.Unlock()
	if ok {
		return n
	}
	if local != nil {
		if n, ok := local(); ok && n > 0 {
			return n
		}
	}
	if avg > 0 {
		return avg
	}
	return DefaultRequests
}

// Admit waits until a run of the account expected to make requests
// requests fits the account's budget, and takes them from it. An account
// without a budget is admitted at once. It fails only when ctx ends first,
// and then takes nothing.
func (l *Limiter) Admit(ctx context.Context, account string, requests int) error {
	now := l.now()
	delay, cancel := l.reserve(now, account, requests)
	if delay <= 0 {
		return nil
	}
	if err := ctxtime.Sleep(ctx, delay); err != nil {
		cancel(l.now())
		return err
	}
	return nil
}

// reserve takes requests tokens from the account's bucket at now and
// returns how long the run must wait, and how to give the tokens back. A
// run larger than the bucket waits for a bucket's worth; the rest is
// booked as debt, which delays the runs after it: its requests come while
// it runs.
func (l *Limiter) reserve(now time.Time, account string, requests int) (time.Duration, func(time.Time)) {
	l.mu.Lock()
	a, ok := l.accounts[account]
	l.mu.Unlock()
	if !ok || a.bucket == nil || requests <= 0 {
		return 0, func(time.Time) {}
	}
	burst := a.bucket.Burst()
	var rs []*rate.Reservation
	var delay time.Duration
	for left := requests; left > 0; left -= burst {
		r := a.bucket.ReserveN(now, min(left, burst))
		if len(rs) == 0 {
			delay = r.DelayFrom(now)
		}
		rs = append(rs, r)
	}
	return delay, func(at time.Time) {
		// Latest first: each cancellation gives back what no later
		// reservation has taken.
		for i := len(rs) - 1; i >= 0; i-- {
			rs[i].CancelAt(at)
		}
	}
}

// Report is what one run's output showed: requests it made (Requests)
// and throttling it met (Throttles). The requests become the workspace's
// next estimate; throttling shrinks the slots, and halves the account's
// parallelism and its budget in force.
func (l *Limiter) Report(key, account string, requests, throttled int) {
	l.mu.Lock()
	a := l.accountLocked(account)
	if requests > 0 {
		if len(l.history) >= maxHistory {
			l.history = map[string]int{}
		}
		l.history[key] = requests
		a.requests += requests
		a.runs++
		if a.runs >= 1_000_000 {
			// Keep the average, not the totals: it follows the account's
			// runs as they change.
			a.requests, a.runs = a.requests/a.runs, 1
		}
	}
	var observe func(string, int)
	if throttled > 0 {
		l.throttled += throttled
		a.setState(a.state.throttled(a.budget), l.now())
		observe = l.observe
		l.log.Warn("a run was throttled by its cloud account", "account", account, "throttled", throttled,
			"parallelism", a.state.Parallelism, "budget_in_force", a.state.Rate)
	}
	l.mu.Unlock()
	if observe != nil {
		observe(account, throttled)
	}
}

// AccountStatus is an account's state, for logs and the benchmark.
type AccountStatus struct {
	Account string
	AccountState
	Budget float64
}

// Accounts lists the accounts seen or budgeted, by name.
func (l *Limiter) Accounts() []AccountStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []AccountStatus
	for name, a := range l.accounts {
		out = append(out, AccountStatus{Account: name, AccountState: a.state, Budget: a.budget})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Account < out[j].Account })
	return out
}
