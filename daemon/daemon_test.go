package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/forge"
	"github.com/trueline/trueline/internal/gittest"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/notify"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/run"
)

// The daemon's own decisions, with real Git repositories and a real SQLite
// ledger, and stand-ins only for what lies beyond it: the planner (terraform
// is tested in reconcile and end to end), the forge and Slack.

// planner answers runs with what the test sets, and remembers the targets.
type planner struct {
	mu      sync.Mutex
	next    func(t reconcile.Target) reconcile.Outcome
	targets []reconcile.Target
}

func (p *planner) Run(_ context.Context, _ string, t reconcile.Target) reconcile.Outcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets = append(p.targets, t)
	return p.next(t)
}

// drifted is a plan that changes min_size back, with a plan hash.
func drifted(hash string) func(t reconcile.Target) reconcile.Outcome {
	return func(t reconcile.Target) reconcile.Outcome {
		pol := t.Policy
		res := drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{{Address: "sandbox_autoscaling_group.web", Action: "update",
			Attributes: []drift.Attribute{{Path: "min_size", Git: 3.0, Live: 4.0}}}}, Pending: []drift.Finding{}, Noise: []drift.Finding{}}
		dec := pol.Decide(res, time.Now())
		if t.Approved != nil && t.Approved.Plan.Plan == hash {
			dec = policies.Decision{Action: policies.Apply, Reason: "approved (" + t.Approved.By + ")"}
		}
		o := reconcile.Outcome{Stack: t.Stack.Path, Workspace: t.Workspace.Name, Result: res,
			Action: run.Action{Kind: dec.Action, Reason: dec.Reason, Escalated: dec.Escalated},
			Plan:   drift.PlanHash{Plan: hash, Resources: map[string]string{"sandbox_autoscaling_group.web": hash}}}
		if dec.Action == policies.Apply {
			o.Action.Result = run.Converged
		}
		return o
	}
}

func inSync(t reconcile.Target) reconcile.Outcome {
	return reconcile.Outcome{Stack: t.Stack.Path, Workspace: t.Workspace.Name, Result: drift.InSyncResult(),
		Action: run.Action{Reason: "in sync"}}
}

// fakeForge keeps pull requests in memory, by branch.
type fakeForge struct {
	mu    sync.Mutex
	open  map[string]*forge.PR
	calls []string
	fail  error // Create's answer, when set
}

func (f *fakeForge) FindOpen(_ context.Context, head string) (*forge.PR, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "find "+head)
	return f.open[head], nil
}

func (f *fakeForge) Create(_ context.Context, pr forge.NewPR) (*forge.PR, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int64(len(f.calls) + 1)
	f.calls = append(f.calls, "create "+pr.Head)
	if f.fail != nil {
		return nil, f.fail
	}
	p := &forge.PR{Number: n, URL: fmt.Sprintf("https://forge/pr/%d", n), Head: pr.Head, Base: pr.Base, Title: pr.Title, Body: pr.Body}
	f.open[pr.Head] = p
	return p, nil
}

func (f *fakeForge) Update(_ context.Context, number int64, title, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("update %d", number))
	return nil
}

func (f *fakeForge) Close(_ context.Context, number int64, comment string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("close %d", number))
	for k, p := range f.open {
		if p.Number == number {
			delete(f.open, k)
		}
	}
	return nil
}

func (f *fakeForge) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// sender records notifications, and what the ledger said of their run then.
type sender struct {
	mu     sync.Mutex
	events []notify.Event
	led    *ledger.SQLite
	record []string // the run's record location when its announcement was sent
}

func (s *sender) Send(ctx context.Context, e notify.Event) error {
	var id int64
	fmt.Sscanf(e.URL, "http://trueline.test/runs/%d", &id)
	r, _ := s.led.Get(ctx, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	s.record = append(s.record, r.Record)
	return nil
}

func (s *sender) kinds() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		out = append(out, string(e.Kind))
	}
	return out
}

