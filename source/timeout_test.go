package source

import (
	"context"
	"errors"
	"testing"
	"time"

	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/trueline/trueline/internal/gittest"
	"github.com/trueline/trueline/internal/hangtest"
)

// A Git remote that never answers costs one timeout per clone, fetch or
// push, not forever.
func TestGitCallsHaveDeadlines(t *testing.T) {
	srv := hangtest.Start(t)
	hanging := srv.URL + "/acme/infra.git"

	ctx := context.Background()
	g := gittest.New(t)
	base := g.Commit("first", map[string]string{"stacks/web/main.tf": "# web\n"})
	const bound = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		do   func(t *testing.T) error
	}{
		{"clone", func(t *testing.T) error {
			return Open(ctx, &Repo{Name: "infra", URL: hanging, Timeout: bound}, t.TempDir())
		}},
		{"fetch", func(t *testing.T) error {
			r := &Repo{Name: "infra", URL: g.Dir, Timeout: bound}
			if err := Open(ctx, r, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			// The remote moves to the server that never answers.
			if err := r.git.DeleteRemote("origin"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.git.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{hanging}}); err != nil {
				t.Fatal(err)
			}
			_, err := r.Fetch(ctx)
			return err
		}},
		{"push", func(t *testing.T) error {
			r := &Repo{Name: "infra", URL: g.Dir, Timeout: bound}
			if err := Open(ctx, r, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			head, err := r.Fetch(ctx)
			if err != nil || head.String() != base {
				t.Fatalf("fetch: %v %s", err, head)
			}
			r.URL = hanging
			_, err = r.PushBranch(ctx, head, "trueline/stacks/web/default", map[string][]byte{"stacks/web/main.tf": []byte("# fixed\n")}, "fix")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.do(t)
			took := time.Since(start)
			if err == nil {
				t.Fatal("succeeded against a remote that never answers")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want a deadline", err)
			}
			if took > 10*bound {
				t.Errorf("took %v with a %v timeout: %v", took, bound, err)
			}
		})
	}
}
