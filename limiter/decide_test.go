package limiter

import (
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	const floor, ceiling = 2, 32
	calm := DefaultThresholds.Cooldown
	// busy is a sample where every slot of limit is taken and runs wait.
	busy := func(limit int, cpu, mem float64) Sample {
		return Sample{CPU: cpu, Mem: mem, InUse: limit, Waiting: 5}
	}
	tests := []struct {
		name string
		st   State
		s    Sample
		want State
		why  string // a word of the reason; empty: no change
	}{
		{"slow start doubles", State{2, 32, calm}, busy(2, 0.30, 0.9), State{4, 32, calm}, "room"},
		{"slow start stops at the threshold", State{12, 16, calm}, busy(12, 0.30, 0.9), State{16, 16, calm}, "room"},
		{"past the threshold one at a time", State{16, 16, calm}, busy(16, 0.30, 0.9), State{17, 16, calm}, "room"},
		{"doubling stops at the ceiling", State{20, 64, calm}, busy(20, 0.30, 0.9), State{32, 64, calm}, "room"},
		{"at the ceiling it holds", State{32, 32, calm}, busy(32, 0.10, 0.9), State{32, 32, calm}, ""},
		{"nobody waits", State{4, 32, calm}, Sample{CPU: 0.1, Mem: 0.9, InUse: 4}, State{4, 32, calm}, ""},
		{"free slots", State{8, 32, calm}, Sample{CPU: 0.1, Mem: 0.9, InUse: 5, Waiting: 3}, State{8, 32, calm}, ""},
		{"CPU busy but not saturated", State{8, 32, calm}, busy(8, 0.95, 0.9), State{8, 32, calm}, ""},
		{"CPU saturated takes a quarter off", State{16, 32, calm}, busy(16, 0.99, 0.9), State{12, 12, calm}, "CPU saturated"},
		{"CPU saturated with a small limit takes one off", State{3, 32, calm}, busy(3, 1, 0.9), State{2, 2, calm}, "CPU saturated"},
		{"CPU saturated at the floor holds", State{2, 32, calm}, busy(2, 1, 0.9), State{2, 32, calm}, ""},
		{"memory short halves", State{16, 32, calm}, busy(16, 0.30, 0.05), State{8, 8, calm}, "memory short"},
		{"memory tight holds", State{16, 32, calm}, busy(16, 0.30, 0.15), State{16, 32, calm}, ""},
		{"throttling halves and starts the cooldown", State{16, 32, calm}, Sample{CPU: 0.3, Mem: 0.9, Throttled: 3, InUse: 16, Waiting: 2}, State{8, 8, 0}, "throttled"},
		{"throttling at the floor holds the floor", State{2, 32, calm}, Sample{CPU: 0.3, Mem: 0.9, Throttled: 1, InUse: 2, Waiting: 2}, State{2, 32, 0}, ""},
		{"throttled lately: no growth", State{8, 8, 3}, busy(8, 0.30, 0.9), State{8, 8, 4}, ""},
		{"calm again: growth", State{8, 8, calm - 1}, busy(8, 0.30, 0.9), State{9, 8, calm}, "room"},
		{"no CPU reading: no growth", State{2, 32, calm}, busy(2, -1, 0.9), State{2, 32, calm}, ""},
		{"no memory reading is no obstacle", State{2, 32, calm}, busy(2, 0.2, -1), State{4, 32, calm}, "room"},
		{"throttling wins over room", State{8, 32, calm}, Sample{CPU: 0.1, Mem: 0.9, Throttled: 1, InUse: 8, Waiting: 9}, State{4, 4, 0}, "throttled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Decide(tt.st, tt.s, floor, ceiling, DefaultThresholds)
			if got != tt.want {
				t.Errorf("Decide(%+v, %+v) = %+v, want %+v", tt.st, tt.s, got, tt.want)
			}
			if (why == "") != (tt.why == "") || !strings.Contains(why, tt.why) {
				t.Errorf("reason %q, want one saying %q", why, tt.why)
			}
		})
	}
}

func TestAccountState(t *testing.T) {
	const budget = 80.0
	cool := DefaultThresholds.Cooldown
	full := AccountState{Parallelism: DefaultParallelism, Rate: budget, Calm: cool}
	tests := []struct {
		name   string
		st     AccountState
		budget float64
		step   func(AccountState, float64) AccountState
		want   AccountState
	}{
		{"throttled halves parallelism and budget", full, budget, AccountState.throttled, AccountState{5, 40, 0}},
		{"throttled again", AccountState{5, 40, 2}, budget, AccountState.throttled, AccountState{2, 20, 0}},
		{"never under one, nor an eighth of the budget", AccountState{1, 10, 0}, budget, AccountState.throttled, AccountState{1, 10, 0}},
		{"no budget: parallelism only", AccountState{10, 0, cool}, 0, AccountState.throttled, AccountState{5, 0, 0}},
		{"tick during the cooldown counts", AccountState{2, 20, 3}, budget, tick(cool), AccountState{2, 20, 4}},
		{"tick once calm climbs back", AccountState{2, 20, cool}, budget, tick(cool), AccountState{3, 28, cool}},
		{"tick stops at terraform's parallelism and the budget", AccountState{10, 76, cool}, budget, tick(cool), AccountState{10, 80, cool}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.step(tt.st, tt.budget); got != tt.want {
				t.Errorf("from %+v: %+v, want %+v", tt.st, got, tt.want)
			}
		})
	}
}

func tick(cooldown int) func(AccountState, float64) AccountState {
	return func(a AccountState, budget float64) AccountState { return a.tick(budget, cooldown) }
}
