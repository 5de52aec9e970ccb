package main_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trueline/trueline/sandbox"
)

// Approvals bind to what a person saw: only the latest escalated run can be
// approved, the approved run plans at its commit and applies only the same
// plan; a drift record committed by hand approves nothing, while merging
// trueline's own remediation branch does.
func TestServeApprovals(t *testing.T) {
	r := newDaemonRepo(t)
	r.git.Commit("stack", merge(map[string]string{
		".gitignore":          ".terraform.lock.hcl\n",
		"policies/review.hcl": "policy \"review\" {\n  on_drift = \"pull_request\"\n}\n",
	}, r.stack("web", "\nresource \"sandbox_autoscaling_group\" \"web\" {\n  name     = \"web\"\n  min_size = 3\n  max_size = 9\n}\n",
		"stack {\n  policy = \"review\"\n}\n")))
	r.apply(t, "web")
	p := startServe(t, t.TempDir(), []string{sandbox.RootEnv + "=" + r.cloud.Root, "TRUELINE_API_TOKEN=api"},
		"--repo", r.git.Dir, "--poll", "1s")
	waitFor(t, 60*time.Second, "the first run", func() bool { return countStatus(p.runs(t), "finished") == 1 })
	post := func(path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", p.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer api")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	finished := func(n int) []apiRun {
		t.Helper()
		waitFor(t, 60*time.Second, fmt.Sprintf("%d finished runs", n), func() bool { return countStatus(p.runs(t), "finished") >= n })
		return p.runs(t)
	}
	minSize := func() string {
		o, _ := r.cloud.Get("sandbox_autoscaling_group", "web")
		return fmt.Sprint(o["min_size"])
	}

	r.cloud.Update("sandbox_autoscaling_group", "web", func(o map[string]any) { o["min_size"] = 4 })
	post("/api/v1/runs", `{"stack":"stacks/web"}`)
	first := finished(2)[0]
	post("/api/v1/runs", `{"stack":"stacks/web"}`)
	latest := finished(3)[0]
	if first.Verdict != "drifted" || latest.Verdict != "drifted" || latest.Action.Kind == "apply" {
		t.Fatalf("escalated runs: %+v %+v", first, latest)
	}
	if code, body := post(fmt.Sprintf("/api/v1/runs/%d/approve", first.ID), ""); code != http.StatusConflict || !strings.Contains(body, "not the latest") {
		t.Errorf("approving an older run: %d %s", code, body)
	}
	if code, body := post("/api/v1/runs/1/approve", ""); code != http.StatusConflict || !strings.Contains(body, "no changes to approve") {
		t.Errorf("approving an in-sync run: %d %s", code, body)
	}
	if code, body := post(fmt.Sprintf("/api/v1/runs/%d/approve", latest.ID), ""); code != http.StatusAccepted {
		t.Fatalf("approving the latest run: %d %s", code, body)
	}
	approved := finished(4)[0]
	if approved.Trigger != "approve" || approved.Commit != latest.Commit || !approved.Converged() ||
		!strings.Contains(approved.Action.Reason, fmt.Sprintf("approved (run %d, approved by token)", latest.ID)) {
		t.Errorf("the approved run: %+v", approved)
	}
	if minSize() != "3" {
		t.Errorf("min_size = %s after the approved apply, want 3", minSize())
	}
	// An applied run is approved no more.
	if code, _ := post(fmt.Sprintf("/api/v1/runs/%d/approve", approved.ID), ""); code != http.StatusConflict {
		t.Errorf("approving an applied run: %d", code)
	}

	// New drift: trueline pushes its revert branch. A drift record committed
	// by hand on main approves nothing...
	r.cloud.Update("sandbox_autoscaling_group", "web", func(o map[string]any) { o["min_size"] = 5 })
	post("/api/v1/runs", `{"stack":"stacks/web"}`)
	proposed := finished(5)[0]
	branch := "trueline/stacks/web/default"
	if proposed.Verdict != "drifted" || !strings.Contains(proposed.Action.Reason, branch) {
		t.Fatalf("the proposing run: %+v", proposed)
	}
	r.git.Commit("a hand-made approval", map[string]string{".trueline/drift/stacks/web/default.md": "# approved, honest\n"})
	waitFor(t, 30*time.Second, "serve to see the commit", func() bool {
		return strings.Contains(p.logs.String(), "it is no approval")
	})
	for _, run := range p.runs(t) {
		if run.Trigger == "merge" {
			t.Errorf("a hand-made drift record queued an approved run: %+v", run)
		}
	}
	if minSize() != "5" {
		t.Errorf("min_size = %s: a hand-made record approved the revert", minSize())
	}
	// ...merging trueline's own branch does.
	r.git.Git("merge", "-q", "-X", "theirs", "--no-edit", branch)
	waitFor(t, 60*time.Second, "the merge run", func() bool {
		for _, run := range p.runs(t) {
			if run.Trigger == "merge" && run.Status == "finished" {
				return true
			}
		}
		return false
	})
	if minSize() != "3" {
		for _, run := range p.runs(t) {
			t.Logf("%+v", run)
		}
		t.Errorf("min_size = %s after merging the revert branch, want 3", minSize())
	}
}
