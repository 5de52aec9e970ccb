package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/trueline/trueline/internal/giteatest"
	"github.com/trueline/trueline/internal/gittest"
)

// asUser calls Gitea's API with a user's token, for what the second user
// does: fork, comment, open a pull request.
func asUser(gt *giteatest.Server, token, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, gt.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "token "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // read below; nothing to report
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s\n%s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// eventually retries f for up to a minute: Gitea takes pushes and forks
// through queues, and answers 404 or "empty" until they are done.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func notEmpty(gt *giteatest.Server, token, repo string) func() error {
	return func() error {
		var r struct {
			Empty bool `json:"empty"`
		}
		if err := asUser(gt, token, "GET", "/api/v1/repos/"+repo, nil, &r); err != nil {
			return err
		}
		if r.Empty {
			return fmt.Errorf("%s is still empty", repo)
		}
		return nil
	}
}

// TestReviewsGitea asks a real Gitea: a pull request from a branch and one
// from a fork, a comment kept as one across upserts and apart from another
// user's marked comment, a status on the head commit, and who may push.
func TestReviewsGitea(t *testing.T) {
	gt := giteatest.Start(t)
	gt.CreateRepo("infra")
	contributor := gt.NewUser("contributor")
	writer := gt.NewUser("writer")
	gt.API("PUT", "/api/v1/repos/trueline/infra/collaborators/writer", map[string]any{"permission": "write"}, nil)

	git := gittest.New(t)
	git.Commit("main", map[string]string{"stacks/web/main.tf": "# web\n"})
	git.Git("push", "-q", gt.PushURL("infra"), "main")
	eventually(t, "gitea to see the push", notEmpty(gt, gt.Token, "trueline/infra"))
	git.Git("checkout", "-q", "-b", "change")
	headSHA := git.Commit("change web", map[string]string{"stacks/web/main.tf": "# web, changed\n"})
	git.Git("push", "-q", gt.PushURL("infra"), "change")

	// The second user forks and pushes a branch there.
	if err := asUser(gt, contributor, "POST", "/api/v1/repos/trueline/infra/forks", map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the fork", notEmpty(gt, contributor, "contributor/infra"))
	git.Git("checkout", "-q", "-b", "outside", "main")
	forkSHA := git.Commit("change web from a fork", map[string]string{"stacks/web/extra.tf": "# extra\n"})
	git.Git("push", "-q", strings.Replace(gt.URL, "http://", "http://contributor:"+contributor+"@", 1)+"/contributor/infra.git", "outside")

	var own, fork struct {
		Number int64 `json:"number"`
	}
	eventually(t, "a pull request from a branch", func() error {
		return asUser(gt, gt.Token, "POST", "/api/v1/repos/trueline/infra/pulls", map[string]any{"head": "change", "base": "main", "title": "Change web"}, &own)
	})
	eventually(t, "a pull request from a fork", func() error {
		return asUser(gt, contributor, "POST", "/api/v1/repos/trueline/infra/pulls", map[string]any{"head": "contributor:outside", "base": "main", "title": "From a fork"}, &fork)
	})

	f, err := New(Options{Kind: "gitea", URL: gt.URL + "/trueline/infra.git", Token: gt.Token})
	if err != nil {
		t.Fatal(err)
	}
	r := reviewsOf(t, f)
	ctx := context.Background()

	t.Run("open pull requests", func(t *testing.T) {
		prs, err := r.OpenPRs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[int64]OpenPR{
			own.Number: {Number: own.Number, URL: fmt.Sprintf("%s/trueline/infra/pulls/%d", gt.URL, own.Number), Title: "Change web", Author: "trueline",
				HeadBranch: "change", HeadSHA: headSHA, BaseBranch: "main", Ref: fmt.Sprintf("refs/pull/%d/head", own.Number)},
			fork.Number: {Number: fork.Number, URL: fmt.Sprintf("%s/trueline/infra/pulls/%d", gt.URL, fork.Number), Title: "From a fork", Author: "contributor",
				HeadBranch: "outside", HeadSHA: forkSHA, BaseBranch: "main", Fork: true, Ref: fmt.Sprintf("refs/pull/%d/head", fork.Number)},
		}
		if len(prs) != len(want) {
			t.Fatalf("OpenPRs = %+v, want 2", prs)
		}
		for _, pr := range prs {
			if pr != want[pr.Number] {
				t.Errorf("OpenPRs has\n%+v\nwant\n%+v", pr, want[pr.Number])
			}
			got, err := r.PullRequest(ctx, pr.Number)
			if err != nil || *got != pr {
				t.Errorf("PullRequest(%d) = %+v, %v", pr.Number, got, err)
			}
		}
	})

	t.Run("one comment, edited in place", func(t *testing.T) {
		// Another user's comment holding the marker is not trueline's.
		if err := asUser(gt, contributor, "POST", fmt.Sprintf("/api/v1/repos/trueline/infra/issues/%d/comments", fork.Number),
			map[string]any{"body": marker + "\nnot trueline's"}, nil); err != nil {
			t.Fatal(err)
		}
		first, err := r.UpsertComment(ctx, fork.Number, marker, marker+"\nfirst plan")
		if err != nil {
			t.Fatal(err)
		}
		second, err := r.UpsertComment(ctx, fork.Number, marker, "second plan")
		if err != nil {
			t.Fatal(err)
		}
		if first != second || !strings.Contains(first, fmt.Sprintf("/pulls/%d#issuecomment-", fork.Number)) {
			t.Errorf("first upsert at %q, second at %q: want one comment", first, second)
		}
		var comments []struct {
			Body string `json:"body"`
			User struct {
				Login string `json:"login"`
			} `json:"user"`
		}
		gt.API("GET", fmt.Sprintf("/api/v1/repos/trueline/infra/issues/%d/comments", fork.Number), nil, &comments)
		var got []string
		for _, c := range comments {
			got = append(got, c.User.Login+": "+c.Body)
		}
		want := []string{"contributor: " + marker + "\nnot trueline's", "trueline: " + marker + "\nsecond plan"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("comments:\n%q\nwant\n%q", got, want)
		}
	})

	t.Run("status on the head commit", func(t *testing.T) {
		for _, st := range []CommitStatus{
			{State: StatusPending, Description: "planning", TargetURL: "https://trueline.example/runs/1"},
			{State: StatusFailure, Description: strings.Repeat("stacks/web: plan failed; ", 10), TargetURL: "https://trueline.example/runs/1"},
		} {
			if err := r.SetStatus(ctx, headSHA, st); err != nil {
				t.Fatal(err)
			}
		}
		var combined struct {
			State    string `json:"state"`
			Statuses []struct {
				Context     string `json:"context"`
				Status      string `json:"status"`
				Description string `json:"description"`
				TargetURL   string `json:"target_url"`
			} `json:"statuses"`
		}
		gt.API("GET", "/api/v1/repos/trueline/infra/commits/"+headSHA+"/status", nil, &combined)
		if combined.State != "failure" || len(combined.Statuses) != 1 {
			t.Fatalf("combined status = %+v, want one failure", combined)
		}
		s := combined.Statuses[0]
		if s.Context != StatusContext || s.Status != "failure" || s.TargetURL != "https://trueline.example/runs/1" ||
			utf8.RuneCountInString(s.Description) != MaxStatusDescription || !strings.HasSuffix(s.Description, "…") {
			t.Errorf("status = %+v", s)
		}
	})

	t.Run("who may push", func(t *testing.T) {
		for user, want := range map[string]bool{"trueline": true, "writer": true, "contributor": false, "nobody": false} {
			got, err := r.CanWrite(ctx, user)
			if err != nil || got != want {
				t.Errorf("CanWrite(%s) = %v, %v; want %v", user, got, err, want)
			}
		}
		// A collaborator may ask about itself only: Gitea tells others'
		// permissions to admins.
		f, err := New(Options{Kind: "gitea", URL: gt.URL + "/trueline/infra.git", Token: writer})
		if err != nil {
			t.Fatal(err)
		}
		w := reviewsOf(t, f)
		if got, err := w.CanWrite(ctx, "writer"); err != nil || !got {
			t.Errorf("the writer's CanWrite(writer) = %v, %v; want true", got, err)
		}
		if got, err := w.CanWrite(ctx, "contributor"); err == nil || !strings.Contains(err.Error(), "fix: make the token's user an administrator of the repository") {
			t.Errorf("the writer's CanWrite(contributor) = %v, %v; want the fix", got, err)
		}
	})
}
