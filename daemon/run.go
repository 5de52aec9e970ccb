package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/stacks"
	"github.com/trueline/trueline/state"
)

// execute is one claimed run: resolve the commit, read the stack there,
// materialise what it needs, and reconcile it. Every way it ends, a failure
// before planning included, gives a result and a notice, so that the run is
// recorded beside the state (where the stack can still be read) and
// announced like any other.
func (d *Daemon) execute(ctx context.Context, job ledger.Run) (ledger.Result, *notice) {
	start := time.Now()
	log := d.log.With("run", job.ID, "repository", job.Repository, "stack", job.Stack, "workspace", job.Workspace.Name)
	n := &notice{targets: d.allTargets(), backend: state.Backend{Type: "unknown"}}
	fail := func(stage run.Stage, err error) (ledger.Result, *notice) {
		f := run.Fail(stage, err)
		log.Warn("run failed", "stage", f.Stage, "error", f.Message)
		return ledger.Result{Verdict: drift.Error, Failure: f, DurationMS: time.Since(start).Milliseconds()}, n
	}
	r, ok := d.repos[job.Repository]
	if !ok {
		return fail(run.Checkout, fmt.Errorf("repository %q is no longer configured", job.Repository))
	}
	// A run left from before a restart may be claimed before the first fetch.
	if err := d.open(ctx, r); err != nil {
		return fail(run.Checkout, err)
	}
	commit := plumbing.NewHash(job.Commit)
	if job.Commit == "" {
		r.mu.Lock()
		commit = r.head
		r.mu.Unlock()
		if commit.IsZero() {
			return fail(run.Checkout, fmt.Errorf("repository %s has not been fetched yet", job.Repository))
		}
		if err := d.ledger.SetCommit(ctx, job.ID, commit.String()); err != nil {
			return fail(run.Checkout, fmt.Errorf("record the commit: %w", err))
		}
	}
	fsys, err := r.src.FS(commit)
	if err != nil {
		// Not fetched yet: fetch once and look again.
		if _, ferr := r.src.Fetch(ctx); ferr != nil {
			return fail(run.Checkout, fmt.Errorf("%w (and fetching failed: %v)", err, ferr))
		}
		if fsys, err = r.src.FS(commit); err != nil {
			return fail(run.Checkout, err)
		}
	}
	st := stacks.LoadFS(fsys, job.Stack)
	if st.Err != nil {
		if errors.Is(st.Err, fs.ErrNotExist) {
			return fail(run.Checkout, fmt.Errorf("stack %s does not exist at commit %s (moved or deleted)", job.Stack, commit.String()[:12]))
		}
		return fail(run.Checkout, st.Err)
	}
	// From here on the record can go beside the state, and the targets are
	// the policy's once it is known.
	if b, err := state.Detect(fsys, st.Path, st.Config.BackendConfig); err != nil {
		log.Warn("cannot read the stack's backend; the record stays in the ledger", "error", err)
	} else {
		n.backend = b
	}
	key := job.Workspace.Key()
	dest := CheckoutDir(d.cfg.DataDir, key)
	n.dir = filepath.Join(dest, filepath.FromSlash(st.Path))
	var ws *stacks.Workspace
	for i := range st.Config.Workspaces {
		if st.Config.Workspaces[i].Name == job.Workspace.Name {
			ws = &st.Config.Workspaces[i]
		}
	}
	if ws == nil {
		return fail(run.Checkout, fmt.Errorf("stack %s declares no workspace %q at commit %s", job.Stack, job.Workspace.Name, commit.String()[:12]))
	}
	pol, err := policyOf(fsys, st)
	if err != nil {
		return fail(run.Policy, err)
	}
	n.targets = pol.Notify
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return fail(run.Checkout, err)
	}
	deps := stacks.Analyze(fsys, st)
	if err := r.src.Materialize(ctx, commit, deps.Paths, dest); err != nil {
		return fail(run.Checkout, fmt.Errorf("check out %s at %s: %w", job.Stack, commit.String()[:12], err))
	}
	// What the checkout leaves out (a path outside the repository, a link
	// leaving it) explains a plan that differs from trueline check's.
	for _, w := range deps.Warnings {
		log.Warn("not checked out", "why", w)
	}
	st.Dir = n.dir
	log.Info("run started", "commit", commit.String()[:12], "trigger", job.Trigger)
	target := reconcile.Target{Stack: st, Workspace: *ws, Policy: pol,
		BeforeApply: func(ctx context.Context) error { return d.ledger.MarkApplying(ctx, job.ID) }}
	target.Variables, target.Env = d.bindings(job.Workspace)
	if target.Git, err = d.gitAuth(ctx, r); err != nil {
		return fail(run.Init, err)
	}
	if job.RetryOf != 0 {
		// A run interrupted while applying is never applied again by itself.
		if prev, err := d.ledger.Get(ctx, job.RetryOf); err != nil {
			return fail(run.Policy, fmt.Errorf("the run this retries (%d): %w", job.RetryOf, err))
		} else if prev.Applying {
			target.Hold = fmt.Sprintf("run %d was interrupted while applying, so trueline does not apply by itself; "+
				"check the state (a held lock is named in this run's error; release it with trueline unlock), then approve this run", prev.ID)
		}
	}
	if job.Approval != "" {
		a, err := d.approvalOf(ctx, job)
		if err != nil {
			return fail(run.Policy, err)
		}
		target.Approved = a
	}
	out := d.rec.Run(ctx, key, target)
	switch {
	case out.Action.Kind == policies.PullRequest && out.Verdict != drift.Error:
		msg, err := d.propose(ctx, r, job, commit, fsys, st.Path, pol, out)
		if err != nil {
			// The verdict stands (the drift is real); the action failed, at
			// the propose stage.
			out.Action.Result = run.Failed
			out.Failure = run.Fail(run.Propose, fmt.Errorf("pull request: %w", err))
			msg = "pull request failed: " + err.Error()
			log.Warn("pull request failed", "error", err)
		}
		out.Action.Reason += "; " + msg
	case out.Verdict == drift.InSync:
		d.closePR(ctx, r, key, fmt.Sprintf("The drift is gone: run %d at %s found the workspace in sync.", job.ID, commit.String()[:12]))
	}
	if len(deps.Warnings) > 0 {
		// At the end, where the excerpt of a long log keeps it.
		out.Log += "\n\ntrueline: not checked out, so terraform cannot read it here:\n  " + strings.Join(deps.Warnings, "\n  ") + "\n"
	}
	return ledger.Result{Verdict: out.Verdict, Findings: out.Result, Log: excerpt(out.Log),
		DurationMS: time.Since(start).Milliseconds(), Action: out.Action, Failure: out.Failure, Plan: out.Plan}, n
}

