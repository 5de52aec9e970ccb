// Package daemon is `trueline serve`: it owns the Git checkouts of every
// configured repository, decides when each workspace is planned (its cron
// schedule, a new commit that touches it, a webhook, a manual trigger), and
// runs the queue from the ledger with bounded concurrency: a run is claimed
// only when it can have one of the limiter's slots, whose number adapts
// between the CPU count and limits { global } (see package limiter). Each
// run itself is reconcile.Run.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/robfig/cron/v3"
	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/forge"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/limiter"
	"github.com/trueline/trueline/notify"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/scheduler"
	"github.com/trueline/trueline/source"
	"github.com/trueline/trueline/stacks"
)

// LogExcerpt caps the run log kept in the ledger.
const LogExcerpt = 64 << 10

// Daemon runs trueline as a service.
type Daemon struct {
	cfg    config.Config
	ledger ledger.Ledger
	rec    Planner
	log    *slog.Logger
	sched  *scheduler.Scheduler
	repos  map[string]*repo
	order  []string // repository names as configured
	work   chan struct{}
	// slots bound the runs in progress: the planner's limiter, shared
	// with its account budgets, when it has one.
	slots *limiter.Limiter

	mu      sync.Mutex
	keys    map[string]run.Workspace     // scheduler key (Workspace.Key) -> the workspace
	running map[int64]context.CancelFunc // runs in progress
	started time.Time

	notifier *notify.Dispatcher

	// Observe, when set, is told of every finished run (metrics).
	Observe func(ledger.Run, ledger.Result)
}

// Planner runs one workspace: plan, classify, decide, apply
// (reconcile.Reconciler).
type Planner interface {
	Run(ctx context.Context, key string, t reconcile.Target) reconcile.Outcome
}

