// Package gittest makes real Git repositories for tests, with the git
// command line, and can serve them over HTTP with git http-backend.
package gittest

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo is a working repository whose commits tests make.
type Repo struct {
	t   testing.TB
	Dir string
}

// New makes a repository with branch main.
func New(t testing.TB) *Repo {
	t.Helper()
	r := &Repo{t: t, Dir: t.TempDir()}
	r.Git("init", "-q", "-b", "main")
	r.Git("config", "user.name", "test")
	r.Git("config", "user.email", "test@example.invalid")
	return r
}

// Git runs a git command in the repository and returns its output.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Commit writes files (empty content deletes the file) and commits them,
// returning the commit hash.
func (r *Repo) Commit(msg string, files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Dir, name)
		if content == "" {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.Git("add", "-A")
	r.Git("commit", "-q", "--allow-empty", "-m", msg)
	return r.Git("rev-parse", "HEAD")
}

// Serve serves the repository read-only over smart HTTP (git http-backend
// through net/http/cgi) on loopback and returns its clone URL.
func (r *Repo) Serve() string {
	r.t.Helper()
	h, err := Backend(filepath.Dir(r.Dir))
	if err != nil {
		r.t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/git", h))
	r.t.Cleanup(srv.Close)
	return srv.URL + "/git/" + filepath.Base(r.Dir)
}

// Backend is git http-backend, through net/http/cgi, serving the
// repositories under root over smart HTTP: /<name>/info/refs and so on.
// Pushes go through where a repository's http.receivepack allows them.
func Backend(root string) (http.Handler, error) {
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("git --exec-path: %w", err)
	}
	return &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}, nil
}
