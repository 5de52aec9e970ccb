package main_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trueline/trueline/internal/giteatest"
	"github.com/trueline/trueline/internal/gittest"
	"github.com/trueline/trueline/sandbox"
)

type giteaPR struct {
	Number int64  `json:"number"`
	Title  string `json:"title"`
	Body   string `json:"body"`
	State  string `json:"state"`
	Merged bool   `json:"merged"`
	Head   struct {
		Ref string `json:"ref"`
	} `json:"head"`
}

// TestServePullRequestsOnGitea: a console change on a pull_request stack
// opens a pull request in a real Gitea; merging it makes trueline apply Git's
// values. An adopt pull request moves the live values into the code instead.
func TestServePullRequestsOnGitea(t *testing.T) {
	gt := giteatest.Start(t)
	r := newDaemonRepo(t)
	asg := func(name string) string {
		return fmt.Sprintf("\nresource \"sandbox_autoscaling_group\" \"web\" {\n  name     = %q\n  min_size = 3\n  max_size = 9\n}\n", name)
	}
	r.git.Commit("stacks", merge(
		map[string]string{
			".gitignore":          ".terraform.lock.hcl\n",
			"policies/review.hcl": "policy \"review\" {\n  on_drift = \"pull_request\"\n}\n",
			"policies/adopt.hcl":  "policy \"adopt\" {\n  on_drift = \"pull_request\"\n  pull_request_kind = \"adopt\"\n}\n",
		},
		r.stack("revert", asg("revert"), "stack {\n  policy = \"review\"\n}\n"),
		r.stack("adopt", asg("adopt"), "stack {\n  policy = \"adopt\"\n}\n"),
	))
	r.apply(t, "revert", "adopt")
	pushToGitea(t, gt, r.git)

	p := startServe(t, t.TempDir(),
		[]string{sandbox.RootEnv + "=" + r.cloud.Root, "GITEA_TOKEN=" + gt.Token, "TRUELINE_API_TOKEN=api"},
		"--repo", gt.URL+"/trueline/infra.git", "--forge", "gitea", "--token-env", "GITEA_TOKEN", "--poll", "1s")
	waitFor(t, 60*time.Second, "the first runs", func() bool { return countStatus(p.runs(t), "finished") >= 2 })

	openPR := func(stack string) giteaPR {
		var found giteaPR
		waitFor(t, 60*time.Second, "a pull request for "+stack, func() bool {
			var prs []giteaPR
			// Gitea answers 404 now and then while a pushed branch settles.
			if err := gt.TryAPI("GET", "/api/v1/repos/trueline/infra/pulls?state=open", nil, &prs); err != nil {
				return false
			}
			for _, pr := range prs {
				if pr.Head.Ref == "trueline/stacks/"+stack+"/default" {
					found = pr
					return true
				}
			}
			return false
		})
		return found
	}
	trigger := func(stack string) {
		req, _ := http.NewRequest("POST", p.url+"/api/v1/runs", strings.NewReader(`{"stack":"stacks/`+stack+`"}`))
		req.Header.Set("Authorization", "Bearer api")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("trigger %s: %v %v", stack, err, resp.Status)
		}
		resp.Body.Close()
	}

	// Revert: the console change becomes a pull request...
	r.cloud.Update("sandbox_autoscaling_group", "revert", func(o map[string]any) { o["min_size"], o["max_size"] = 4, 12 })
	trigger("revert")
	pr := openPR("revert")
	if !strings.Contains(pr.Title, "revert drift in stacks/revert") || !strings.Contains(pr.Body, "| `sandbox_autoscaling_group.web` | update (drift) | `min_size` | `3` | `4` |") {
		t.Errorf("pull request = %s\n%s", pr.Title, pr.Body)
	}
	// ...a second run updates the same pull request instead of opening another...
	trigger("revert")
	waitFor(t, 30*time.Second, "the second run", func() bool {
		n := 0
		for _, run := range p.runs(t) {
			if run.Stack == "stacks/revert" && run.Trigger == "manual" && run.Status == "finished" {
				n++
			}
		}
		return n == 2
	})
	var prs []giteaPR
	gt.API("GET", "/api/v1/repos/trueline/infra/pulls?state=open", nil, &prs)
	if len(prs) != 1 {
		t.Errorf("%d open pull requests, want the one, updated", len(prs))
	}
	// ...and merging it is the approval: trueline applies Git's values.
	mergePR(t, gt, pr.Number)
	waitFor(t, 60*time.Second, "the merge run to apply", func() bool {
		for _, run := range p.runs(t) {
			if run.Stack == "stacks/revert" && run.Trigger == "merge" && run.Status == "finished" {
				return true
			}
		}
		return false
	})
	obj, _ := r.cloud.Get("sandbox_autoscaling_group", "revert")
	if fmt.Sprint(obj["min_size"], "/", obj["max_size"]) != "3/9" {
		for _, run := range p.runs(t) {
			t.Logf("%+v", run)
		}
		t.Errorf("after the merge the group is %v/%v, want Git's 3/9", obj["min_size"], obj["max_size"])
	}

	// Drift that goes away by itself closes its pull request, with a comment.
	r.cloud.Update("sandbox_autoscaling_group", "revert", func(o map[string]any) { o["max_size"] = 10 })
	trigger("revert")
	again := openPR("revert")
	r.cloud.Update("sandbox_autoscaling_group", "revert", func(o map[string]any) { o["max_size"] = 9 })
	trigger("revert")
	waitFor(t, 60*time.Second, "the pull request to be closed", func() bool {
		var closed giteaPR
		if gt.TryAPI("GET", fmt.Sprintf("/api/v1/repos/trueline/infra/pulls/%d", again.Number), nil, &closed) != nil {
			return false
		}
		return closed.State == "closed" && !closed.Merged
	})
	var comments []struct {
		Body string `json:"body"`
	}
	gt.API("GET", fmt.Sprintf("/api/v1/repos/trueline/infra/issues/%d/comments", again.Number), nil, &comments)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "The drift is gone") {
		t.Errorf("closing comments = %+v", comments)
	}

	// Adopt: the pull request edits the HCL; after the merge the plan is empty.
	r.cloud.Update("sandbox_autoscaling_group", "adopt", func(o map[string]any) { o["min_size"] = 4 })
	trigger("adopt")
	apr := openPR("adopt")
	if !strings.Contains(apr.Title, "adopt live values") {
		t.Errorf("adopt pull request = %s", apr.Title)
	}
	mergePR(t, gt, apr.Number)
	waitFor(t, 60*time.Second, "the adopted code to be planned in sync", func() bool {
		for _, run := range p.runs(t) {
			if run.Stack == "stacks/adopt" && run.Trigger == "commit" && run.Status == "finished" && run.Verdict == "in_sync" && run.ID > 4 {
				return true
			}
		}
		return false
	})
	r.git.Git("pull", "-q", gt.PushURL("infra"), "main")
	if src := r.git.Git("show", "HEAD:stacks/adopt/main.tf"); !strings.Contains(src, "min_size = 4") {
		t.Errorf("adopted code:\n%s", src)
	}
	if obj, _ := r.cloud.Get("sandbox_autoscaling_group", "adopt"); fmt.Sprint(obj["min_size"]) != "4" {
		t.Errorf("adopt changed the cloud: min_size %v", obj["min_size"])
	}
}

