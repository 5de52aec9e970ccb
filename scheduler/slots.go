package scheduler

import (
	"hash/fnv"
	"math"
	"sort"
	"time"
)

// Item is one workspace among those that share a window.
type Item struct {
	Key string // the workspace key: its hash is its place in the window
	// Expected is how long its runs take (its last run's duration); zero
	// or less: unknown, counted as the mean of the known ones.
	Expected time.Duration
	// Account is whose cloud budget its runs spend: each account's
	// workspaces are spread over the window on their own, since runs of
	// different accounts do not slow each other down. Empty: the default
	// account.
	Account string
	// Weight is how many of the account's runs its budget lets overlap: a
	// run counts as Expected/Weight of the account's window. Zero or less:
	// one. Items of one account carry the same weight; the largest counts.
	Weight float64
}

// Slots gives every item its start, as an offset into a window of the
// given length (one day's: Window.On's end minus its start). It is a pure
// function of its arguments: the same workspaces and durations give the
// same slots after a restart, whatever the order of items.
//
// Within an account, when the expected runs fit the window one after the
// other, each workspace keeps its place in the order of the hashes of the
// keys and the time left over is shared out by the same hashes: the runs
// do not overlap, each ends inside the window, and adding or removing a
// workspace moves each other slot by at most that workspace's expected
// duration. When they do not fit, the runs start longest first, spaced by
// their durations squeezed into the window, so every run starts inside it
// and the long ones have the most time.
func Slots(window time.Duration, items []Item) map[string]time.Duration {
	out := make(map[string]time.Duration, len(items))
	if window <= 0 {
		for _, it := range items {
			out[it.Key] = 0
		}
		return out
	}
	unknown := meanKnown(items)
	groups := map[string][]slotted{}
	weight := map[string]float64{}
	for _, it := range items {
		d := it.Expected
		if d <= 0 {
			d = unknown
		}
		groups[it.Account] = append(groups[it.Account], slotted{key: it.Key, hash: position(it.Key), d: float64(d)})
		if it.Weight > weight[it.Account] { // a NaN weight is no weight
			weight[it.Account] = it.Weight
		}
	}
	L := float64(window)
	for account, g := range groups {
		w := weight[account]
		if w <= 0 {
			w = 1
		}
		var total float64
		for i := range g {
			g[i].e = g[i].d / w
			total += g[i].e
		}
		if total <= L {
			sort.Slice(g, func(i, j int) bool { return g[i].before(g[j]) })
			spare, done := L-total, 0.0
			for _, s := range g {
				// An account that lets runs overlap packs them tighter than
				// they run: start early enough to end inside the window.
				out[s.key] = clampSlot(min(done+spare*s.hash, L-s.d), window)
				done += s.e
			}
			continue
		}
		sort.Slice(g, func(i, j int) bool {
			if g[i].e != g[j].e {
				return g[i].e > g[j].e
			}
			return g[i].before(g[j])
		})
		done := 0.0
		for _, s := range g {
			out[s.key] = clampSlot(L*(done/total), window)
			done += s.e
		}
	}
	return out
}

type slotted struct {
	key  string
	hash float64 // in [0, 1)
	d, e float64 // expected duration, and as the account's budget counts it
}

func (s slotted) before(o slotted) bool {
	if s.hash != o.hash {
		return s.hash < o.hash
	}
	return s.key < o.key
}

// position is a key's stable place in [0, 1).
func position(key string) float64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return float64(h.Sum64()>>11) / (1 << 53)
}

// meanKnown is the mean of the positive expected durations; zero if none.
func meanKnown(items []Item) time.Duration {
	var sum float64
	n := 0
	for _, it := range items {
		if it.Expected > 0 {
			sum += float64(it.Expected)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return time.Duration(sum / float64(n))
}

// clampSlot keeps a slot inside [0, window).
func clampSlot(v float64, window time.Duration) time.Duration {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	if v >= float64(window) {
		return window - 1
	}
	return time.Duration(v)
}
