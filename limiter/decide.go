package limiter

import "fmt"

// Thresholds are the readings the limit reacts to.
type Thresholds struct {
	// CPUHigh is the busy share of all CPUs at which the CPU counts as
	// saturated: the limit shrinks.
	CPUHigh float64
	// CPULow is the busy share below which the CPU has room to grow into.
	CPULow float64
	// MemLow is the available share of memory below which memory is short:
	// the limit shrinks.
	MemLow float64
	// MemRoom is the available share of memory the limit needs to grow.
	MemRoom float64
	// Cooldown is how many samples must pass without throttling before the
	// limit grows again.
	Cooldown int
}

// DefaultThresholds react to a saturated CPU (98%), short memory (under
// 10% available) and throttling (no growth for ten samples after it).
var DefaultThresholds = Thresholds{CPUHigh: 0.98, CPULow: 0.90, MemLow: 0.10, MemRoom: 0.20, Cooldown: 10}

// State is the adaptive limit between samples.
type State struct {
	// Limit is how many runs may go at once.
	Limit int
	// Threshold is where growth turns from doubling to adding one: the
	// limit after the last decrease (the ceiling before any).
	Threshold int
	// Calm counts the samples since a run last reported throttling.
	Calm int
}

// Sample is what one sampling interval saw.
type Sample struct {
	// CPU is the busy share of all CPUs over the interval, 0 to 1;
	// negative when unknown.
	CPU float64
	// Mem is the available share of memory, 0 to 1; negative when unknown.
	Mem float64
	// Throttled is the throttling runs reported during the interval.
	Throttled int
	// InUse and Waiting are the runs holding a slot and waiting for one.
	InUse, Waiting int
}

// Decide is the adaptive limit's one rule, from the state and the last
// sample to the next state, with the reason for a change (empty when the
// limit holds for an ordinary reason). Throttling halves the limit, as
// does short memory; a saturated CPU takes a quarter off. Otherwise the
// limit grows only when runs wait for a slot, every slot is taken, the CPU
// and memory have room and no run was throttled for Cooldown samples:
// doubling up to Threshold, then one at a time. It never leaves
// [floor, ceiling]. Without a CPU reading it never grows.
func Decide(st State, s Sample, floor, ceiling int, th Thresholds) (State, string) {
	if s.Throttled > 0 {
		st.Calm = 0
	} else if st.Calm < th.Cooldown {
		st.Calm++
	}
	shrink := func(to int, why string) (State, string) {
		to = max(floor, min(to, st.Limit-1))
		if to >= st.Limit {
			return st, ""
		}
		st.Limit, st.Threshold = to, to
		return st, why
	}
	switch {
	case s.Throttled > 0:
		return shrink(st.Limit/2, fmt.Sprintf("%d throttled requests reported", s.Throttled))
	case s.Mem >= 0 && s.Mem < th.MemLow:
		return shrink(st.Limit/2, fmt.Sprintf("memory short: %.0f%% available", s.Mem*100))
	case s.CPU >= th.CPUHigh:
		return shrink(st.Limit*3/4, fmt.Sprintf("CPU saturated: %.0f%% busy", s.CPU*100))
	case s.CPU < 0, s.Waiting == 0, s.InUse < st.Limit, s.CPU >= th.CPULow,
		s.Mem >= 0 && s.Mem < th.MemRoom, st.Calm < th.Cooldown, st.Limit >= ceiling:
		return st, ""
	}
	next := st.Limit + 1
	if st.Limit < st.Threshold {
		next = min(st.Threshold, 2*st.Limit)
	}
	st.Limit = max(floor, min(ceiling, next))
	return st, fmt.Sprintf("room: CPU %.0f%% busy, %d runs waiting", s.CPU*100, s.Waiting)
}

// AccountState is how one account's runs are held back after throttling.
type AccountState struct {
	// Parallelism is the -parallelism of the account's runs.
	Parallelism int
	// Rate is the budget in force, in requests a second: the configured
	// one, lower after throttling; 0 for an account without a budget.
	Rate float64
	// Calm counts the samples since a run of the account was throttled.
	Calm int
}

// throttled is an account's state after one of its runs reported
// throttling: half the parallelism, half the budget (never under an
// eighth of the configured one): the budget was too high for what else
// uses the account.
func (a AccountState) throttled(budget float64) AccountState {
	a.Parallelism = max(1, a.Parallelism/2)
	a.Calm = 0
	if budget > 0 {
		a.Rate = max(budget/8, a.Rate/2)
	}
	return a
}

// tick is an account's state after a sample: once calm for cooldown
// samples, the parallelism climbs back by one a sample, and the budget by
// a tenth of the configured one.
func (a AccountState) tick(budget float64, cooldown int) AccountState {
	if a.Calm < cooldown {
		a.Calm++
		return a
	}
	a.Parallelism = min(DefaultParallelism, a.Parallelism+1)
	if budget > 0 {
		a.Rate = min(budget, a.Rate+budget/10)
	}
	return a
}
