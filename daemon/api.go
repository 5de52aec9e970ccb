package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/source"
	"github.com/trueline/trueline/stacks"
)

// Approvable applies the one rule for which runs a person may approve
// (ledger.Run.Approvable) with what the rule needs: the workspace's latest
// finished run and the policy's approve_within at the run's commit.
func (d *Daemon) Approvable(ctx context.Context, job ledger.Run) error {
	latest, err := d.ledger.List(ctx, ledger.Filter{Repository: job.Repository, Stack: job.Stack, Workspace: job.Workspace.Name,
		Status: ledger.Finished, Limit: 1})
	if err != nil {
		return err
	}
	var latestID int64
	if len(latest) > 0 {
		latestID = latest[0].ID
	}
	// Every rule but the age first: most runs a page shows fail one, and
	// reading the policy at the run's commit costs a Git tree and a parse.
	now := time.Now()
	if err := job.Approvable(latestID, now.Sub(job.FinishedAt), now); err != nil {
		return err
	}
	within := policies.DefaultApproveWithin
	if pol, err := d.policyAt(job); err != nil {
		d.log.Warn("cannot read the run's policy; approve_within is the default", "run", job.ID, "error", err)
	} else {
		within = pol.ApproveWithin
	}
	return job.Approvable(latestID, within, now)
}

// Approve queues a run that plans the approved run's workspace at the same
// commit and applies the plan only if it is identical to the approved one.
func (d *Daemon) Approve(ctx context.Context, id int64, by string) (ledger.Run, error) {
	run, err := d.ledger.Get(ctx, id)
	if err != nil {
		return ledger.Run{}, err
	}
	if err := d.Approvable(ctx, run); err != nil {
		return ledger.Run{}, err
	}
	if by == "" {
		by = "unknown"
	}
	queued, _, err := d.enqueue(ctx, ledger.Request{Workspace: run.Workspace, Commit: run.Commit, Trigger: "approve", Approval: run.Plan.Plan, ApprovedRun: run.ID, ApprovedBy: "approved by " + by})
	if err != nil {
		return ledger.Run{}, err
	}
	d.log.Info("plan approved", "run", run.ID, "by", by, "queued", queued.ID, "commit", run.Commit)
	return queued, nil
}

// policyAt reads the policy a run's stack had at the run's commit.
func (d *Daemon) policyAt(run ledger.Run) (*policies.Policy, error) {
	r, ok := d.repos[run.Repository]
	if !ok {
		return nil, fmt.Errorf("repository %q is not configured", run.Repository)
	}
	fsys, err := r.src.FS(plumbing.NewHash(run.Commit))
	if err != nil {
		return nil, err
	}
	st := stacks.LoadFS(fsys, run.Stack)
	if st.Err != nil {
		return nil, st.Err
	}
	return policyOf(fsys, st)
}

// Trigger queues manual runs: one workspace, or every workspace of a stack.
func (d *Daemon) Trigger(ctx context.Context, repoName, stack, ws, trigger string) ([]ledger.Run, error) {
	if repoName == "" {
		if len(d.order) != 1 {
			return nil, fmt.Errorf("name the repository: one of %s", strings.Join(d.order, ", "))
		}
		repoName = d.order[0]
	}
	r, ok := d.repos[repoName]
	if !ok {
		return nil, fmt.Errorf("no repository %q", repoName)
	}
	r.mu.Lock()
	all := r.stacks
	r.mu.Unlock()
	for _, s := range all {
		if s.Path != stack {
			continue
		}
		var runs []ledger.Run
		for _, name := range workspacesOf(s, nil) {
			if ws != "" && name != ws {
				continue
			}
			queued, _, err := d.enqueue(ctx, ledger.Request{Workspace: run.Workspace{Repository: repoName, Stack: stack, Name: name}, Trigger: trigger})
			if err != nil {
				return nil, err
			}
			runs = append(runs, queued)
		}
		if len(runs) == 0 {
			return nil, fmt.Errorf("stack %s has no workspace %q", stack, ws)
		}
		return runs, nil
	}
	// "stacks/web/staging" may name workspace staging of stack stacks/web.
	if i := strings.LastIndex(stack, "/"); ws == "" && i > 0 {
		if runs, err := d.Trigger(ctx, repoName, stack[:i], stack[i+1:], trigger); err == nil {
			return runs, nil
		}
	}
	return nil, fmt.Errorf("repository %s has no stack %q at its head", repoName, stack)
}

// WebhookSecret implements server.Hooks.
func (d *Daemon) WebhookSecret(repoName string) (string, []byte, bool) {
	r, ok := d.repos[repoName]
	if !ok {
		return "", nil, false
	}
	return r.cfg.Forge, []byte(r.cfg.WebhookSecret.Value()), true
}

// Pushed implements server.Hooks: a push to the watched branch fetches now.
func (d *Daemon) Pushed(repoName, branch, after string) (bool, string) {
	r, ok := d.repos[repoName]
	if !ok {
		return false, "unknown repository"
	}
	if branch != r.cfg.Branch {
		return false, fmt.Sprintf("branch %s is not watched (watching %s)", branch, r.cfg.Branch)
	}
	select {
	case r.fetch <- "webhook":
	default: // a fetch is already pending
	}
	return true, "fetching " + r.cfg.Branch
}

// Next tells when a workspace's schedule runs it next (zero: not scheduled).
func (d *Daemon) Next(key string) time.Time { return d.sched.Next(key) }

// Status describes the daemon: registered workspaces, scheduled ones,
// runs in progress, and each repository's head.
func (d *Daemon) Status() map[string]any {
	d.mu.Lock()
	workspaces, running := len(d.keys), len(d.running)
	d.mu.Unlock()
	repos := map[string]any{}
	for name, r := range d.repos {
		r.mu.Lock()
		info := map[string]any{"url": source.RedactURL(r.cfg.URL), "branch": r.cfg.Branch, "head": "", "stacks": len(r.stacks)}
		if !r.head.IsZero() {
			info["head"] = r.head.String()
		}
		if r.err != nil {
			info["error"] = r.err.Error()
		}
		r.mu.Unlock()
		repos[name] = info
	}
	return map[string]any{"workspaces": workspaces, "scheduled": d.sched.Len(), "running": running,
		"repositories": repos, "started_at": d.started.UTC()}
}
