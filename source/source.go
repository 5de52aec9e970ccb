// Package source owns the Git side of trueline: one bare clone per
// repository, fetched incrementally (go-git); a commit's tree read as an
// fs.FS without a checkout; the paths a commit range changed; and the
// materialisation of just the files a run needs at one commit.
package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/memfs"
	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// DefaultTimeout bounds a clone, fetch or push when Repo.Timeout is zero.
const DefaultTimeout = 5 * time.Minute

// Repo is one Git repository of stacks.
type Repo struct {
	Name   string
	URL    string
	Branch string
	Auth   transport.AuthMethod // nil for local paths, file:// and public remotes
	// AuthFor, when set, is asked for the credentials of each clone, fetch
	// and push instead of Auth: a GitHub App's installation tokens expire
	// within the hour.
	AuthFor func(ctx context.Context) (transport.AuthMethod, error)
	// Timeout bounds each clone, fetch and push: a remote that stops
	// answering must not hold the repository's lock forever. Zero means
	// DefaultTimeout.
	Timeout time.Duration

	dir string
	mu  sync.Mutex
	git *git.Repository
}

// Open clones the repository (bare, one branch, no tags) into cacheDir, or
// opens the clone made earlier.
func Open(ctx context.Context, r *Repo, cacheDir string) error {
	if r.Branch == "" {
		r.Branch = "main"
	}
	r.dir = filepath.Join(cacheDir, safe(r.Name)+".git")
	r.mu.Lock()
	defer r.mu.Unlock()
	if g, err := git.PlainOpen(r.dir); err == nil {
		r.git = g
		return nil
	}
	// A half-made clone from a crash.
	tmp := r.dir + ".tmp"
	for _, d := range []string{r.dir, tmp} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("clone %s: %w", r.Name, err)
		}
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	auth, err := r.auth(ctx)
	if err != nil {
		return fmt.Errorf("clone %s: %w", r.Name, err)
	}
	g, err := git.PlainCloneContext(ctx, tmp, true, &git.CloneOptions{
		URL:           r.URL,
		Auth:          auth,
		ReferenceName: plumbing.NewBranchReferenceName(r.Branch),
		SingleBranch:  true,
		Tags:          git.NoTags,
	})
	if err != nil {
		_ = os.RemoveAll(tmp) // the clone's error is the one to report; the next Open retries the removal
		return fmt.Errorf("clone %s (%s, branch %s): %w", r.Name, RedactURL(r.URL), r.Branch, err)
	}
	_ = g
	if err := os.Rename(tmp, r.dir); err != nil {
		return err
	}
	r.git, err = git.PlainOpen(r.dir)
	return err
}

// Fetch brings the branch up to date and returns its head.
func (r *Repo) Fetch(ctx context.Context) (plumbing.Hash, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref := plumbing.NewBranchReferenceName(r.Branch)
	ctx, cancel := r.bound(ctx)
	defer cancel()
	auth, err := r.auth(ctx)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetch %s: %w", r.Name, err)
	}
	err = r.git.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []gitconfig.RefSpec{gitconfig.RefSpec(fmt.Sprintf("+%s:%s", ref, ref))},
		Auth:       auth,
		Tags:       git.NoTags,
		Force:      true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return plumbing.ZeroHash, fmt.Errorf("fetch %s: %w", r.Name, err)
	}
	return r.headLocked()
}

// auth is the credentials for one clone, fetch or push.
func (r *Repo) auth(ctx context.Context) (transport.AuthMethod, error) {
	if r.AuthFor != nil {
		return r.AuthFor(ctx)
	}
	return r.Auth, nil
}

// bound gives one clone, fetch or push its deadline.
func (r *Repo) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return context.WithTimeout(ctx, timeout)
}

// Head returns the branch head as last fetched.
func (r *Repo) Head() (plumbing.Hash, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.headLocked()
}

func (r *Repo) headLocked() (plumbing.Hash, error) {
	ref, err := r.git.Reference(plumbing.NewBranchReferenceName(r.Branch), true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%s: branch %s: %w", r.Name, r.Branch, err)
	}
	return ref.Hash(), nil
}

