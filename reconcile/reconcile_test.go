package reconcile_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/sandbox"
	"github.com/trueline/trueline/stacks"
)

const stackSrc = `terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {
  root = %q
}

resource "sandbox_autoscaling_group" "web" {
  name     = "web"
  min_size = 3
  max_size = 9
}

resource "sandbox_lb_listener" "http" {
  load_balancer_id = "lb"
  port             = 80
  protocol         = "HTTP"
}
%s`

const database = `
resource "sandbox_database" "main" {
  name           = "main"
  engine         = "postgres"
  instance_class = "small"
  password       = "correct-horse-battery"
}
`

const policySrc = `
policy "guarded" {
  on_drift   = "apply"
  on_pending = "apply"
  allow      = ["update"]
  protect    = ["sandbox_database.*"]
  escalate   = "pull_request"
}

policy "nightly" {
  on_drift = "apply"
  apply_window {
    cron     = "0 2 * * *"
    duration = "1h"
  }
}
`

type fixture struct {
	rec   *reconcile.Reconciler
	cloud sandbox.Store
	dir   string
	pols  map[string]*policies.Policy
	now   time.Time
}

// newFixture applies the stack (with the database) and returns a
// reconciler that acts on its decisions.
func newFixture(t *testing.T, act bool) *fixture {
	t.Helper()
	f := &fixture{cloud: sandbox.Store{Root: t.TempDir()}, dir: t.TempDir(), now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	f.write(t, true)
	bin := testenv.Binary(t, "tofu")
	r := testenv.Runner(t, bin)
	p, err := r.Plan(context.Background(), runner.Job{Key: "setup", Dir: f.dir})
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Log)
	}
	if _, err := r.Apply(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	p.Discard()
	pols, err := policies.Load(fstest.MapFS{"policies/p.hcl": {Data: []byte(policySrc)}})
	if err != nil {
		t.Fatal(err)
	}
	f.pols = pols
	f.rec = reconcile.New(reconcile.Options{
		Toolchain: &runner.Toolchain{Default: "tofu", Path: bin.Path}, WorkDir: t.TempDir(), CLIConfig: testenv.CLIConfig(t),
		Act: act, Now: func() time.Time { return f.now },
	})
	return f
}

func (f *fixture) write(t *testing.T, withDB bool) {
	extra := ""
	if withDB {
		extra = database
	}
	testenv.WriteFiles(t, f.dir, map[string]string{"main.tf": fmt.Sprintf(stackSrc, f.cloud.Root, extra)})
}

func (f *fixture) run(t *testing.T, policy string, before func(context.Context) error) reconcile.Outcome {
	t.Helper()
	st := stacks.Stack{Path: "stacks/web", Dir: f.dir, Config: &stacks.Config{Workspaces: []stacks.Workspace{{Name: "default"}}}}
	return f.rec.Run(context.Background(), "test/stacks/web/default", reconcile.Target{
		Stack: st, Workspace: st.Config.Workspaces[0], Policy: f.pols[policy], BeforeApply: before})
}

func (f *fixture) consoleChange(t *testing.T) {
	t.Helper()
	if err := f.cloud.Update("sandbox_autoscaling_group", "web", func(o map[string]any) { o["min_size"], o["max_size"] = 4, 12 }); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) sizes(t *testing.T) string {
	o, err := f.cloud.Get("sandbox_autoscaling_group", "web")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%v/%v", o["min_size"], o["max_size"])
}

func TestGuardedApplyConverges(t *testing.T) {
	f := newFixture(t, true)
	f.consoleChange(t)
	applying := 0
	o := f.run(t, "guarded", func(context.Context) error { applying++; return nil })
	if o.Verdict != drift.Drifted || o.Action.Kind != policies.Apply || o.Action.Result != "converged" {
		t.Fatalf("outcome = %s %+v %v\n%s", o.Verdict, o.Action, o.Failure, o.Log)
	}
	if applying != 1 {
		t.Errorf("BeforeApply called %d times", applying)
	}
	if got := f.sizes(t); got != "3/9" {
		t.Errorf("the group is %s after the apply, want Git's 3/9", got)
	}
	// And the next run is in sync, with nothing to do.
	if o := f.run(t, "guarded", nil); o.Verdict != drift.InSync || o.Action.Kind != policies.None {
		t.Errorf("after converging: %s %+v", o.Verdict, o.Action)
	}
}

