package remediate

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/trueline/trueline/drift"
)

// A plan with 5,000 findings makes a body within the forge's limit that
// still says what it left out and where to find it.
func TestBodyFitsTheForge(t *testing.T) {
	var res drift.Result
	var plan strings.Builder
	plan.WriteString("Terraform will perform the following actions:\n\n")
	for i := range 5000 {
		addr := fmt.Sprintf("sandbox_autoscaling_group.web_%04d", i)
		res.Drift = append(res.Drift, drift.Finding{Address: addr, Action: "update", Attributes: []drift.Attribute{
			{Path: "min_size", Git: 3.0, Live: 4.0},
			{Path: "tags", Git: strings.Repeat("ü", 300), Live: "x|y"}}})
		fmt.Fprintf(&plan, "  # %s will be updated in-place\n  ~ resource \"sandbox_autoscaling_group\" \"web_%04d\" {\n      ~ min_size = 4 -> 3\n    }\n\n", addr, i)
	}
	plan.WriteString("Plan: 0 to add, 5000 to change, 0 to destroy.\n")
	var notes []string
	for i := range 5000 {
		notes = append(notes, fmt.Sprintf("`sandbox_autoscaling_group.web_%04d.tags` comes from `local.tags`, not a literal: change it where that value is set.", i))
	}
	big := Input{Kind: Revert, Repository: "infra", Stack: "stacks/web", Workspace: "default", Commit: "0123456789abcdef",
		RunID: 7, RunURL: "https://trueline.example/runs/7", Result: res, PlanLog: plan.String(), PlanHash: "abc123"}
	small := big
	small.Result = drift.Result{Drift: res.Drift[:2]}
	small.PlanLog = ""
	adopt := big
	adopt.Kind, adopt.Notes = Adopt, notes
	noURL := big
	noURL.RunURL = ""

	for _, tc := range []struct {
		name    string
		in      Input
		max     int // Input.MaxBody
		limit   int // what the body must fit
		folded  bool
		mention []string
	}{
		{"small, whole", small, 0, DefaultMaxBody, false, []string{"Planned changes (JSON)", "`sandbox_autoscaling_group.web_0001`"}},
		{"github", big, 0, 65536, true, []string{"more rows: see [run 7](https://trueline.example/runs/7)", "planned changes in JSON are left out"}},
		{"gitlab", big, 1000000, 1000000, true, []string{"more rows: see [run 7](https://trueline.example/runs/7)", "web_2000"}},
		{"adopt with 5,000 notes", adopt, 65536, 65536, true, []string{"more: see [run 7]", "Not changed in code", "more rows"}},
		{"no run URL", noURL, 0, 65536, true, []string{"more rows: see run 7 in trueline"}},
		{"tiny limit", big, 3000, 3000, true, []string{"more rows", "<!-- trueline:plan abc123 -->"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.MaxBody = tc.max
			b := Body(tc.in)
			if n := utf8.RuneCountInString(b); n > tc.limit {
				t.Fatalf("body has %d characters, limit %d", n, tc.limit)
			}
			if !utf8.ValidString(b) {
				t.Error("body is not valid UTF-8: a cut split a character")
			}
			for _, want := range append(tc.mention, "trueline found drift in **stacks/web**", "<!-- trueline:plan abc123 -->") {
				if !strings.Contains(b, want) {
					t.Errorf("body lacks %q", want)
				}
			}
			if folded := !strings.Contains(b, "Planned changes (JSON)"); folded != tc.folded {
				t.Errorf("folded = %v, want %v", folded, tc.folded)
			}
			if tc.folded && tc.max != 3000 && !strings.Contains(b, "web_0000") {
				t.Error("the folded table lost its first rows")
			}
			if strings.Count(b, "<details>") != strings.Count(b, "</details>") || strings.Count(b, "```")%2 != 0 {
				t.Error("a fold left a section open")
			}
		})
	}
}
