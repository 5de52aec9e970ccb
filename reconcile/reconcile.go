// Package reconcile wires one run together: for each selected workspace it
// plans with the runner, classifies the plan with drift, and reports the
// outcome. It is the one place a reader can follow a run top to bottom.
//
// A workspace whose mode is refresh-only (stack.hcl, else its policy) plans
// with -refresh-only: drift alone. Such a plan is never applied, whatever
// the policy says: applying it would only write the drift into the state.
// When the policy would apply its drift, the run plans again in full and
// the policy judges that plan as usual, the reason saying so; a pull
// request is made from the refresh-only findings as from any others, and
// approving it (or merging its revert pull request) approves reverting
// exactly that drift (see approvedDrift).
//
// How many runs go at once, and when a run of a rate-limited cloud account
// may start, is the limiter's: Check takes a slot for each run, and Run
// waits for the account's budget before it plans (see package limiter).
package reconcile

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/limiter"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/stacks"
)

// Outcome is what one run of one workspace found.
type Outcome struct {
	Stack     string `json:"stack"`
	Workspace string `json:"workspace"`
	// Result is the classification; its Mode ("mode") says which plan
	// produced it: "refresh-only" (drift alone, the code not compared) or
	// "full", also when a refresh-only run planned in full to apply.
	drift.Result
	// Failure says why and at which stage the run failed; nil when it did
	// not. In JSON: "error" (its message, or null) and "stage".
	Failure    *run.Failure `json:"-"`
	DurationMS int64        `json:"duration_ms"`
	// Init says whether this run had to run init.
	Init   bool   `json:"init"`
	Timing Timing `json:"timing"`
	// Action is what the policy decided and what came of it.
	Action run.Action `json:"action"`
	// Plan identifies exactly what the plan would do, for approvals; its
	// hash is empty for an empty plan.
	Plan drift.PlanHash `json:"-"`
	// Log is terraform's combined output, capped; it is not part of the report.
	Log string `json:"-"`
	// Account is the cloud account the run's API calls count against
	// (stack.hcl's account); empty: none.
	Account string `json:"account,omitempty"`
	// BudgetWaitMS is how long the run waited for its account's budget
	// before it started; it is not part of DurationMS.
	BudgetWaitMS int64 `json:"budget_wait_ms,omitempty"`
	// Requests is the API requests terraform's output shows (refreshes,
	// data source reads, creates, updates, deletes): the next run's
	// estimate. Throttled is the throttling it shows: each error or log
	// line saying a request was over the account's rate limit.
	Requests  int `json:"requests"`
	Throttled int `json:"throttled"`
}

// MarshalJSON writes the failure as "error" (the message, or null) and
// "stage", as check's JSON output and its readers have it.
func (o Outcome) MarshalJSON() ([]byte, error) {
	type plain Outcome
	var msg *string
	var stage run.Stage
	if o.Failure != nil {
		msg, stage = &o.Failure.Message, o.Failure.Stage
	}
	return json.Marshal(struct {
		plain
		Error *string   `json:"error"`
		Stage run.Stage `json:"stage,omitempty"`
	}{plain(o), msg, stage})
}

// Timing splits a run's terraform time by command, in milliseconds.
type Timing struct {
	InitMS      int64 `json:"init_ms"`
	WorkspaceMS int64 `json:"workspace_ms"`
	PlanMS      int64 `json:"plan_ms"`
	ShowMS      int64 `json:"show_ms"`
	// LockWaitMS is the part of the above spent waiting for a state lock
	// someone else held.
	LockWaitMS int64 `json:"lock_wait_ms"`
}

func timingOf(t runner.Timing) Timing {
	return Timing{InitMS: t.Init.Milliseconds(), WorkspaceMS: t.Workspace.Milliseconds(),
		PlanMS: t.Plan.Milliseconds(), ShowMS: t.Show.Milliseconds(), LockWaitMS: t.LockWait.Milliseconds()}
}

