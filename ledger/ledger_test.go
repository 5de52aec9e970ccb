package ledger

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/pgtest"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/run"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// backends are the databases the suite runs on: each gives a test the URL
// of a new, empty ledger.
var backends = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "ledger.db") }},
	{"postgres", func(t *testing.T) string { return pgtest.New(t) }},
}

// forEachLedger runs test on a new ledger of each backend, in parallel.
// reopen opens the same ledger again, as a restarted or a second process
// would.
func forEachLedger(t *testing.T, test func(t *testing.T, l *DB, reopen func() *DB)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			url := b.url(t)
			test(t, openURL(t, url), func() *DB { return openURL(t, url) })
		})
	}
}

func openURL(t *testing.T, url string) *DB {
	t.Helper()
	l, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func req(repo, stack, ws, trigger string) Request {
	return Request{Workspace: run.Workspace{Repository: repo, Stack: stack, Name: ws}, Trigger: trigger}
}

func TestEnqueueJoinsQueuedRun(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		a, joined, err := l.Enqueue(ctx, req("infra", "stacks/web", "default", "schedule"))
		if err != nil || joined {
			t.Fatalf("first enqueue: %v joined=%v", err, joined)
		}
		b, joined, err := l.Enqueue(ctx, Request{Workspace: run.Workspace{Repository: "infra", Stack: "stacks/web", Name: "default"}, Trigger: "commit", Commit: "abc"})
		if err != nil || !joined || b.ID != a.ID {
			t.Fatalf("second enqueue: %v joined=%v id %d vs %d", err, joined, b.ID, a.ID)
		}
		got, _ := l.Get(ctx, a.ID)
		if len(got.Triggers) != 2 || got.Commit != "abc" {
			t.Errorf("joined run = %+v", got)
		}
		// Once it runs, a new trigger queues a new run.
		if r, _ := l.Claim(ctx, Limits{}); r == nil || r.ID != a.ID {
			t.Fatalf("claim = %+v", r)
		}
		c, joined, _ := l.Enqueue(ctx, req("infra", "stacks/web", "default", "manual"))
		if joined || c.ID == a.ID {
			t.Errorf("enqueue while running joined the running run")
		}
		// ...but it cannot start while the first runs.
		if r, _ := l.Claim(ctx, Limits{}); r != nil {
			t.Errorf("claimed %d while the workspace's run %d is running", r.ID, a.ID)
		}
		if _, err := l.Finish(ctx, a.ID, Result{Verdict: "in_sync"}); err != nil {
			t.Fatal(err)
		}
		if r, _ := l.Claim(ctx, Limits{}); r == nil || r.ID != c.ID {
			t.Errorf("after finish, claim = %+v, want run %d", r, c.ID)
		}
	})
}

func TestClaimLimits(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		for _, s := range []string{"a", "b", "c"} {
			l.Enqueue(ctx, req("infra", s, "default", "schedule"))
		}
		l.Enqueue(ctx, req("other", "x", "default", "schedule"))
		lim := Limits{PerRepository: 2}
		var repos []string
		for {
			r, err := l.Claim(ctx, lim)
			if err != nil {
				t.Fatal(err)
			}
			if r == nil {
				break
			}
			repos = append(repos, r.Repository)
		}
		infra := 0
		for _, r := range repos {
			if r == "infra" {
				infra++
			}
		}
		if infra != 2 || len(repos) != 3 {
			t.Errorf("claimed %v: want 2 of infra (the limit) and 1 of other", repos)
		}
	})
}

func TestClaimLongestFirst(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		for _, s := range []struct {
			stack string
			ms    int64
		}{{"fast", 100}, {"slow", 9000}, {"mid", 2000}} {
			r, _, _ := l.Enqueue(ctx, req("infra", s.stack, "default", "schedule"))
			l.Claim(ctx, Limits{})
			l.Finish(ctx, r.ID, Result{Verdict: "in_sync", DurationMS: s.ms})
		}
		for _, s := range []string{"fast", "new", "mid", "slow"} {
			l.Enqueue(ctx, req("infra", s, "default", "schedule"))
		}
		var order []string
		for {
			r, _ := l.Claim(ctx, Limits{})
			if r == nil {
				break
			}
			order = append(order, r.Stack)
		}
		// Never-run workspaces first (unknown cost), then by last duration.
		if got := order; len(got) != 4 || got[0] != "new" || got[1] != "slow" || got[2] != "mid" || got[3] != "fast" {
			t.Errorf("claim order = %v", got)
		}
	})
}