// limited is a Planner with a limiter (reconcile.Reconciler): the daemon's
// run slots are its slots.
type limited interface {
	Limiter() *limiter.Limiter
}

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
func New(cfg config.Config, led ledger.Ledger, rec Planner, logger *slog.Logger) (*Daemon, error) {
	if len(cfg.Repositories) == 0 {
		return nil, errors.New("no repository configured: add a repository block to trueline.hcl or pass --repo")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{cfg: cfg, ledger: led, rec: rec, log: logger, repos: map[string]*repo{},
		work: make(chan struct{}, 1), keys: map[string]run.Workspace{}, running: map[int64]context.CancelFunc{},
	}
	if l, ok := rec.(limited); ok {
		d.slots = l.Limiter()
	} else {
		d.slots = limiter.New(limiter.Options{Floor: max(1, cfg.Global), Ceiling: max(1, cfg.Global), Logger: logger})
	}
	targets := map[string]notify.Sender{}
	for _, n := range cfg.Notify {
		targets[n.Target()] = &notify.Slack{Name: n.Name, WebhookURL: n.WebhookURL.Value(), Token: n.Token.Value(),
			Channel: n.Channel, APIURL: n.APIURL, Threads: led, Secrets: cfg.Secrets(), Logger: logger}
	}
	d.notifier = notify.NewDispatcher(targets, 256, logger)
	d.sched = scheduler.New(cfg.ScheduleJitter, d.fire)
	for _, rc := range cfg.Repositories {
		src, fg, err := connect(rc, logger)
		if err != nil {
			return nil, err
		}
		r := &repo{cfg: rc, fetch: make(chan string, 1), src: src, forge: fg}
		d.repos[rc.Name] = r
		d.order = append(d.order, rc.Name)
	}
	return d, nil
}

// SourceFor is the Git repository of a configured repository, with its
// credentials; serve and trueline doctor reach Git through it alike.
func SourceFor(rc config.Repository) (*source.Repo, error) {
	src, _, err := connect(rc, nil)
	return src, err
}

// ForgeFor is the forge of a configured repository, with its credentials
// (a token or a GitHub App installation); nil for forge "none".
func ForgeFor(rc config.Repository) (forge.Forge, error) {
	_, fg, err := connect(rc, nil)
	return fg, err
}

// connect makes a repository's Git source and forge driver. A GitHub App's
// one token source serves both: the API, and Git over HTTPS with a token
// fresh for each clone, fetch and push.
func connect(rc config.Repository, logger *slog.Logger) (*source.Repo, forge.Forge, error) {
	auth, err := authFor(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("repository %s: %w", rc.Name, err)
	}
	src := &source.Repo{Name: rc.Name, URL: rc.URL, Branch: rc.Branch, Auth: auth}
	var app *forge.App
	if ga := rc.GitHubApp; ga != nil {
		app, err = forge.NewApp(forge.Options{Kind: rc.Forge, URL: rc.URL, APIURL: rc.APIURL},
			forge.AppAuth{AppID: ga.AppID, InstallationID: ga.InstallationID, PrivateKeyPEM: []byte(ga.PrivateKey.Value()), KeySource: ga.PrivateKey.Source}, logger)
		if err != nil {
			return nil, nil, fmt.Errorf("repository %s: %w", rc.Name, err)
		}
		if overHTTP(rc.URL) {
			src.AuthFor = func(ctx context.Context) (transport.AuthMethod, error) {
				tok, err := app.Token(ctx)
				if err != nil {
					return nil, err
				}
				return &githttp.BasicAuth{Username: "x-access-token", Password: tok}, nil
			}
		}
	}
	if rc.Forge == "none" || rc.Forge == "" {
		return src, nil, nil
	}
	fg, err := forge.New(forge.Options{Kind: rc.Forge, URL: rc.URL, APIURL: rc.APIURL, Token: rc.Token.Value(), App: app})
	if err != nil {
		return nil, nil, fmt.Errorf("repository %s: %w", rc.Name, err)
	}
	return src, fg, nil
}

func overHTTP(url string) bool {
	return strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://")
}

// authFor is trueline's own Git credentials for a repository: over SSH its
// key, with the server's host key checked against its known_hosts file.
func authFor(rc config.Repository) (transport.AuthMethod, error) {
	switch {
	case rc.SSHKeyFile != "":
		return source.SSHAuth(rc.URL, rc.SSHKeyFile, rc.KnownHostsFile)
	case rc.Token.IsSet():
		// GitHub, GitLab and Gitea all accept a token as the password.
		return &githttp.BasicAuth{Username: "x-access-token", Password: rc.Token.Value()}, nil
	}
	return nil, nil
}

// gitAuthFor is what a repository's configuration gives terraform's Git
// module fetches: its token (offered on the repository's own host only),
// its SSH key and known_hosts file; nil when it has none of them.
func gitAuthFor(rc config.Repository) *runner.GitAuth {
	if !rc.Token.IsSet() && rc.SSHKeyFile == "" && rc.KnownHostsFile == "" {
		return nil
	}
	return &runner.GitAuth{URL: rc.URL, Token: rc.Token.Value(), SSHKeyFile: rc.SSHKeyFile, KnownHostsFile: rc.KnownHostsFile}
}

// gitAuth is the Git credentials of one run of repository r, for
// terraform's module fetches: the configured ones, and a token that
// changes over time (a GitHub App installation's) taken from the
// repository's own source at the moment the run starts.
func (d *Daemon) gitAuth(ctx context.Context, r *repo) (*runner.GitAuth, error) {
	a := gitAuthFor(r.cfg)
	if r.src == nil || r.src.AuthFor == nil || !overHTTP(r.cfg.URL) {
		return a, nil
	}
	m, err := r.src.AuthFor(ctx)
	if err != nil {
		return nil, fmt.Errorf("git credentials of repository %s: %w", r.cfg.Name, err)
	}
	if b, ok := m.(*githttp.BasicAuth); ok {
		if a == nil {
			a = &runner.GitAuth{URL: r.cfg.URL}
		}
		a.Username, a.Token = b.Username, b.Password
	}
	return a, nil
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
		d.log.Warn("run was interrupted by a previous stop; re-queued once", "run", r.ID, "stack", r.Stack, "workspace", r.Workspace.Name)
	}
	d.removeLeftovers()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); d.sched.Run(ctx) }()
	go func() { defer wg.Done(); d.notifier.Run(ctx) }()
	go func() { defer wg.Done(); d.maintain(ctx) }()
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
	workers.Go(func() { d.dispatch(ctx, &workers) })
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

// fire is the scheduler's callback.
func (d *Daemon) fire(key string) {
	d.mu.Lock()
	w, ok := d.keys[key]
	d.mu.Unlock()
	if !ok {
		return
	}
	if _, _, err := d.enqueue(context.Background(), ledger.Request{Workspace: w, Trigger: "schedule"}); err != nil {
		d.log.Error("cannot queue a scheduled run", "workspace", key, "error", err)
	}
}

func (d *Daemon) enqueue(ctx context.Context, req ledger.Request) (ledger.Run, bool, error) {
	run, joined, err := d.ledger.Enqueue(ctx, req)
	if err != nil {
		return run, joined, err
	}
	d.wake()
	return run, joined, nil
}