// bindings are the server's secrets for a workspace (trueline.hcl secret
// blocks), as terraform variables and environment variables.
func (d *Daemon) bindings(w run.Workspace) (vars, env map[string]string) {
	for _, b := range d.cfg.Bindings {
		if !b.Applies(w.Repository, w.Stack, w.Name) {
			continue
		}
		if b.Variable != "" {
			if vars == nil {
				vars = map[string]string{}
			}
			vars[b.Variable] = b.Value.Value()
		} else {
			if env == nil {
				env = map[string]string{}
			}
			env[b.Env] = b.Value.Value()
		}
	}
	return vars, env
}

// policyOf reads the one policy a stack names. Only its own file has to
// parse: a broken policy file fails the stacks that name a policy in it,
// not every stack of the repository.
func policyOf(fsys fs.FS, st stacks.Stack) (*policies.Policy, error) {
	if st.Config.Policy == "" {
		return policies.ReportOnly, nil
	}
	pols, err := policies.LoadNamed(fsys, st.Config.Policy)
	if err != nil {
		return nil, err
	}
	return reconcile.PolicyFor(st, pols)
}

// allTargets are every configured notification target: a run that fails
// before its policy is known is announced to all of them.
func (d *Daemon) allTargets() []string {
	var out []string
	for _, n := range d.cfg.Notify {
		out = append(out, n.Target())
	}
	return out
}

// approvalOf reads what a person approved for a run that carries an
// approval: the plan of the approved run, from the ledger (never from
// anything in Git), which must be the plan hash the approval names.
func (d *Daemon) approvalOf(ctx context.Context, job ledger.Run) (*reconcile.Approval, error) {
	if job.ApprovedRun == 0 {
		return nil, fmt.Errorf("approval %.12s names no approved run; not applied", job.Approval)
	}
	src, err := d.ledger.Get(ctx, job.ApprovedRun)
	if err != nil {
		return nil, fmt.Errorf("approved run %d: %w", job.ApprovedRun, err)
	}
	if src.Plan.Plan != job.Approval {
		return nil, fmt.Errorf("approved run %d has plan %.12s, not the approved %.12s; not applied", src.ID, src.Plan.Plan, job.Approval)
	}
	by := fmt.Sprintf("run %d", src.ID)
	if job.ApprovedBy != "" {
		by += ", " + job.ApprovedBy
	}
	return &reconcile.Approval{Plan: src.Plan, By: by}, nil
}
