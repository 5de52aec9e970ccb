package source

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/trueline/trueline/internal/gittest"
	"github.com/trueline/trueline/stacks"
)

// link commits symbolic links (name -> target) on top of what is there.
func link(t *testing.T, g *gittest.Repo, msg string, links map[string]string) string {
	t.Helper()
	for name, target := range links {
		p := filepath.Join(g.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.RemoveAll(p)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	g.Git("add", "-A")
	g.Git("commit", "-q", "-m", msg)
	return g.Git("rev-parse", "HEAD")
}

func open(t *testing.T, url string) *Repo {
	t.Helper()
	r := &Repo{Name: "infra", URL: url, Branch: "main"}
	if err := Open(context.Background(), r, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTreeFSLinks(t *testing.T) {
	g := gittest.New(t)
	g.Commit("files", map[string]string{"shared/x.json": "{}\n", "stacks/web/main.tf": "# web\n"})
	head := link(t, g, "links", map[string]string{
		"stacks/web/common": "../../shared", "stacks/web/x.json": "common/x.json", "stacks/web/root": "../..",
		"stacks/web/escape": "../../../etc", "stacks/web/abs": "/etc/hostname", "loop/a": "b", "loop/b": "a",
	})
	r := open(t, g.Dir)
	fsys, err := r.FS(plumbing.NewHash(head))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, content, link string // content through Open, or "error"; link target through ReadLink
		mode                fs.FileMode
	}{
		{name: "shared/x.json", content: "{}\n"},
		{name: "stacks/web/common", link: "../../shared", mode: fs.ModeSymlink}, // a directory: not read
		{name: "stacks/web/common/x.json", content: "{}\n"},
		{name: "stacks/web/x.json", content: "{}\n", link: "common/x.json", mode: fs.ModeSymlink},
		{name: "stacks/web/root/shared/x.json", content: "{}\n"},
		{name: "stacks/web/escape", content: "error", link: "../../../etc", mode: fs.ModeSymlink},
		{name: "stacks/web/abs", content: "error", link: "/etc/hostname", mode: fs.ModeSymlink},
		{name: "stacks/web/escape/passwd", content: "error"},
		{name: "loop/a", content: "error", link: "b", mode: fs.ModeSymlink},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := fs.ReadFile(fsys, tc.name)
			switch {
			case tc.content == "":
			case tc.content == "error" && err == nil:
				t.Errorf("read %q through a link that should not be followed", b)
			case tc.content != "error" && (err != nil || string(b) != tc.content):
				t.Errorf("read = %q, %v; want %q", b, err, tc.content)
			}
			if tc.mode == 0 {
				return
			}
			fi, err := fs.Lstat(fsys, tc.name)
			if err != nil || fi.Mode().Type() != tc.mode {
				t.Errorf("lstat = %v, %v", fi, err)
			}
			if target, err := fs.ReadLink(fsys, tc.name); err != nil || target != tc.link {
				t.Errorf("readlink = %q, %v; want %q", target, err, tc.link)
			}
		})
	}
	// Directory listings name links as links, as os.DirFS does.
	if err := fstest.TestFS(mustSub(t, fsys, "shared"), "x.json"); err != nil {
		t.Error(err)
	}
	entries, err := fs.ReadDir(fsys, "stacks/web")
	if err != nil {
		t.Fatal(err)
	}
	var links []string
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink != 0 {
			links = append(links, e.Name())
		}
	}
	if want := []string{"abs", "common", "escape", "root", "x.json"}; !reflect.DeepEqual(links, want) {
		t.Errorf("links listed = %v, want %v", links, want)
	}
}

