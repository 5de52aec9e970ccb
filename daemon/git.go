package daemon

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/remediate"
	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/scheduler"
	"github.com/trueline/trueline/source"
	"github.com/trueline/trueline/stacks"
)

// poll fetches a repository on its interval and whenever a push arrives.
func (d *Daemon) poll(ctx context.Context, r *repo) {
	trigger := "commit"
	for {
		if err := d.refresh(ctx, r, trigger); err != nil && ctx.Err() == nil {
			d.log.Error("fetch failed; will retry", "repository", r.cfg.Name, "error", err)
		}
		trigger = "commit"
		select {
		case <-ctx.Done():
			return
		case t := <-r.fetch:
			trigger = t
		case <-time.After(r.cfg.Poll):
		}
	}
}

// refresh fetches, and queues a run for every workspace whose stack the new
// commits touched.
func (d *Daemon) refresh(ctx context.Context, r *repo, trigger string) error {
	if err := d.open(ctx, r); err != nil {
		return err
	}
	head, err := r.src.Fetch(ctx)
	r.mu.Lock()
	r.err = err
	prev := r.head
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if head == prev {
		return nil
	}
	if prev.IsZero() {
		// First look since start: compare with what was queued before.
		if h, err := d.ledger.Head(ctx, r.cfg.Name); err == nil && h != "" {
			prev = plumbing.NewHash(h)
		}
	}
	fsys, err := r.src.FS(head)
	if err != nil {
		return err
	}
	all, err := stacks.DiscoverFS(fsys)
	if err != nil {
		return err
	}
	var affected []string
	var reqs []ledger.Request
	if prev != head {
		changed, err := r.src.Changed(ctx, prev, head)
		if err != nil {
			// The old commit may be gone (force push): plan everything.
			d.log.Warn("cannot diff against the previous commit; planning every stack", "repository", r.cfg.Name, "error", err)
			if changed, err = r.src.Changed(ctx, plumbing.ZeroHash, head); err != nil {
				return err
			}
		}
		affected = stacks.Affected(fsys, all, changed)
		// A merged revert pull request changes its drift record: that is the
		// approval to apply the reviewed plan, if what was merged is the
		// branch trueline pushed (anyone can commit a file under .trueline/).
		for _, c := range changed {
			stack, ws, ok := remediate.ParseRecordPath(c)
			if !ok {
				continue
			}
			if _, err := fs.Stat(fsys, c); err != nil {
				continue // the record was removed, not merged
			}
			req, why := d.mergeApproval(ctx, r, stack, ws, head)
			if req == nil {
				d.log.Warn("a drift record changed, but it is no approval", "repository", r.cfg.Name, "stack", stack, "workspace", ws, "why", why)
				continue
			}
			reqs = append(reqs, *req)
		}
	}
	r.mu.Lock()
	old := r.stacks
	r.mu.Unlock()
	byPath := map[string]stacks.Stack{}
	for _, s := range all {
		byPath[s.Path] = s
	}
	for _, p := range affected {
		for _, ws := range workspacesOf(byPath[p], old) {
			reqs = append(reqs, ledger.Request{Workspace: run.Workspace{Repository: r.cfg.Name, Stack: p, Name: ws}, Commit: head.String(), Trigger: trigger})
		}
	}
	// All of the commit's runs are queued and the head moves, or neither:
	// a failure here is retried from the same previous head.
	if _, err := d.ledger.EnqueueAll(ctx, r.cfg.Name, head.String(), reqs); err != nil {
		return fmt.Errorf("queue the runs of %s: %w", head.String()[:12], err)
	}
	d.wake()
	r.mu.Lock()
	r.head, r.stacks = head, all
	r.mu.Unlock()
	d.register(r.cfg.Name, old, all)
	d.log.Info("new commit", "repository", r.cfg.Name, "commit", head.String()[:12], "stacks", len(all),
		"affected", len(affected), "queued", len(reqs), "trigger", trigger)
	return nil
}

// mergeApproval turns a merged drift record into an approved run, when the
// merged history holds the head of trueline's own remediation branch for
// that workspace; otherwise it says why not.
func (d *Daemon) mergeApproval(ctx context.Context, r *repo, stack, ws string, head plumbing.Hash) (*ledger.Request, string) {
	key := ledger.WorkspaceKey(r.cfg.Name, stack, ws)
	b, ok, err := d.ledger.Branch(ctx, key)
	switch {
	case err != nil:
		return nil, err.Error()
	case !ok:
		return nil, "trueline pushed no remediation branch for it"
	case b.Plan.Plan == "":
		return nil, "the remediation branch proposes no plan"
	}
	merged, err := r.src.Contains(head, plumbing.NewHash(b.Head))
	if err != nil {
		return nil, err.Error()
	}
	if !merged {
		return nil, fmt.Sprintf("the merged history does not contain %s, the head of branch %s", b.Head[:12], b.Name)
	}
	return &ledger.Request{Workspace: run.Workspace{Repository: r.cfg.Name, Stack: stack, Name: ws}, Commit: head.String(), Trigger: "merge", Approval: b.Plan.Plan, ApprovedRun: b.RunID, ApprovedBy: fmt.Sprintf("merged branch %s at %s", b.Name, b.Head[:12])}, ""
}