func TestGuardrailsEscalate(t *testing.T) {
	f := newFixture(t, true)
	never := func(context.Context) error { t.Fatal("an escalated run must not apply"); return nil }

	// A listener port changed in the console plans a replace: not allowed.
	f.cloud.Update("sandbox_lb_listener", "lb:80", func(o map[string]any) { o["port"] = 8080 })
	o := f.run(t, "guarded", never)
	if o.Action.Kind != policies.PullRequest || !o.Action.Escalated ||
		o.Action.Reason != "escalated to pull_request: plan replaces sandbox_lb_listener.http; auto-apply may only update" {
		t.Errorf("replace: %+v", o.Action)
	}
	f.cloud.Update("sandbox_lb_listener", "lb:80", func(o map[string]any) { o["port"] = 80 })

	// Removing the database from the code plans a protected delete.
	f.write(t, false)
	o = f.run(t, "guarded", never)
	if o.Verdict != drift.Pending || o.Action.Reason != "escalated to pull_request: plan deletes sandbox_database.main, protected" {
		t.Errorf("protected delete: %s %+v %v", o.Verdict, o.Action, o.Failure)
	}
	f.write(t, true)

	// Outside the apply window.
	f.consoleChange(t)
	o = f.run(t, "nightly", never)
	if o.Action.Kind != policies.Report || !strings.Contains(o.Action.Reason, "escalated to report: outside the apply window") {
		t.Errorf("window: %+v", o.Action)
	}
	if got := f.sizes(t); got != "4/12" {
		t.Errorf("an escalated run changed the group to %s", got)
	}
	// Inside it, the same drift is applied.
	f.now = time.Date(2026, 11, 24, 2, 30, 0, 0, time.UTC)
	if o := f.run(t, "nightly", nil); o.Action.Result != "converged" {
		t.Errorf("inside the window: %+v %v", o.Action, o.Failure)
	}
}

func TestApplyRefusedOrDryRun(t *testing.T) {
	f := newFixture(t, true)
	f.consoleChange(t)
	o := f.run(t, "guarded", func(context.Context) error { return errors.New("run 7 was already applied") })
	if o.Verdict != drift.Error || o.Action.Result != run.Failed || o.Failure == nil || o.Failure.Stage != run.Apply || !strings.Contains(o.Failure.Message, "not applied: run 7 was already applied") {
		t.Errorf("refused apply: %s %+v %v", o.Verdict, o.Action, o.Failure)
	}
	if got := f.sizes(t); got != "4/12" {
		t.Errorf("a refused apply changed the group to %s", got)
	}
	dry := newFixture(t, false)
	dry.consoleChange(t)
	if o := dry.run(t, "guarded", nil); o.Action.Kind != policies.Apply || o.Action.Result != "dry_run" || dry.sizes(t) != "4/12" {
		t.Errorf("dry run: %+v, group %s", o.Action, dry.sizes(t))
	}
}

func TestSelectResolvesPolicies(t *testing.T) {
	pols, _ := policies.Load(fstest.MapFS{"policies/p.hcl": {Data: []byte(policySrc)}})
	ws := []stacks.Workspace{{Name: "default"}, {Name: "prod"}}
	all := []stacks.Stack{
		{Path: "a", Config: &stacks.Config{Workspaces: ws, Policy: "guarded"}},
		{Path: "b", Config: &stacks.Config{Workspaces: ws, Policy: "missing"}},
		{Path: "c", Config: &stacks.Config{Workspaces: ws}},
		{Path: "d", Err: errors.New("d/stack.hcl:1,1: broken")},
	}
	targets, broken := reconcile.Select(all, pols, nil, "prod")
	if len(targets) != 2 || targets[0].Policy.Name != "guarded" || targets[1].Policy != policies.ReportOnly {
		t.Errorf("targets = %+v", targets)
	}
	if len(broken) != 2 || broken[0].Failure.Stage != run.Policy || !strings.Contains(broken[0].Failure.Message, `b/stack.hcl: policy "missing" is not in policies/*.hcl (known: guarded, nightly)`) {
		t.Errorf("broken = %+v", broken)
	}
	if targets, _ := reconcile.Select(all, pols, []string{"a"}, ""); len(targets) != 2 {
		t.Errorf("glob a: %d targets", len(targets))
	}
}

