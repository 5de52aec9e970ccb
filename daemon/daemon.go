// Package daemon is `trueline serve`: it owns the Git checkouts of every
// configured repository, decides when each workspace is planned (its cron
// schedule, a new commit that touches it, a webhook, a manual trigger), and
// runs the queue from the ledger with bounded concurrency. Each run itself
// is reconcile.Run.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/robfig/cron/v3"
	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/forge"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/notify"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/remediate"
	"github.com/trueline/trueline/report"
	"github.com/trueline/trueline/scheduler"
	"github.com/trueline/trueline/source"
	"github.com/trueline/trueline/stacks"
	"github.com/trueline/trueline/state"
)

// LogExcerpt caps the run log kept in the ledger.
const LogExcerpt = 64 << 10

// Daemon runs trueline as a service.
type Daemon struct {
	cfg    config.Config
	ledger ledger.Ledger
	rec    *reconcile.Reconciler
	log    *slog.Logger
	sched  *scheduler.Scheduler
	repos  map[string]*repo
	order  []string // repository names as configured
	work   chan struct{}

	mu      sync.Mutex
	keys    map[string]workspace         // scheduler key -> workspace
	running map[int64]context.CancelFunc // runs in progress
	started time.Time

	notifier  *notify.Dispatcher
	announced map[string]string // workspace key -> last event kind and fingerprint

	// Observe, when set, is told of every finished run (metrics).
	Observe func(ledger.Run, ledger.Result)
}

type workspace struct{ repo, stack, name string }

type repo struct {
	cfg   config.Repository
	src   *source.Repo
	forge forge.Forge // nil when the repository has no forge: branches are pushed, PRs not opened
	fetch chan string // a push arrived: fetch now, with this trigger

	mu     sync.Mutex
	opened bool
	head   plumbing.Hash
	stacks []stacks.Stack
	err    error // last fetch error, for readiness and the dashboard
}

// New prepares a daemon; Run starts it.
func New(cfg config.Config, led ledger.Ledger, rec *reconcile.Reconciler, logger *slog.Logger) (*Daemon, error) {
	if len(cfg.Repositories) == 0 {
		return nil, errors.New("no repository configured: add a repository block to trueline.hcl or pass --repo")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{cfg: cfg, ledger: led, rec: rec, log: logger, repos: map[string]*repo{},
		work: make(chan struct{}, 1), keys: map[string]workspace{}, running: map[int64]context.CancelFunc{},
		announced: map[string]string{}}
	targets := map[string]notify.Sender{}
	for _, n := range cfg.Notify {
		targets[n.Target()] = &notify.Slack{Name: n.Name, WebhookURL: n.WebhookURL.Value(), Token: n.Token.Value(),
			Channel: n.Channel, APIURL: n.APIURL, Threads: led, Secrets: cfg.Secrets(), Logger: logger}
	}
	d.notifier = notify.NewDispatcher(targets, 256, logger)
	d.sched = scheduler.New(cfg.ScheduleJitter, d.fire)
	for _, rc := range cfg.Repositories {
		auth, err := authFor(rc)
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", rc.Name, err)
		}
		r := &repo{cfg: rc, fetch: make(chan string, 1),
			src: &source.Repo{Name: rc.Name, URL: rc.URL, Branch: rc.Branch, Auth: auth}}
		if rc.Forge != "none" && rc.Forge != "" {
			if r.forge, err = forge.New(forge.Options{Kind: rc.Forge, URL: rc.URL, APIURL: rc.APIURL, Token: rc.Token.Value()}); err != nil {
				return nil, fmt.Errorf("repository %s: %w", rc.Name, err)
			}
		}
		d.repos[rc.Name] = r
		d.order = append(d.order, rc.Name)
	}
	return d, nil
}

func authFor(rc config.Repository) (transport.AuthMethod, error) {
	switch {
	case rc.SSHKeyFile != "":
		return gitssh.NewPublicKeysFromFile("git", rc.SSHKeyFile, "")
	case rc.Token.IsSet():
		// GitHub, GitLab and Gitea all accept a token as the password.
		return &githttp.BasicAuth{Username: "x-access-token", Password: rc.Token.Value()}, nil
	}
	return nil, nil
}

