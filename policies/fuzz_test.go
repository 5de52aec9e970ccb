package policies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/trueline/trueline/drift"
)

// FuzzParse feeds policy files to Parse and what it accepts to Decide. It
// must not panic, every error must name the file and a line, and every
// decision must be an action the policy allows, with a reason.
func FuzzParse(f *testing.F) {
	examples, err := filepath.Glob("../examples/*/" + Dir + "/*.hcl")
	if err != nil || len(examples) == 0 {
		f.Fatalf("no example policies to seed from: %v", err)
	}
	for _, name := range examples {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(src))
	}
	f.Add(guarded)
	f.Add("policy \"p\" {\n  apply_window {\n    cron = \"0 9 30 2 *\"\n    duration = \"1h\"\n  }\n}\n")
	f.Add("policy \"p\" {\n  on_drift = \"apply\"\n  apply_window {\n    cron = \"CRON_TZ=Asia/Tokyo @every 2h\"\n    duration = \"90m\"\n    timezone = \"Asia/Tokyo\"\n  }\n}\n")

	results := []drift.Result{
		{Verdict: drift.Drifted, Drift: []drift.Finding{finding("sandbox_autoscaling_group.web", "update")}},
		{Verdict: drift.Pending, Pending: []drift.Finding{finding("sandbox_database.main", "replace"), finding("sandbox_lb.web", "create")}},
		{Verdict: drift.DriftedAndPending, Drift: []drift.Finding{finding("sandbox_lb.web", "delete")}, Pending: []drift.Finding{finding("sandbox_lb.web", "update")}},
		{Verdict: drift.Error},
		drift.InSyncResult(),
	}
	times := []time.Time{
		time.Date(2026, 2, 28, 9, 30, 0, 0, time.UTC),
		time.Date(2026, 11, 23, 23, 59, 59, 0, time.UTC),
	}
	f.Fuzz(func(t *testing.T, src string) {
		const filename = "policies/p.hcl"
		ps, diags := Parse(filename, []byte(src))
		if diags.HasErrors() {
			for _, d := range diags {
				if d.Severity == hcl.DiagError && (d.Subject == nil || d.Subject.Filename != filename || d.Subject.Start.Line < 1) {
					t.Errorf("error without file and line: %s: %s", d.Summary, d.Detail)
				}
			}
			return
		}
		for _, p := range ps {
			if w := p.Window; w != nil {
				if w.Schedule == nil || w.Location == nil || w.Duration <= 0 {
					t.Fatalf("window accepted half-parsed: %+v", w)
				}
				if next := w.Schedule.Next(times[0]); next.IsZero() {
					t.Errorf("window cron %q accepted but never starts", w.Spec)
				}
			}
			for _, res := range results {
				for _, now := range times {
					d := p.Decide(res, now)
					if d.Reason == "" {
						t.Errorf("decision without a reason: %+v", d)
					}
					switch d.Action {
					case None, Report:
					case Apply:
						if d.Escalated || (p.Window != nil && !p.Window.Contains(now)) || !strings.Contains(d.Reason, "within guardrails") {
							t.Errorf("apply outside the guardrails: %+v", d)
						}
					case PullRequest:
						if p.OnDrift != PullRequest && p.OnPending != PullRequest && p.Escalate != PullRequest {
							t.Errorf("pull request nobody asked for: %+v", d)
						}
					default:
						t.Errorf("unknown action %q", d.Action)
					}
				}
			}
		}
	})
}