func mustSub(t *testing.T, fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// TestMaterializeLinks: links inside the repository are written as links
// and their targets come along through Dependencies; links leaving it are
// not written; a stale link in dest is never followed out of it.
func TestMaterializeLinks(t *testing.T) {
	ctx := context.Background()
	g := gittest.New(t)
	g.Commit("files", map[string]string{
		"shared/x.json": "{\"size\": 3}\n", "tpl/x.tpl": "hello\n", "other/y.json": "{}\n",
		"stacks/web/stack.hcl": "stack {}\n",
		"stacks/web/main.tf":   "locals {\n  x = file(\"${path.module}/common/x.json\")\n}\n",
	})
	c1 := link(t, g, "links", map[string]string{
		"stacks/web/common": "../../shared", "stacks/web/motd.tpl": "../../tpl/x.tpl",
		"stacks/web/escape": "../../../etc", "stacks/web/abs": "/etc/hostname",
	})
	r := open(t, g.Dir)
	deps := func(commit string) []string {
		if _, err := r.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
		fsys, err := r.FS(plumbing.NewHash(commit))
		if err != nil {
			t.Fatal(err)
		}
		return stacks.Dependencies(fsys, stacks.LoadFS(fsys, "stacks/web"))
	}
	if got, want := deps(c1), []string{"shared", "stacks/web", "tpl/x.tpl"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("dependencies = %q, want %q", got, want)
	}
	dest := t.TempDir()
	if err := r.Materialize(ctx, plumbing.NewHash(c1), deps(c1), dest); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(dest, "stacks/web/common")); err != nil || target != "../../shared" {
		t.Errorf("common -> %q, %v", target, err)
	}
	for name, want := range map[string]string{"stacks/web/common/x.json": "{\"size\": 3}\n", "stacks/web/motd.tpl": "hello\n"} {
		if b, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v", name, b, err)
		}
	}
	for _, name := range []string{"stacks/web/escape", "stacks/web/abs", "other"} {
		if _, err := os.Lstat(filepath.Join(dest, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was written: %v", name, err)
		}
	}

	// The link becomes a directory: the link goes, the directory comes.
	os.Remove(filepath.Join(g.Dir, "stacks/web/common"))
	c2 := g.Commit("a directory now", map[string]string{"stacks/web/common/x.json": "{\"size\": 4}\n"})
	if err := r.Materialize(ctx, plumbing.NewHash(c2), deps(c2), dest); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(dest, "stacks/web/common")); err != nil || !fi.IsDir() {
		t.Errorf("common = %v, %v; want a directory", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "stacks/web/common/x.json")); err != nil || string(b) != "{\"size\": 4}\n" {
		t.Errorf("common/x.json = %q, %v", b, err)
	}
	// The link's old target is no longer needed; it was removed, not
	// written through the old link.
	if _, err := os.Stat(filepath.Join(dest, "shared/x.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("shared/x.json is still there: %v", err)
	}

	// A link in dest to outside it is not followed by a write.
	outside := t.TempDir()
	fresh := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(fresh, "stacks")); err != nil {
		t.Fatal(err)
	}
	err := r.Materialize(ctx, plumbing.NewHash(c2), deps(c2), fresh)
	if err == nil {
		t.Error("materialised through a link out of dest")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside dest: %v", entries)
	}
}

// TestMaterializeSubmodules: a submodule is fetched at the commit the tree
// records, over the repository's own transport and relative URL, and
// written whole; a later commit moves it.
func TestMaterializeSubmodules(t *testing.T) {
	ctx := context.Background()
	lib := gittest.New(t)
	l1 := lib.Commit("v1", map[string]string{"modules/svc/main.tf": "# v1\n", "README.md": "lib\n"})
	g := gittest.New(t)
	g.Commit("stacks", map[string]string{"stacks/web/stack.hcl": "stack {}\n",
		"stacks/web/main.tf": "module \"svc\" {\n  source = \"../../vendor/lib/modules/svc\"\n}\n"})
	g.Git("-c", "protocol.file.allow=always", "submodule", "add", "-q", "../"+filepath.Base(lib.Dir), "vendor/lib")
	c1 := g.Commit("vendor lib", nil)
	l2 := lib.Commit("v2", map[string]string{"modules/svc/main.tf": "# v2\n"})

	for _, url := range []string{g.Dir, g.Serve()} {
		t.Run(url[:4], func(t *testing.T) {
			r := open(t, url)
			fsys, _ := r.FS(plumbing.NewHash(c1))
			deps := stacks.Dependencies(fsys, stacks.LoadFS(fsys, "stacks/web"))
			if want := []string{"stacks/web", "vendor/lib/modules/svc"}; !reflect.DeepEqual(deps, want) {
				t.Fatalf("dependencies = %q, want %q", deps, want)
			}
			dest := t.TempDir()
			if err := r.Materialize(ctx, plumbing.NewHash(c1), deps, dest); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(dest, "vendor/lib/modules/svc/main.tf")); err != nil || string(b) != "# v1\n" {
				t.Errorf("submodule file = %q, %v; want v1 (%s), not the branch's v2 (%s)", b, err, l1[:8], l2[:8])
			}
			if _, err := os.Stat(filepath.Join(dest, "vendor/lib/README.md")); err != nil {
				t.Errorf("the submodule is not written whole: %v", err)
			}
		})
	}

	// The superproject moves the submodule to v2.
	g.Git("-C", "vendor/lib", "pull", "-q", "origin", "main")
	c2 := g.Commit("lib v2", nil)
	r := open(t, g.Dir)
	changed, err := r.Changed(ctx, plumbing.NewHash(c1), plumbing.NewHash(c2))
	if err != nil || !reflect.DeepEqual(changed, []string{"vendor/lib"}) {
		t.Fatalf("changed = %v, %v", changed, err)
	}
	fsys, _ := r.FS(plumbing.NewHash(c2))
	all, _ := stacks.DiscoverFS(fsys)
	if got := stacks.Affected(fsys, all, changed); !reflect.DeepEqual(got, []string{"stacks/web"}) {
		t.Errorf("affected = %v", got)
	}
	dest := t.TempDir()
	if err := r.Materialize(ctx, plumbing.NewHash(c2), stacks.Dependencies(fsys, all[0]), dest); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "vendor/lib/modules/svc/main.tf")); string(b) != "# v2\n" {
		t.Errorf("submodule file = %q, want v2", b)
	}
}