// Run runs until ctx ends, then stops cleanly: no new runs are claimed,
// running terraform processes are interrupted and given the grace period,
// and runs that could not finish are marked interrupted (and re-queued once).
func (d *Daemon) Run(ctx context.Context) error {
	d.started = time.Now()
	interrupted, err := d.ledger.Recover(ctx)
	if err != nil {
		return err
	}
	for _, r := range interrupted {
		d.log.Warn("run was interrupted by a previous stop; re-queued once", "run", r.ID, "stack", r.Stack, "workspace", r.Workspace)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); d.sched.Run(ctx) }()
	go func() { defer wg.Done(); d.notifier.Run(ctx) }()
	for _, name := range d.order {
		r := d.repos[name]
		wg.Add(1)
		go func() { defer wg.Done(); d.poll(ctx, r) }()
	}
	if rc := d.cfg.Report; rc != nil {
		loc, _ := time.LoadLocation(rc.Timezone)
		c := cron.New(cron.WithLocation(loc), cron.WithParser(stacks.CronParser))
		if _, err := c.AddFunc(rc.Schedule, func() { d.postReport(ctx) }); err != nil {
			return fmt.Errorf("report schedule: %w", err)
		}
		c.Start()
		defer c.Stop()
	}
	var workers sync.WaitGroup
	for i := 0; i < max(1, d.cfg.Global); i++ {
		workers.Add(1)
		go func() { defer workers.Done(); d.worker(ctx) }()
	}
	<-ctx.Done()
	d.log.Info("stopping: no new runs; interrupting running ones", "grace", d.cfg.GracePeriod)
	d.mu.Lock()
	for _, cancel := range d.running {
		cancel()
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { workers.Wait(); wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.cfg.GracePeriod + 5*time.Second):
		d.log.Error("runs did not stop within the grace period")
	}
	return nil
}