// add counts a second plan of the same run.
func (t *Timing) add(u Timing) {
	t.InitMS += u.InitMS
	t.WorkspaceMS += u.WorkspaceMS
	t.PlanMS += u.PlanMS
	t.ShowMS += u.ShowMS
	t.LockWaitMS += u.LockWaitMS
}

// Failed reports whether the run ended in an error.
func (o Outcome) Failed() bool { return o.Verdict == drift.Error }

func errorOutcome(stack, workspace string, stage run.Stage, err error) Outcome {
	o := Outcome{Stack: stack, Workspace: workspace, Result: drift.InSyncResult(), Failure: run.Fail(stage, err)}
	o.Verdict = drift.Error
	return o
}

// Target is one workspace of one stack to run.
type Target struct {
	Stack     stacks.Stack
	Workspace stacks.Workspace
	// Policy decides what to do with the verdict; nil means report only.
	Policy *policies.Policy
	// BeforeApply, when set, is called right before an apply starts; an
	// error stops the apply. The daemon records there that the run applies,
	// so that it is never applied twice.
	BeforeApply func(context.Context) error
	// Approved, when set, is a plan a person reviewed and approved (on the
	// dashboard, or by merging a revert pull request): a plan with exactly
	// those changes is applied, whatever the guardrails say but within the
	// policy's apply window; any other plan is not.
	Approved *Approval
	// Variables and Env are the server's secrets for this workspace, as
	// terraform variables and environment variables; they are scrubbed from
	// everything the run says.
	Variables map[string]string
	Env       map[string]string
	// Git, when set, is the repository's Git credentials for terraform's
	// module fetches; its token is scrubbed like the secrets above.
	Git *runner.GitAuth
	// Hold, when set, says why this run must not apply by its policy (e.g.
	// the run it retries was interrupted while applying): an apply decision
	// escalates instead, with this reason. An approval still applies.
	Hold string
}

// Approval is what a person approved: the complete planned changes they
// saw, and where the approval came from.
type Approval struct {
	Plan drift.PlanHash
	// By says who or what approved, for the run's reason ("run 12, approved
	// by alice", "merged pull request #3").
	By string
}

// PolicyFor resolves a stack's policy name against the repository's
// policies; a stack that names none is reported only.
func PolicyFor(s stacks.Stack, all map[string]*policies.Policy) (*policies.Policy, error) {
	name := s.Config.Policy
	if name == "" {
		return policies.ReportOnly, nil
	}
	if p, ok := all[name]; ok {
		return p, nil
	}
	var names []string
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	known := "there are none"
	if len(names) > 0 {
		known = "known: " + strings.Join(names, ", ")
	}
	return nil, fmt.Errorf("%s/%s: policy %q is not in %s/*.hcl (%s)", s.Path, stacks.FileName, name, policies.Dir, known)
}

// Select picks the workspaces matching the stack globs (all when none) and
// the workspace name (all when empty), with their policies. Broken stacks
// that match become error outcomes, so that they are reported while the
// others run.
func Select(all []stacks.Stack, pols map[string]*policies.Policy, globs []string, workspace string) ([]Target, []Outcome) {
	var targets []Target
	var broken []Outcome
	for _, s := range all {
		if !matchAny(globs, s.Path) {
			continue
		}
		if s.Err != nil {
			broken = append(broken, errorOutcome(s.Path, "", run.Checkout, s.Err))
			continue
		}
		pol, err := PolicyFor(s, pols)
		for _, ws := range s.Config.Workspaces {
			if workspace != "" && ws.Name != workspace {
				continue
			}
			if err != nil {
				broken = append(broken, errorOutcome(s.Path, ws.Name, run.Policy, err))
				continue
			}
			targets = append(targets, Target{Stack: s, Workspace: ws, Policy: pol})
		}
	}
	return targets, broken
}

func matchAny(globs []string, p string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		g = strings.TrimSuffix(g, "/")
		if ok, _ := path.Match(g, p); ok || g == p {
			return true
		}
	}
	return false
}