// A run that takes too long is interrupted: terraform gets SIGINT, then the
// grace period, and the outcome says it timed out.
func TestRunTimeout(t *testing.T) {
	f := newFixture(t, true)
	bin := testenv.Binary(t, "tofu")
	slow := reconcile.New(reconcile.Options{
		Toolchain: &runner.Toolchain{Default: "tofu", Path: bin.Path}, WorkDir: t.TempDir(), CLIConfig: testenv.CLIConfig(t),
		Env:     map[string]string{sandbox.DelayEnv: "60s"},
		Timeout: 2 * time.Second, Grace: 5 * time.Second,
	})
	st := stacks.Stack{Path: "stacks/web", Dir: f.dir, Config: &stacks.Config{Workspaces: []stacks.Workspace{{Name: "default"}}}}
	start := time.Now()
	o := slow.Run(context.Background(), "slow", reconcile.Target{Stack: st, Workspace: st.Config.Workspaces[0]})
	if o.Verdict != drift.Error || o.Failure == nil || !o.Failure.TimedOut || !strings.Contains(o.Failure.Message, "timed out after 2s") {
		t.Fatalf("outcome = %s %+v", o.Verdict, o.Failure)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("a 2s timeout took %v to stop terraform", d)
	}
}

// An approval applies only the plan a person reviewed: identical changes,
// inside the apply window; anything else is refused and says why.
func TestApprovalAppliesOnlyTheReviewedPlan(t *testing.T) {
	f := newFixture(t, true)
	port := func(p int) {
		t.Helper()
		if err := f.cloud.Update("sandbox_lb_listener", "lb:80", func(o map[string]any) { o["port"] = p }); err != nil {
			t.Fatal(err)
		}
	}
	approved := func(a *reconcile.Approval) reconcile.Outcome {
		t.Helper()
		st := stacks.Stack{Path: "stacks/web", Dir: f.dir, Config: &stacks.Config{Workspaces: []stacks.Workspace{{Name: "default"}}}}
		return f.rec.Run(context.Background(), "test/stacks/web/default", reconcile.Target{
			Stack: st, Workspace: st.Config.Workspaces[0], Policy: f.pols["nightly"], Approved: a})
	}
	livePort := func() any {
		o, err := f.cloud.Get("sandbox_lb_listener", "lb:80")
		if err != nil {
			t.Fatal(err)
		}
		return o["port"]
	}

	port(8080) // a replace: never auto-applied by "nightly"
	seen := f.run(t, "nightly", nil)
	if seen.Action.Kind == policies.Apply || seen.Plan.Plan == "" {
		t.Fatalf("the reviewed run: %+v, plan %q", seen.Action, seen.Plan.Plan)
	}
	a := &reconcile.Approval{Plan: seen.Plan, By: "run 1, approved by alice"}

	o := approved(a)
	if o.Action.Kind == policies.Apply || !strings.Contains(o.Action.Reason, "outside the apply window") {
		t.Errorf("outside the window: %+v", o.Action)
	}
	f.now = time.Date(2026, 11, 24, 2, 30, 0, 0, time.UTC)
	port(9090)
	o = approved(a)
	if o.Action.Kind == policies.Apply || !strings.Contains(o.Action.Reason, "sandbox_lb_listener.http changes differently") {
		t.Errorf("a different plan: %+v", o.Action)
	}
	if got := fmt.Sprint(livePort()); got != "9090" {
		t.Errorf("a refused approval changed the listener to port %s", got)
	}
	port(8080)
	o = approved(a)
	if o.Action.Kind != policies.Apply || o.Action.Result != "converged" || !strings.Contains(o.Action.Reason, "approved (run 1, approved by alice)") {
		t.Errorf("the reviewed plan, inside the window: %+v %v", o.Action, o.Failure)
	}
	if got := fmt.Sprint(livePort()); got != "80" {
		t.Errorf("after the approved apply the listener has port %s, want 80", got)
	}
}

