package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/scheduler"
)

// daemonAt is fixture.daemon with the scheduler on a fixed clock, so the
// slots a test expects do not depend on the hour it runs at.
func (f *fixture) daemonAt(t *testing.T, now time.Time) *Daemon {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = f.data
	cfg.Repositories = []config.Repository{{Name: "infra", URL: f.git.Dir, Branch: "main", Poll: time.Hour, Forge: "none"}}
	d, err := New(cfg, f.led, f.plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.sched.SetClock(clockwork.NewFakeClockAt(now))
	if err := d.refresh(context.Background(), d.repos["infra"], "commit"); err != nil {
		t.Fatal(err)
	}
	return d
}

// finishRun records a finished run of a workspace that took took; runs
// of other workspaces claimed on the way are released, unfinished.
func (f *fixture) finishRun(t *testing.T, stack, ws string, took time.Duration) {
	t.Helper()
	ctx := context.Background()
	w := run.Workspace{Repository: "infra", Stack: stack, Name: ws}
	if _, _, err := f.led.Enqueue(ctx, ledger.Request{Workspace: w, Trigger: "manual"}); err != nil {
		t.Fatal(err)
	}
	var others []int64
	defer func() {
		if err := f.led.Release(ctx, others); err != nil {
			t.Fatal(err)
		}
	}()
	for {
		job, err := f.led.Claim(ctx, ledger.Limits{})
		if err != nil || job == nil {
			t.Fatalf("claim: %v, %v", job, err)
		}
		if job.Workspace != w {
			others = append(others, job.ID)
			continue
		}
		if _, err := f.led.Finish(ctx, job.ID, ledger.Result{DurationMS: took.Milliseconds()}); err != nil {
			t.Fatal(err)
		}
		return
	}
}

func TestWindowSchedules(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.git.Commit("nightly", map[string]string{
		"stacks/web/stack.hcl": "stack {\n  workspaces = [\"default\", \"staging\"]\n  schedule = \"nightly\"\n  window = \"01:00-05:00\"\n  timezone = \"Europe/Berlin\"\n}\n",
		"stacks/db/stack.hcl":  "stack {\n  schedule = \"0 0 * * 1-5\"\n  window = \"22:00-02:00\"\n}\n",
	})
	// The ledger knows how long web's runs took; staging's was never finished.
	f.finishRun(t, "stacks/web", "default", 25*time.Minute+10*time.Second)
	web := ledger.WorkspaceKey("infra", "stacks/web", "default")
	staging := ledger.WorkspaceKey("infra", "stacks/web", "staging")
	db := ledger.WorkspaceKey("infra", "stacks/db", "default")
	nightly, _ := scheduler.ParseWindow("01:00-05:00")
	late, _ := scheduler.ParseWindow("22:00-02:00")
	friday := time.Date(2026, 6, 5, 22, 30, 0, 0, time.UTC) // inside Friday's 22:00-02:00 UTC; 00:30 in Berlin, before Saturday's nightly

	// web's slots: its 25m10s run counts as 26 minutes; staging, unknown,
	// as the mean of the known.
	webSlots := func(t *testing.T, d *Daemon, expected map[string]time.Duration) {
		t.Helper()
		start, end := nightly.On(time.Date(2026, 6, 6, 0, 0, 0, 0, berlin))
		slots := scheduler.Slots(end.Sub(start), []scheduler.Item{{Key: web, Expected: expected[web]}, {Key: staging, Expected: expected[staging]}})
		for _, k := range []string{web, staging} {
			if got, want := d.Next(k), start.Add(slots[k]); !got.Equal(want) {
				t.Errorf("%s runs next at %v, want %v (its slot in Saturday's window)", k, got.In(berlin), want.In(berlin))
			}
		}
	}

	tests := []struct {
		name string
		// prepare runs before the (re)started daemon registers.
		prepare  func(t *testing.T)
		expected map[string]time.Duration
	}{
		{name: "the ledger's durations place the workspaces", prepare: func(*testing.T) {},
			expected: map[string]time.Duration{web: 26 * time.Minute}},
		{name: "after a run, a restart reads the same durations", prepare: func(t *testing.T) {
			f.finishRun(t, "stacks/web", "staging", 90*time.Second)
		}, expected: map[string]time.Duration{web: 26 * time.Minute, staging: 2 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.prepare(t)
			d := f.daemonAt(t, friday)
			webSlots(t, d, tt.expected)

			// db: the cron picks weekdays, the window the time; Friday's
			// window is open but its slot passed or not, the next is in a
			// weekday's window past midnight.
			n := d.Next(db)
			start, end := late.On(n.Add(-2 * time.Hour)) // the window began on the day two hours before
			if n.Before(start) || !n.Before(end) || start.Weekday() == time.Saturday || start.Weekday() == time.Sunday {
				t.Errorf("db runs next at %v, not inside a weekday's 22:00-02:00 window", n)
			}

			// The ledger, the dashboard and the API show the window.
			all, err := f.led.Workspaces(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			shown := map[string]string{}
			for _, w := range all {
				shown[w.Key()] = w.Schedule
			}
			if shown[web] != "nightly in 01:00-05:00" || shown[db] != "0 0 * * 1-5 in 22:00-02:00" {
				t.Errorf("schedules shown: %v", shown)
			}
		})
	}

	// A finished run moves its window's slots at once.
	d := f.daemonAt(t, friday)
	f.plan.next = func(t reconcile.Target) reconcile.Outcome {
		time.Sleep(5 * time.Millisecond) // a run takes some time: counted as one minute
		return inSync(t)
	}
	if _, err := d.Trigger(context.Background(), "infra", "stacks/web", "default", "manual"); err != nil {
		t.Fatal(err)
	}
	f.runAll(t, d)
	webSlots(t, d, map[string]time.Duration{web: time.Minute, staging: 2 * time.Minute})
}

func TestExpectedOf(t *testing.T) {
	tests := []struct {
		ms   int64
		want time.Duration
	}{
		{0, 0},
		{-5, 0},
		{1, time.Minute},
		{60_000, time.Minute},
		{60_001, 2 * time.Minute},
		{25*60_000 + 10_000, 26 * time.Minute},
	}
	for _, tt := range tests {
		if got := expectedOf(tt.ms); got != tt.want {
			t.Errorf("expectedOf(%d) = %v, want %v", tt.ms, got, tt.want)
		}
	}
}