// DefaultLockTimeout is how long a run waits for a state lock held by
// someone else (a CI apply) before it fails.
const DefaultLockTimeout = 5 * time.Minute

// Options configure a Reconciler.
type Options struct {
	Toolchain   *runner.Toolchain
	WorkDir     string            // persistent working directories
	CLIConfig   string            // TF_CLI_CONFIG_FILE for every run; empty keeps the environment's
	PluginCache string            // shared TF_PLUGIN_CACHE_DIR; empty keeps the CLI config's
	Env         map[string]string // extra environment for every run
	PassEnv     []string          // what terraform inherits of trueline's environment; nil: runner.DefaultPassEnv
	Parallel    int               // the most runs at once, the adaptive limit's ceiling (its floor: the CPUs); zero: the CPUs
	Grace       time.Duration     // how long terraform may take to stop after an interrupt
	// Timeout bounds one run (plan, and any apply and converge plan); when
	// it passes, terraform is interrupted, then killed after Grace. Zero: none.
	Timeout time.Duration
	Logger  *slog.Logger
	// Act lets the reconciler carry out apply decisions. Without it, an
	// apply decision is only reported (result dry_run).
	Act bool
	// Now is the clock policies see; time.Now when nil.
	Now func() time.Time
	// Progress, when set, is told about every run as it starts and ends.
	Progress func(Event)
	// LockTimeout is how long plans and applies wait for a state lock
	// someone else holds; zero means DefaultLockTimeout, a negative value
	// not to wait. A stack's lock_timeout overrides it.
	LockTimeout time.Duration
	// Secrets are values known to be secret before any plan (e.g. values
	// trueline passes to terraform); they are scrubbed from every log and
	// error, as are the values each plan marks sensitive.
	Secrets drift.Secrets
	// Limiter holds the run slots Check takes and the account budgets Run
	// waits for (serve shares it with its own run slots); nil: one
	// between the number of CPUs and Parallel, without budgets.
	Limiter *limiter.Limiter
}

// Event reports progress.
type Event struct {
	Started bool // false: finished, with Outcome
	// Waiting, on a started run, says it waits for a state lock someone
	// else holds (true), or no longer does (false).
	Waiting *bool
	Target  Target
	Outcome Outcome
	Done    int // runs finished so far
	Total   int
}

// Reconciler runs workspaces.
type Reconciler struct {
	opts    Options
	mu      sync.Mutex
	runners map[string]*runner.Runner // by binary path
}