// open clones the repository, or opens the clone made earlier, once.
func (d *Daemon) open(ctx context.Context, r *repo) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.opened {
		return nil
	}
	if err := source.Open(ctx, r.src, filepath.Join(d.cfg.DataDir, "git")); err != nil {
		r.err = err
		return err
	}
	r.opened = true
	return nil
}

// workspacesOf names the workspaces to run for a stack; a broken stack.hcl
// has none of its own, so it runs under the names it had before (or
// "default"), and the run records the error.
func workspacesOf(s stacks.Stack, before []stacks.Stack) []string {
	if s.Config != nil {
		var out []string
		for _, ws := range s.Config.Workspaces {
			out = append(out, ws.Name)
		}
		return out
	}
	for _, b := range before {
		if b.Path == s.Path && b.Config != nil {
			return workspacesOf(b, nil)
		}
	}
	return []string{"default"}
}

// register brings the scheduler in line with a repository's stacks: new
// workspaces are added, changed schedules replaced, gone ones removed.
func (d *Daemon) register(repoName string, old, all []stacks.Stack) {
	expected := d.expectedDurations(context.Background())
	seen := map[string]bool{}
	for _, s := range all {
		if s.Config == nil {
			// Keep a broken stack's old schedule: fixing stack.hcl is a commit away.
			for _, ws := range workspacesOf(s, old) {
				seen[ledger.WorkspaceKey(repoName, s.Path, ws)] = true
			}
			continue
		}
		for _, ws := range s.Config.Workspaces {
			key := ledger.WorkspaceKey(repoName, s.Path, ws.Name)
			seen[key] = true
			d.mu.Lock()
			d.keys[key] = run.Workspace{Repository: repoName, Stack: s.Path, Name: ws.Name}
			d.mu.Unlock()
			d.sched.SetSpec(key, scheduleOf(s.Config, expected[key]))
		}
	}
	var ws []ledger.Workspace
	for _, s := range all {
		if s.Config == nil {
			continue
		}
		for _, w := range s.Config.Workspaces {
			ws = append(ws, ledger.Workspace{Workspace: run.Workspace{Repository: repoName, Stack: s.Path, Name: w.Name}, Schedule: scheduleText(s.Config), Timezone: s.Config.Timezone.String()})
		}
	}
	if err := d.ledger.SetWorkspaces(context.Background(), repoName, ws); err != nil {
		d.log.Error("cannot record the workspaces", "repository", repoName, "error", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for key, w := range d.keys {
		if w.Repository == repoName && !seen[key] {
			delete(d.keys, key)
			d.sched.Remove(key)
		}
	}
}

// scheduleOf is how the scheduler runs a stack's workspace; expected is
// how long its runs take, which places it in a window.
func scheduleOf(cfg *stacks.Config, expected time.Duration) scheduler.Spec {
	sp := scheduler.Spec{Text: cfg.Schedule, Schedule: cfg.Cron, Location: cfg.Timezone, Window: cfg.Window}
	if cfg.Window != nil {
		sp.Expected = expected
		sp.Account, sp.Weight = slotAccount(cfg)
	}
	return sp
}

// slotAccount is whose cloud budget a stack's runs spend, and how many of
// them the budget lets overlap: the scheduler spreads each account's
// workspaces over a window on their own (scheduler.Item). Stacks name no
// account yet, so every workspace is in one account with room for one run
// at a time; an account and its budget go here.
func slotAccount(*stacks.Config) (account string, weight float64) { return "", 1 }

// scheduleText is a workspace's schedule as the ledger, the dashboard and
// the API show it: the schedule, and its window ("nightly in 01:00-05:00").
// With a window it is no cron: the report does not take its cron's times
// for the run's.
func scheduleText(cfg *stacks.Config) string {
	if cfg.Window == nil {
		return cfg.Schedule
	}
	return cfg.Schedule + " in " + cfg.Window.String()
}

// expectedDurations is how long each workspace's runs take, from its latest
// finished run, for placing it in its window; empty when the ledger cannot
// say (the workspaces are then placed by their keys alone).
func (d *Daemon) expectedDurations(ctx context.Context) map[string]time.Duration {
	all, err := d.ledger.Summaries(ctx)
	if err != nil {
		d.log.Warn("cannot read the runs' durations; windows are spread without them", "error", err)
		return nil
	}
	out := make(map[string]time.Duration, len(all))
	for _, sm := range all {
		if sm.Latest != nil {
			out[sm.Workspace.Key()] = expectedOf(sm.Latest.DurationMS)
		}
	}
	return out
}

// expectedOf rounds a run's duration up to the minute, so that a run a few
// seconds slower than the last does not move the slots of its window.
func expectedOf(ms int64) time.Duration {
	if ms <= 0 {
		return 0
	}
	return (time.Duration(ms)*time.Millisecond + time.Minute - 1).Truncate(time.Minute)
}

// expect tells the scheduler how long a finished run took: its window's
// slots follow, so a restart, which reads the same durations from the
// ledger, spreads them the same way.
func (d *Daemon) expect(finished ledger.Run) {
	d.sched.SetExpected(finished.Workspace.Key(), expectedOf(finished.DurationMS))
}
