package server

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserveThrottled(t *testing.T) {
	m := NewMetrics(nil) // only its counters are read here
	for _, run := range []struct {
		account string
		n       int
	}{
		{"aws-prod", 3}, {"aws-prod", 2}, {"", 1}, {"gcp", 0}, {"gcp", -1},
	} {
		m.ObserveThrottled(run.account, run.n)
	}
	count := func(account string) float64 { return testutil.ToFloat64(m.throttled.WithLabelValues(account)) }
	if got := count("aws-prod"); got != 5 {
		t.Errorf("aws-prod: %v, want 5", got)
	}
	if got := count("none"); got != 1 {
		t.Errorf("a run without an account: %v, want 1 under none", got)
	}
	if n := testutil.CollectAndCount(m.throttled); n != 2 {
		t.Errorf("%d series, want 2: a run without throttling makes none", n)
	}
	// Accounts come from stack.hcl: past the bound, new ones are "other".
	for i := range 2 * maxThrottledAccounts {
		m.ObserveThrottled(fmt.Sprintf("acct-%d", i), 1)
	}
	if n := testutil.CollectAndCount(m.throttled); n != maxThrottledAccounts+1 {
		t.Errorf("%d series after %d accounts, want %d and other", n, 2*maxThrottledAccounts+2, maxThrottledAccounts)
	}
	if got := count("other"); got != float64(maxThrottledAccounts+2) {
		t.Errorf("other: %v, want %d", got, maxThrottledAccounts+2)
	}
}