// A workspace the backend lacks is an error naming where stack.hcl declares
// it, unless the stack lets runs create workspaces.
func TestMissingWorkspace(t *testing.T) {
	f := newFixture(t, true)
	run := func(create bool) reconcile.Outcome {
		st := stacks.Stack{Path: "stacks/web", Dir: f.dir, Config: &stacks.Config{CreateWorkspaces: create,
			Workspaces: []stacks.Workspace{{Name: "staging", Declared: "stacks/web/stack.hcl:2"}}}}
		return f.rec.Run(context.Background(), "test/stacks/web/staging", reconcile.Target{Stack: st, Workspace: st.Config.Workspaces[0]})
	}
	o := run(false)
	if o.Failure == nil || !strings.Contains(o.Failure.Message, "stacks/web/stack.hcl:2 declares it") ||
		!strings.Contains(o.Failure.Message, "create_workspaces = true") || !errors.Is(o.Failure, runner.ErrNoWorkspace) {
		t.Fatalf("a missing workspace: %s %+v", o.Verdict, o.Failure)
	}
	if o := run(true); o.Failure != nil || o.Verdict != drift.Pending {
		t.Errorf("with create_workspaces: %s %+v (an empty workspace plans creating everything)", o.Verdict, o.Failure)
	}
}

// A plan waits for a state lock someone else holds, up to the lock timeout.
func TestLockTimeout(t *testing.T) {
	f := newFixture(t, true)
	f.consoleChange(t)
	// Someone else's slow apply holds the state lock for a few seconds.
	bin := testenv.Binary(t, "tofu")
	other := testenv.Runner(t, bin)
	other.Env[sandbox.WriteDelayEnv] = "4s"
	p, err := other.Plan(context.Background(), runner.Job{Key: "other", Dir: f.dir})
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Log)
	}
	done := make(chan error, 1)
	go func() { _, err := other.Apply(context.Background(), p); done <- err }()
	lock := filepath.Join(f.dir, ".terraform.tfstate.lock.info")
	deadline := time.Now().Add(30 * time.Second)
	for _, err := os.Stat(lock); err != nil; _, err = os.Stat(lock) {
		if time.Now().After(deadline) {
			t.Fatal("the other apply never took the lock")
		}
		time.Sleep(50 * time.Millisecond)
	}
	noWait := reconcile.New(reconcile.Options{Toolchain: &runner.Toolchain{Default: "tofu", Path: bin.Path}, WorkDir: t.TempDir(),
		CLIConfig: testenv.CLIConfig(t), LockTimeout: -1})
	st := stacks.Stack{Path: "stacks/web", Dir: f.dir, Config: &stacks.Config{Workspaces: []stacks.Workspace{{Name: "default"}}}}
	target := reconcile.Target{Stack: st, Workspace: st.Config.Workspaces[0]}
	if o := noWait.Run(context.Background(), "nowait", target); o.Failure == nil || !strings.Contains(o.Failure.Message, "lock") {
		t.Errorf("without waiting, a held lock: %s %+v", o.Verdict, o.Failure)
	}
	var mu sync.Mutex
	var waits []bool
	waiting := reconcile.New(reconcile.Options{Toolchain: &runner.Toolchain{Default: "tofu", Path: bin.Path}, WorkDir: t.TempDir(),
		CLIConfig: testenv.CLIConfig(t), Progress: func(e reconcile.Event) {
			if e.Waiting != nil {
				mu.Lock()
				waits = append(waits, *e.Waiting)
				mu.Unlock()
			}
		}})
	start := time.Now()
	o := waiting.Run(context.Background(), "test/stacks/web/default", target) // the default: waits up to 5 minutes
	if o.Failure != nil {
		t.Errorf("waiting for the lock: %+v\n%s", o.Failure, o.Log)
	}
	// The wait shows while it lasts (progress) and after (the outcome).
	mu.Lock()
	if fmt.Sprint(waits) != "[true false]" {
		t.Errorf("lock wait events = %v, want [true false]", waits)
	}
	mu.Unlock()
	if o.Timing.LockWaitMS < 500 || o.Timing.LockWaitMS > o.DurationMS {
		t.Errorf("lock wait = %d ms of %d ms", o.Timing.LockWaitMS, o.DurationMS)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p.Discard()
	if time.Since(start) > 2*time.Minute {
		t.Errorf("the plan waited %v", time.Since(start))
	}
}

