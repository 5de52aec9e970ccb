package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxSubmoduleDepth bounds submodules inside submodules.
const maxSubmoduleDepth = 4

// maxGitmodules bounds the .gitmodules file read.
const maxGitmodules = 1 << 20

// submoduleFiles fetches each submodule (path -> commit, relative to
// tree) at its commit and returns its files, by their path in tree.
// Caller holds r.mu.
func (r *Repo) submoduleFiles(ctx context.Context, tree *object.Tree, subs map[string]plumbing.Hash, depth int) (map[string]blobRef, error) {
	out := map[string]blobRef{}
	for p, hash := range subs {
		if depth >= maxSubmoduleDepth {
			return nil, fmt.Errorf("%s: submodule %s is nested more than %d deep", r.Name, p, maxSubmoduleDepth)
		}
		sub, err := r.submodule(ctx, tree, p)
		if err != nil {
			return nil, err
		}
		t, err := sub.treeAt(ctx, hash)
		if err != nil {
			return nil, fmt.Errorf("%s: submodule %s: %w", r.Name, p, err)
		}
		files, nested := map[string]blobRef{}, map[string]plumbing.Hash{}
		if err := addTree(sub.git, t, "", files, nested); err != nil {
			return nil, fmt.Errorf("%s: submodule %s: %w", r.Name, p, err)
		}
		if len(nested) > 0 {
			more, err := sub.submoduleFiles(ctx, t, nested, depth+1)
			if err != nil {
				return nil, err
			}
			for k, v := range more {
				files[k] = v
			}
		}
		for k, v := range files {
			out[p+"/"+k] = v
		}
	}
	return out, nil
}

// submodule is the clone of the submodule at p, as the tree's .gitmodules
// describes it. Caller holds r.mu.
func (r *Repo) submodule(ctx context.Context, tree *object.Tree, p string) (*Repo, error) {
	f, err := tree.File(".gitmodules")
	if err != nil {
		return nil, fmt.Errorf("%s: %s is a submodule, but the commit has no .gitmodules saying where it comes from", r.Name, p)
	}
	if f.Size > maxGitmodules {
		return nil, fmt.Errorf("%s: .gitmodules is larger than %d KiB", r.Name, maxGitmodules>>10)
	}
	content, err := f.Contents()
	if err != nil {
		return nil, fmt.Errorf("%s: .gitmodules: %w", r.Name, err)
	}
	mods := gitconfig.NewModules()
	if err := mods.Unmarshal([]byte(content)); err != nil {
		return nil, fmt.Errorf("%s: .gitmodules: %w", r.Name, err)
	}
	var m *gitconfig.Submodule
	for _, s := range mods.Submodules {
		if path.Clean(s.Path) == p {
			m = s
		}
	}
	if m == nil {
		return nil, fmt.Errorf("%s: %s is a submodule, but .gitmodules names none at that path: add it with git submodule add", r.Name, p)
	}
	u, err := submoduleURL(r.URL, m.URL)
	if err != nil {
		return nil, fmt.Errorf("%s: submodule %s: %w", r.Name, p, err)
	}
	key := m.Name + " " + u
	if s, ok := r.subs[key]; ok {
		return s, nil
	}
	sum := sha256.Sum256([]byte(key))
	s := &Repo{Name: r.Name + "/" + m.Name, URL: u, Timeout: r.Timeout,
		dir: filepath.Join(r.dir+".modules", safe(m.Name)+"-"+hex.EncodeToString(sum[:6])+".git")}
	// The repository's credentials go only where the repository itself is.
	if host(u) == host(r.URL) {
		s.Auth, s.AuthFor = r.Auth, r.AuthFor
	}
	if s.git, err = git.PlainOpen(s.dir); err != nil {
		if err := os.RemoveAll(s.dir); err != nil {
			return nil, err
		}
		if s.git, err = git.PlainInit(s.dir, true); err != nil {
			return nil, fmt.Errorf("%s: submodule %s: %w", r.Name, p, err)
		}
		if _, err := s.git.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{u}}); err != nil {
			return nil, fmt.Errorf("%s: submodule %s: %w", r.Name, p, err)
		}
	}
	if r.subs == nil {
		r.subs = map[string]*Repo{}
	}
	r.subs[key] = s
	return s, nil
}

// treeAt returns the tree of commit, fetching the submodule's branches and
// tags when it lacks the commit, and the commit by hash when the server
// allows that.
func (s *Repo) treeAt(ctx context.Context, commit plumbing.Hash) (*object.Tree, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fetch := func(spec string) error {
		auth, err := s.auth(ctx)
		if err != nil {
			return err
		}
		fctx, cancel := s.bound(ctx)
		defer cancel()
		err = s.git.FetchContext(fctx, &git.FetchOptions{RemoteName: "origin", Auth: auth, Force: true,
			RefSpecs: []gitconfig.RefSpec{gitconfig.RefSpec(spec)}})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return err
		}
		return nil
	}
	for _, spec := range []string{"", "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", "+" + commit.String() + ":refs/trueline/" + commit.String()} {
		if spec != "" {
			err := fetch(spec)
			if errors.Is(err, git.ErrExactSHA1NotSupported) || errors.Is(err, git.NoMatchingRefSpecError{}) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("fetch %s: %w", RedactURL(s.URL), err)
			}
		}
		if c, err := s.git.CommitObject(commit); err == nil {
			return c.Tree()
		}
	}
	return nil, fmt.Errorf("commit %s is on no branch or tag of %s, and the server does not serve it by hash: push it to a branch there so that trueline can fetch it",
		commit.String()[:12], RedactURL(s.URL))
}

// submoduleURL resolves a .gitmodules URL as git does: "./x" and "../x"
// are relative to the repository's own URL. A submodule of a remote
// repository must be remote too: a local path would read the server's
// own files.
func submoduleURL(base, u string) (string, error) {
	resolved := u
	if strings.HasPrefix(u, "./") || strings.HasPrefix(u, "../") {
		switch {
		case strings.Contains(base, "://"):
			b, err := url.Parse(base)
			if err != nil {
				return "", err
			}
			b.Path = path.Join(b.Path, u)
			resolved = b.String()
		case isSCP(base):
			i := strings.Index(base, ":")
			resolved = base[:i+1] + path.Join(base[i+1:], u)
		default:
			resolved = filepath.Join(base, filepath.FromSlash(u))
		}
	}
	if host(base) != "" && host(resolved) == "" {
		return "", fmt.Errorf("URL %q is a path on the server, and the repository is not: use a remote URL", u)
	}
	return resolved, nil
}

// isSCP reports whether u is git's scp-like form, user@host:path.
func isSCP(u string) bool {
	i := strings.Index(u, ":")
	return i > 0 && !strings.Contains(u, "://") && !strings.ContainsAny(u[:i], "/\\") && !filepath.IsAbs(u)
}

// host is where a Git URL points, "" for a local path or file://.
func host(u string) string {
	switch {
	case strings.Contains(u, "://"):
		p, err := url.Parse(u)
		if err != nil || p.Scheme == "file" {
			return ""
		}
		return p.Scheme + "://" + p.Host
	case isSCP(u):
		h := u[:strings.Index(u, ":")]
		if at := strings.LastIndex(h, "@"); at >= 0 {
			h = h[at+1:]
		}
		return "ssh://" + h
	}
	return ""
}
