package policies

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/trueline/trueline/drift"
)

const guarded = `
policy "guarded" {
  on_drift    = "apply"
  on_pending  = "apply"
  allow       = ["update", "create"]
  max_changes = 2
  protect     = ["sandbox_database.*"]
  escalate    = "pull_request"
  notify      = ["slack.infra"]
}

policy "windowed" {
  on_drift = "apply"
  escalate = "report"
  apply_window {
    cron     = "0 9 * * 1-5"
    duration = "8h"
    timezone = "Europe/Berlin"
  }
}
`

func load(t *testing.T) map[string]*Policy {
	t.Helper()
	ps, err := Load(fstest.MapFS{
		"policies/guarded.hcl": {Data: []byte(guarded)},
		"policies/review.hcl":  {Data: []byte("policy \"review\" {\n  on_drift = \"pull_request\"\n  pull_request_kind = \"adopt\"\n}\n")},
		"policies/README.md":   {Data: []byte("not a policy")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func finding(addr, action string) drift.Finding {
	return drift.Finding{Address: addr, Action: action, Attributes: []drift.Attribute{}}
}

func TestDecide(t *testing.T) {
	ps := load(t)
	monday10 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) // 10:00 in Berlin
	sunday := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	asgUpdate := finding("sandbox_autoscaling_group.web", "update")
	tests := []struct {
		name   string
		policy string
		res    drift.Result
		now    time.Time
		action Action
		reason string
	}{
		{"in sync", "guarded", drift.Result{Verdict: drift.InSync}, monday10, None, "in sync"},
		{"drift within guardrails", "guarded", drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{asgUpdate}}, monday10, Apply, "within guardrails"},
		{"replace is not allowed", "guarded", drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{finding("sandbox_lb_listener.http", "replace")}}, monday10,
			PullRequest, "escalated to pull_request: plan replaces sandbox_lb_listener.http; auto-apply may only update, create"},
		{"protected delete", "guarded", drift.Result{Verdict: drift.Pending, Pending: []drift.Finding{finding("sandbox_database.main", "delete")}}, monday10,
			PullRequest, "escalated to pull_request: plan deletes sandbox_database.main, protected"},
		{"too many changes", "guarded", drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{asgUpdate, finding("a.b", "update"), finding("c.d", "update")}}, monday10,
			PullRequest, "plan changes 3 resources, more than max_changes = 2"},
		{"ignored attribute in the plan", "guarded", drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{asgUpdate},
			Noise: []drift.Finding{{Address: "sandbox_autoscaling_group.web", Planned: true, Attributes: []drift.Attribute{{Path: "desired_capacity"}}}}}, monday10,
			PullRequest, "plan would also change sandbox_autoscaling_group.web.desired_capacity, which the stack ignores"},
		{"inside the window", "windowed", drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{asgUpdate}}, monday10, Apply, "within guardrails"},
		{"outside the window", "windowed", drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{asgUpdate}}, sunday, Report,
			`escalated to report: outside the apply window ("0 9 * * 1-5" for 8h0m0s, Europe/Berlin)`},
		{"pending on a review policy", "review", drift.Result{Verdict: drift.Pending, Pending: []drift.Finding{asgUpdate}}, monday10, Report, "on_pending = report"},
		{"drift on a review policy", "review", drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{asgUpdate}}, monday10, PullRequest, "on_drift = pull_request"},
		{"mixed verdict needs both to apply", "review", drift.Result{Verdict: drift.DriftedAndPending, Drift: []drift.Finding{asgUpdate}, Pending: []drift.Finding{asgUpdate}}, monday10,
			PullRequest, "drift and pending code"},
		{"errors are reported", "guarded", drift.Result{Verdict: drift.Error}, monday10, Report, "the run failed"},
		{"refresh-only without drift", "guarded", drift.Result{Verdict: drift.InSync, Mode: drift.RefreshOnly}, monday10, None,
			"no drift (refresh-only: the code was not compared)"},
		{"refresh-only drift on a review policy", "review", drift.Result{Verdict: drift.Drifted, Mode: drift.RefreshOnly, Drift: []drift.Finding{asgUpdate}}, monday10,
			PullRequest, "on_drift = pull_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := ps[tc.policy].Decide(tc.res, tc.now)
			if d.Action != tc.action || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("decision = %+v, want %s with reason containing %q", d, tc.action, tc.reason)
			}
		})
	}
	if ReportOnly.Decide(drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{asgUpdate}}, monday10).Action != Report {
		t.Error("a stack without a policy must only be reported")
	}
	if ps["review"].PRKind != "adopt" || ps["guarded"].Notify[0] != "slack.infra" {
		t.Errorf("parsed = %+v %+v", ps["review"], ps["guarded"])
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"policy \"p\" {\n  on_drift = \"fix\"\n}\n", `policies/p.hcl:2,14: Unknown action: on_drift = "fix"; use one of apply, pull_request, report.`},
		{"policy \"p\" {\n  escalate = \"apply\"\n}\n", "Unknown action"},
		{"policy \"p\" {\n  allow = [\"destroy\"]\n}\n", "policies/p.hcl:2,11: Unknown planned action"},
		{"policy \"p\" {\n  protect = [\"db\"]\n}\n", "Invalid protect glob"},
		{"policy \"p\" {\n  apply_window {\n    cron = \"whenever\"\n    duration = \"1h\"\n  }\n}\n", "policies/p.hcl:3,12: Invalid apply_window cron"},
		{"policy \"p\" {\n  apply_window {\n    cron = \"0 9 30 2 *\"\n    duration = \"1h\"\n  }\n}\n", "policies/p.hcl:3,12: Invalid apply_window cron: never fires: no time matches within a year"},
		{"policy \"p\" {\n  on_drif = \"apply\"\n}\n", `Did you mean "on_drift"?`},
		{"policy \"p\" {}\npolicy \"p\" {}\n", "Duplicate policy"},
		{"policy \"p\" {\n  mode = \"refresh\"\n}\n", `policies/p.hcl:2,10: Invalid mode: mode = "refresh"; use "full" (drift and pending code) or "refresh-only"`},
	}
	for _, tc := range tests {
		_, err := Load(fstest.MapFS{"policies/p.hcl": {Data: []byte(tc.src)}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%q) error = %v, want %q", tc.src, err, tc.want)
		}
	}
	if ps, err := Load(fstest.MapFS{}); err != nil || len(ps) != 0 {
		t.Errorf("a repository without policies: %v %v", ps, err)
	}
}

