package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/stacks"
	"github.com/trueline/trueline/state"
)

// execute is one claimed run: resolve the commit, read the stack there,
// materialise what it needs, and reconcile it.
func (d *Daemon) execute(ctx context.Context, run ledger.Run) (ledger.Result, *notice) {
	start := time.Now()
	log := d.log.With("run", run.ID, "repository", run.Repository, "stack", run.Stack, "workspace", run.Workspace)
	fail := func(err error) (ledger.Result, *notice) {
		log.Warn("run failed", "error", err)
		return ledger.Result{Verdict: "error", Error: err.Error(), DurationMS: time.Since(start).Milliseconds()}, nil
	}
	r, ok := d.repos[run.Repository]
	if !ok {
		return fail(fmt.Errorf("repository %q is no longer configured", run.Repository))
	}
	// A run left from before a restart may be claimed before the first fetch.
	if err := d.open(ctx, r); err != nil {
		return fail(err)
	}
	commit := plumbing.NewHash(run.Commit)
	if run.Commit == "" {
		r.mu.Lock()
		commit = r.head
		r.mu.Unlock()
		if commit.IsZero() {
			return fail(fmt.Errorf("repository %s has not been fetched yet", run.Repository))
		}
		d.ledger.SetCommit(ctx, run.ID, commit.String())
	}
	fsys, err := r.src.FS(commit)
	if err != nil {
		// Not fetched yet: fetch once and look again.
		if _, ferr := r.src.Fetch(ctx); ferr != nil {
			return fail(fmt.Errorf("%w (and fetching failed: %v)", err, ferr))
		}
		if fsys, err = r.src.FS(commit); err != nil {
			return fail(err)
		}
	}
	st := stacks.LoadFS(fsys, run.Stack)
	if st.Err != nil {
		if errors.Is(st.Err, fs.ErrNotExist) {
			return fail(fmt.Errorf("stack %s does not exist at commit %s (moved or deleted)", run.Stack, commit.String()[:12]))
		}
		return fail(st.Err)
	}
	var ws *stacks.Workspace
	for i := range st.Config.Workspaces {
		if st.Config.Workspaces[i].Name == run.Workspace {
			ws = &st.Config.Workspaces[i]
		}
	}
	if ws == nil {
		return fail(fmt.Errorf("stack %s declares no workspace %q at commit %s", run.Stack, run.Workspace, commit.String()[:12]))
	}
	pols, err := policies.Load(fsys)
	if err != nil {
		return fail(err)
	}
	pol, err := reconcile.PolicyFor(st, pols)
	if err != nil {
		return fail(err)
	}
	key := ledger.WorkspaceKey(run.Repository, run.Stack, run.Workspace)
	dest := CheckoutDir(d.cfg.DataDir, key)
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return fail(err)
	}
	if err := r.src.Materialize(ctx, commit, stacks.Dependencies(fsys, st), dest); err != nil {
		return fail(fmt.Errorf("check out %s at %s: %w", run.Stack, commit.String()[:12], err))
	}
	st.Dir = filepath.Join(dest, filepath.FromSlash(st.Path))
	log.Info("run started", "commit", commit.String()[:12], "trigger", run.Trigger)
	target := reconcile.Target{Stack: st, Workspace: *ws, Policy: pol,
		BeforeApply: func(ctx context.Context) error { return d.ledger.MarkApplying(ctx, run.ID) }}
	if run.RetryOf != 0 {
		// A run interrupted while applying is never applied again by itself.
		if prev, err := d.ledger.Get(ctx, run.RetryOf); err != nil {
			return fail(fmt.Errorf("the run this retries (%d): %w", run.RetryOf, err))
		} else if prev.Applying {
			target.Hold = fmt.Sprintf("run %d was interrupted while applying, so trueline does not apply by itself; "+
				"check the state (a held lock is named in this run's error; release it with trueline unlock), then approve this run", prev.ID)
		}
	}
	if run.Approval != "" {
		a, err := d.approvalOf(ctx, run)
		if err != nil {
			return fail(err)
		}
		target.Approved = a
	}
	out := d.rec.Run(ctx, key, target)
	switch {
	case out.Action.Action == policies.PullRequest && out.Verdict != drift.Error:
		msg, err := d.propose(ctx, r, run, commit, fsys, st.Path, pol, out)
		if err != nil {
			out.Action.Result = "failed"
			msg = "pull request failed: " + err.Error()
			log.Warn("pull request failed", "error", err)
		}
		out.Action.Reason += "; " + msg
	case out.Verdict == drift.InSync:
		d.closePR(ctx, r, key, fmt.Sprintf("The drift is gone: run %d at %s found the workspace in sync.", run.ID, commit.String()[:12]))
	}
	findings, _ := json.Marshal(out.Result)
	res := ledger.Result{Verdict: string(out.Verdict), Findings: findings, Log: excerpt(out.Log),
		DurationMS: time.Since(start).Milliseconds(), Action: string(out.Action.Action), ActionReason: out.Action.Reason,
		Plan: out.Plan}
	if out.Action.Result != "" {
		res.Action += ":" + out.Action.Result
	}
	if out.Error != nil {
		res.Error = *out.Error
	}
	backend, err := state.Detect(fsys, st.Path, st.Config.BackendConfig)
	if err != nil {
		log.Warn("cannot read the stack's backend; the record stays in the ledger", "error", err)
		backend = state.Backend{Type: "unknown"}
	}
	return res, &notice{outcome: out, targets: pol.Notify, backend: backend, dir: st.Dir}
}

// approvalOf reads what a person approved for a run that carries an
// approval: the plan of the approved run, from the ledger (never from
// anything in Git), which must be the plan hash the approval names.
func (d *Daemon) approvalOf(ctx context.Context, run ledger.Run) (*reconcile.Approval, error) {
	if run.ApprovedRun == 0 {
		return nil, fmt.Errorf("approval %.12s names no approved run; not applied", run.Approval)
	}
	src, err := d.ledger.Get(ctx, run.ApprovedRun)
	if err != nil {
		return nil, fmt.Errorf("approved run %d: %w", run.ApprovedRun, err)
	}
	if src.Plan.Plan != run.Approval {
		return nil, fmt.Errorf("approved run %d has plan %.12s, not the approved %.12s; not applied", src.ID, src.Plan.Plan, run.Approval)
	}
	by := fmt.Sprintf("run %d", src.ID)
	if run.ApprovedBy != "" {
		by += ", " + run.ApprovedBy
	}
	return &reconcile.Approval{Plan: src.Plan, By: by}, nil
}