func TestRecoverInterruptsAndRequeuesOnce(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, reopen func() *DB) {
		ctx := context.Background()
		r, _, _ := l.Enqueue(ctx, Request{Workspace: run.Workspace{Repository: "infra", Stack: "web", Name: "default"}, Trigger: "schedule", Commit: "c1"})
		l.Claim(ctx, Limits{})
		if err := l.MarkApplying(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		l.Close()

		// A new process opens the same ledger.
		l2 := reopen()
		got, err := l2.Recover(ctx)
		if err != nil || len(got) != 1 || got[0].ID != r.ID {
			t.Fatalf("recover = %+v, %v", got, err)
		}
		old, _ := l2.Get(ctx, r.ID)
		if old.Status != Interrupted || old.Failure == nil || !old.Failure.Interrupted {
			t.Errorf("old run = %+v", old)
		}
		queued, _ := l2.List(ctx, Filter{Status: Queued})
		if len(queued) != 1 || queued[0].RetryOf != r.ID || queued[0].Commit != "c1" || queued[0].Applying {
			t.Fatalf("requeued = %+v", queued)
		}
		// The retry dies too: it is marked interrupted, and not retried again.
		l2.Claim(ctx, Limits{})
		again, _ := l2.Recover(ctx)
		if len(again) != 1 {
			t.Fatalf("second recover = %+v", again)
		}
		if q, _ := l2.List(ctx, Filter{Status: Queued}); len(q) != 0 {
			t.Errorf("a retry of a retry was queued: %+v", q)
		}
		all, _ := l2.List(ctx, Filter{})
		if len(all) != 2 {
			t.Errorf("runs = %d, want 2 (nothing lost or duplicated)", len(all))
		}
	})
}

func TestFinishOnlyOnce(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		r, _, _ := l.Enqueue(ctx, req("infra", "web", "default", "manual"))
		if _, err := l.Finish(ctx, r.ID, Result{}); err == nil {
			t.Error("finished a queued run")
		}
		l.Claim(ctx, Limits{})
		if err := l.MarkApplying(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		if err := l.MarkApplying(ctx, r.ID); err == nil {
			t.Error("marked a run applying twice")
		}
		if _, err := l.Finish(ctx, r.ID, Result{Verdict: "drifted", Findings: drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{{Address: "x.a"}}}, Action: run.Action{Kind: policies.Apply}}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Finish(ctx, r.ID, Result{}); err == nil {
			t.Error("finished a run twice")
		}
		got, _ := l.Get(ctx, r.ID)
		if got.Verdict != "drifted" || len(got.Findings.Drift) != 1 || got.Findings.Drift[0].Address != "x.a" || got.FinishedAt.IsZero() {
			t.Errorf("finished run = %+v", got)
		}
		sums, _ := l.Summaries(ctx)
		if len(sums) != 1 || sums[0].Latest == nil || sums[0].Latest.ID != r.ID {
			t.Errorf("summaries = %+v", sums)
		}
	})
}

func TestConcurrentClaimsNeverDoubleStart(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		for i := 0; i < 20; i++ {
			l.Enqueue(ctx, req("infra", "web", "default", "schedule")) // all join one run
			l.Enqueue(ctx, req("infra", string(rune('a'+i)), "default", "schedule"))
		}
		var mu sync.Mutex
		seen := map[int64]bool{}
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					r, err := l.Claim(ctx, Limits{})
					if err != nil {
						t.Error(err)
						return
					}
					if r == nil {
						return
					}
					mu.Lock()
					if seen[r.ID] {
						t.Errorf("run %d claimed twice", r.ID)
					}
					seen[r.ID] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != 21 {
			t.Errorf("claimed %d runs, want 21", len(seen))
		}
	})
}

func TestMigrationsAreIdempotent(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, reopen func() *DB) {
		ctx := context.Background()
		l.Close()
		for range 2 {
			reopen().Close()
		}
		var versions, newest int
		if err := reopen().row(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&versions, &newest); err != nil {
			t.Fatal(err)
		}
		if versions != len(migrations) || newest != len(migrations) {
			t.Errorf("schema_migrations holds %d versions up to %d; want each of the %d once", versions, newest, len(migrations))
		}
	})
}