// wake tells the idle dispatcher there may be work.
func (d *Daemon) wake() {
	select {
	case d.work <- struct{}{}:
	default:
	}
}

// dispatch claims runs until ctx ends, each once it holds a free slot,
// and executes each in its own goroutine (counted in runs), which gives
// the slot back when the run ends. One claimer, however many slots: an
// idle daemon asks the ledger once a second, or when woken.
func (d *Daemon) dispatch(ctx context.Context, runs *sync.WaitGroup) {
	for ctx.Err() == nil {
		release, err := d.slots.Acquire(ctx)
		if err != nil {
			return
		}
		run, err := d.ledger.Claim(ctx, ledger.Limits{PerRepository: d.cfg.PerRepository})
		if err != nil && ctx.Err() == nil {
			d.log.Error("claim", "error", err)
		}
		if run == nil {
			release()
			select {
			case <-ctx.Done():
				return
			case <-d.work:
			case <-time.After(time.Second):
			}
			continue
		}
		runs.Go(func() {
			defer release()
			d.process(ctx, *run)
			// Its repository may have a run waiting for this one's place.
			d.wake()
		})
	}
}

// process is one claimed run, top to bottom: execute it (checkout, policy,
// plan, classify, decide, apply or propose), finish it in the ledger, write
// its record beside the state, announce it. A run stopped by shutdown is
// released (interrupted and queued again) instead.
func (d *Daemon) process(ctx context.Context, job ledger.Run) {
	// The run outlives ctx: on shutdown it is interrupted through its own cancel.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.mu.Lock()
	d.running[job.ID] = cancel
	d.mu.Unlock()
	res, notice := d.execute(runCtx, job)
	stopped := runCtx.Err() != nil
	d.mu.Lock()
	delete(d.running, job.ID)
	d.mu.Unlock()
	cancel()
	bg := context.WithoutCancel(ctx)
	if stopped {
		if err := d.ledger.Release(bg, []int64{job.ID}); err != nil {
			d.log.Error("release run", "run", job.ID, "error", err)
		}
		return
	}
	finished, err := d.finish(bg, job, res)
	if err != nil {
		return
	}
	if d.Observe != nil {
		d.Observe(finished, res)
	}
	d.expect(finished)
	// The record first: an announcement links to a run whose record is written.
	d.record(bg, finished, notice)
	d.announce(bg, finished, notice)
	if job.Approval != "" && len(job.Triggers) > 1 {
		// A newer commit joined while the approved run waited; the approved
		// run kept its commit, so the newer one is planned now.
		if _, _, err := d.enqueue(bg, ledger.Request{Workspace: job.Workspace, Trigger: "commit"}); err != nil {
			d.log.Error("cannot queue the run after an approval", "run", job.ID, "error", err)
		}
	}
}

// finish records a run's result, retrying a failing ledger for a while;
// if it still fails, the run is released (interrupted and queued again),
// so its workspace is never left "running" until a restart.
func (d *Daemon) finish(ctx context.Context, run ledger.Run, res ledger.Result) (ledger.Run, error) {
	wait := 100 * time.Millisecond
	var err error
	for attempt := 1; attempt <= finishAttempts; attempt++ {
		finished, ferr := d.ledger.Finish(ctx, run.ID, res)
		if err = ferr; err == nil {
			return finished, nil
		}
		d.log.Warn("finish run failed; retrying", "run", run.ID, "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return ledger.Run{}, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
	d.log.Error("finish run failed; releasing it to be planned again", "run", run.ID, "error", err)
	if rerr := d.ledger.Release(ctx, []int64{run.ID}); rerr != nil {
		d.log.Error("release run failed; it is recovered at the next start", "run", run.ID, "error", rerr)
	}
	return ledger.Run{}, err
}

// finishAttempts bounds finish's retries (about 30 s in all).
const finishAttempts = 10

func excerpt(log string) string {
	if len(log) <= LogExcerpt {
		return log
	}
	return "... (earlier output left out)\n" + log[len(log)-LogExcerpt:]
}

// CheckoutDir is where serve checks out what a workspace's runs need,
// under its data directory; its runs' working directories are under
// WorkRoot (runner.DirName of the same key).
func CheckoutDir(dataDir, key string) string {
	return filepath.Join(dataDir, "checkouts", runner.DirName(key))
}

// WorkRoot is the root of serve's persistent working directories.
func WorkRoot(dataDir string) string { return filepath.Join(dataDir, "work") }
