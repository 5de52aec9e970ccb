package forge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

const (
	headSHA  = "0123456789abcdef0123456789abcdef01234567"
	forkSHA  = "89abcdef0123456789abcdef0123456789abcdef"
	marker   = "<!-- trueline:plan -->"
	longDesc = "Plan: 3 stacks changed; stacks/web adds 2, changes 1 and destroys 1 resource; stacks/db changes 4; stacks/dns is in sync; see the comment for each plan"
)

func reviewsOf(t *testing.T, f Forge) Reviews {
	t.Helper()
	r, err := ReviewsOf(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ghPR is a pull request as GitHub's API answers it.
func ghPullJSON(n int, sha, headRepo string, headID int) map[string]any {
	head := map[string]any{"ref": fmt.Sprintf("feature-%d", n), "sha": sha, "repo": map[string]any{"id": headID, "full_name": headRepo}}
	if headRepo == "" {
		head["repo"] = nil // a deleted fork
	}
	return map[string]any{"number": n, "html_url": fmt.Sprintf("https://github.example/acme/infra/pull/%d", n), "title": fmt.Sprintf("change %d", n),
		"user": map[string]any{"login": "alice"}, "head": head,
		"base": map[string]any{"ref": "main", "sha": "ffff", "repo": map[string]any{"id": 1, "full_name": "acme/infra"}}}
}

func ghComment(pr, id int, login, body string) map[string]any {
	return map[string]any{"id": id, "body": body, "user": map[string]any{"login": login},
		"html_url": fmt.Sprintf("https://github.example/acme/infra/pull/%d#issuecomment-%d", pr, id)}
}

// reviewAPI is an apiServer that keeps the status bodies it was sent.
type reviewAPI struct {
	*apiServer
	bodies []map[string]any
}

// githubReviews is a GitHub API that checks each request as GitHub would.
func githubReviews(t *testing.T) (*reviewAPI, Reviews) {
	t.Helper()
	srv := &reviewAPI{apiServer: &apiServer{t: t, check: func(r *http.Request) string {
		if r.Header.Get("Authorization") != "Bearer gh-token" {
			return "missing bearer token"
		}
		if !strings.Contains(r.Header.Get("Accept"), "application/vnd.github") {
			return "Accept is not application/vnd.github..."
		}
		return ""
	}}}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	const repo = "/api/v3/repos/acme/infra"
	comments := map[string][]any{ // by page
		"1": {ghComment(7, 50, "alice", "looks good"), ghComment(7, 51, "mallory", marker+"\nnot trueline's")},
		"2": {ghComment(7, 52, "Trueline-Bot", marker+"\nold plan"), ghComment(7, 53, "trueline-bot", marker+"\na later copy")},
	}
	srv.routes = map[string]func(http.ResponseWriter, *http.Request, map[string]any){
		"GET " + repo + "/pulls": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			q := r.URL.Query()
			if q.Get("state") != "open" || q.Get("per_page") != "100" {
				t.Errorf("list query = %v", q)
			}
			if q.Get("page") == "2" {
				json.NewEncoder(w).Encode([]any{ghPullJSON(9, forkSHA, "", 0)})
				return
			}
			w.Header().Set("Link", fmt.Sprintf(`<%s%s/pulls?state=open&per_page=100&page=2>; rel="next", <%s%s/pulls?state=open&per_page=100&page=2>; rel="last"`, ts.URL, repo, ts.URL, repo))
			json.NewEncoder(w).Encode([]any{ghPullJSON(7, headSHA, "acme/infra", 1), ghPullJSON(8, forkSHA, "mallory/infra", 2)})
		},
		"GET " + repo + "/pulls/7": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			json.NewEncoder(w).Encode(ghPullJSON(7, headSHA, "acme/infra", 1))
		},
		"GET /api/v3/user": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			json.NewEncoder(w).Encode(map[string]any{"login": "trueline-bot", "id": 5})
		},
		"GET " + repo + "/issues/7/comments": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			page := r.URL.Query().Get("page")
			if page == "" {
				page = "1"
				w.Header().Set("Link", fmt.Sprintf(`<%s%s/issues/7/comments?per_page=100&page=2>; rel="next"`, ts.URL, repo))
			}
			json.NewEncoder(w).Encode(comments[page])
		},
		"GET " + repo + "/issues/8/comments": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			json.NewEncoder(w).Encode([]any{ghComment(8, 60, "mallory", marker)})
		},
		// Only trueline's own first marked comment may be edited: 51 is
		// mallory's, and a PATCH to it has no route.
		"PATCH " + repo + "/issues/comments/52": func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			wantBody(t, body, map[string]any{"body": marker + "\nnew plan"})
			json.NewEncoder(w).Encode(ghComment(7, 52, "trueline-bot", body["body"].(string)))
		},
		"POST " + repo + "/issues/8/comments": func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			wantBody(t, body, map[string]any{"body": marker + "\nnew plan"})
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(ghComment(8, 61, "trueline-bot", body["body"].(string)))
		},
		"POST " + repo + "/statuses/" + headSHA: func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			if d, _ := body["description"].(string); utf8.RuneCountInString(d) > 140 {
				t.Errorf("description of %d characters: GitHub refuses more than 140", utf8.RuneCountInString(d))
			}
			switch body["state"] {
			case "pending", "success", "failure", "error":
			default:
				t.Errorf("state %v", body["state"])
			}
			srv.bodies = append(srv.bodies, body)
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(body)
		},
	}
	perms := map[string]map[string]any{
		"owner":      {"permission": "admin", "role_name": "admin"},
		"maintainer": {"permission": "write", "role_name": "maintain"},
		"writer":     {"permission": "write", "role_name": "write"},
		"triager":    {"permission": "read", "role_name": "triage"},
		"reader":     {"permission": "read", "role_name": "read"},
		"stranger":   {"permission": "none", "role_name": ""},
	}
	for user, p := range perms {
		srv.routes["GET "+repo+"/collaborators/"+user+"/permission"] = func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			p["user"] = map[string]any{"login": user}
			json.NewEncoder(w).Encode(p)
		}
	}
	srv.routes["GET "+repo+"/collaborators/ghost/permission"] = func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/collaborators/collaborators#get-repository-permissions-for-a-user","status":"404"}`)
	}
	f, err := New(Options{Kind: "github", URL: "https://github.example/acme/infra.git", APIURL: ts.URL + "/api/v3/", Token: "gh-token"})
	if err != nil {
		t.Fatal(err)
	}
	return srv, reviewsOf(t, f)
}