func TestIncidentQueries(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		clock := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
		l.now = func() time.Time { clock = clock.Add(time.Minute); return clock }
		do := func(verdict drift.Verdict, action run.Action, commit string) int64 {
			r, _, _ := l.Enqueue(ctx, Request{Workspace: run.Workspace{Repository: "infra", Stack: "web", Name: "default"}, Trigger: "schedule", Commit: commit})
			l.Claim(ctx, Limits{})
			l.Finish(ctx, r.ID, Result{Verdict: verdict, Action: action})
			return r.ID
		}
		none, report := run.Action{}, run.Action{Kind: policies.Report}
		key := WorkspaceKey("infra", "web", "default")
		do("drifted", none, "c0")
		do("drifted", run.Action{Kind: policies.Apply, Result: run.Converged}, "c1")
		do("in_sync", none, "c1")
		first := do("drifted", report, "c2")
		last := do("drifted", report, "c2")
		since, err := l.DriftedSince(ctx, key, last)
		r, _ := l.Get(ctx, first)
		if err != nil || !since.Equal(r.StartedAt) {
			t.Errorf("drifted since = %v, %v; want the start of run %d (%v)", since, err, first, r.StartedAt)
		}
		if starts, err := driftStarts(l); err != nil || !starts[key].Equal(r.StartedAt) || len(starts) != 1 {
			t.Errorf("drift starts = %v, %v; want %s since %v", starts, err, key, r.StartedAt)
		}
		if c, _ := l.LastApplied(ctx, key); c != "c1" {
			t.Errorf("last applied = %q", c)
		}
		after := do("in_sync", none, "c2")
		if since, _ := l.DriftedSince(ctx, key, after); !since.IsZero() {
			t.Errorf("an in-sync run belongs to no incident, got %v", since)
		}
		if starts, _ := driftStarts(l); len(starts) != 0 {
			t.Errorf("drift starts after the incident ended = %v", starts)
		}
		if err := l.SetRecord(ctx, after, "s3://state/web/terraform.tfstate.trueline/", "access denied"); err != nil {
			t.Fatal(err)
		}
		if got, _ := l.Get(ctx, after); got.RecordError != "access denied" || got.Record != "s3://state/web/terraform.tfstate.trueline/" {
			t.Errorf("record = %q, error = %q", got.Record, got.RecordError)
		}
	})
}

// run queues, claims and finishes one run of a workspace with a verdict.
func finishRun(t *testing.T, l *DB, ws string, verdict drift.Verdict, res Result) Run {
	t.Helper()
	ctx := context.Background()
	r, _, err := l.Enqueue(ctx, req("infra", "stacks/web", ws, "schedule"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := l.Claim(ctx, Limits{}); err != nil || c == nil || c.ID != r.ID {
		t.Fatalf("claim: %v %+v", err, c)
	}
	res.Verdict = verdict
	if _, err := l.Finish(ctx, r.ID, res); err != nil {
		t.Fatal(err)
	}
	got, _ := l.Get(ctx, r.ID)
	return got
}

func TestPruneKeepsWhatTheLedgerNeeds(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		l.SetClock(func() time.Time { return now })
		var ids []int64
		// 30 old in-sync runs, then an incident: in sync, drifted (its start),
		// 10 more drifted; and one old run a remediation branch refers to.
		for range 30 {
			ids = append(ids, finishRun(t, l, "default", "in_sync", Result{Log: "a log"}).ID)
			now = now.Add(time.Hour)
		}
		branchRun := finishRun(t, l, "default", "drifted", Result{Plan: drift.PlanHash{Plan: "p", Resources: map[string]string{"x.a": "h"}}})
		if err := l.SetBranch(ctx, "infra/stacks/web/default", Branch{Name: "b", Head: "abc", RunID: branchRun.ID, Plan: branchRun.Plan}); err != nil {
			t.Fatal(err)
		}
		lastInSync := finishRun(t, l, "default", "in_sync", Result{})
		first := finishRun(t, l, "default", "drifted", Result{})
		for range 10 {
			now = now.Add(time.Hour)
			finishRun(t, l, "default", "drifted", Result{})
		}
		latest := finishRun(t, l, "default", "drifted", Result{})
		since, _ := l.DriftedSince(ctx, "infra/stacks/web/default", latest.ID)

		n, err := l.Prune(ctx, now.Add(-time.Minute), 5)
		if err != nil {
			t.Fatal(err)
		}
		left, _ := l.List(ctx, Filter{Limit: 1000})
		kept := map[int64]bool{}
		for _, r := range left {
			kept[r.ID] = true
		}
		for _, id := range []int64{branchRun.ID, lastInSync.ID, first.ID, latest.ID} {
			if !kept[id] {
				t.Errorf("run %d was pruned; the ledger needs it", id)
			}
		}
		if n == 0 || len(left) > 5+3 {
			t.Errorf("pruned %d, %d left: want at most the newest 5 and the three kept for reasons", n, len(left))
		}
		if after, _ := l.DriftedSince(ctx, "infra/stacks/web/default", latest.ID); !after.Equal(since) {
			t.Errorf("drift start moved from %v to %v", since, after)
		}
		if _, err := l.Get(ctx, ids[0]); err == nil {
			t.Error("the oldest run is still there")
		}
		// Zero on both: nothing goes.
		if n, err := l.Prune(ctx, time.Time{}, 0); n != 0 || err != nil {
			t.Errorf("Prune(zero) = %d, %v", n, err)
		}
	})
}

