package source

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/trueline/trueline/internal/gittest"
	"github.com/trueline/trueline/stacks"
)

func TestFetchChangedMaterialize(t *testing.T) {
	ctx := context.Background()
	g := gittest.New(t)
	c1 := g.Commit("first", map[string]string{
		"stacks/web/stack.hcl": "stack {}\n",
		"stacks/web/main.tf":   "module \"s\" {\n  source = \"../../modules/svc\"\n}\n",
		"stacks/db/stack.hcl":  "stack {}\n",
		"stacks/db/main.tf":    "# db\n",
		"modules/svc/main.tf":  "# v1\n",
		"modules/svc/old.tf":   "# to be deleted\n",
		"README.md":            "hello\n",
	})
	for _, url := range []string{g.Dir, "file://" + g.Dir, g.Serve()} {
		t.Run(url[:4], func(t *testing.T) {
			r := &Repo{Name: "infra", URL: url, Branch: "main"}
			if err := Open(ctx, r, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			head, err := r.Fetch(ctx)
			if err != nil || head.String() != c1 {
				t.Fatalf("fetch: %v %s, want %s", err, head, c1)
			}
			fsys, err := r.FS(head)
			if err != nil {
				t.Fatal(err)
			}
			all, err := stacks.DiscoverFS(fsys)
			if err != nil || len(all) != 2 || all[0].Path != "stacks/db" || all[1].Err != nil {
				t.Fatalf("discover at %s: %+v %v", head, all, err)
			}
		})
	}

	r := &Repo{Name: "infra", URL: g.Dir, Branch: "main"}
	if err := Open(ctx, r, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	deps := []string{"stacks/web", "modules/svc"}
	if err := r.Materialize(ctx, plumbing.NewHash(c1), deps, dest); err != nil {
		t.Fatal(err)
	}
	// Files a run leaves behind (state, lock file) survive later commits.
	os.WriteFile(filepath.Join(dest, "stacks/web/terraform.tfstate"), []byte("{}"), 0o644)
	if _, err := os.Stat(filepath.Join(dest, "stacks/db")); !os.IsNotExist(err) {
		t.Error("materialised a directory that was not asked for")
	}

	c2 := g.Commit("second", map[string]string{"modules/svc/main.tf": "# v2\n", "modules/svc/old.tf": "", "README.md": "changed\n"})
	head, err := r.Fetch(ctx)
	if err != nil || head.String() != c2 {
		t.Fatalf("fetch: %v %s", err, head)
	}
	changed, err := r.Changed(ctx, plumbing.NewHash(c1), head)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"README.md", "modules/svc/main.tf", "modules/svc/old.tf"}; !reflect.DeepEqual(changed, want) {
		t.Errorf("changed = %v, want %v", changed, want)
	}
	fsys, _ := r.FS(head)
	all, _ := stacks.DiscoverFS(fsys)
	if got := stacks.Affected(fsys, all, changed); !reflect.DeepEqual(got, []string{"stacks/web"}) {
		t.Errorf("affected = %v", got)
	}
	if err := r.Materialize(ctx, head, deps, dest); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "modules/svc/main.tf")); string(b) != "# v2\n" {
		t.Errorf("module not updated: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dest, "modules/svc/old.tf")); !os.IsNotExist(err) {
		t.Error("a file Git deleted is still there")
	}
	if _, err := os.Stat(filepath.Join(dest, "stacks/web/terraform.tfstate")); err != nil {
		t.Error("materialise removed a file it did not write")
	}
	all2, _ := r.Changed(ctx, plumbing.ZeroHash, head)
	if len(all2) != 6 {
		t.Errorf("changed from nothing = %v", all2)
	}
}

func TestOpenFailsClearly(t *testing.T) {
	r := &Repo{Name: "x", URL: "https://user:s3cret@127.0.0.1:1/nothing.git", Branch: "main"}
	err := Open(context.Background(), r, t.TempDir())
	if err == nil {
		t.Fatal("clone of nothing succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "clone x") || strings.Contains(msg, "s3cret") {
		t.Errorf("error = %q: want the repository named and the password hidden", msg)
	}
}

func TestPushBranch(t *testing.T) {
	ctx := context.Background()
	g := gittest.New(t)
	c1 := g.Commit("first", map[string]string{"stacks/web/main.tf": "# v1\n", "README.md": "x\n"})
	r := &Repo{Name: "infra", URL: g.Dir, Branch: "main"}
	if err := Open(ctx, r, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	head, _ := r.Fetch(ctx)
	files := map[string][]byte{".trueline/drift/stacks/web/default.md": []byte("# drift\n"), "README.md": nil}
	commit, err := r.PushBranch(ctx, head, "trueline/stacks/web/default", files, "Record drift")
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Git("rev-parse", "trueline/stacks/web/default"); got != commit.String() {
		t.Errorf("remote branch at %s, want %s", got, commit)
	}
	if got := g.Git("rev-parse", "trueline/stacks/web/default^"); got != c1 {
		t.Errorf("branch parent = %s, want the base %s", got, c1)
	}
	if got := g.Git("show", "trueline/stacks/web/default:.trueline/drift/stacks/web/default.md"); got != "# drift" {
		t.Errorf("record = %q", got)
	}
	if out := g.Git("ls-tree", "-r", "--name-only", "trueline/stacks/web/default"); strings.Contains(out, "README.md") {
		t.Errorf("deleted file still on the branch:\n%s", out)
	}
	// Pushing again replaces the branch (force), based on the same commit.
	again, err := r.PushBranch(ctx, head, "trueline/stacks/web/default", map[string][]byte{"x": []byte("y")}, "Again")
	if err != nil || g.Git("rev-parse", "trueline/stacks/web/default") != again.String() {
		t.Fatalf("second push: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:s3cret@git.example/acme/infra.git": "https://***@git.example/acme/infra.git",
		"https://git.example/acme/infra.git":             "https://git.example/acme/infra.git",
		"https://git.example/a@b/infra.git":              "https://git.example/a@b/infra.git",
		"/srv/git/infra":                                 "/srv/git/infra",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