func TestReviewsGitHubPullRequests(t *testing.T) {
	_, r := githubReviews(t)
	prs, err := r.OpenPRs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []OpenPR{
		{Number: 7, URL: "https://github.example/acme/infra/pull/7", Title: "change 7", Author: "alice", HeadBranch: "feature-7", HeadSHA: headSHA, BaseBranch: "main", Ref: "refs/pull/7/head"},
		{Number: 8, URL: "https://github.example/acme/infra/pull/8", Title: "change 8", Author: "alice", HeadBranch: "feature-8", HeadSHA: forkSHA, BaseBranch: "main", Fork: true, Ref: "refs/pull/8/head"},
		{Number: 9, URL: "https://github.example/acme/infra/pull/9", Title: "change 9", Author: "alice", HeadBranch: "feature-9", HeadSHA: forkSHA, BaseBranch: "main", Fork: true, Ref: "refs/pull/9/head"},
	}
	if !reflect.DeepEqual(prs, want) {
		t.Errorf("OpenPRs (both pages, the fork and the deleted fork flagged) =\n%+v\nwant\n%+v", prs, want)
	}
	pr, err := r.PullRequest(context.Background(), 7)
	if err != nil || !reflect.DeepEqual(*pr, want[0]) {
		t.Errorf("PullRequest(7) = %+v, %v", pr, err)
	}
}

