// Package reconcile wires one run together: for each selected workspace it
// plans with the runner, classifies the plan with drift, and reports the
// outcome. It is the one place a reader can follow a run top to bottom.
package reconcile

import (
	"context"
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
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/stacks"
	"golang.org/x/sync/errgroup"
)

// Outcome is what one run of one workspace found.
type Outcome struct {
	Stack     string `json:"stack"`
	Workspace string `json:"workspace"`
	drift.Result
	Error      *string `json:"error"`
	DurationMS int64   `json:"duration_ms"`
	// Init says whether this run had to run init.
	Init   bool   `json:"init"`
	Timing Timing `json:"timing"`
	// Log is terraform's combined output, capped; it is not part of the report.
	Log string `json:"-"`
}

// Timing splits a run's terraform time by command, in milliseconds.
type Timing struct {
	InitMS      int64 `json:"init_ms"`
	WorkspaceMS int64 `json:"workspace_ms"`
	PlanMS      int64 `json:"plan_ms"`
	ShowMS      int64 `json:"show_ms"`
}

func timingOf(t runner.Timing) Timing {
	return Timing{InitMS: t.Init.Milliseconds(), WorkspaceMS: t.Workspace.Milliseconds(),
		PlanMS: t.Plan.Milliseconds(), ShowMS: t.Show.Milliseconds()}
}

// Failed reports whether the run ended in an error.
func (o Outcome) Failed() bool { return o.Verdict == drift.Error }

func errorOutcome(stack, workspace string, err error) Outcome {
	msg := err.Error()
	o := Outcome{Stack: stack, Workspace: workspace, Result: drift.InSyncResult(), Error: &msg}
	o.Verdict = drift.Error
	return o
}

// Target is one workspace of one stack to run.
type Target struct {
	Stack     stacks.Stack
	Workspace stacks.Workspace
}

// Select picks the workspaces matching the stack globs (all when none) and
// the workspace name (all when empty). Broken stacks that match become
// error outcomes, so that they are reported while the others run.
func Select(all []stacks.Stack, globs []string, workspace string) ([]Target, []Outcome) {
	var targets []Target
	var broken []Outcome
	for _, s := range all {
		if !matchAny(globs, s.Path) {
			continue
		}
		if s.Err != nil {
			broken = append(broken, errorOutcome(s.Path, "", s.Err))
			continue
		}
		for _, ws := range s.Config.Workspaces {
			if workspace == "" || ws.Name == workspace {
				targets = append(targets, Target{Stack: s, Workspace: ws})
			}
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

// Options configure a Reconciler.
type Options struct {
	Toolchain   *runner.Toolchain
	WorkDir     string            // persistent working directories
	CLIConfig   string            // TF_CLI_CONFIG_FILE for every run; empty keeps the environment's
	PluginCache string            // shared TF_PLUGIN_CACHE_DIR; empty keeps the CLI config's
	Env         map[string]string // extra environment for every run
	Parallel    int               // concurrent runs; zero means the number of CPUs
	Grace       time.Duration     // how long terraform may take to stop after an interrupt
	Logger      *slog.Logger
	// Progress, when set, is told about every run as it starts and ends.
	Progress func(Event)
}

// Event reports progress.
type Event struct {
	Started bool // false: finished, with Outcome
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
	return &Reconciler{opts: opts, runners: map[string]*runner.Runner{}}
}

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
	rn := &runner.Runner{Binary: bin, WorkDir: r.opts.WorkDir, CLIConfig: r.opts.CLIConfig, Env: env, Grace: r.opts.Grace}
	r.runners[bin.Path] = rn
	return rn, nil
}

// Check plans every target, at most Parallel at a time, and returns the
// outcomes sorted by stack and workspace. Targets start longest-expected
// first (by last durations, when given; unknown ones first of all), so one
// slow stack does not finish last. One failing workspace never stops the
// others; cancelling ctx interrupts the running plans.
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
	g := new(errgroup.Group)
	g.SetLimit(r.opts.Parallel)
	for i, t := range targets {
		g.Go(func() error {
			r.progress(Event{Started: true, Target: t, Total: len(targets)})
			o := r.Run(ctx, key(t), t)
			out[i] = o
			mu.Lock()
			done++
			n := done
			mu.Unlock()
			r.progress(Event{Target: t, Outcome: o, Done: n, Total: len(targets)})
			return nil
		})
	}
	g.Wait()
	SortOutcomes(out)
	return out
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
	start := time.Now()
	log := r.opts.Logger.With("stack", t.Stack.Path, "workspace", t.Workspace.Name)
	finish := func(o Outcome) Outcome {
		o.DurationMS = time.Since(start).Milliseconds()
		log.Info("run finished", "verdict", o.Verdict, "drift", len(o.Drift), "pending", len(o.Pending),
			"noise", len(o.Noise), "init", o.Init, "duration_ms", o.DurationMS)
		return o
	}
	rn, err := r.runnerFor(ctx, t.Stack.Config)
	if err != nil {
		return finish(errorOutcome(t.Stack.Path, t.Workspace.Name, fmt.Errorf("%s (workspace %s): %w", t.Stack.Path, t.Workspace.Name, err)))
	}
	job := runner.Job{
		Key:           key,
		Dir:           t.Stack.Dir,
		Workspace:     t.Workspace.Name,
		VarFiles:      t.Workspace.VarFiles,
		BackendConfig: t.Stack.Config.BackendConfig,
		Env:           t.Workspace.Env,
	}
	plan, err := rn.Plan(ctx, job)
	if plan != nil {
		defer plan.Discard()
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			err = fmt.Errorf("interrupted: %w", err)
		}
		o := errorOutcome(t.Stack.Path, t.Workspace.Name, fmt.Errorf("%s (workspace %s): %w", t.Stack.Path, t.Workspace.Name, err))
		if plan != nil {
			o.Log, o.Init, o.Timing = plan.Log, plan.Init.Ran, timingOf(plan.Timing)
		}
		log.Warn("run failed", "error", err)
		return finish(o)
	}
	o := Outcome{Stack: t.Stack.Path, Workspace: t.Workspace.Name, Init: plan.Init.Ran, Log: plan.Log,
		Timing: timingOf(plan.Timing)}
	// An empty plan is in sync: nothing to show or classify.
	o.Result = drift.Classify(plan.JSON, t.Stack.Config.Ignore)
	return finish(o)
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
