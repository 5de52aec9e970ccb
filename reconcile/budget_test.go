package reconcile_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/limiter"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/sandbox"
	"github.com/trueline/trueline/stacks"
)

const fleetSrc = `terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {
  root    = %q
  account = "tight"
}

resource "sandbox_load_balancer" "lb" {
  count   = %d
  name    = "%s-${count.index}"
  subnets = ["a"]
}
`

// TestBudgetKeepsUnderTheAccountLimit checks six stacks of five load
// balancers against a sandbox account allowing 10 requests a second
// (burst 10): all at once, their 30 reads are throttled (and retried);
// with a budget of 5 requests a second for the account, the runs spread
// out (each expected to make 5 requests, from its local state) and the
// account throttles none.
func TestBudgetKeepsUnderTheAccountLimit(t *testing.T) {
	const (
		nStacks   = 6
		resources = 5
		budget    = 5.0
	)
	ctx := context.Background()
	cloud := sandbox.Store{Root: t.TempDir()}
	bin := testenv.Binary(t, "tofu")
	setup := testenv.Runner(t, bin)
	var targets []reconcile.Target
	for i := range nStacks {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("s%d", i))
		testenv.WriteFiles(t, dir, map[string]string{"main.tf": fmt.Sprintf(fleetSrc, cloud.Root, resources, fmt.Sprintf("s%d", i))})
		p, err := setup.Plan(ctx, runner.Job{Key: fmt.Sprintf("setup/%d", i), Dir: dir})
		if err != nil {
			t.Fatalf("%v\n%s", err, p.Log)
		}
		if _, err := setup.Apply(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Discard()
		cfg := &stacks.Config{Account: "tight", Workspaces: []stacks.Workspace{{Name: "default", Account: "tight"}}}
		targets = append(targets, reconcile.Target{Stack: stacks.Stack{Path: fmt.Sprintf("stacks/s%d", i), Dir: dir, Config: cfg}, Workspace: cfg.Workspaces[0]})
	}
	work := t.TempDir()
	limited := map[string]string{
		sandbox.RequestsPerSecondEnv: "10",
		sandbox.BurstEnv:             "10",
		sandbox.MaxBackoffEnv:        "1s",
	}
	newRec := func(env map[string]string, budgets []limiter.Budget) *reconcile.Reconciler {
		return reconcile.New(reconcile.Options{Toolchain: &runner.Toolchain{Default: "tofu", Path: bin.Path}, WorkDir: work,
			CLIConfig: testenv.CLIConfig(t), Env: env,
			// Every run at once: only the budget holds them back.
			Limiter: limiter.New(limiter.Options{Floor: nStacks, Ceiling: nStacks, Budgets: budgets})})
	}
	check := func(rec *reconcile.Reconciler) ([]reconcile.Outcome, sandbox.Stats, time.Duration) {
		t.Helper()
		if err := cloud.ResetStats("tight"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		out := rec.Check(ctx, "test", targets, nil)
		took := time.Since(start)
		for _, o := range out {
			if o.Verdict != drift.InSync {
				t.Fatalf("%s: %s %v\n%s", o.Stack, o.Verdict, o.Failure, o.Log)
			}
		}
		st, err := cloud.Stats("tight")
		if err != nil {
			t.Fatal(err)
		}
		return out, st, took
	}
	// Cold working directories init first, without a limit: the runs
	// measured below only plan.
	check(newRec(nil, nil))

	_, st, _ := check(newRec(limited, nil))
	if st.Throttled == 0 || st.Calls[sandbox.OpRead] != nStacks*resources {
		t.Errorf("without a budget: %+v; want %d reads, some throttled", st, nStacks*resources)
	}

	// The account's bucket, emptied by the throttled runs, refills (10/s,
	// burst 10) before the budgeted runs start, as an account left alone
	// for a second would.
	time.Sleep(time.Second)
	out, st, took := check(newRec(limited, []limiter.Budget{{Account: "tight", RequestsPerSecond: budget}}))
	if st.Throttled != 0 || st.Calls[sandbox.OpRead] != nStacks*resources {
		t.Errorf("with a budget of %g/s: %+v; want %d reads, none throttled", budget, st, nStacks*resources)
	}
	// The first run takes a bucket's worth; the others wait their turn.
	if want := time.Duration(float64((nStacks-1)*resources) / budget * float64(time.Second)); took < want {
		t.Errorf("with a budget of %g/s the check took %v; %d requests need %v", budget, took, nStacks*resources, want)
	}
	var waited int
	for _, o := range out {
		if o.Account != "tight" || o.Requests != resources || o.Throttled != 0 {
			t.Errorf("%s: account %q, requests %d, throttled %d; want tight, %d, 0", o.Stack, o.Account, o.Requests, o.Throttled, resources)
		}
		if o.BudgetWaitMS > 0 {
			waited++
		}
	}
	if waited < nStacks-1 {
		t.Errorf("%d runs waited for the budget, want %d", waited, nStacks-1)
	}
}