func (r *Repo) tree(commit plumbing.Hash) (*object.Commit, *object.Tree, error) {
	c, err := r.git.CommitObject(commit)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: commit %s: %w", r.Name, commit, err)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: tree of %s: %w", r.Name, commit, err)
	}
	return c, t, nil
}

// Contains reports whether commit's history includes ancestor (a commit is
// in its own history). An ancestor this clone does not have is not in it.
func (r *Repo) Contains(commit, ancestor plumbing.Hash) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.git.CommitObject(commit)
	if err != nil {
		return false, fmt.Errorf("%s: commit %s: %w", r.Name, commit, err)
	}
	a, err := r.git.CommitObject(ancestor)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: commit %s: %w", r.Name, ancestor, err)
	}
	if a.Hash == c.Hash {
		return true, nil
	}
	return a.IsAncestor(c)
}

// FS returns the tree of a commit as a read-only file system.
func (r *Repo) FS(commit plumbing.Hash) (fs.FS, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, t, err := r.tree(commit)
	if err != nil {
		return nil, err
	}
	return &treeFS{mu: &r.mu, root: t, when: c.Committer.When}, nil
}

// Changed lists the paths that differ between two commits (both sides of a
// rename). A zero from means "everything".
func (r *Repo) Changed(ctx context.Context, from, to plumbing.Hash) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, toTree, err := r.tree(to)
	if err != nil {
		return nil, err
	}
	var fromTree *object.Tree
	if !from.IsZero() {
		if _, fromTree, err = r.tree(from); err != nil {
			return nil, err
		}
	} else {
		fromTree = &object.Tree{}
	}
	changes, err := object.DiffTreeWithOptions(ctx, fromTree, toTree, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: diff %s..%s: %w", r.Name, from, to, err)
	}
	set := map[string]bool{}
	for _, ch := range changes {
		if ch.From.Name != "" {
			set[ch.From.Name] = true
		}
		if ch.To.Name != "" {
			set[ch.To.Name] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// manifest records what Materialize wrote, so the next call writes only
// what changed and removes what Git removed, and leaves everything else
// (local state files, lock files written by init) alone.
type manifest struct {
	Commit string            `json:"commit"`
	Files  map[string]string `json:"files"` // path -> blob hash
}

const manifestName = ".trueline-manifest.json"

// Materialize writes the files under dirs (repository-relative
// directories or files) at commit into dest, at the same relative paths.
// Files it wrote before that Git no longer has are removed; files it never
// wrote are left alone.
func (r *Repo) Materialize(ctx context.Context, commit plumbing.Hash, dirs []string, dest string) error {
	var old manifest
	if b, err := os.ReadFile(filepath.Join(dest, manifestName)); err == nil {
		if err := json.Unmarshal(b, &old); err != nil {
			old = manifest{} // a damaged manifest: no file is known to be ours
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, tree, err := r.tree(commit)
	if err != nil {
		return err
	}
	next := manifest{Commit: commit.String(), Files: map[string]string{}}
	for _, d := range dirs {
		d = strings.Trim(path.Clean(d), "/")
		if d == "." || d == "" {
			err = addTree(tree, "", next.Files)
		} else if e, ferr := tree.FindEntry(d); ferr == nil && e.Mode == filemode.Dir {
			sub, serr := tree.Tree(d)
			if serr != nil {
				return serr
			}
			err = addTree(sub, d, next.Files)
		} else if ferr == nil {
			next.Files[d] = e.Hash.String()
		}
		// A directory missing at this commit contributes nothing.
		if err != nil {
			return err
		}
	}
	for p, h := range next.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		target := filepath.Join(dest, filepath.FromSlash(p))
		if old.Files[p] == h {
			if _, err := os.Stat(target); err == nil {
				continue
			}
		}
		f, err := tree.File(p)
		if err != nil {
			return fmt.Errorf("%s: %s at %s: %w", r.Name, p, commit, err)
		}
		if err := writeBlob(f, target); err != nil {
			return err
		}
	}
	for p := range old.Files {
		if _, ok := next.Files[p]; !ok {
			// A file Git no longer has must not stay in the stack; the old
			// manifest is kept, so the next call tries again.
			if err := os.Remove(filepath.Join(dest, filepath.FromSlash(p))); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	b, _ := json.Marshal(next)
	return os.WriteFile(filepath.Join(dest, manifestName), b, 0o644)
}

func addTree(t *object.Tree, prefix string, into map[string]string) error {
	walker := object.NewTreeWalker(t, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if e.Mode == filemode.Dir || e.Mode == filemode.Submodule {
			continue
		}
		p := name
		if prefix != "" {
			p = prefix + "/" + name
		}
		into[p] = e.Hash.String()
	}
}

func writeBlob(f *object.File, target string) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	r, err := f.Reader()
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }() // read only: closing cannot lose data
	mode := os.FileMode(0o644)
	if f.Mode == filemode.Executable {
		mode = 0o755
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), target)
	}
	if err != nil {
		_ = os.Remove(tmp.Name()) // the write's error is the one to report
		return err
	}
	return nil
}

// RedactURL drops credentials from a URL, for messages and status pages.
func RedactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if at := strings.Index(rest, "@"); at >= 0 && !strings.Contains(rest[:at], "/") {
			return u[:i+3] + "***@" + rest[at+1:]
		}
	}
	return u
}