// The server's secrets reach terraform as variables (terraform-exec passes
// no TF_VAR_ environment), through a var file that does not outlive the
// plan, and nothing the run says holds them.
func TestServerVariables(t *testing.T) {
	cloud := sandbox.Store{Root: t.TempDir()}
	dir, work := t.TempDir(), t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"main.tf": fmt.Sprintf(`terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {
  root = %q
}

variable "db_password" {
  type      = string
  sensitive = true
}

resource "sandbox_app_config" "app" {
  name    = "app"
  api_key = var.db_password
}
`, cloud.Root)})
	bin := testenv.Binary(t, "tofu")
	rec := reconcile.New(reconcile.Options{Toolchain: &runner.Toolchain{Default: "tofu", Path: bin.Path}, WorkDir: work,
		CLIConfig: testenv.CLIConfig(t)})
	st := stacks.Stack{Path: "stacks/app", Dir: dir, Config: &stacks.Config{Workspaces: []stacks.Workspace{{Name: "default"}}}}
	target := reconcile.Target{Stack: st, Workspace: st.Config.Workspaces[0]}
	if o := rec.Run(context.Background(), "app", target); o.Failure == nil || !strings.Contains(o.Failure.Message, "db_password") {
		t.Fatalf("without the server's variable: %s %+v", o.Verdict, o.Failure)
	}
	target.Variables = map[string]string{"db_password": "from-the-server-7f3a"}
	o := rec.Run(context.Background(), "app", target)
	if o.Failure != nil || o.Verdict != drift.Pending {
		t.Fatalf("with it: %s %+v\n%s", o.Verdict, o.Failure, o.Log)
	}
	out, _ := json.Marshal(o)
	if strings.Contains(o.Log, "from-the-server-7f3a") || strings.Contains(string(out), "from-the-server-7f3a") {
		t.Error("the run shows the server's secret")
	}
	left, _ := filepath.Glob(filepath.Join(work, "*", "variables-*"))
	if len(left) != 0 {
		t.Errorf("variable files outlived the plan: %v", left)
	}
}

// refreshPolicies are policies for refresh-only workspaces: one proposing a
// pull request, one applying (its own mode refresh-only, for stacks that
// do not say), and one applying only at night.
const refreshPolicies = `
policy "review" {
  on_drift   = "pull_request"
  on_pending = "pull_request"
}

policy "cheap" {
  mode       = "refresh-only"
  on_drift   = "apply"
  on_pending = "apply"
  allow      = ["update"]
  protect    = ["sandbox_database.*"]
  escalate   = "pull_request"
}
`

// runMode runs the stack with a stack.hcl mode (empty: not said) and an
// approval (nil: none); applying fails the test unless mayApply.
func (f *fixture) runMode(t *testing.T, policy string, mode drift.Mode, a *reconcile.Approval, mayApply bool) reconcile.Outcome {
	t.Helper()
	pols, err := policies.Load(fstest.MapFS{"policies/r.hcl": {Data: []byte(refreshPolicies)}})
	if err != nil {
		t.Fatal(err)
	}
	pol := pols[policy]
	if pol == nil {
		pol = f.pols[policy]
	}
	// The stack's mode only: the workspace's (as stacks.Parse fills it)
	// is the serve tests' (cmd/trueline).
	ws := stacks.Workspace{Name: "default"}
	st := stacks.Stack{Path: "stacks/web", Dir: f.dir, Config: &stacks.Config{Mode: mode, Workspaces: []stacks.Workspace{ws}}}
	return f.rec.Run(context.Background(), "test/stacks/web/default", reconcile.Target{Stack: st, Workspace: ws, Policy: pol, Approved: a,
		BeforeApply: func(context.Context) error {
			if !mayApply {
				t.Error("this run must not apply")
				return errors.New("not this run")
			}
			return nil
		}})
}