func TestReviewsGitHubComments(t *testing.T) {
	srv, r := githubReviews(t)
	for _, tc := range []struct {
		name   string
		number int64
		body   string
		url    string
		call   string
	}{
		// The second page holds trueline's comment (its login in another
		// case); mallory's marked comment on the first is left alone.
		{"edits its own marked comment", 7, marker + "\nnew plan", "https://github.example/acme/infra/pull/7#issuecomment-52", "PATCH /api/v3/repos/acme/infra/issues/comments/52"},
		{"adds the marker the body lacks", 7, "new plan", "https://github.example/acme/infra/pull/7#issuecomment-52", "PATCH /api/v3/repos/acme/infra/issues/comments/52"},
		{"another user's marked comment is not edited", 8, marker + "\nnew plan", "https://github.example/acme/infra/pull/8#issuecomment-61", "POST /api/v3/repos/acme/infra/issues/8/comments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.seen = nil
			u, err := r.UpsertComment(context.Background(), tc.number, marker, tc.body)
			if err != nil || u != tc.url {
				t.Fatalf("UpsertComment = %q, %v; want %q", u, err, tc.url)
			}
			if last := srv.seen[len(srv.seen)-1]; last != tc.call {
				t.Errorf("last request %s, want %s (all: %v)", last, tc.call, srv.seen)
			}
		})
	}
	if n := strings.Count(strings.Join(srv.seen, "\n"), "GET /api/v3/user"); n > 1 {
		t.Errorf("the token's user was read %d times", n)
	}
}

func TestReviewsGitHubStatus(t *testing.T) {
	srv, r := githubReviews(t)
	for _, tc := range []struct {
		name string
		st   CommitStatus
		want map[string]any
	}{
		{"pending", CommitStatus{State: StatusPending, Description: "planning 3 stacks", TargetURL: "https://trueline.example/runs/4"},
			map[string]any{"state": "pending", "context": "trueline/plan", "description": "planning 3 stacks", "target_url": "https://trueline.example/runs/4"}},
		{"long description cut to 140", CommitStatus{State: StatusSuccess, Description: longDesc},
			map[string]any{"state": "success", "context": "trueline/plan", "description": string([]rune(longDesc)[:139]) + "…"}},
		{"failure with another context", CommitStatus{State: StatusFailure, Context: "trueline/plan/web", Description: "plan failed"},
			map[string]any{"state": "failure", "context": "trueline/plan/web", "description": "plan failed"}},
		{"error", CommitStatus{State: StatusError, Description: "no checkout"},
			map[string]any{"state": "error", "context": "trueline/plan", "description": "no checkout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.bodies = nil
			if err := r.SetStatus(context.Background(), headSHA, tc.st); err != nil {
				t.Fatal(err)
			}
			if len(srv.bodies) != 1 {
				t.Fatalf("%d status requests", len(srv.bodies))
			}
			wantBody(t, srv.bodies[0], tc.want)
			if _, ok := srv.bodies[0]["target_url"]; ok != (tc.st.TargetURL != "") {
				t.Errorf("target_url sent: %v, want %v", ok, tc.st.TargetURL != "")
			}
		})
	}
}

func TestReviewsGitHubCanWrite(t *testing.T) {
	_, r := githubReviews(t)
	for user, want := range map[string]bool{
		"owner": true, "maintainer": true, "writer": true,
		"triager": false, "reader": false, "stranger": false, "ghost": false,
	} {
		t.Run(user, func(t *testing.T) {
			got, err := r.CanWrite(context.Background(), user)
			if err != nil || got != want {
				t.Errorf("CanWrite(%s) = %v, %v; want %v", user, got, err, want)
			}
		})
	}
}