// TestSubmoduleErrors: a submodule trueline cannot fetch fails the
// checkout, naming the submodule and what to do.
func TestSubmoduleErrors(t *testing.T) {
	ctx := context.Background()
	lib := gittest.New(t)
	lib.Commit("v1", map[string]string{"main.tf": "# v1\n"})
	g := gittest.New(t)
	g.Git("-c", "protocol.file.allow=always", "submodule", "add", "-q", lib.Dir, "vendor/lib")
	g.Commit("vendor lib", nil)
	// A commit of the submodule that no branch holds.
	g.Git("-C", "vendor/lib", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "--allow-empty", "-m", "local only")
	local := g.Commit("point at a commit only this clone has", nil)

	tests := []struct {
		name, url, commit, want string
	}{
		{"unpushed commit", g.Dir, local, "is on no branch or tag of " + lib.Dir + ", and the server does not serve it by hash: push it to a branch"},
		// Over HTTP, .gitmodules naming a path on the server is refused.
		{"local path under a remote", g.Serve(), local, `submodule vendor/lib: URL "` + lib.Dir + `" is a path on the server, and the repository is not`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := open(t, tc.url)
			err := r.Materialize(ctx, plumbing.NewHash(tc.commit), []string{"vendor/lib"}, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestSubmoduleURL(t *testing.T) {
	tests := []struct{ base, u, want, err string }{
		{"https://git.example/org/infra.git", "../lib.git", "https://git.example/org/lib.git", ""},
		{"https://git.example/org/infra.git", "./lib.git", "https://git.example/org/infra.git/lib.git", ""},
		{"git@git.example:org/infra.git", "../lib.git", "git@git.example:org/lib.git", ""},
		{"/srv/git/infra", "../lib", "/srv/git/lib", ""},
		{"/srv/git/infra", "/srv/git/other", "/srv/git/other", ""},
		{"https://git.example/org/infra.git", "https://other.example/lib.git", "https://other.example/lib.git", ""},
		{"https://git.example/org/infra.git", "/etc", "", "is a path on the server"},
		{"https://git.example/org/infra.git", "file:///var/lib/trueline/git/x.git", "", "is a path on the server"},
	}
	for _, tc := range tests {
		got, err := submoduleURL(tc.base, tc.u)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("submoduleURL(%q, %q) = %q, %v; want error %q", tc.base, tc.u, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("submoduleURL(%q, %q) = %q, %v; want %q", tc.base, tc.u, got, err, tc.want)
		}
	}
}

// A checkout directory that does not exist yet is made, 0700: the first run
// of a workspace, or a benchmark's fresh directory.
func TestMaterializeMakesTheDirectory(t *testing.T) {
	ctx := context.Background()
	g := gittest.New(t)
	c := g.Commit("files", map[string]string{"stacks/web/main.tf": "# web\n"})
	r := open(t, g.Dir)
	if _, err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "new", "ws")
	if err := r.Materialize(ctx, plumbing.NewHash(c), []string{"stacks/web"}, dest); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "stacks", "web", "main.tf")); err != nil || string(b) != "# web\n" {
		t.Errorf("main.tf = %q, %v", b, err)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dest: %v %v", fi.Mode(), err)
	}
}