type fixture struct {
	git    *gittest.Repo
	led    *ledger.SQLite
	plan   *planner
	forge  *fakeForge
	sender *sender
	data   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{git: gittest.New(t), plan: &planner{next: inSync}, forge: &fakeForge{open: map[string]*forge.PR{}}, data: t.TempDir()}
	state := t.TempDir()
	f.git.Commit("stacks", map[string]string{
		"policies/review.hcl":  "policy \"review\" {\n  on_drift = \"pull_request\"\n  notify   = [\"slack.infra\"]\n}\n",
		"stacks/web/stack.hcl": "stack {\n  workspaces = [\"default\", \"staging\"]\n  policy     = \"review\"\n}\n",
		"stacks/web/main.tf":   fmt.Sprintf("terraform {\n  backend \"local\" {\n    path = %q\n  }\n}\n", filepath.Join(state, "web.tfstate")),
		"stacks/db/stack.hcl":  "stack {}\n",
		"stacks/db/main.tf":    "",
	})
	led, err := ledger.OpenSQLite(context.Background(), filepath.Join(f.data, "trueline.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	f.led = led
	f.sender = &sender{led: led}
	return f
}

// daemon makes a daemon on the fixture's repository and ledger, as a
// (re)started process would.
func (f *fixture) daemon(t *testing.T) *Daemon {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = f.data
	cfg.ExternalURL = "http://trueline.test"
	cfg.Repositories = []config.Repository{{Name: "infra", URL: f.git.Dir, Branch: "main", Poll: time.Hour, Forge: "none"}}
	cfg.Notify = []config.Notify{{Kind: "slack", Name: "infra"}} // sent to the stand-in below
	d, err := New(cfg, f.led, f.plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.repos["infra"].forge = f.forge
	d.notifier = notify.NewDispatcher(map[string]notify.Sender{"slack.infra": f.sender}, 16, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.notifier.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := d.refresh(context.Background(), d.repos["infra"], "commit"); err != nil {
		t.Fatal(err)
	}
	return d
}

// runAll claims and processes every queued run.
func (f *fixture) runAll(t *testing.T, d *Daemon) []ledger.Run {
	t.Helper()
	var done []ledger.Run
	for {
		job, err := f.led.Claim(context.Background(), ledger.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if job == nil {
			return done
		}
		d.process(context.Background(), *job)
		r, _ := f.led.Get(context.Background(), job.ID)
		done = append(done, r)
	}
}

func (f *fixture) trigger(t *testing.T, d *Daemon, stack, ws string) {
	t.Helper()
	if _, err := d.Trigger(context.Background(), "", stack, ws, "manual"); err != nil {
		t.Fatal(err)
	}
}

// waitEvents waits for the dispatcher to have sent n events.
func (f *fixture) waitEvents(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(f.sender.kinds()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // and no more than n
	return f.sender.kinds()
}

func TestPullRequestLifecycleAndAnnouncements(t *testing.T) {
	f := newFixture(t)
	d := f.daemon(t)
	f.runAll(t, d) // the first look: every workspace in sync

	f.plan.next = drifted("plan-1")
	f.trigger(t, d, "stacks/web", "default")
	first := f.runAll(t, d)[0]
	if first.Action.Kind != policies.PullRequest || !strings.Contains(first.Action.Reason, "revert pull request #") {
		t.Fatalf("the drifted run: %+v", first.Action)
	}
	key := "infra/stacks/web/default"
	if n, url, _ := f.led.PullRequest(context.Background(), key); n == 0 || url == "" {
		t.Errorf("the ledger does not keep the pull request: %d %q", n, url)
	}
	if b, ok, _ := f.led.Branch(context.Background(), key); !ok || b.Plan.Plan != "plan-1" || b.RunID != first.ID || b.Head == "" {
		t.Errorf("branch = %+v, %v", b, ok)
	}
	// The same drift again: the pull request is updated, not opened again,
	// and Slack hears of it once.
	f.trigger(t, d, "stacks/web", "default")
	f.runAll(t, d)
	// The drift is gone: the pull request is closed.
	f.plan.next = inSync
	f.trigger(t, d, "stacks/web", "default")
	f.runAll(t, d)
	calls := f.forge.Calls()
	want := []string{"find trueline/stacks/web/default", "create trueline/stacks/web/default", "find trueline/stacks/web/default", "update 2", "close 2"}
	if strings.Join(calls, ", ") != strings.Join(want, ", ") {
		t.Errorf("forge calls = %q, want %q", calls, want)
	}
	if n, _, _ := f.led.PullRequest(context.Background(), key); n != 0 {
		t.Errorf("the closed pull request is still in the ledger: %d", n)
	}
	if got := f.waitEvents(t, 2); strings.Join(got, ",") != "pull_request,cleared" {
		t.Errorf("announcements = %v, want one pull request and one cleared", got)
	}
	// The record beside the state was written before the announcement.
	for i, r := range f.sender.record {
		if r == "" {
			t.Errorf("announcement %d went out before its run's record was written", i)
		}
	}
}

// A restart does not announce the same drift again.
func TestAnnouncementsSurviveRestart(t *testing.T) {
	f := newFixture(t)
	d := f.daemon(t)
	f.runAll(t, d)
	f.plan.next = drifted("plan-1")
	f.trigger(t, d, "stacks/web", "default")
	f.runAll(t, d)
	f.waitEvents(t, 1)
	again := f.daemon(t) // a new process on the same ledger
	f.trigger(t, again, "stacks/web", "default")
	f.runAll(t, again)
	if got := f.waitEvents(t, 1); len(got) != 1 {
		t.Errorf("announcements after a restart = %v, want the one from before", got)
	}
}

// Only merging trueline's own branch approves its plan.
func TestMergeApproval(t *testing.T) {
	f := newFixture(t)
	d := f.daemon(t)
	f.runAll(t, d)
	f.plan.next = drifted("plan-1")
	f.trigger(t, d, "stacks/web", "default")
	proposing := f.runAll(t, d)[0]

	f.git.Commit("hand-made", map[string]string{".trueline/drift/stacks/web/default.md": "approved\n"})
	if err := d.refresh(context.Background(), d.repos["infra"], "commit"); err != nil {
		t.Fatal(err)
	}
	if runs := f.runAll(t, d); len(runs) != 0 {
		t.Errorf("a hand-made drift record queued %+v", runs)
	}
	f.git.Git("merge", "-q", "-X", "theirs", "--no-edit", "trueline/stacks/web/default")
	if err := d.refresh(context.Background(), d.repos["infra"], "commit"); err != nil {
		t.Fatal(err)
	}
	runs := f.runAll(t, d)
	if len(runs) != 1 || runs[0].Trigger != "merge" || runs[0].Approval != "plan-1" || runs[0].ApprovedRun != proposing.ID {
		t.Fatalf("after the merge: %+v", runs)
	}
	last := f.plan.targets[len(f.plan.targets)-1]
	if last.Approved == nil || last.Approved.Plan.Plan != "plan-1" || !strings.Contains(last.Approved.By, "merged branch trueline/stacks/web/default") {
		t.Errorf("the merge run's approval = %+v", last.Approved)
	}
	if !runs[0].Converged() {
		t.Errorf("the approved plan was not applied: %+v", runs[0].Action)
	}
}

// Trigger resolves a stack, a stack's workspace, and refuses what is not there.
func TestTriggerResolution(t *testing.T) {
	f := newFixture(t)
	d := f.daemon(t)
	f.runAll(t, d)
	tests := []struct {
		stack, ws string
		want      []string // workspaces queued
		err       string
	}{
		{"stacks/web", "", []string{"default", "staging"}, ""},
		{"stacks/web", "staging", []string{"staging"}, ""},
		{"stacks/web/staging", "", []string{"staging"}, ""},
		{"stacks/web", "prod", nil, `stack stacks/web has no workspace "prod"`},
		{"stacks/nope", "", nil, `repository infra has no stack "stacks/nope" at its head`},
	}
	for _, tc := range tests {
		runs, err := d.Trigger(context.Background(), "", tc.stack, tc.ws, "manual")
		var got []string
		for _, r := range runs {
			got = append(got, r.Workspace.Name)
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Trigger(%s, %s) = %v, %v; want %q", tc.stack, tc.ws, got, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("Trigger(%s, %s) = %v, %v; want %v", tc.stack, tc.ws, got, err, tc.want)
		}
		f.runAll(t, d)
	}
	if _, err := d.Trigger(context.Background(), "other", "stacks/web", "", "manual"); err == nil || !strings.Contains(err.Error(), `no repository "other"`) {
		t.Errorf("an unknown repository: %v", err)
	}
}

// A run that fails before planning (a broken policy file) is recorded and
// announced like any other, with its stage; stacks whose policy is fine run.
func TestFailureBeforePlanning(t *testing.T) {
	f := newFixture(t)
	d := f.daemon(t)
	f.runAll(t, d)
	f.git.Commit("break the policy", map[string]string{"policies/review.hcl": "policy \"review\" {\n  on_drift = \"sometimes\"\n}\n"})
	if err := d.refresh(context.Background(), d.repos["infra"], "commit"); err != nil {
		t.Fatal(err)
	}
	f.trigger(t, d, "stacks/web", "default")
	f.trigger(t, d, "stacks/db", "")
	byStack := map[string]ledger.Run{}
	for _, r := range f.runAll(t, d) {
		byStack[r.Stack] = r
	}
	web, db := byStack["stacks/web"], byStack["stacks/db"]
	if web.Verdict != drift.Error || web.Failure == nil || web.Failure.Stage != run.Policy ||
		!strings.Contains(web.Failure.Message, "policies/review.hcl:2,") || web.Record == "" {
		t.Errorf("the run of the stack naming the broken policy: %+v %+v record %q", web.Verdict, web.Failure, web.Record)
	}
	if db.Verdict != drift.InSync {
		t.Errorf("a stack without that policy: %s %+v", db.Verdict, db.Failure)
	}
	if got := f.waitEvents(t, 1); len(got) != 1 || got[0] != string(notify.Failed) {
		t.Errorf("announcements = %v, want the failure", got)
	}
}

// A pull request the forge refuses fails the run's action at the propose
// stage; the drift it found stands.
func TestProposeFailure(t *testing.T) {
	f := newFixture(t)
	d := f.daemon(t)
	f.runAll(t, d)
	f.forge.fail = fmt.Errorf("403 Forbidden: token lacks pull_requests:write")
	f.plan.next = drifted("plan-1")
	f.trigger(t, d, "stacks/web", "default")
	r := f.runAll(t, d)[0]
	if r.Verdict != drift.Drifted || r.Action.Result != run.Failed || r.Failure == nil || r.Failure.Stage != run.Propose ||
		!strings.Contains(r.Failure.Message, "token lacks pull_requests:write") {
		t.Errorf("run = %s %+v %+v", r.Verdict, r.Action, r.Failure)
	}
}