// The stack's mode (its workspace block's, else its stack block's, as
// stacks.Parse resolves it) wins over the policy's; with neither, full.
func TestModeFor(t *testing.T) {
	ps, err := Load(fstest.MapFS{"policies/p.hcl": {Data: []byte("policy \"cheap\" {\n  mode = \"refresh-only\"\n}\npolicy \"plain\" {}\npolicy \"full\" {\n  mode = \"full\"\n}\n")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		policy *Policy
		stack  drift.Mode
		want   drift.Mode
	}{
		{ps["cheap"], "", drift.RefreshOnly},
		{ps["cheap"], drift.Full, drift.Full},
		{ps["plain"], "", drift.Full},
		{ps["plain"], drift.RefreshOnly, drift.RefreshOnly},
		{ps["full"], drift.RefreshOnly, drift.RefreshOnly},
		{ReportOnly, "", drift.Full},
		{nil, drift.RefreshOnly, drift.RefreshOnly},
	} {
		name := "nil"
		if tc.policy != nil {
			name = tc.policy.Name
		}
		if got := tc.policy.ModeFor(tc.stack); got != tc.want {
			t.Errorf("policy %s, stack mode %q: ModeFor = %q, want %q", name, tc.stack, got, tc.want)
		}
	}
}

// never is a schedule with no next time: robfig/cron returns the zero time
// for a cron that matches nothing, such as 30 February.
type never struct{}

func (never) Next(time.Time) time.Time { return time.Time{} }

func TestWindowThatNeverStartsIsClosed(t *testing.T) {
	p := &Policy{Name: "p", OnDrift: Apply, Allow: []string{"update"}, Escalate: Report,
		Window: &Window{Spec: "0 9 30 2 *", Schedule: never{}, Duration: time.Hour, Location: time.UTC}}
	now := time.Date(2026, 2, 27, 9, 30, 0, 0, time.UTC)
	if p.Window.Contains(now) {
		t.Error("a window whose schedule never starts is open")
	}
	d := p.Decide(drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{finding("sandbox_autoscaling_group.web", "update")}}, now)
	if d.Action != Report || !strings.Contains(d.Reason, "outside the apply window") {
		t.Errorf("decision = %+v, want report outside the apply window", d)
	}
	if (&Window{Duration: time.Hour, Location: time.UTC}).Contains(now) {
		t.Error("a window without a schedule is open")
	}
}

// A broken policy file fails only the stacks whose policy it may hold.
func TestLoadNamedIsolatesBrokenFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"policies/good.hcl":   {Data: []byte("policy \"guarded\" {\n  on_drift = \"apply\"\n}\n")},
		"policies/broken.hcl": {Data: []byte("policy \"review\" {\n  on_drift = \"sometimes\"\n}\n")},
	}
	pols, err := LoadNamed(fsys, "guarded")
	if err != nil || pols["guarded"] == nil || pols["guarded"].OnDrift != Apply {
		t.Errorf("LoadNamed(guarded) = %v, %v", pols, err)
	}
	if _, err := LoadNamed(fsys, "review"); err == nil || !strings.Contains(err.Error(), "policies/broken.hcl:2,") {
		t.Errorf("LoadNamed(review) = %v; want the broken file's error with its line", err)
	}
	if _, err := Load(fsys); err == nil {
		t.Error("Load of a repository with a broken file succeeded")
	}
}