func countStatus(runs []apiRun, status string) int {
	n := 0
	for _, r := range runs {
		if string(r.Status) == status {
			n++
		}
	}
	return n
}

// mergePR merges a pull request the way a person does. Gitea checks a new
// pull request's mergeability in a queue and answers 405 "try again later"
// until it has, so the merge is retried.
func mergePR(t *testing.T, gt *giteatest.Server, number int64) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("pull request #%d to merge", number), func() bool {
		return gt.TryAPI("POST", fmt.Sprintf("/api/v1/repos/trueline/infra/pulls/%d/merge", number), map[string]any{"Do": "merge"}, nil) == nil
	})
}

// pushToGitea pushes a repository's main to a new Gitea repository
// trueline/infra. Gitea notices a push through a queue; until then the
// repository is "empty" and has no pull requests to list, so this waits.
func pushToGitea(t *testing.T, gt *giteatest.Server, repo *gittest.Repo) {
	t.Helper()
	gt.CreateRepo("infra")
	repo.Git("push", "-q", gt.PushURL("infra"), "main")
	waitFor(t, 60*time.Second, "gitea to see the push", func() bool {
		var r struct {
			Empty bool `json:"empty"`
		}
		return gt.TryAPI("GET", "/api/v1/repos/trueline/infra", nil, &r) == nil && !r.Empty
	})
}