// New returns a Reconciler.
func New(opts Options) *Reconciler {
	if opts.Parallel <= 0 {
		opts.Parallel = runtime.NumCPU()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Toolchain == nil {
		opts.Toolchain = &runner.Toolchain{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Limiter == nil {
		opts.Limiter = limiter.New(limiter.Options{Ceiling: opts.Parallel, Logger: opts.Logger})
	}
	return &Reconciler{opts: opts, runners: map[string]*runner.Runner{}}
}

// Limiter is the reconciler's limiter: its run slots and account budgets.
func (r *Reconciler) Limiter() *limiter.Limiter { return r.opts.Limiter }

// Processes reports how many terraform commands all runs have started.
func (r *Reconciler) Processes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, rn := range r.runners {
		n += rn.Processes()
	}
	return n
}

func (r *Reconciler) runnerFor(ctx context.Context, cfg *stacks.Config) (*runner.Runner, error) {
	bin, err := r.opts.Toolchain.Binary(ctx, cfg.Binary, cfg.Version)
	if err != nil {
		var nf *runner.NotFoundError
		if errors.As(err, &nf) && cfg.VersionDeclared != "" {
			return nil, fmt.Errorf("%s: %w", cfg.VersionDeclared, err)
		}
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rn, ok := r.runners[bin.Path]; ok {
		return rn, nil
	}
	env := map[string]string{}
	for k, v := range r.opts.Env {
		env[k] = v
	}
	if r.opts.PluginCache != "" {
		env["TF_PLUGIN_CACHE_DIR"] = r.opts.PluginCache
	}
	rn := &runner.Runner{Binary: bin, WorkDir: r.opts.WorkDir, CLIConfig: r.opts.CLIConfig, Env: env, PassEnv: r.opts.PassEnv, Grace: r.opts.Grace}
	r.runners[bin.Path] = rn
	return rn, nil
}

// Check plans every target, as many at a time as the limiter's slots allow
// (from the number of CPUs up to Parallel, as the machine has room), and
// returns the outcomes sorted by stack and workspace. Targets take slots
// longest-expected first (by last durations, when given; unknown ones
// first of all), so one slow stack does not finish last. One failing
// workspace never stops the others; cancelling ctx interrupts the running
// plans.
func (r *Reconciler) Check(ctx context.Context, repo string, targets []Target, last map[string]int64) []Outcome {
	key := func(t Target) string { return repo + "/" + t.Stack.Path + "/" + t.Workspace.Name }
	targets = append([]Target(nil), targets...)
	sort.SliceStable(targets, func(i, j int) bool {
		di, oki := last[key(targets[i])]
		dj, okj := last[key(targets[j])]
		if oki != okj {
			return !oki
		}
		return di > dj
	})
	out := make([]Outcome, len(targets))
	var done int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, t := range targets {
		release, err := r.opts.Limiter.Acquire(ctx)
		if err != nil {
			// ctx ended: the run fails at once, interrupted, like a
			// running one.
			release = func() {}
		}
		wg.Go(func() {
			defer release()
			r.progress(Event{Started: true, Target: t, Total: len(targets)})
			o := r.Run(ctx, key(t), t)
			out[i] = o
			mu.Lock()
			done++
			n := done
			mu.Unlock()
			r.progress(Event{Target: t, Outcome: o, Done: n, Total: len(targets)})
		})
	}
	wg.Wait()
	SortOutcomes(out)
	return out
}

// accountOf is the account a target's API calls count against: its
// workspace's, else its stack's (a target built by hand may only have the
// stack's).
func accountOf(t Target) string {
	if t.Workspace.Account != "" || t.Stack.Config == nil {
		return t.Workspace.Account
	}
	return t.Stack.Config.Account
}

// admit waits until the target's account's budget admits the requests its
// run is expected to make (see limiter.Limiter.Estimate); at once for an
// account without a budget. It returns how long it waited.
func (r *Reconciler) admit(ctx context.Context, key string, t Target, account string) (time.Duration, error) {
	lim := r.opts.Limiter
	if !lim.Budgeted(account) {
		return 0, nil
	}
	n := lim.Estimate(key, account, func() (int, bool) { return limiter.LocalState(t.Stack.Dir, t.Workspace.Name) })
	start := time.Now()
	err := lim.Admit(ctx, account, n)
	return time.Since(start), err
}

func (r *Reconciler) progress(e Event) {
	if r.opts.Progress != nil {
		r.opts.Progress(e)
	}
}

// Run is one run of one workspace: plan, classify, report. key identifies
// the workspace across runs (it names its persistent working directory);
// t.Stack.Dir is the stack's directory at the commit being run.
func (r *Reconciler) Run(ctx context.Context, key string, t Target) Outcome {
	account := accountOf(t)
	// The budget's wait comes before the run's timeout and duration: the
	// run has not started.
	waited, err := r.admit(ctx, key, t, account)
	if err != nil {
		o := errorOutcome(t.Stack.Path, t.Workspace.Name, run.Plan,
			fmt.Errorf("%s (workspace %s): waiting for account %s's budget: %w", t.Stack.Path, t.Workspace.Name, account, err))
		o.Failure.TimedOut = errors.Is(err, context.DeadlineExceeded)
		o.Failure.Interrupted = errors.Is(err, context.Canceled)
		o.Account, o.BudgetWaitMS = account, waited.Milliseconds()
		return o
	}
	if r.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.opts.Timeout)
		defer cancel()
	}
	start := time.Now()
	log := r.opts.Logger.With("stack", t.Stack.Path, "workspace", t.Workspace.Name)
	// Everything that leaves a run is scrubbed of the values its plans mark
	// sensitive (and of the secrets known before); the plan's JSON itself
	// goes no further than this function.
	secrets := r.opts.Secrets
	finish := func(o Outcome) Outcome {
		scrubOutcome(&o, secrets)
		o.DurationMS = time.Since(start).Milliseconds()
		o.Account, o.BudgetWaitMS = account, waited.Milliseconds()
		o.Requests, o.Throttled = limiter.Requests(o.Log), limiter.Throttles(o.Log)
		r.opts.Limiter.Report(key, account, o.Requests, o.Throttled)
		log.Info("run finished", "verdict", o.Verdict, "mode", o.Mode, "drift", len(o.Drift), "pending", len(o.Pending),
			"noise", len(o.Noise), "init", o.Init, "duration_ms", o.DurationMS, "requests", o.Requests, "throttled", o.Throttled)
		return o
	}
	pol := t.Policy
	if pol == nil {
		pol = policies.ReportOnly
	}
	// stacks.Parse gives each workspace the stack's mode unless its block
	// says; a target built by hand may only have the stack's.
	mode := pol.ModeFor(cmp.Or(t.Workspace.Mode, t.Stack.Config.Mode))
	rn, err := r.runnerFor(ctx, t.Stack.Config)
	if err != nil {
		o := errorOutcome(t.Stack.Path, t.Workspace.Name, run.Init, fmt.Errorf("%s (workspace %s): %w", t.Stack.Path, t.Workspace.Name, err))
		o.Mode = mode
		return finish(o)
	}
	job := runner.Job{
		Key:           key,
		Dir:           t.Stack.Dir,
		Workspace:     t.Workspace.Name,
		VarFiles:      t.Workspace.VarFiles,
		BackendConfig: t.Stack.Config.BackendConfig,
		Env:           t.Workspace.Env,
		Variables:     t.Variables,
		Git:           t.Git,
		// A workspace the backend lacks is created only when the stack says
		// so: a typo would otherwise plan creating everything.
		CreateWorkspace: t.Stack.Config.CreateWorkspaces,
		LockTimeout:     max(r.opts.LockTimeout, 0),
		// A run carrying an approval means to apply, and a refresh-only
		// plan is never applied: it plans in full.
		RefreshOnly: mode == drift.RefreshOnly && t.Approved == nil,
		// Fewer API calls at once after the account throttled, and never
		// more than one second of its budget.
		Parallelism: r.opts.Limiter.Parallelism(account),
	}
	if t.Stack.Config.LockTimeout > 0 {
		job.LockTimeout = t.Stack.Config.LockTimeout
	}
	job.OnLockWait = func(waiting bool) {
		if waiting {
			log.Info("waiting for the state lock", "lock_timeout", job.LockTimeout)
		} else {
			log.Info("the state lock wait is over")
		}
		r.progress(Event{Started: true, Target: t, Waiting: &waiting})
	}
	if len(t.Env) > 0 {
		job.Env = map[string]string{}
		for k, v := range t.Workspace.Env {
			job.Env[k] = v
		}
		for k, v := range t.Env {
			job.Env[k] = v
		}
	}
	var known []string
	for _, v := range t.Variables {
		known = append(known, v)
	}
	for _, v := range t.Env {
		known = append(known, v)
	}
	if t.Git != nil && t.Git.Token != "" {
		known = append(known, t.Git.Token)
	}
	secrets = secrets.Merge(drift.SecretsFrom(known...))
	plan, err := rn.Plan(ctx, job)
	if plan != nil {
		defer plan.Discard()
	}
	if err != nil {
		return r.planFailed(ctx, rn, t, job, plan, err, Outcome{}, log, finish)
	}
	secrets = secrets.Merge(drift.SecretsOf(plan.JSON))
	o := Outcome{Stack: t.Stack.Path, Workspace: t.Workspace.Name, Init: plan.Init.Ran, Log: plan.Log,
		Timing: timingOf(plan.Timing)}
	// An empty plan is in sync: nothing to show or classify.
	o.Result, o.Plan = classify(plan, t.Stack.Config.Ignore)

	now := r.opts.Now()
	dec := pol.Decide(o.Result, now)
	if job.RefreshOnly && dec.Action == policies.Apply {
		// Never applied: its saved plan would only write the drift into the
		// state. A full plan shows what reverting it takes, with any pending
		// code, and the policy judges that one.
		found := addresses(o.Drift)
		job.RefreshOnly = false
		full, err := rn.Plan(ctx, job)
		if full != nil {
			defer full.Discard()
		}
		if err != nil {
			return r.planFailed(ctx, rn, t, job, full, fmt.Errorf("the full plan after the refresh-only plan found drift: %w", err), o, log, finish)
		}
		secrets = secrets.Merge(drift.SecretsOf(full.JSON))
		plan = full
		o.Log += "\n" + full.Log
		o.Init = o.Init || full.Init.Ran
		o.Timing.add(timingOf(full.Timing))
		o.Result, o.Plan = classify(full, t.Stack.Config.Ignore)
		dec = pol.Decide(o.Result, now)
		dec.Reason = fmt.Sprintf("the refresh-only plan found drift in %s and on_drift = apply; a refresh-only plan is never applied, so trueline planned in full: %s",
			found, dec.Reason)
	}
	if t.Hold != "" && dec.Action == policies.Apply {
		dec = policies.Decision{Action: pol.Escalate, Escalated: true, Reason: fmt.Sprintf("escalated to %s: %s", pol.Escalate, t.Hold)}
	}
	if t.Approved != nil && o.Verdict != drift.InSync {
		if mode == drift.RefreshOnly && t.Approved.Plan.Plan != o.Plan.Plan {
			// Not this full plan's hash: an approval of a refresh-only
			// run's drift.
			dec = approvedDrift(t.Approved, drift.HashDrift(plan.JSON), o.Result, pol, dec, now)
		} else {
			dec = approved(t.Approved, o.Plan, pol, dec, now)
		}
	}
	o.Action = run.Action{Kind: dec.Action, Reason: dec.Reason, Escalated: dec.Escalated}
	// Only a full plan gets here with an apply decision (and the runner
	// refuses to apply a refresh-only one).
	if dec.Action == policies.Apply {
		if !r.opts.Act {
			o.Action.Result = run.DryRun
		} else {
			secrets = r.apply(ctx, rn, job, plan, t, &o, log, secrets)
		}
	}
	return finish(o)
}

// planFailed is the outcome of a run whose plan failed: the first, or the
// full plan after a refresh-only one (then prev holds the refresh-only
// plan's log and timing).
func (r *Reconciler) planFailed(ctx context.Context, rn *runner.Runner, t Target, job runner.Job, plan *runner.Plan, err error, prev Outcome, log *slog.Logger, finish func(Outcome) Outcome) Outcome {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("timed out after %s: %w", r.opts.Timeout, err)
	case errors.Is(err, runner.ErrNoWorkspace):
		err = fmt.Errorf("%w; %s declares it: create it with `%s workspace new %s`, or set create_workspaces = true in the stack block",
			err, t.Workspace.Declared, rn.Binary.Name, t.Workspace.Name)
	}
	o := errorOutcome(t.Stack.Path, t.Workspace.Name, run.Plan, fmt.Errorf("%s (workspace %s): %w", t.Stack.Path, t.Workspace.Name, err))
	o.Mode = drift.Full
	if job.RefreshOnly {
		o.Mode = drift.RefreshOnly
	}
	// terraform-exec's errors answer both context errors; the run's own
	// context says which it was.
	o.Failure.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	o.Failure.Interrupted = errors.Is(ctx.Err(), context.Canceled)
	o.Log, o.Init, o.Timing = prev.Log, prev.Init, prev.Timing
	if plan != nil {
		if o.Log != "" {
			o.Log += "\n"
		}
		o.Log += plan.Log
		o.Init = o.Init || plan.Init.Ran
		o.Timing.add(timingOf(plan.Timing))
	}
	o = finish(o)
	log.Warn("run failed", "stage", o.Failure.Stage, "error", o.Failure.Message)
	return o
}

