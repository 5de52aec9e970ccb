package server

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/robfig/cron/v3"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/scheduler"
)

// schedStatus is the daemon's side the server reads, over a real scheduler.
type schedStatus struct{ *scheduler.Scheduler }

func (s schedStatus) Status() map[string]any { return map[string]any{"scheduled": s.Len()} }

func TestNextRun(t *testing.T) {
	ctx := context.Background()
	led, err := ledger.OpenSQLite(ctx, filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	parse := func(spec string) cron.Schedule {
		s, err := cron.ParseStandard(spec)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	window, _ := scheduler.ParseWindow("01:00-05:00")
	sched := scheduler.New(0, func(string) {})
	sched.SetClock(clockwork.NewFakeClockAt(time.Date(2026, 6, 5, 12, 0, 0, 0, time.UTC)))

	tests := []struct {
		stack    string
		schedule string // as the ledger shows it
		spec     *scheduler.Spec
		want     time.Time // zero: no next run
	}{
		{stack: "stacks/web", schedule: "nightly in 01:00-05:00",
			spec: &scheduler.Spec{Text: "nightly", Schedule: parse("@daily"), Location: berlin, Window: &window, Expected: 20 * time.Minute}},
		{stack: "stacks/db", schedule: "0 2 * * *",
			spec: &scheduler.Spec{Text: "0 2 * * *", Schedule: parse("0 2 * * *"), Location: time.UTC},
			want: time.Date(2026, 6, 6, 2, 0, 0, 0, time.UTC)},
		{stack: "stacks/dns"},
	}
	var ws []ledger.Workspace
	for _, tt := range tests {
		w := run.Workspace{Repository: "infra", Stack: tt.stack, Name: "default"}
		ws = append(ws, ledger.Workspace{Workspace: w, Schedule: tt.schedule, Timezone: "UTC"})
		if tt.spec != nil {
			sched.SetSpec(w.Key(), *tt.spec)
		}
	}
	// The nightly one's slot: Saturday's window, its place among one.
	start, end := window.On(time.Date(2026, 6, 6, 0, 0, 0, 0, berlin))
	tests[0].want = start.Add(scheduler.Slots(end.Sub(start), []scheduler.Item{{Key: "infra/stacks/web/default", Expected: 20 * time.Minute}})["infra/stacks/web/default"])
	if err := led.SetWorkspaces(ctx, "infra", ws); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Ledger: led, Status: schedStatus{sched}, Auth: &Auth{}}))
	t.Cleanup(srv.Close)

	_, body := do(t, "GET", srv.URL+"/api/v1/workspaces", "", "", nil)
	var api struct {
		Workspaces []map[string]any `json:"workspaces"`
	}
	if err := json.Unmarshal([]byte(body), &api); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	byStack := map[string]map[string]any{}
	for _, w := range api.Workspaces {
		byStack[w["stack"].(string)] = w
	}
	_, page := do(t, "GET", srv.URL+"/", "", "", nil)
	for _, tt := range tests {
		t.Run(tt.stack, func(t *testing.T) {
			w := byStack[tt.stack]
			if w == nil {
				t.Fatalf("no workspace %s in %s", tt.stack, body)
			}
			got, has := w["next_run_at"]
			if tt.want.IsZero() {
				if has {
					t.Errorf("next_run_at = %v for a workspace without a schedule", got)
				}
				return
			}
			at, err := time.Parse(time.RFC3339Nano, got.(string))
			if err != nil || !at.Equal(tt.want) {
				t.Errorf("next_run_at = %v, want %v", got, tt.want)
			}
			if w["schedule"] != tt.schedule {
				t.Errorf("schedule = %v, want %q", w["schedule"], tt.schedule)
			}
			// The dashboard's next run column, and the workspace's page.
			shown := tt.want.UTC().Format("2006-01-02 15:04:05 UTC")
			row := page[strings.Index(page, tt.stack):]
			row = row[:strings.Index(row, "</tr>")]
			if !strings.Contains(row, "<td>"+shown+"</td>") {
				t.Errorf("the dashboard's row for %s does not show its next run %s: %s", tt.stack, shown, row)
			}
			_, wp := do(t, "GET", srv.URL+"/workspace?key=infra/"+tt.stack+"/default", "", "", nil)
			if !strings.Contains(wp, "<code>"+tt.schedule+"</code>, next "+shown) {
				t.Errorf("the workspace page does not show the schedule %q and next run %s", tt.schedule, shown)
			}
		})
	}
}
