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
	"testing"
)

// apiServer checks each request against what the forge's API documents and
// answers with canned JSON.
type apiServer struct {
	t      *testing.T
	routes map[string]func(w http.ResponseWriter, r *http.Request, body map[string]any)
	check  func(r *http.Request) string // "" when the request's headers are right
	seen   []string
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if msg := s.check(r); msg != "" {
		s.t.Errorf("%s %s: %s", r.Method, r.URL, msg)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	key := r.Method + " " + r.URL.EscapedPath()
	s.seen = append(s.seen, key)
	h, ok := s.routes[key]
	if !ok {
		s.t.Errorf("unexpected request %s", key)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	var body map[string]any
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		if len(b) > 0 {
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				s.t.Errorf("%s: Content-Type %q, want JSON", key, ct)
			}
			if err := json.Unmarshal(b, &body); err != nil {
				s.t.Errorf("%s: body is not JSON: %s", key, b)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	h(w, r, body)
}

func wantBody(t *testing.T, got map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("body[%s] = %v, want %v (body %v)", k, got[k], v, got)
		}
	}
}

func ghPull(n int, ref, repo string) map[string]any {
	return map[string]any{"number": n, "html_url": fmt.Sprintf("https://github.example/acme/infra/pull/%d", n), "title": "t", "body": "b",
		"head": map[string]any{"ref": ref, "repo": map[string]any{"full_name": repo}}, "base": map[string]any{"ref": "main"}}
}

func TestGitHub(t *testing.T) {
	const branch = "trueline/stacks/web/default"
	srv := &apiServer{t: t, check: func(r *http.Request) string {
		if r.Header.Get("Authorization") != "Bearer gh-token" {
			return "missing bearer token"
		}
		if !strings.Contains(r.Header.Get("Accept"), "application/vnd.github") {
			return "Accept is not application/vnd.github..."
		}
		return ""
	}}
	var base string
	srv.routes = map[string]func(http.ResponseWriter, *http.Request, map[string]any){
		"GET /api/v3/repos/acme/infra/pulls": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			q := r.URL.Query()
			if q.Get("state") != "open" || q.Get("per_page") != "100" {
				t.Errorf("list query = %v", q)
			}
			switch q.Get("page") {
			case "", "1":
				w.Header().Set("Link", fmt.Sprintf(`<%s/api/v3/repos/acme/infra/pulls?state=open&per_page=100&page=2>; rel="next"`, base))
				json.NewEncoder(w).Encode([]any{ghPull(1, "feature", "acme/infra"), ghPull(2, branch, "fork/infra")})
			case "2":
				json.NewEncoder(w).Encode([]any{ghPull(7, branch, "acme/infra")})
			}
		},
		"POST /api/v3/repos/acme/infra/pulls": func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			wantBody(t, body, map[string]any{"title": "Drift in stacks/web", "head": branch, "base": "main", "body": "the body"})
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(ghPull(8, branch, "acme/infra"))
		},
		"PATCH /api/v3/repos/acme/infra/pulls/7": func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			if body["state"] != nil {
				wantBody(t, body, map[string]any{"state": "closed"})
			} else {
				wantBody(t, body, map[string]any{"title": "new title", "body": "new body"})
			}
			json.NewEncoder(w).Encode(ghPull(7, branch, "acme/infra"))
		},
		"POST /api/v3/repos/acme/infra/issues/7/comments": func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			wantBody(t, body, map[string]any{"body": "drift cleared"})
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(map[string]any{"id": 1})
		},
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	base = ts.URL
	f, err := New(Options{Kind: "github", URL: "https://github.example/acme/infra.git", APIURL: ts.URL + "/api/v3/", Token: "gh-token"})
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, f, branch)
	if got := strings.Join(srv.seen, "\n"); !strings.Contains(got, "PATCH /api/v3/repos/acme/infra/pulls/7") {
		t.Errorf("requests:\n%s", got)
	}
}

func glMR(iid int, branch string, sameProject bool) map[string]any {
	target := 1
	if !sameProject {
		target = 2
	}
	return map[string]any{"iid": iid, "web_url": fmt.Sprintf("https://gitlab.example/acme/infra/-/merge_requests/%d", iid),
		"source_branch": branch, "target_branch": "main", "title": "t", "description": "b", "source_project_id": 1, "target_project_id": target}
}