func safe(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r == ' ' {
			return '_'
		}
		return r
	}, name)
}

// PushBranch commits files on top of base and force-pushes the result to
// branch on the remote: the branch of a remediation pull request. A nil
// content deletes the file. It returns the new commit.
func (r *Repo) PushBranch(ctx context.Context, base plumbing.Hash, branch string, files map[string][]byte, message string) (plumbing.Hash, error) {
	r.mu.Lock()
	dir := r.dir
	r.mu.Unlock()
	// Work in memory on a clone of the local cache: the remote is touched
	// only by the push.
	wt := memfs.New()
	g, err := git.CloneContext(ctx, memory.NewStorage(), wt, &git.CloneOptions{
		URL: dir, ReferenceName: plumbing.NewBranchReferenceName(r.Branch), SingleBranch: true, Tags: git.NoTags})
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%s: prepare branch %s: %w", r.Name, branch, err)
	}
	w, err := g.Worktree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	ref := plumbing.NewBranchReferenceName(branch)
	if err := w.Checkout(&git.CheckoutOptions{Hash: base, Branch: ref, Create: true, Force: true}); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%s: check out %s: %w", r.Name, base, err)
	}
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		if files[p] == nil {
			if _, err := w.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return plumbing.ZeroHash, fmt.Errorf("%s: remove %s: %w", r.Name, p, err)
			}
			continue
		}
		if err := wt.MkdirAll(path.Dir(p), 0o755); err != nil {
			return plumbing.ZeroHash, err
		}
		f, err := wt.Create(p)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		_, werr := f.Write(files[p])
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return plumbing.ZeroHash, werr
		}
		if _, err := w.Add(p); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%s: add %s: %w", r.Name, p, err)
		}
	}
	sig := &object.Signature{Name: "trueline", Email: "trueline@localhost", When: time.Now()}
	commit, err := w.Commit(message, &git.CommitOptions{Author: sig, Committer: sig, AllowEmptyCommits: true})
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%s: commit on %s: %w", r.Name, branch, err)
	}
	if _, err := g.CreateRemote(&gitconfig.RemoteConfig{Name: "upstream", URLs: []string{r.URL}}); err != nil {
		return plumbing.ZeroHash, err
	}
	pctx, cancel := r.bound(ctx)
	defer cancel()
	auth, err := r.auth(pctx)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%s: push %s: %w", r.Name, branch, err)
	}
	err = g.PushContext(pctx, &git.PushOptions{RemoteName: "upstream", Auth: auth, Force: true,
		RefSpecs: []gitconfig.RefSpec{gitconfig.RefSpec(fmt.Sprintf("+%s:%s", ref, ref))}})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return plumbing.ZeroHash, fmt.Errorf("%s: push %s to %s: %w", r.Name, branch, RedactURL(r.URL), err)
	}
	return commit, nil
}