func TestListLeavesLogsOut(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		r := finishRun(t, l, "default", "in_sync", Result{Log: "terraform output"})
		list, _ := l.List(ctx, Filter{})
		sums, _ := l.Summaries(ctx)
		if len(list) != 1 || list[0].Log != "" || len(sums) != 1 || sums[0].Latest.Log != "" {
			t.Errorf("lists read logs: %+v %+v", list, sums)
		}
		if got, _ := l.Get(ctx, r.ID); got.Log != "terraform output" {
			t.Errorf("Get lost the log: %q", got.Log)
		}
	})
}

// Either every run of a commit is queued and the head moves, or nothing.
func TestEnqueueAllIsAtomic(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		bad := []Request{req("infra", "stacks/a", "default", "commit"), {Workspace: run.Workspace{Repository: "infra", Stack: "stacks/b"}, Trigger: "commit"}}
		if _, err := l.EnqueueAll(ctx, "infra", "c1", bad); err == nil {
			t.Fatal("a request without a workspace was queued")
		}
		if q, _ := l.List(ctx, Filter{}); len(q) != 0 {
			t.Errorf("%d runs queued by a failed batch", len(q))
		}
		if h, _ := l.Head(ctx, "infra"); h != "" {
			t.Errorf("the head moved to %q on a failed batch", h)
		}
		good := []Request{req("infra", "stacks/a", "default", "commit"), req("infra", "stacks/b", "default", "commit")}
		if runs, err := l.EnqueueAll(ctx, "infra", "c2", good); err != nil || len(runs) != 2 {
			t.Fatalf("EnqueueAll = %d runs, %v", len(runs), err)
		}
		if h, _ := l.Head(ctx, "infra"); h != "c2" {
			t.Errorf("head = %q, want c2", h)
		}
	})
}

// An approval pins its commit: a later trigger joins without moving it.
func TestApprovalKeepsItsCommit(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		a, _, _ := l.Enqueue(ctx, Request{Workspace: run.Workspace{Repository: "infra", Stack: "stacks/web", Name: "default"}, Trigger: "approve", Commit: "reviewed", Approval: "hash", ApprovedRun: 7, ApprovedBy: "approved by alice"})
		b, joined, _ := l.Enqueue(ctx, Request{Workspace: run.Workspace{Repository: "infra", Stack: "stacks/web", Name: "default"}, Trigger: "commit", Commit: "newer"})
		if !joined || b.ID != a.ID || b.Commit != "reviewed" || b.Approval != "hash" || b.ApprovedRun != 7 {
			t.Errorf("joined run = %+v", b)
		}
	})
}