// classify reads a plan by the mode it was made in: a refresh-only plan's
// drift alone, hashed as drift (it changes nothing an approval could bind
// to), or a full plan's drift, pending code and noise.
func classify(p *runner.Plan, ignores []drift.Ignore) (drift.Result, drift.PlanHash) {
	if p.Job.RefreshOnly {
		return drift.ClassifyRefreshOnly(p.JSON, ignores), drift.HashDrift(p.JSON)
	}
	return drift.Classify(p.JSON, ignores), drift.HashPlan(p.JSON)
}

// addresses lists findings' addresses for a reason.
func addresses(fs []drift.Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Address)
	}
	return strings.Join(out, ", ")
}

// apply carries out an apply decision: exactly the saved plan that was
// classified, then a fresh plan, which must be empty to count as converged.
// A failed apply is recorded, never retried here. It returns the secrets
// extended by those of the plan after the apply.
func (r *Reconciler) apply(ctx context.Context, rn *runner.Runner, job runner.Job, plan *runner.Plan, t Target, o *Outcome, log *slog.Logger, secrets drift.Secrets) drift.Secrets {
	fail := func(result run.Result, stage run.Stage, err error) {
		f := run.Fail(stage, err)
		f.Message = secrets.Scrub(f.Message)
		o.Failure, o.Verdict, o.Action.Result = f, drift.Error, result
		log.Warn("apply failed", "result", result, "stage", f.Stage, "error", f.Message)
	}
	if t.BeforeApply != nil {
		if err := t.BeforeApply(ctx); err != nil {
			fail(run.Failed, run.Apply, fmt.Errorf("%s (workspace %s): not applied: %w", t.Stack.Path, t.Workspace.Name, err))
			return secrets
		}
	}
	log.Info("applying the saved plan", "reason", o.Action.Reason)
	applyLog, err := rn.Apply(ctx, plan)
	o.Log += "\n" + applyLog
	if err != nil {
		fail(run.Failed, run.Apply, fmt.Errorf("%s (workspace %s): %w", t.Stack.Path, t.Workspace.Name, err))
		return secrets
	}
	again, err := rn.Plan(ctx, job)
	if again != nil {
		defer again.Discard()
		o.Log += "\n" + again.Log
		secrets = secrets.Merge(drift.SecretsOf(again.JSON))
	}
	if err != nil {
		fail(run.Failed, run.Converge, fmt.Errorf("%s (workspace %s): plan after apply: %w", t.Stack.Path, t.Workspace.Name, err))
		return secrets
	}
	if again.Changes {
		rest := drift.Classify(again.JSON, t.Stack.Config.Ignore)
		if rest.Verdict != drift.InSync {
			var parts []string
			for _, f := range append(rest.Drift, rest.Pending...) {
				parts = append(parts, f.Address+" ("+f.Action+")")
			}
			fail(run.NotConverged, run.Converge, fmt.Errorf("%s (workspace %s): apply did not converge; the plan after it still changes %s",
				t.Stack.Path, t.Workspace.Name, strings.Join(parts, ", ")))
			return secrets
		}
	}
	o.Action.Result = run.Converged
	log.Info("applied and converged")
	return secrets
}

