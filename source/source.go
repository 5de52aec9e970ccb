// Package source owns the Git side of trueline: one bare clone per
// repository, fetched incrementally (go-git); a commit's tree read as an
// fs.FS without a checkout; the paths a commit range changed; and the
// materialisation of just the files a run needs at one commit.
package source

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
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
	// subs are the clones of the submodules Materialize needed, by name
	// and URL; guarded by mu.
	subs map[string]*Repo
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
	Files  map[string]string `json:"files"` // path -> blob hash, "link:" before a symbolic link's
}

const manifestName = ".trueline-manifest.json"

// blobRef is one file to write: a blob of the repository or of one of its
// submodules.
type blobRef struct {
	hash plumbing.Hash
	mode filemode.FileMode
	repo *git.Repository
}

// key is what the manifest keeps for the file: a file turned into a link
// with the same content is a change.
func (b blobRef) key() string {
	if b.mode == filemode.Symlink {
		return "link:" + b.hash.String()
	}
	return b.hash.String()
}

// Materialize writes the files under dirs (repository-relative
// directories or files) at commit into dest, at the same relative paths.
// Files it wrote before that Git no longer has are removed; files it never
// wrote are left alone. Symbolic links are written as links when they stay
// inside the repository (their targets are written only when dirs names
// them too: stacks.Dependencies does); one that is absolute or leaves the
// repository is not written. Submodules are fetched at the commit the tree
// records and written whole. Nothing is written outside dest: every write
// goes through an os.Root.
func (r *Repo) Materialize(ctx context.Context, commit plumbing.Hash, dirs []string, dest string) error {
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return fmt.Errorf("checkout directory: %w", err)
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }() // a directory handle: nothing to flush
	var old manifest
	if b, err := root.ReadFile(manifestName); err == nil {
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
	files := map[string]blobRef{}
	subs := map[string]plumbing.Hash{}
	for _, d := range dirs {
		if err := collect(r.git, tree, strings.Trim(path.Clean(d), "/"), files, subs); err != nil {
			return fmt.Errorf("%s: %s at %s: %w", r.Name, d, commit, err)
		}
	}
	if len(subs) > 0 {
		more, err := r.submoduleFiles(ctx, tree, subs, 0)
		if err != nil {
			return err
		}
		maps.Copy(files, more)
	}
	next := manifest{Commit: commit.String(), Files: map[string]string{}}
	for p, b := range files {
		if b.mode != filemode.Symlink {
			next.Files[p] = b.key()
			continue
		}
		target, err := linkTarget(b)
		if err != nil {
			return fmt.Errorf("%s: link %s at %s: %w", r.Name, p, commit, err)
		}
		// An absolute link, or one leaving the repository, would read the
		// server's own files: it is not written (stacks.Analyze warns).
		if t := path.Join(path.Dir(p), target); path.IsAbs(target) || t == ".." || strings.HasPrefix(t, "../") {
			delete(files, p)
			continue
		}
		next.Files[p] = b.key()
	}
	// What Git no longer has goes first: a stale link could otherwise lead
	// a write below it elsewhere. The old manifest is kept until the end,
	// so a failure here is retried by the next call.
	for p, h := range old.Files {
		if n, ok := next.Files[p]; !ok || (n != h && (strings.HasPrefix(n, "link:") || strings.HasPrefix(h, "link:"))) {
			if err := root.Remove(filepath.FromSlash(p)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	names := slices.Sorted(maps.Keys(files))
	for _, p := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := filepath.FromSlash(p)
		if old.Files[p] == next.Files[p] {
			if _, err := root.Lstat(name); err == nil {
				continue
			}
		}
		if err := writeBlob(root, name, files[p]); err != nil {
			return fmt.Errorf("%s: %s at %s: %w", r.Name, p, commit, err)
		}
	}
	b, _ := json.Marshal(next)
	return root.WriteFile(manifestName, b, 0o644)
}

// collect adds the files under d (a directory or file of tree) to files,
// and the submodules there to subs. A path through a link or a submodule
// adds that link (its target is named on its own) or the whole submodule.
func collect(g *git.Repository, tree *object.Tree, d string, files map[string]blobRef, subs map[string]plumbing.Hash) error {
	if d == "." || d == "" {
		return addTree(g, tree, "", files, subs)
	}
	parts := strings.Split(d, "/")
	for i := 1; i <= len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		e, err := tree.FindEntry(p)
		if err != nil {
			return nil // missing at this commit: it contributes nothing
		}
		switch {
		case e.Mode == filemode.Submodule:
			subs[p] = e.Hash
			return nil
		case e.Mode == filemode.Symlink:
			files[p] = blobRef{hash: e.Hash, mode: e.Mode, repo: g}
			return nil
		case i < len(parts):
			if e.Mode != filemode.Dir {
				return nil
			}
		case e.Mode == filemode.Dir:
			sub, err := tree.Tree(p)
			if err != nil {
				return err
			}
			return addTree(g, sub, p, files, subs)
		default:
			files[p] = blobRef{hash: e.Hash, mode: e.Mode, repo: g}
		}
	}
	return nil
}

func addTree(g *git.Repository, t *object.Tree, prefix string, files map[string]blobRef, subs map[string]plumbing.Hash) error {
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
		p := name
		if prefix != "" {
			p = prefix + "/" + name
		}
		switch e.Mode {
		case filemode.Dir:
		case filemode.Submodule:
			subs[p] = e.Hash
		default:
			files[p] = blobRef{hash: e.Hash, mode: e.Mode, repo: g}
		}
	}
}

// maxLinkTarget bounds what a link's blob may hold; a path is short.
const maxLinkTarget = 4096

func linkTarget(b blobRef) (string, error) {
	blob, err := b.repo.BlobObject(b.hash)
	if err != nil {
		return "", err
	}
	if blob.Size > maxLinkTarget {
		return "", fmt.Errorf("a link target of %d bytes", blob.Size)
	}
	rd, err := blob.Reader()
	if err != nil {
		return "", err
	}
	defer func() { _ = rd.Close() }() // read only
	t, err := io.ReadAll(rd)
	return string(t), err
}

// writeBlob writes one file or link in place of what is there, through a
// temporary name in the same directory so that a reader sees the old or
// the new, never half.
func writeBlob(root *os.Root, name string, b blobRef) error {
	if err := root.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	var buf [8]byte
	_, _ = rand.Read(buf[:]) // crypto/rand does not fail
	tmp := filepath.Join(filepath.Dir(name), ".tmp-"+hex.EncodeToString(buf[:]))
	var err error
	if b.mode == filemode.Symlink {
		var target string
		if target, err = linkTarget(b); err == nil {
			err = root.Symlink(filepath.FromSlash(target), tmp)
		}
	} else {
		err = writeFile(root, tmp, b)
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		_ = root.Remove(tmp) // the write's error is the one to report
		return err
	}
	return nil
}

func writeFile(root *os.Root, tmp string, b blobRef) error {
	blob, err := b.repo.BlobObject(b.hash)
	if err != nil {
		return err
	}
	rd, err := blob.Reader()
	if err != nil {
		return err
	}
	defer func() { _ = rd.Close() }() // read only: closing cannot lose data
	mode := os.FileMode(0o644)
	if b.mode == filemode.Executable {
		mode = 0o755
	}
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, rd)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chmod(tmp, mode) // whatever the umask
	}
	return err
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
