package forge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/trueline/trueline/internal/giteatest"
)

func TestAccessGitHub(t *testing.T) {
	tests := []struct {
		name, scopes string
		private      bool
		push         bool
		want, bad    string
	}{
		{name: "classic token with repo", scopes: "repo, workflow", private: true, push: true, want: "can push to acme/infra"},
		{name: "fine-grained token", scopes: "", private: true, push: true, want: "can push to acme/infra"},
		{name: "public_repo on a private repository", scopes: "public_repo", private: true, push: true, bad: "give it the repo scope"},
		{name: "read only", scopes: "", private: true, push: false, bad: "may read acme/infra but not push"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &apiServer{t: t, check: func(r *http.Request) string {
				if r.Header.Get("Authorization") != "Bearer gh-token" {
					return "missing bearer token"
				}
				return ""
			}}
			srv.routes = map[string]func(http.ResponseWriter, *http.Request, map[string]any){
				"GET /api/v3/repos/acme/infra": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
					if tc.scopes != "" {
						w.Header().Set("X-OAuth-Scopes", tc.scopes)
					}
					json.NewEncoder(w).Encode(map[string]any{"full_name": "acme/infra", "private": tc.private,
						"permissions": map[string]bool{"pull": true, "push": tc.push}})
				},
			}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			f, err := New(Options{Kind: "github", URL: "git@github.example:acme/infra.git", APIURL: ts.URL + "/api/v3/", Token: "gh-token"})
			if err != nil {
				t.Fatal(err)
			}
			checkAccess(t, f, tc.want, tc.bad, "gh-token")
		})
	}
}

func TestAccessGitLab(t *testing.T) {
	tests := []struct {
		name      string
		project   int
		group     int
		want, bad string
	}{
		{name: "developer", project: 30, want: "access level 30 on acme/infra"},
		{name: "maintainer through the group", project: 0, group: 40, want: "access level 40"},
		{name: "reporter", project: 20, bad: "below Developer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &apiServer{t: t, check: func(r *http.Request) string {
				if r.Header.Get("PRIVATE-TOKEN") != "gl-token" {
					return "missing PRIVATE-TOKEN"
				}
				return ""
			}}
			srv.routes = map[string]func(http.ResponseWriter, *http.Request, map[string]any){
				"GET /api/v4/projects/acme%2Finfra": func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
					perms := map[string]any{"project_access": nil, "group_access": nil}
					if tc.project > 0 {
						perms["project_access"] = map[string]int{"access_level": tc.project}
					}
					if tc.group > 0 {
						perms["group_access"] = map[string]int{"access_level": tc.group}
					}
					json.NewEncoder(w).Encode(map[string]any{"id": 1, "path_with_namespace": "acme/infra", "permissions": perms})
				},
			}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			f, err := New(Options{Kind: "gitlab", URL: "https://gitlab.example/acme/infra.git", APIURL: ts.URL + "/api/v4", Token: "gl-token"})
			if err != nil {
				t.Fatal(err)
			}
			checkAccess(t, f, tc.want, tc.bad, "gl-token")
		})
	}
}

// TestAccessGitea asks a real Gitea: its owner may push, another user may
// only read the public repository, and a wrong token reads nothing.
func TestAccessGitea(t *testing.T) {
	gt := giteatest.Start(t)
	gt.CreateRepo("infra")
	reader := gt.NewUser("reader")
	url := gt.URL + "/trueline/infra.git"
	for _, tc := range []struct{ name, token, want, bad string }{
		{name: "owner", token: gt.Token, want: "can push to trueline/infra"},
		{name: "another user", token: reader, bad: "may read trueline/infra but not push; fix: make its user a collaborator"},
		{name: "wrong token", token: "0000000000000000000000000000000000000000", bad: "fix: the token needs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(Options{Kind: "gitea", URL: url, Token: tc.token})
			if err != nil {
				t.Fatal(err)
			}
			checkAccess(t, f, tc.want, tc.bad, tc.token)
		})
	}
}

func checkAccess(t *testing.T, f Forge, want, bad, token string) {
	t.Helper()
	got, err := Access(context.Background(), f)
	if bad != "" {
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("Access = %q, %v; want an error with %q", got, err, bad)
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("the error names the token: %v", err)
		}
		return
	}
	if err != nil || !strings.Contains(got, want) {
		t.Fatalf("Access = %q, %v; want %q", got, err, want)
	}
}
