package runner

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hashicorp/go-version"
)

// Toolchain finds binaries on demand and remembers them, so that stacks
// naming the same binary and constraint share one lookup.
type Toolchain struct {
	Default string // binary name when a stack names none: "terraform" or "tofu"
	Path    string // explicit path of the default binary, if any
	// Constraint is the server's version constraint for the default binary
	// (trueline.hcl binary { version }); a stack's own constraint narrows
	// it. A stack naming the other binary is held to its own alone.
	Constraint string
	// ToolsDir lists directories tried before PATH, separated like PATH;
	// see FindOptions.ToolsDir.
	ToolsDir string
	// Install, when set, installs missing terraform versions into
	// Install.Dir, which is searched after ToolsDir.
	Install *Install
	// CacheDir, when set, remembers binary versions across processes (keyed
	// by path, size and modification time), so a warm run starts no
	// `version` command.
	CacheDir string

	mu    sync.Mutex
	found map[[2]string]Binary
}

// Binary returns the binary for a stack's binary name and version constraint;
// empty values mean the toolchain's defaults. When the server's constraint
// and the stack's leave no binary, the error is a *NotFoundError naming
// both.
func (t *Toolchain) Binary(ctx context.Context, name, constraint string) (Binary, error) {
	if name == "" {
		name = t.Default
	}
	if name == "" {
		name = "terraform"
	}
	isDefault := name == t.Default || (t.Default == "" && name == "terraform")
	want := constraint
	if isDefault && t.Constraint != "" {
		want = t.Constraint
		if constraint != "" {
			want += ", " + constraint
		}
	}
	key := [2]string{name, want}
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, ok := t.found[key]; ok {
		return b, nil
	}
	dirs := t.ToolsDir
	if t.Install != nil && t.Install.Dir != "" {
		dirs = strings.Join(append(filepath.SplitList(dirs), t.Install.Dir), string(os.PathListSeparator))
	}
	opts := FindOptions{Name: name, Constraint: want, ToolsDir: dirs, Install: t.Install, versions: t.versionCache()}
	if isDefault {
		opts.Path = t.Path
	}
	b, err := Find(ctx, opts)
	if err != nil {
		var nf *NotFoundError
		if errors.As(err, &nf) && isDefault && t.Constraint != "" && constraint != "" {
			nf.Server, nf.Stack = t.Constraint, constraint
		}
		return Binary{}, err
	}
	if t.found == nil {
		t.found = map[[2]string]Binary{}
	}
	t.found[key] = b
	return b, nil
}

func (t *Toolchain) versionCache() *versionCache {
	if t.CacheDir == "" {
		return nil
	}
	return &versionCache{file: filepath.Join(t.CacheDir, "binaries.json")}
}

// versionCache stores `version -json` answers in a small JSON file.
type versionCache struct {
	file string
}

type cachedVersion struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime"`
	Version string `json:"version"`
}

func (c *versionCache) key(path string) (cachedVersion, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return cachedVersion{}, false
	}
	return cachedVersion{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}, true
}

func (c *versionCache) load() map[string]cachedVersion {
	m := map[string]cachedVersion{}
	b, err := os.ReadFile(c.file)
	if err != nil {
		return m
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return map[string]cachedVersion{} // a damaged cache is an empty one
	}
	return m
}

func (c *versionCache) get(path string) (*version.Version, bool) {
	if c == nil {
		return nil, false
	}
	k, ok := c.key(path)
	if !ok {
		return nil, false
	}
	e, ok := c.load()[path]
	if !ok || e.Size != k.Size || e.ModTime != k.ModTime {
		return nil, false
	}
	v, err := version.NewVersion(e.Version)
	return v, err == nil
}

func (c *versionCache) put(path string, v *version.Version) {
	if c == nil {
		return
	}
	k, ok := c.key(path)
	if !ok {
		return
	}
	m := c.load()
	k.Version = v.String()
	m[path] = k
	b, _ := json.Marshal(m)
	tmp := c.file + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		// A cache that cannot be written costs a version probe next time.
		_ = os.Rename(tmp, c.file)
	}
}
