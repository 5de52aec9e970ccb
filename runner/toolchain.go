package runner

import (
	"context"
	"sync"
)

// Toolchain finds binaries on demand and remembers them, so that stacks
// naming the same binary and constraint share one lookup.
type Toolchain struct {
	Default    string // binary name when a stack names none: "terraform" or "tofu"
	Path       string // explicit path of the default binary, if any
	ToolsDir   string // tried before PATH
	Install    bool
	InstallDir string

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
	opts := FindOptions{Name: name, Constraint: constraint, ToolsDir: t.ToolsDir, Install: t.Install, InstallDir: t.InstallDir}
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