func TestGitLab(t *testing.T) {
	const branch = "trueline/stacks/web/default"
	srv := &apiServer{t: t, check: func(r *http.Request) string {
		if r.Header.Get("Private-Token") != "gl-token" {
			return "missing PRIVATE-TOKEN"
		}
		return ""
	}}
	const project = "/api/v4/projects/acme%2Finfra/merge_requests"
	srv.routes = map[string]func(http.ResponseWriter, *http.Request, map[string]any){
		"GET " + project: func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
			q := r.URL.Query()
			if q.Get("state") != "opened" || q.Get("source_branch") != branch {
				t.Errorf("list query = %v", q)
			}
			if q.Get("page") == "1" {
				w.Header().Set("X-Next-Page", "2")
				w.Header().Set("X-Page", "1")
				json.NewEncoder(w).Encode([]any{glMR(3, branch, false)})
				return
			}
			w.Header().Set("X-Page", "2")
			json.NewEncoder(w).Encode([]any{glMR(7, branch, true)})
		},
		"POST " + project: func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			wantBody(t, body, map[string]any{"title": "Drift in stacks/web", "source_branch": branch, "target_branch": "main", "description": "the body"})
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(glMR(8, branch, true))
		},
		"PUT " + project + "/7": func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			if body["state_event"] != nil {
				wantBody(t, body, map[string]any{"state_event": "close"})
			} else {
				wantBody(t, body, map[string]any{"title": "new title", "description": "new body"})
			}
			json.NewEncoder(w).Encode(glMR(7, branch, true))
		},
		"POST " + project + "/7/notes": func(w http.ResponseWriter, r *http.Request, body map[string]any) {
			wantBody(t, body, map[string]any{"body": "drift cleared"})
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(map[string]any{"id": 1})
		},
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	f, err := New(Options{Kind: "gitlab", URL: "https://gitlab.example/acme/infra.git", APIURL: ts.URL + "/api/v4", Token: "gl-token"})
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, f, branch)
}

// exercise runs the driver through a pull request's life.
func exercise(t *testing.T, f Forge, branch string) {
	t.Helper()
	ctx := context.Background()
	pr, err := f.FindOpen(ctx, branch)
	if err != nil {
		t.Fatal(err)
	}
	if pr == nil || pr.Number != 7 || pr.Head != branch || pr.Base != "main" {
		t.Fatalf("FindOpen = %+v, want #7 from the second page (not the fork's)", pr)
	}
	created, err := f.Create(ctx, NewPR{Title: "Drift in stacks/web", Body: "the body", Head: branch, Base: "main"})
	if err != nil || created.Number != 8 || created.URL == "" {
		t.Fatalf("Create = %+v, %v", created, err)
	}
	if err := f.Update(ctx, 7, "new title", "new body"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx, 7, "drift cleared"); err != nil {
		t.Fatal(err)
	}
}

func TestSplitURL(t *testing.T) {
	for _, tc := range []struct{ url, host, owner, name string }{
		{"https://github.com/acme/infra.git", "https://github.com", "acme", "infra"},
		{"https://gitlab.example/group/sub/infra", "https://gitlab.example", "group/sub", "infra"},
		{"http://127.0.0.1:3000/alice/stacks.git", "http://127.0.0.1:3000", "alice", "stacks"},
		{"git@github.com:acme/infra.git", "https://github.com", "acme", "infra"},
		{"gitlab.example:group/sub/infra", "https://gitlab.example", "group/sub", "infra"},
		{"ssh://git@gitlab.example:2222/group/infra.git", "https://gitlab.example", "group", "infra"},
	} {
		h, o, n, err := splitURL(tc.url)
		if err != nil || h != tc.host || o != tc.owner || n != tc.name {
			t.Errorf("splitURL(%s) = %s %s %s %v", tc.url, h, o, n, err)
		}
	}
	for _, local := range []string{"/srv/git/infra", "./infra", "git@github.com:infra"} {
		if _, _, _, err := splitURL(local); err == nil {
			t.Errorf("splitURL(%s): no forge repository there, yet no error", local)
		}
	}
	if _, err := New(Options{Kind: "none", URL: "https://x/a/b"}); err == nil {
		t.Error("forge none has no pull requests")
	}
}
