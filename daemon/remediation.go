package daemon

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/trueline/trueline/forge"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/remediate"
)

// propose opens or updates the workspace's remediation pull request: it
// pushes the branch (a drift record, or the adopted values), then finds the
// open pull request by branch and updates it, or opens one.
func (d *Daemon) propose(ctx context.Context, r *repo, run ledger.Run, commit plumbing.Hash, fsys fs.FS, stack string, pol *policies.Policy, out reconcile.Outcome) (string, error) {
	in := remediate.Input{Kind: pol.PRKind, Repository: run.Repository, Stack: run.Stack, Workspace: run.Workspace.Name,
		Commit: commit.String(), RunID: run.ID, RunURL: d.runURL(run.ID), Result: out.Result, PlanLog: out.Log,
		PlanHash: out.Plan.Plan, MaxBody: forge.MaxBody(r.cfg.Forge)}
	files := map[string][]byte{}
	if in.Kind == remediate.Adopt {
		files, in.Notes = remediate.AdoptEdits(fsys, stack, out.Drift)
		if len(files) == 0 {
			in.Kind = remediate.Revert
			in.Notes = append(in.Notes, "Nothing could be adopted in code, so this pull request reverts the drift instead.")
			files = map[string][]byte{}
		}
	}
	if in.Kind == remediate.Revert {
		files[remediate.RecordPath(run.Stack, run.Workspace.Name)] = remediate.Record(in)
	}
	branch := forge.Branch(run.Stack, run.Workspace.Name)
	title, body := remediate.Title(in), remediate.Body(in)
	pushed, err := r.src.PushBranch(ctx, commit, branch, files, title)
	if err != nil {
		return "", err
	}
	key := run.Workspace.Key()
	// Merging exactly this branch approves exactly this plan.
	if err := d.ledger.SetBranch(ctx, key, ledger.Branch{Name: branch, Head: pushed.String(), RunID: run.ID, Plan: out.Plan}); err != nil {
		return "", err
	}
	if r.forge == nil {
		d.log.Info("remediation branch pushed; no forge configured, so no pull request", "branch", branch, "body", body)
		return fmt.Sprintf("%s branch %s pushed (no forge configured)", in.Kind, branch), nil
	}
	pr, err := r.forge.FindOpen(ctx, branch)
	if err != nil {
		return "", err
	}
	verb := "updated"
	if pr != nil {
		err = r.forge.Update(ctx, pr.Number, title, body)
	} else {
		verb = "opened"
		pr, err = r.forge.Create(ctx, forge.NewPR{Title: title, Body: body, Head: branch, Base: r.cfg.Branch})
	}
	if err != nil {
		return "", err
	}
	if err := d.ledger.SetPullRequest(ctx, key, pr.Number, pr.URL); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s pull request #%d %s: %s", in.Kind, pr.Number, verb, pr.URL), nil
}

// closePR closes the workspace's open remediation pull request, if any.
func (d *Daemon) closePR(ctx context.Context, r *repo, key, comment string) {
	n, _, err := d.ledger.PullRequest(ctx, key)
	if err != nil || n == 0 {
		return
	}
	if r.forge != nil {
		if err := r.forge.Close(ctx, n, comment); err != nil {
			// A merged pull request cannot be closed; either way it is done.
			d.log.Info("closing the pull request", "number", n, "error", err)
		}
	}
	if err := d.ledger.DeletePullRequest(ctx, key); err != nil {
		// The next in-sync run tries again; the forge's side is done.
		d.log.Warn("cannot forget the closed pull request", "number", n, "error", err)
	}
}