// A ledger written before actions and results were apart reads typed.
func TestMigrationSplitsActions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`)
	for v, m := range migrations[:8] {
		if _, err := db.Exec(sqliteDialect.types.Replace(m)); err != nil {
			t.Fatalf("migration %d: %v", v+1, err)
		}
		db.Exec(`INSERT INTO schema_migrations VALUES (?, 0)`, v+1)
	}
	db.Exec(`INSERT INTO runs (repository, stack, workspace, workspace_key, trigger, status, queued_at, action, action_reason)
		VALUES ('infra', 'web', 'default', 'infra/web/default', 'schedule', 'finished', 1, 'apply:converged', 'within guardrails'),
		       ('infra', 'web', 'prod', 'infra/web/prod', 'schedule', 'finished', 1, 'pull_request', 'escalated to pull_request: x')`)
	db.Close()
	l, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, _ := l.Get(ctx, 1)
	b, _ := l.Get(ctx, 2)
	if a.Action.Kind != policies.Apply || a.Action.Result != run.Converged || !a.Converged() {
		t.Errorf("old apply:converged = %+v", a.Action)
	}
	if b.Action.Kind != policies.PullRequest || b.Action.Result != "" || !b.Action.Escalated {
		t.Errorf("old escalated pull_request = %+v", b.Action)
	}
}

// The drift age rule: a failed run does not reset an incident's age; an
// apply that converged ends it, and its workspace is in sync.
func TestDriftAgeRule(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		clock := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
		l.now = func() time.Time { clock = clock.Add(time.Minute); return clock }
		do := func(verdict drift.Verdict, action run.Action) Run {
			return finishRun(t, l, "default", verdict, Result{Action: action})
		}
		key := WorkspaceKey("infra", "stacks/web", "default")
		first := do(drift.Drifted, run.Action{Kind: policies.Report})
		do(drift.Error, run.Action{})
		last := do(drift.Drifted, run.Action{Kind: policies.Report})
		if since, _ := l.DriftedSince(ctx, key, last.ID); !since.Equal(first.StartedAt) {
			t.Errorf("after an error run the drift started %v, want %v (the first drifted run)", since, first.StartedAt)
		}
		if starts, _ := driftStarts(l); !starts[key].Equal(first.StartedAt) {
			t.Errorf("drift starts = %v", starts)
		}
		converged := do(drift.Drifted, run.Action{Kind: policies.Apply, Result: run.Converged})
		if starts, _ := driftStarts(l); len(starts) != 0 {
			t.Errorf("a converged apply left the workspace drifted since %v", starts)
		}
		if since, _ := l.DriftedSince(ctx, key, converged.ID); !since.IsZero() {
			t.Errorf("the converged run belongs to an incident since %v", since)
		}
		again := do(drift.Drifted, run.Action{Kind: policies.Report})
		if since, _ := l.DriftedSince(ctx, key, again.ID); !since.Equal(again.StartedAt) {
			t.Errorf("new drift after the converged apply started %v, want %v", since, again.StartedAt)
		}
	})
}

func TestSummaries(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, _ func() *DB) {
		ctx := context.Background()
		l.SetWorkspaces(ctx, "infra", []Workspace{{Workspace: run.Workspace{Stack: "stacks/web", Name: "default"}, Schedule: "@hourly", Timezone: "UTC"},
			{Workspace: run.Workspace{Stack: "stacks/web", Name: "never"}}, {Workspace: run.Workspace{Stack: "stacks/web", Name: "prod"}}})
		drifted := finishRun(t, l, "default", drift.Drifted, Result{Action: run.Action{Kind: policies.Report}})
		finishRun(t, l, "prod", drift.Drifted, Result{Action: run.Action{Kind: policies.Apply, Result: run.Converged}})
		finishRun(t, l, "gone", drift.InSync, Result{}) // a workspace no stack declares any more
		l.SetPullRequest(ctx, "infra/stacks/web/default", 7, "https://forge/pr/7")
		all, err := l.Summaries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Summary{}
		for _, s := range all {
			got[s.Workspace.Name] = s
		}
		if len(all) != 4 {
			t.Fatalf("%d summaries, want 4: %+v", len(all), all)
		}
		d := got["default"]
		if d.State() != drift.Drifted || !d.DriftedSince.Equal(drifted.StartedAt) || d.PullRequest != "https://forge/pr/7" ||
			d.Schedule != "@hourly" || !d.Registered || d.Latest.ID != drifted.ID || d.Latest.Log != "" {
			t.Errorf("default = %+v", d)
		}
		if p := got["prod"]; p.State() != drift.InSync || !p.DriftedSince.IsZero() {
			t.Errorf("a converged apply: state %q, drifted since %v", p.State(), p.DriftedSince)
		}
		if n := got["never"]; n.Latest != nil || n.State() != "" {
			t.Errorf("never checked = %+v", n)
		}
		if g := got["gone"]; g.Registered || g.State() != drift.InSync {
			t.Errorf("gone = %+v", g)
		}
	})
}

// An announcement is sent once per change, also across a restart.
func TestAnnounceOncePerChange(t *testing.T) {
	forEachLedger(t, func(t *testing.T, l *DB, reopen func() *DB) {
		ctx := context.Background()
		for i, tc := range []struct {
			mark  string
			fresh bool
		}{{"drift_found abc", true}, {"drift_found abc", false}, {"applied abc", true}, {"drift_found abc", true}} {
			if fresh, err := l.Announce(ctx, "infra/web/default", tc.mark); err != nil || fresh != tc.fresh {
				t.Errorf("%d: Announce(%q) = %v, %v; want %v", i, tc.mark, fresh, err, tc.fresh)
			}
		}
		l.Close()
		again := reopen()
		if fresh, _ := again.Announce(ctx, "infra/web/default", "drift_found abc"); fresh {
			t.Error("a restart announced the same drift again")
		}
	})
}

// driftStarts is every drifted workspace's drift start, from Summaries.
func driftStarts(l *DB) (map[string]time.Time, error) {
	all, err := l.Summaries(context.Background())
	out := map[string]time.Time{}
	for _, s := range all {
		if !s.DriftedSince.IsZero() {
			out[s.Workspace.Key()] = s.DriftedSince
		}
	}
	return out, err
}
