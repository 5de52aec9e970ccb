package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-version"
)

// Toolchain finds binaries on demand and remembers them, so that stacks
// naming the same binary and constraint share one lookup.
type Toolchain struct {
	Default    string // binary name when a stack names none: "terraform" or "tofu"
	Path       string // explicit path of the default binary, if any
	ToolsDir   string // tried before PATH
	Install    bool
	InstallDir string
	// CacheDir, when set, remembers binary versions across processes (keyed
	// by path, size and modification time), so a warm run starts no
	// `version` command.
	CacheDir string

	mu    sync.Mutex
	found map[[2]string]Binary
}

// Binary returns the binary for a stack's binary name and version constraint;
// empty values mean the toolchain's defaults.
func (t *Toolchain) Binary(ctx context.Context, name, constraint string) (Binary, error) {
	if name == "" {
		name = t.Default
	}
	if name == "" {
		name = "terraform"
	}
	key := [2]string{name, constraint}
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, ok := t.found[key]; ok {
		return b, nil
	}
	opts := FindOptions{Name: name, Constraint: constraint, ToolsDir: t.ToolsDir, Install: t.Install, InstallDir: t.InstallDir,
		versions: t.versionCache()}
	if name == t.Default || (t.Default == "" && name == "terraform") {
		opts.Path = t.Path
	}
	b, err := Find(ctx, opts)
	if err != nil {
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