// Input that reaches API paths, such as a commenter's name from a webhook,
// is checked before any request: no route exists for these.
func TestReviewsRefuseHostileInput(t *testing.T) {
	srv, r := githubReviews(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() error
		bad  string
	}{
		{"user with a path", func() error { _, err := r.CanWrite(ctx, "../../../user"); return err }, "not a user name"},
		{"user with a query", func() error { _, err := r.CanWrite(ctx, "owner?x=1"); return err }, "not a user name"},
		{"empty user", func() error { _, err := r.CanWrite(ctx, ""); return err }, "not a user name"},
		{"short sha", func() error { return r.SetStatus(ctx, "0123abc", CommitStatus{State: StatusSuccess}) }, "full commit hash"},
		{"sha with a path", func() error { return r.SetStatus(ctx, headSHA+"/../x", CommitStatus{State: StatusSuccess}) }, "full commit hash"},
		{"unknown state", func() error { return r.SetStatus(ctx, headSHA, CommitStatus{State: "running"}) }, "want pending, success, failure or error"},
		{"javascript target", func() error {
			return r.SetStatus(ctx, headSHA, CommitStatus{State: StatusSuccess, TargetURL: "javascript:alert(1)"})
		}, "http or https URL"},
		{"marker that is no comment", func() error { _, err := r.UpsertComment(ctx, 7, "trueline:plan", "b"); return err }, "one HTML comment"},
		{"empty marker", func() error { _, err := r.UpsertComment(ctx, 7, "", "b"); return err }, "one HTML comment"},
		{"marker on two lines", func() error { _, err := r.UpsertComment(ctx, 7, "<!-- a\nb -->", "b"); return err }, "one HTML comment"},
		{"marker that closes early", func() error { _, err := r.UpsertComment(ctx, 7, "<!-- a --> <b> <!-- c -->", "b"); return err }, "one HTML comment"},
		{"number zero", func() error { _, err := r.PullRequest(ctx, 0); return err }, "positive number"},
		{"negative number", func() error { _, err := r.UpsertComment(ctx, -7, marker, "b"); return err }, "positive number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.seen = nil
			if err := tc.call(); err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("err = %v, want %q", err, tc.bad)
			}
			if len(srv.seen) > 0 {
				t.Errorf("requests were made: %v", srv.seen)
			}
		})
	}
}