// A refresh-only run finds drift and nothing of the code: pending code (the
// database removed from the code, which a full plan would delete) is not
// seen, and without drift the verdict is in_sync with mode refresh-only.
// Its remediation is a pull request from the drift it found; it is never
// applied, and the outcome says the mode in its JSON.
func TestRefreshOnlyProposesAndNeverApplies(t *testing.T) {
	f := newFixture(t, true)
	f.write(t, false) // pending code: a full plan deletes the database

	o := f.runMode(t, "review", drift.RefreshOnly, nil, false)
	if o.Failure != nil || o.Verdict != drift.InSync || o.Mode != drift.RefreshOnly || len(o.Pending) != 0 || o.Action.Kind != policies.None ||
		o.Action.Reason != "no drift (refresh-only: the code was not compared)" {
		t.Fatalf("pending code alone: %s %s %+v %v\n%s", o.Verdict, o.Mode, o.Action, o.Failure, o.Log)
	}
	if full := f.runMode(t, "review", "", nil, false); full.Verdict != drift.Pending || full.Mode != drift.Full {
		t.Fatalf("the same workspace planned in full: %s %s %v", full.Verdict, full.Mode, full.Failure)
	}

	f.consoleChange(t)
	o = f.runMode(t, "review", drift.RefreshOnly, nil, false)
	want := []drift.Finding{{Address: "sandbox_autoscaling_group.web", Action: "update", Attributes: []drift.Attribute{
		{Path: "max_size", Git: 9.0, Live: 12.0}, {Path: "min_size", Git: 3.0, Live: 4.0}}}}
	if o.Failure != nil || o.Verdict != drift.Drifted || o.Mode != drift.RefreshOnly || fmt.Sprint(o.Drift) != fmt.Sprint(want) || len(o.Pending) != 0 {
		t.Fatalf("console change: %s %s drift %+v pending %+v %v\n%s", o.Verdict, o.Mode, o.Drift, o.Pending, o.Failure, o.Log)
	}
	if o.Action.Kind != policies.PullRequest || o.Action.Result != "" || !strings.Contains(o.Action.Reason, "on_drift = pull_request") {
		t.Errorf("action = %+v, want a pull request", o.Action)
	}
	if o.Plan.Plan == "" || o.Plan.Resources["sandbox_autoscaling_group.web"] == "" {
		t.Errorf("a refresh-only run with drift has no hash to bind an approval to: %+v", o.Plan)
	}
	if got := f.sizes(t); got != "4/12" {
		t.Errorf("the group is %s after a refresh-only run, want the console's 4/12", got)
	}
	out, err := json.Marshal(o)
	if err != nil || !strings.Contains(string(out), `"mode":"refresh-only"`) {
		t.Errorf("the outcome's JSON does not say the mode: %s %v", out, err)
	}

	// Even a policy that applies does not apply the refresh-only plan: with
	// the pending code in the full plan, guardrails escalate it.
	o = f.runMode(t, "cheap", "", nil, false)
	if o.Failure != nil || o.Verdict != drift.DriftedAndPending || o.Mode != drift.Full || o.Action.Kind != policies.PullRequest || !o.Action.Escalated ||
		!strings.Contains(o.Action.Reason, "the refresh-only plan found drift in sandbox_autoscaling_group.web and on_drift = apply; a refresh-only plan is never applied, so trueline planned in full: escalated to pull_request: plan deletes sandbox_database.main, protected") {
		t.Errorf("an applying policy with pending code: %s %s %+v %v", o.Verdict, o.Mode, o.Action, o.Failure)
	}
	if got := f.sizes(t); got != "4/12" {
		t.Errorf("an escalated run changed the group to %s", got)
	}
}

