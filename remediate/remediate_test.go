package remediate

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/trueline/trueline/drift"
)

const stackTF = `variable "max" {
  default = 9
}

resource "sandbox_autoscaling_group" "web" {
  name     = "web"
  min_size = 3 # the floor
  max_size = var.max
}

resource "sandbox_database" "main" {
  name     = "main"
  password = "x"
}
`

func TestAdoptEdits(t *testing.T) {
	fsys := fstest.MapFS{"stacks/web/main.tf": {Data: []byte(stackTF)}}
	findings := []drift.Finding{
		{Address: "sandbox_autoscaling_group.web", Action: "update", Attributes: []drift.Attribute{
			{Path: "min_size", Git: 3.0, Live: 4.0}, {Path: "max_size", Git: 9.0, Live: 12.0}, {Path: "desired_capacity", Git: 3.0, Live: 5.0}}},
		{Address: "sandbox_database.main", Action: "update", Attributes: []drift.Attribute{{Path: "password", Git: drift.Masked, Live: drift.Masked}}},
		{Address: "module.api.sandbox_autoscaling_group.this", Action: "update", Attributes: []drift.Attribute{{Path: "min_size", Git: 2.0, Live: 4.0}}},
		{Address: "sandbox_load_balancer.web", Action: "create", Attributes: []drift.Attribute{}},
	}
	files, notes := AdoptEdits(fsys, "stacks/web", findings)
	got := string(files["stacks/web/main.tf"])
	if !strings.Contains(got, "min_size = 4") || !strings.Contains(got, "max_size = var.max") || !strings.Contains(got, `password = "x"`) {
		t.Errorf("edited file:\n%s", got)
	}
	joined := strings.Join(notes, "\n")
	for _, want := range []string{
		"`sandbox_autoscaling_group.web.max_size` comes from `var.max`",
		"`sandbox_autoscaling_group.web.desired_capacity` is not set in the code",
		"`sandbox_database.main.password` is sensitive",
		"`module.api.sandbox_autoscaling_group.this` is inside a module",
		"`sandbox_load_balancer.web` would be created",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("notes lack %q:\n%s", want, joined)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	res := drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{{Address: "sandbox_autoscaling_group.web", Action: "update",
		Attributes: []drift.Attribute{{Path: "min_size", Git: 3.0, Live: 4.0}, {Path: "password", Git: drift.Masked, Live: drift.Masked}}}}}
	in := Input{Kind: Revert, Repository: "infra", Stack: "stacks/web", Workspace: "default", Commit: "0123456789abcdef", RunID: 7, Result: res, PlanHash: "abc123"}
	if rec := Record(in); !strings.Contains(string(rec), "<!-- trueline:plan abc123 -->") {
		t.Errorf("record lacks the plan hash:\n%s", rec)
	}
	body := Body(in)
	for _, want := range []string{"| `sandbox_autoscaling_group.web` | update (drift) | `min_size` | `3` | `4` |", "`\"(sensitive)\"`", "<details>", "Merging this pull request **approves"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if s, w, ok := ParseRecordPath(RecordPath("stacks/prod/web", "staging")); !ok || s != "stacks/prod/web" || w != "staging" {
		t.Errorf("ParseRecordPath = %s %s %v", s, w, ok)
	}
	if _, _, ok := ParseRecordPath("stacks/web/main.tf"); ok {
		t.Error("a stack file parsed as a record")
	}
}

func TestPlanExcerpt(t *testing.T) {
	log := "trueline: init (new working directory)\nInitializing...\n\nOpenTofu used the selected providers to generate the following execution\nplan.\n\nOpenTofu will perform the following actions:\n\n  # sandbox_database.main will be updated in-place\n  ~ password = (sensitive value)\n\nPlan: 0 to add, 1 to change, 0 to destroy.\n\nSaved the plan to: /tmp/x\n"
	got := PlanExcerpt(log, 1000)
	if !strings.HasPrefix(got, "OpenTofu will perform") || !strings.HasSuffix(got, "Plan: 0 to add, 1 to change, 0 to destroy.") || strings.Contains(got, "Saved the plan") {
		t.Errorf("excerpt:\n%s", got)
	}
	if PlanExcerpt("no plan here", 100) != "" {
		t.Error("an excerpt from a log without a plan")
	}
}