// The token never reaches what trueline writes on the forge, and a body
// over the limit keeps its marker.
func TestReviewsBodiesFitAndHoldNoSecret(t *testing.T) {
	const token = "gl-SECRET-token-0123456789"
	var got []map[string]string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/user":
			io.WriteString(w, `{"id":5,"username":"trueline-bot"}`)
		case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/notes"):
			io.WriteString(w, `[]`)
		case r.Method == "GET":
			io.WriteString(w, `{"iid":7,"web_url":"https://gitlab.example/acme/infra/-/merge_requests/7"}`)
		default:
			var b map[string]string
			json.NewDecoder(r.Body).Decode(&b)
			mu.Lock()
			got = append(got, b)
			mu.Unlock()
			io.WriteString(w, `{"id":1}`)
		}
	}))
	defer srv.Close()
	f, err := New(Options{Kind: "gitlab", URL: "https://gitlab.example/acme/infra.git", APIURL: srv.URL + "/api", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	r := reviewsOf(t, f)
	// The marker last, past the limit: a plain cut would drop it.
	huge := strings.Repeat("ü", 1200000) + " token " + token + "\n" + marker
	if _, err := r.UpsertComment(context.Background(), 7, marker, huge); err != nil {
		t.Fatal(err)
	}
	if err := r.SetStatus(context.Background(), headSHA, CommitStatus{State: StatusFailure, Description: "auth failed with " + token}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("writes: %v", len(got))
	}
	body := got[0]["body"]
	if n := utf8.RuneCountInString(body); n > MaxBody("gitlab") {
		t.Errorf("a comment of %d characters, limit %d", n, MaxBody("gitlab"))
	}
	if !strings.HasPrefix(body, marker+"\n") || !strings.Contains(body, "cut at the forge's limit") {
		t.Errorf("the cut comment lost its marker: starts %q", body[:40])
	}
	for _, b := range got {
		for k, v := range b {
			if strings.Contains(v, token) {
				t.Errorf("%s names the token", k)
			}
		}
	}
	if got[1]["state"] != "failed" {
		t.Errorf("failure reached GitLab as %q, want failed", got[1]["state"])
	}
}

func glMRFull(iid int, sha string, source int) map[string]any {
	return map[string]any{"iid": iid, "web_url": fmt.Sprintf("https://gitlab.example/acme/infra/-/merge_requests/%d", iid),
		"title": fmt.Sprintf("change %d", iid), "author": map[string]any{"id": 11, "username": "alice"},
		"source_branch": fmt.Sprintf("feature-%d", iid), "target_branch": "main", "sha": sha,
		"source_project_id": source, "target_project_id": 1}
}

func glNote(id, author int, body string, system bool) map[string]any {
	return map[string]any{"id": id, "body": body, "system": system, "author": map[string]any{"id": author, "username": fmt.Sprintf("user%d", author)}}
}

// gitlabReviews is a GitLab API that checks each request as GitLab would.
func gitlabReviews(t *testing.T) (*reviewAPI, Reviews) {
	t.Helper()
	srv := &reviewAPI{apiServer: &apiServer{t: t, check: func(r *http.Request) string {
		if r.Header.Get("Private-Token") != "gl-token" {
			return "missing PRIVATE-TOKEN"
		}
		return ""
	}}}
	const project = "/api/v4/projects/acme%2Finfra"
	pendingSet := false
	srv.routes = map[string]func(http.ResponseWriter, *http.Request, map[string]any){
		"GET " + project + "/merge_requests": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			q := r.URL.Query()
			if q.Get("state") != "opened" || q.Get("per_page") != "100" {
				t.Errorf("list query = %v", q)
			}
			if q.Get("page") == "2" {
				w.Header().Set("X-Page", "2")
				json.NewEncoder(w).Encode([]any{glMRFull(9, forkSHA, 2)})
				return
			}
			w.Header().Set("X-Page", "1")
			w.Header().Set("X-Next-Page", "2")
			json.NewEncoder(w).Encode([]any{glMRFull(7, headSHA, 1)})
		},
		"GET " + project + "/merge_requests/7": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			json.NewEncoder(w).Encode(glMRFull(7, headSHA, 1))
		},
		"GET " + project + "/merge_requests/8": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			json.NewEncoder(w).Encode(glMRFull(8, headSHA, 1))
		},
		"GET /api/v4/user": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			json.NewEncoder(w).Encode(map[string]any{"id": 5, "username": "trueline-bot"})
		},
		"GET " + project + "/merge_requests/7/notes": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			q := r.URL.Query()
			if q.Get("sort") != "asc" || q.Get("order_by") != "created_at" {
				t.Errorf("notes query = %v", q)
			}
			if q.Get("page") == "2" {
				json.NewEncoder(w).Encode([]any{glNote(301, 5, marker+"\nold plan", false), glNote(302, 5, marker, false)})
				return
			}
			w.Header().Set("X-Next-Page", "2")
			// GitLab's own system note and mallory's quote hold the marker too.
			json.NewEncoder(w).Encode([]any{glNote(299, 5, "added 1 commit "+marker, true), glNote(300, 6, "> "+marker, false)})
		},
		"GET " + project + "/merge_requests/8/notes": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			json.NewEncoder(w).Encode([]any{glNote(400, 6, marker, false)})
		},
		"PUT " + project + "/merge_requests/7/notes/301": func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			wantBody(t, body, map[string]any{"body": marker + "\nnew plan"})
			json.NewEncoder(w).Encode(glNote(301, 5, body["body"].(string), false))
		},
		"POST " + project + "/merge_requests/8/notes": func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			wantBody(t, body, map[string]any{"body": marker + "\nnew plan"})
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(glNote(401, 5, body["body"].(string), false))
		},
		"POST " + project + "/statuses/" + headSHA: func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			srv.bodies = append(srv.bodies, body)
			if body["state"] == "pending" {
				// GitLab's state machine has no pending to pending.
				if pendingSet {
					w.WriteHeader(http.StatusBadRequest)
					io.WriteString(w, `{"message":"Cannot transition status via :enqueue from :pending (Reason(s): Status cannot transition via \"enqueue\")"}`)
					return
				}
				pendingSet = true
			} else {
				pendingSet = false
			}
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(map[string]any{"id": 1, "status": body["state"], "name": body["name"]})
		},
		"GET /api/v4/users": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			ids := map[string]int{"developer": 21, "maintainer": 22, "reporter": 23, "outsider": 24, "blocked": 25}
			u := r.URL.Query().Get("username")
			if id, ok := ids[u]; ok {
				json.NewEncoder(w).Encode([]any{map[string]any{"id": id, "username": u}})
				return
			}
			io.WriteString(w, `[]`)
		},
	}
	levels := map[int]map[string]any{21: {"access_level": 30, "state": "active"}, 22: {"access_level": 40, "state": "active"},
		23: {"access_level": 20, "state": "active"}, 25: {"access_level": 30, "state": "blocked"}}
	for id, m := range levels {
		srv.routes[fmt.Sprintf("GET %s/members/all/%d", project, id)] = func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			m["id"] = id
			json.NewEncoder(w).Encode(m)
		}
	}
	srv.routes["GET "+project+"/members/all/24"] = func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"404 Not found"}`)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	f, err := New(Options{Kind: "gitlab", URL: "https://gitlab.example/acme/infra.git", APIURL: ts.URL + "/api/v4", Token: "gl-token"})
	if err != nil {
		t.Fatal(err)
	}
	return srv, reviewsOf(t, f)
}

func TestReviewsGitLabMergeRequests(t *testing.T) {
	_, r := gitlabReviews(t)
	prs, err := r.OpenPRs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []OpenPR{
		{Number: 7, URL: "https://gitlab.example/acme/infra/-/merge_requests/7", Title: "change 7", Author: "alice", HeadBranch: "feature-7", HeadSHA: headSHA, BaseBranch: "main", Ref: "refs/merge-requests/7/head"},
		{Number: 9, URL: "https://gitlab.example/acme/infra/-/merge_requests/9", Title: "change 9", Author: "alice", HeadBranch: "feature-9", HeadSHA: forkSHA, BaseBranch: "main", Fork: true, Ref: "refs/merge-requests/9/head"},
	}
	if !reflect.DeepEqual(prs, want) {
		t.Errorf("OpenPRs (both pages, the fork flagged) =\n%+v\nwant\n%+v", prs, want)
	}
	pr, err := r.PullRequest(context.Background(), 7)
	if err != nil || !reflect.DeepEqual(*pr, want[0]) {
		t.Errorf("PullRequest(7) = %+v, %v", pr, err)
	}
}

func TestReviewsGitLabComments(t *testing.T) {
	srv, r := gitlabReviews(t)
	const project = "/api/v4/projects/acme%2Finfra"
	for _, tc := range []struct {
		name   string
		number int64
		url    string
		call   string
	}{
		{"edits its own first marked note", 7, "https://gitlab.example/acme/infra/-/merge_requests/7#note_301", "PUT " + project + "/merge_requests/7/notes/301"},
		{"another user's marked note is not edited", 8, "https://gitlab.example/acme/infra/-/merge_requests/8#note_401", "POST " + project + "/merge_requests/8/notes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.seen = nil
			u, err := r.UpsertComment(context.Background(), tc.number, marker, marker+"\nnew plan")
			if err != nil || u != tc.url {
				t.Fatalf("UpsertComment = %q, %v; want %q", u, err, tc.url)
			}
			if last := srv.seen[len(srv.seen)-1]; last != tc.call {
				t.Errorf("last request %s, want %s (all: %v)", last, tc.call, srv.seen)
			}
		})
	}
}

func TestReviewsGitLabStatus(t *testing.T) {
	srv, r := gitlabReviews(t)
	for _, tc := range []struct {
		name string
		st   CommitStatus
		want map[string]any
	}{
		{"pending", CommitStatus{State: StatusPending, Description: "planning", TargetURL: "https://trueline.example/runs/4"},
			map[string]any{"state": "pending", "name": "trueline/plan", "description": "planning", "target_url": "https://trueline.example/runs/4"}},
		{"pending again is no error", CommitStatus{State: StatusPending, Description: "planning"},
			map[string]any{"state": "pending", "name": "trueline/plan"}},
		{"success, cut to 140", CommitStatus{State: StatusSuccess, Description: longDesc},
			map[string]any{"state": "success", "name": "trueline/plan", "description": string([]rune(longDesc)[:139]) + "…"}},
		{"failure is failed", CommitStatus{State: StatusFailure, Description: "plan failed"},
			map[string]any{"state": "failed", "name": "trueline/plan"}},
		{"error is failed", CommitStatus{State: StatusError, Description: "no checkout"},
			map[string]any{"state": "failed", "name": "trueline/plan", "description": "no checkout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.bodies = nil
			if err := r.SetStatus(context.Background(), headSHA, tc.st); err != nil {
				t.Fatal(err)
			}
			if len(srv.bodies) != 1 {
				t.Fatalf("%d status requests", len(srv.bodies))
			}
			wantBody(t, srv.bodies[0], tc.want)
		})
	}
}

func TestReviewsGitLabCanWrite(t *testing.T) {
	_, r := gitlabReviews(t)
	for user, want := range map[string]bool{
		"developer": true, "maintainer": true, "reporter": false, "outsider": false, "blocked": false, "nobody": false,
	} {
		t.Run(user, func(t *testing.T) {
			got, err := r.CanWrite(context.Background(), user)
			if err != nil || got != want {
				t.Errorf("CanWrite(%s) = %v, %v; want %v", user, got, err, want)
			}
		})
	}
}

// An app's comments are its bot user's, "<slug>[bot]", known from GET /app
// with the app's JWT: an installation token cannot read /user.
func TestReviewsGitHubAppComment(t *testing.T) {
	right, _ := appKeys()
	app := &appServer{}
	var edited []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v3/app", func(w http.ResponseWriter, r *http.Request) {
		raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return app.pub, nil }, jwt.WithValidMethods([]string{"RS256"})); err != nil {
			t.Errorf("GET /app without the app's JWT: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":12,"slug":"trueline-app","name":"trueline app"}`)
	})
	mux.HandleFunc("GET /api/v3/repos/acme/infra/issues/7/comments", func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal([]any{ghComment(7, 70, "trueline-app", marker), ghComment(7, 71, "trueline-app[bot]", marker+"\nold")})
		app.api(w, r, string(b))
	})
	mux.HandleFunc("PATCH /api/v3/repos/acme/infra/issues/comments/{id}", func(w http.ResponseWriter, r *http.Request) {
		edited = append(edited, r.PathValue("id"))
		app.api(w, r, `{"id":71,"html_url":"https://github.example/acme/infra/pull/7#issuecomment-71"}`)
	})
	mux.Handle("/", app)
	startApp(t, app) // readies app; mux serves in front of it
	ts := httptest.NewServer(mux)
	defer ts.Close()
	api := ts.URL + "/api/v3/"
	f, err := New(Options{Kind: "github", URL: "https://github.example/acme/infra.git", APIURL: api, App: newTestApp(t, api, right, nil)})
	if err != nil {
		t.Fatal(err)
	}
	u, err := reviewsOf(t, f).UpsertComment(context.Background(), 7, marker, "new plan")
	if err != nil || !strings.HasSuffix(u, "#issuecomment-71") || !reflect.DeepEqual(edited, []string{"71"}) {
		t.Errorf("UpsertComment = %q, %v; edited %v, want comment 71 (the bot's, not the user trueline-app's 70)", u, err, edited)
	}
}