// When the policy would apply a refresh-only run's drift, the run plans in
// full and the policy judges that plan as usual: within guardrails it is
// applied and converges, the reason saying how it came to be. The policy's
// own mode applies to a stack that does not say, and stack.hcl's wins.
func TestRefreshOnlyApplyPlansInFull(t *testing.T) {
	f := newFixture(t, true)
	f.consoleChange(t)
	o := f.runMode(t, "cheap", "", nil, true)
	if o.Failure != nil || o.Verdict != drift.Drifted || o.Mode != drift.Full || o.Action.Kind != policies.Apply || o.Action.Result != run.Converged {
		t.Fatalf("outcome = %s %s %+v %v\n%s", o.Verdict, o.Mode, o.Action, o.Failure, o.Log)
	}
	if !strings.HasPrefix(o.Action.Reason, "the refresh-only plan found drift in sandbox_autoscaling_group.web and on_drift = apply; a refresh-only plan is never applied, so trueline planned in full: drift: on_drift = apply (policy cheap), within guardrails") {
		t.Errorf("reason = %q", o.Action.Reason)
	}
	if got := f.sizes(t); got != "3/9" {
		t.Errorf("the group is %s after the apply, want Git's 3/9", got)
	}
	// Converged: the next refresh-only run finds no drift.
	if o := f.runMode(t, "cheap", "", nil, false); o.Verdict != drift.InSync || o.Mode != drift.RefreshOnly || o.Action.Kind != policies.None {
		t.Errorf("after converging: %s %s %+v", o.Verdict, o.Mode, o.Action)
	}
	// stack.hcl's full wins over the policy's refresh-only: one plan, applied.
	f.consoleChange(t)
	o = f.runMode(t, "cheap", drift.Full, nil, true)
	if o.Mode != drift.Full || o.Action.Result != run.Converged || strings.Contains(o.Action.Reason, "refresh-only") {
		t.Errorf("stack mode full: %s %+v %v", o.Mode, o.Action, o.Failure)
	}
}

// Approving a refresh-only run (on the dashboard, or by merging its revert
// pull request) approves reverting exactly the drift it found: the approved
// run plans in full and applies only a plan that does nothing else.
func TestRefreshOnlyApproval(t *testing.T) {
	f := newFixture(t, true)
	f.consoleChange(t)
	seen := f.runMode(t, "review", drift.RefreshOnly, nil, false)
	if seen.Action.Kind != policies.PullRequest || seen.Plan.Plan == "" {
		t.Fatalf("the reviewed run: %+v, plan %q", seen.Action, seen.Plan.Plan)
	}
	a := &reconcile.Approval{Plan: seen.Plan, By: "run 1, merged branch trueline/stacks/web/default"}

	// Pending code in the full plan: not what was reviewed.
	f.write(t, false)
	o := f.runMode(t, "review", drift.RefreshOnly, a, false)
	if o.Action.Kind == policies.Apply || o.Mode != drift.Full ||
		!strings.Contains(o.Action.Reason, "approval (run 1, merged branch trueline/stacks/web/default) not used: the full plan also changes sandbox_database.main for pending code") {
		t.Errorf("with pending code: %s %+v", o.Mode, o.Action)
	}
	f.write(t, true)

	// Other drift than the reviewed one.
	if err := f.cloud.Update("sandbox_autoscaling_group", "web", func(o map[string]any) { o["max_size"] = 15 }); err != nil {
		t.Fatal(err)
	}
	o = f.runMode(t, "review", drift.RefreshOnly, a, false)
	if o.Action.Kind == policies.Apply || !strings.Contains(o.Action.Reason, "not used: the plan differs from the reviewed one: sandbox_autoscaling_group.web changes differently") {
		t.Errorf("other drift: %+v", o.Action)
	}
	if got := f.sizes(t); got != "4/15" {
		t.Errorf("a refused approval changed the group to %s", got)
	}

	// Exactly the reviewed drift: the full plan reverts it, and is applied.
	f.consoleChange(t)
	o = f.runMode(t, "review", drift.RefreshOnly, a, true)
	if o.Failure != nil || o.Mode != drift.Full || o.Action.Kind != policies.Apply || o.Action.Result != run.Converged ||
		o.Action.Reason != "approved (run 1, merged branch trueline/stacks/web/default): the full plan reverts exactly the drift the reviewed refresh-only run found" {
		t.Errorf("the reviewed drift: %s %+v %v\n%s", o.Mode, o.Action, o.Failure, o.Log)
	}
	if got := f.sizes(t); got != "3/9" {
		t.Errorf("after the approved apply the group is %s, want Git's 3/9", got)
	}
}