// approved decides a run that carries an approval: apply only a plan
// identical to the approved one, and only inside the policy's apply window;
// otherwise the policy's own decision stands, saying why the approval was
// not used.
func approved(a *Approval, now drift.PlanHash, pol *policies.Policy, dec policies.Decision, at time.Time) policies.Decision {
	if diffs := a.Plan.Differences(now); len(diffs) > 0 || a.Plan.Plan != now.Plan {
		if len(diffs) == 0 {
			diffs = []string{"the plan as a whole"}
		}
		dec.Reason = fmt.Sprintf("approval (%s) not used: the plan differs from the reviewed one: %s; %s",
			a.By, strings.Join(diffs, ", "), dec.Reason)
		return dec
	}
	if closed, ok := outsideWindow(a, pol, at); ok {
		return closed
	}
	return policies.Decision{Action: policies.Apply, Reason: fmt.Sprintf("approved (%s): the plan has exactly the reviewed changes", a.By)}
}

// approvedDrift decides a run of a refresh-only workspace carrying an
// approval of a refresh-only run, which binds to the drift it found
// (drift.HashDrift): the run planned in full, and applies that plan only
// when it finds exactly the reviewed drift (seen, the full plan's drift
// hash) and does nothing but revert it: no pending code, no replace (the
// reviewer saw updates, and re-creations of deleted resources), nothing the
// stack ignores; and only inside the apply window. Otherwise the policy's
// own decision stands, saying why the approval was not used.
func approvedDrift(a *Approval, seen drift.PlanHash, res drift.Result, pol *policies.Policy, dec policies.Decision, at time.Time) policies.Decision {
	notUsed := func(format string, args ...any) policies.Decision {
		dec.Reason = fmt.Sprintf("approval (%s) not used: %s; %s", a.By, fmt.Sprintf(format, args...), dec.Reason)
		return dec
	}
	if diffs := a.Plan.Differences(seen); len(diffs) > 0 || a.Plan.Plan != seen.Plan {
		if len(diffs) == 0 {
			diffs = []string{"the plan as a whole"}
		}
		return notUsed("the plan differs from the reviewed one: %s", strings.Join(diffs, ", "))
	}
	if len(res.Pending) > 0 {
		return notUsed("the full plan also changes %s for pending code, which the reviewed refresh-only run did not compare", addresses(res.Pending))
	}
	for _, f := range res.Drift {
		if f.Action != "update" && f.Action != "create" {
			return notUsed("the full plan %ss %s, where the reviewed refresh-only run showed drift to update", f.Action, f.Address)
		}
	}
	for _, f := range res.Noise {
		if f.Planned {
			return notUsed("the full plan would also change %s, which the stack ignores", f.Address)
		}
	}
	if closed, ok := outsideWindow(a, pol, at); ok {
		return closed
	}
	return policies.Decision{Action: policies.Apply,
		Reason: fmt.Sprintf("approved (%s): the full plan reverts exactly the drift the reviewed refresh-only run found", a.By)}
}

// outsideWindow is the decision for an approval outside the policy's apply
// window; ok is false inside it.
func outsideWindow(a *Approval, pol *policies.Policy, at time.Time) (policies.Decision, bool) {
	if pol.Window == nil || pol.Window.Contains(at) {
		return policies.Decision{}, false
	}
	return policies.Decision{Action: policies.Report, Escalated: true,
		Reason: fmt.Sprintf("approved (%s), but outside the apply window (%s for %s); not applied — approve again inside it",
			a.By, pol.Window.Spec, pol.Window.Duration)}, true
}

// scrubOutcome removes secrets from the free text of an outcome: the log
// and the error, both of which come from terraform.
func scrubOutcome(o *Outcome, secrets drift.Secrets) {
	o.Log = secrets.Scrub(o.Log)
	if o.Failure != nil {
		f := *o.Failure
		f.Message = secrets.Scrub(f.Message)
		o.Failure = &f
	}
	o.Action.Reason = secrets.Scrub(o.Action.Reason)
}

// SortOutcomes orders outcomes by stack, then workspace.
func SortOutcomes(out []Outcome) {
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Stack != out[j].Stack {
			return out[i].Stack < out[j].Stack
		}
		return out[i].Workspace < out[j].Workspace
	})
}