// Ready reports whether every repository has been fetched at least once.
func (d *Daemon) Ready() bool {
	for _, r := range d.repos {
		r.mu.Lock()
		ok := !r.head.IsZero()
		r.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

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
	if prev != head {
		changed, err := r.src.Changed(ctx, prev, head)
		if err != nil {
			// The old commit may be gone (force push): plan everything.
			d.log.Warn("cannot diff against the previous commit; planning every stack", "repository", r.cfg.Name, "error", err)
			changed, _ = r.src.Changed(ctx, plumbing.ZeroHash, head)
		}
		affected = stacks.Affected(fsys, all, changed)
		// A merged revert pull request changes its drift record: that is the
		// approval to apply the reviewed changes.
		for _, c := range changed {
			stack, ws, ok := remediate.ParseRecordPath(c)
			if !ok {
				continue
			}
			if _, err := fs.Stat(fsys, c); err != nil {
				continue // the record was removed, not merged
			}
			if _, _, err := d.enqueue(ctx, ledger.Request{Repository: r.cfg.Name, Stack: stack, Workspace: ws, Commit: head.String(), Trigger: "merge"}); err != nil {
				return err
			}
		}
	}
	r.mu.Lock()
	old := r.stacks
	r.head, r.stacks = head, all
	r.mu.Unlock()
	d.register(r.cfg.Name, old, all)

	byPath := map[string]stacks.Stack{}
	for _, s := range all {
		byPath[s.Path] = s
	}
	queued := 0
	for _, p := range affected {
		for _, ws := range workspacesOf(byPath[p], old) {
			if _, _, err := d.enqueue(ctx, ledger.Request{Repository: r.cfg.Name, Stack: p, Workspace: ws, Commit: head.String(), Trigger: trigger}); err != nil {
				return err
			}
			queued++
		}
	}
	d.log.Info("new commit", "repository", r.cfg.Name, "commit", head.String()[:12], "stacks", len(all),
		"affected", len(affected), "queued", queued, "trigger", trigger)
	return d.ledger.SetHead(ctx, r.cfg.Name, head.String())
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
			d.keys[key] = workspace{repo: repoName, stack: s.Path, name: ws.Name}
			d.mu.Unlock()
			d.sched.Set(key, s.Config.Schedule, s.Config.Cron, s.Config.Timezone)
		}
	}
	var ws []ledger.Workspace
	for _, s := range all {
		if s.Config == nil {
			continue
		}
		for _, w := range s.Config.Workspaces {
			ws = append(ws, ledger.Workspace{Stack: s.Path, Workspace: w.Name, Schedule: s.Config.Schedule, Timezone: s.Config.Timezone.String()})
		}
	}
	if err := d.ledger.SetWorkspaces(context.Background(), repoName, ws); err != nil {
		d.log.Error("cannot record the workspaces", "repository", repoName, "error", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for key, w := range d.keys {
		if w.repo == repoName && !seen[key] {
			delete(d.keys, key)
			d.sched.Remove(key)
		}
	}
}

// fire is the scheduler's callback.
func (d *Daemon) fire(key string) {
	d.mu.Lock()
	w, ok := d.keys[key]
	d.mu.Unlock()
	if !ok {
		return
	}
	if _, _, err := d.enqueue(context.Background(), ledger.Request{Repository: w.repo, Stack: w.stack, Workspace: w.name, Trigger: "schedule"}); err != nil {
		d.log.Error("cannot queue a scheduled run", "workspace", key, "error", err)
	}
}

func (d *Daemon) enqueue(ctx context.Context, req ledger.Request) (ledger.Run, bool, error) {
	run, joined, err := d.ledger.Enqueue(ctx, req)
	if err != nil {
		return run, joined, err
	}
	select {
	case d.work <- struct{}{}:
	default:
	}
	return run, joined, nil
}

// worker claims and executes runs until ctx ends.
func (d *Daemon) worker(ctx context.Context) {
	for ctx.Err() == nil {
		run, err := d.ledger.Claim(ctx, ledger.Limits{PerRepository: d.cfg.PerRepository})
		if err != nil && ctx.Err() == nil {
			d.log.Error("claim", "error", err)
		}
		if run == nil {
			select {
			case <-ctx.Done():
				return
			case <-d.work:
			case <-time.After(time.Second):
			}
			continue
		}
		// Pass the wake-up on: another run may be startable too.
		select {
		case d.work <- struct{}{}:
		default:
		}
		// The run outlives ctx: on shutdown it is interrupted through its own cancel.
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		d.mu.Lock()
		d.running[run.ID] = cancel
		d.mu.Unlock()
		res, notice := d.execute(runCtx, *run)
		stopped := runCtx.Err() != nil
		d.mu.Lock()
		delete(d.running, run.ID)
		d.mu.Unlock()
		cancel()
		bg := context.WithoutCancel(ctx)
		if stopped {
			if err := d.ledger.Release(bg, []int64{run.ID}); err != nil {
				d.log.Error("release run", "run", run.ID, "error", err)
			}
			continue
		}
		if err := d.ledger.Finish(bg, run.ID, res); err != nil {
			d.log.Error("finish run", "run", run.ID, "error", err)
			continue
		}
		if d.Observe != nil {
			d.Observe(*run, res)
		}
		d.record(bg, *run, notice)
		d.announce(bg, *run, res, notice)
	}
}

// notice is what a run's notification and state record need beyond the
// ledger record.
type notice struct {
	outcome reconcile.Outcome
	targets []string
	backend state.Backend
	dir     string // the stack's directory in its checkout
}

// record writes the run's record beside the workspace's state. A failure
// never loses the run: it is in the ledger already, and gets the error.
func (d *Daemon) record(ctx context.Context, run ledger.Run, n *notice) {
	if n == nil {
		return
	}
	key := ledger.WorkspaceKey(run.Repository, run.Stack, run.Workspace)
	w, err := state.WriterFor(ctx, n.backend, n.dir, run.Workspace)
	if errors.Is(err, state.ErrLedgerOnly) {
		return
	}
	if err == nil {
		var rec state.Record
		if rec, err = d.recordOf(ctx, run.ID, key, n, w.Where()); err == nil {
			err = w.Write(ctx, rec)
		}
	}
	if err != nil {
		d.log.Warn("cannot write the record beside the state", "run", run.ID, "error", err)
		if err := d.ledger.SetRecordError(ctx, run.ID, err.Error()); err != nil {
			d.log.Error("ledger", "error", err)
		}
	}
}

func (d *Daemon) recordOf(ctx context.Context, id int64, key string, n *notice, where state.Location) (state.Record, error) {
	run, err := d.ledger.Get(ctx, id)
	if err != nil {
		return state.Record{}, err
	}
	o := n.outcome
	rec := state.Record{Schema: state.SchemaID, Version: 1, RunID: run.ID, Repository: run.Repository, Commit: run.Commit,
		Stack: run.Stack, Workspace: run.Workspace, Trigger: run.Trigger, Triggers: run.Triggers, QueuedAt: run.QueuedAt,
		StartedAt: run.StartedAt, FinishedAt: run.FinishedAt, Verdict: run.Verdict, Drift: o.Drift, Pending: o.Pending, Noise: o.Noise,
		Action: state.Action{Action: string(o.Action.Action), Reason: o.Action.Reason, Result: o.Action.Result}, State: where}
	if run.Error != "" {
		rec.Error = &run.Error
	}
	if c, err := d.ledger.LastApplied(ctx, key); err == nil && c != "" {
		rec.LastAppliedCommit = &c
	}
	if t, err := d.ledger.DriftedSince(ctx, key, run.ID); err == nil && !t.IsZero() {
		rec.DriftedSince = &t
	}
	return rec, nil
}

// announce notifies the policy's targets of a finished run, once per
// change: the same drift found again on every schedule is not repeated.
func (d *Daemon) announce(ctx context.Context, run ledger.Run, res ledger.Result, n *notice) {
	if n == nil || len(n.targets) == 0 {
		return
	}
	o := n.outcome
	var kind notify.Kind
	switch {
	case o.Verdict == drift.Error:
		kind = notify.Failed
	case o.Action.Result == "converged":
		kind = notify.Applied
	case o.Action.Escalated:
		kind = notify.Escalated
	case o.Action.Action == policies.PullRequest:
		kind = notify.PullRequest
	case o.Verdict != drift.InSync:
		kind = notify.DriftFound
	default:
		prev, _ := d.ledger.List(ctx, ledger.Filter{Repository: run.Repository, Stack: run.Stack, Workspace: run.Workspace, Status: ledger.Finished, Before: run.ID, Limit: 1})
		if len(prev) == 0 || prev[0].Verdict == string(drift.InSync) || prev[0].Verdict == "" {
			return
		}
		kind = notify.Cleared
	}
	key := ledger.WorkspaceKey(run.Repository, run.Stack, run.Workspace)
	mark := string(kind) + " " + o.Result.Fingerprint()
	d.mu.Lock()
	same := d.announced[key] == mark
	d.announced[key] = mark
	d.mu.Unlock()
	if same {
		return
	}
	e := notify.Event{Kind: kind, Repository: run.Repository, Stack: run.Stack, Workspace: run.Workspace,
		Commit: run.Commit, Verdict: string(o.Verdict), Result: o.Result, Action: res.Action, Reason: res.ActionReason, Error: res.Error,
		URL: d.runURL(run.ID)}
	d.notifier.Notify(n.targets, e)
}

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
	dest := filepath.Join(d.cfg.DataDir, "checkouts", safeKey(key))
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
	if run.Approval != "" {
		target.Approved = run.Approval
	} else if run.Trigger == "merge" || slices.Contains(run.Triggers, "merge") {
		record, err := fs.ReadFile(fsys, remediate.RecordPath(run.Stack, run.Workspace))
		if err != nil {
			return fail(fmt.Errorf("merge of the revert pull request: no drift record at %s: %w", commit.String()[:12], err))
		}
		target.Approved = remediate.Fingerprint(record)
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
		DurationMS: time.Since(start).Milliseconds(), Action: string(out.Action.Action), ActionReason: out.Action.Reason}
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

// propose opens or updates the workspace's remediation pull request: it
// pushes the branch (a drift record, or the adopted values), then finds the
// open pull request by branch and updates it, or opens one.
func (d *Daemon) propose(ctx context.Context, r *repo, run ledger.Run, commit plumbing.Hash, fsys fs.FS, stack string, pol *policies.Policy, out reconcile.Outcome) (string, error) {
	in := remediate.Input{Kind: pol.PRKind, Repository: run.Repository, Stack: run.Stack, Workspace: run.Workspace,
		Commit: commit.String(), RunID: run.ID, RunURL: d.runURL(run.ID), Result: out.Result, PlanLog: out.Log}
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
		files[remediate.RecordPath(run.Stack, run.Workspace)] = remediate.Record(in)
	}
	branch := forge.Branch(run.Stack, run.Workspace)
	title, body := remediate.Title(in), remediate.Body(in)
	if _, err := r.src.PushBranch(ctx, commit, branch, files, title); err != nil {
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
	key := ledger.WorkspaceKey(run.Repository, run.Stack, run.Workspace)
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
	d.ledger.DeletePullRequest(ctx, key)
}

// postReport sends the drift report's summary, with a link to the full
// report, to the report's notify targets.
func (d *Daemon) postReport(ctx context.Context) {
	rep, err := report.Build(ctx, d.ledger, time.Now(), d.cfg.Report.Since)
	if err != nil {
		d.log.Error("drift report", "error", err)
		return
	}
	url := ""
	if d.cfg.ExternalURL != "" {
		url = strings.TrimRight(d.cfg.ExternalURL, "/") + "/report?since=" + d.cfg.Report.Since.String()
	}
	d.notifier.Notify(d.cfg.Report.Notify, notify.Event{Kind: notify.Report, Reason: rep.Summary(), URL: url})
	d.log.Info("drift report sent", "summary", rep.Summary())
}

// runURL links to a run for people: the server's external URL, if known.
func (d *Daemon) runURL(id int64) string {
	if d.cfg.ExternalURL == "" {
		return ""
	}
	return fmt.Sprintf("%s/runs/%d", strings.TrimRight(d.cfg.ExternalURL, "/"), id)
}

func excerpt(log string) string {
	if len(log) <= LogExcerpt {
		return log
	}
	return "... (earlier output left out)\n" + log[len(log)-LogExcerpt:]
}

func safeKey(key string) string {
	return strings.NewReplacer("/", "__", "\\", "_", ":", "_", " ", "_").Replace(key)
}

// Approve queues a run that applies the plan of an escalated run, if the
// plan it makes then has exactly the same changes.
func (d *Daemon) Approve(ctx context.Context, id int64) (ledger.Run, error) {
	run, err := d.ledger.Get(ctx, id)
	if err != nil {
		return ledger.Run{}, err
	}
	if run.Status != ledger.Finished || len(run.Findings) == 0 || run.Verdict == "in_sync" || run.Verdict == "error" {
		return ledger.Run{}, fmt.Errorf("run %d has no plan to approve (verdict %q)", id, run.Verdict)
	}
	var res drift.Result
	if err := json.Unmarshal(run.Findings, &res); err != nil {
		return ledger.Run{}, err
	}
	queued, _, err := d.enqueue(ctx, ledger.Request{Repository: run.Repository, Stack: run.Stack, Workspace: run.Workspace,
		Trigger: "approve", Approval: res.Fingerprint()})
	return queued, err
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
			run, _, err := d.enqueue(ctx, ledger.Request{Repository: repoName, Stack: stack, Workspace: name, Trigger: trigger})
			if err != nil {
				return nil, err
			}
			runs = append(runs, run)
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
		info := map[string]any{"url": redact(r.cfg.URL), "branch": r.cfg.Branch, "head": "", "stacks": len(r.stacks)}
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

// redact drops credentials from a URL.
func redact(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.Index(u[i+3:], "@"); at >= 0 && !strings.Contains(u[i+3:i+3+at], "/") {
			return u[:i+3] + "***@" + u[i+3+at+1:]
		}
	}
	return u
}
