package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/trueline/trueline/internal/gittest"
)

// tokenRemote serves a repository over smart HTTP (git http-backend,
// pushes allowed) to the latest token it issued only, as GitHub serves an
// installation's tokens until they expire.
type tokenRemote struct {
	mu     sync.Mutex
	issued int
	used   []string
}

func (s *tokenRemote) next() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issued++
	return fmt.Sprintf("ghs_token%d", s.issued)
}

func (s *tokenRemote) serve(t *testing.T, g *gittest.Repo) string {
	g.Git("config", "http.receivepack", "true")
	h, err := gittest.Backend(filepath.Dir(g.Dir))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, _ := r.BasicAuth()
		s.mu.Lock()
		ok := user == "x-access-token" && pw == fmt.Sprintf("ghs_token%d", s.issued)
		s.used = append(s.used, pw)
		s.mu.Unlock()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.StripPrefix("/git", h).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/git/" + filepath.Base(g.Dir)
}

// AuthFor is asked for fresh credentials by every clone, fetch and push;
// a static Auth goes stale once the token it holds is replaced.
func TestAuthPerOperation(t *testing.T) {
	ctx := context.Background()
	g := gittest.New(t)
	base := g.Commit("first", map[string]string{"stacks/web/main.tf": "# v1\n"})
	remote := &tokenRemote{}
	url := remote.serve(t, g)
	asked := 0
	r := &Repo{Name: "infra", URL: url, Branch: "main", AuthFor: func(context.Context) (transport.AuthMethod, error) {
		asked++
		return &githttp.BasicAuth{Username: "x-access-token", Password: remote.next()}, nil
	}}
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"clone", func() error { return Open(ctx, r, t.TempDir()) }},
		{"fetch", func() error {
			g.Commit("second", map[string]string{"stacks/web/main.tf": "# v2\n"})
			head, err := r.Fetch(ctx)
			if err == nil && head.String() != g.Git("rev-parse", "HEAD") {
				err = fmt.Errorf("fetched %s", head)
			}
			return err
		}},
		{"push", func() error {
			h, err := r.Head()
			if err != nil {
				return err
			}
			_, err = r.PushBranch(ctx, h, "trueline/stacks/web/default", map[string][]byte{"x": []byte("y")}, "Record drift")
			return err
		}},
	} {
		before := asked
		if err := step.do(); err != nil {
			t.Fatalf("%s with a fresh token: %v", step.name, err)
		}
		if asked != before+1 {
			t.Errorf("%s asked for credentials %d times, want once", step.name, asked-before)
		}
	}
	if got := g.Git("rev-parse", "trueline/stacks/web/default^"); got == base {
		t.Errorf("the branch was pushed on the first commit, not the fetched one")
	}

	// The same clone with the first, replaced token: refused.
	stale := &Repo{Name: "infra", URL: url, Branch: "main", Auth: &githttp.BasicAuth{Username: "x-access-token", Password: "ghs_token1"}}
	if err := Open(ctx, stale, t.TempDir()); err == nil {
		t.Error("a replaced token still clones: the test proves nothing")
	}
}

// A credential that cannot be had fails the operation, naming the
// repository, without reaching the remote.
func TestAuthForFails(t *testing.T) {
	ctx := context.Background()
	g := gittest.New(t)
	g.Commit("first", map[string]string{"a": "1\n"})
	remote := &tokenRemote{}
	url := remote.serve(t, g)
	refused := errors.New("github app 12: installation token for installation 34: 401")
	fail := false
	r := &Repo{Name: "infra", URL: url, Branch: "main", AuthFor: func(context.Context) (transport.AuthMethod, error) {
		if fail {
			return nil, refused
		}
		return &githttp.BasicAuth{Username: "x-access-token", Password: remote.next()}, nil
	}}
	if err := Open(ctx, r, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	fail = true
	calls := len(remote.used)
	head, _ := r.Head()
	for _, tc := range []struct {
		name, want string
		do         func() error
	}{
		{"fetch", "fetch infra: github app 12", func() error { _, err := r.Fetch(ctx); return err }},
		{"push", "infra: push trueline/x: github app 12", func() error {
			_, err := r.PushBranch(ctx, head, "trueline/x", map[string][]byte{"x": []byte("y")}, "m")
			return err
		}},
		{"clone", "clone infra: github app 12", func() error { return Open(ctx, &Repo{Name: "infra", URL: url, AuthFor: r.AuthFor}, t.TempDir()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, refused) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q wrapping the credential's error", err, tc.want)
			}
		})
	}
	if len(remote.used) != calls {
		t.Errorf("the remote was asked %d times without credentials", len(remote.used)-calls)
	}
}
