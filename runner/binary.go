package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hc-install/fs"
	"github.com/hashicorp/hc-install/product"
)

// Binary is a terraform or tofu executable of a known version.
type Binary struct {
	Name    string // "terraform" or "tofu"
	Path    string
	Version *version.Version
}

func (b Binary) String() string { return fmt.Sprintf("%s %s (%s)", b.Name, b.Version, b.Path) }

// IsTofu reports whether the binary is OpenTofu.
func (b Binary) IsTofu() bool { return b.Name == "tofu" }

// FindOptions says which binary to look for and where.
type FindOptions struct {
	Name       string // "terraform" (default) or "tofu"
	Path       string // an explicit executable; nothing else is tried
	Constraint string // e.g. "~> 1.5.0"; empty accepts any version
	// ToolsDir lists directories tried before PATH, separated like PATH.
	// Each holds binaries by version, <dir>/terraform/1.13.3/terraform (the
	// layout of .tools/versions and of installs), or flat, <dir>/terraform.
	ToolsDir string
	// Install, when set, installs the newest terraform release that
	// satisfies the constraint when no local binary does. OpenTofu is never
	// installed: no maintained Go library installs it with its signature
	// checked.
	Install *Install

	versions *versionCache
}

// tofuProduct describes OpenTofu for hc-install. `tofu version -json`
// answers in terraform's format.
var tofuProduct = product.Product{
	Name:       "tofu",
	BinaryName: func() string { return "tofu" },
	GetVersion: jsonVersion,
}

// terraformProduct is hc-install's terraform with a version getter that reads
// stdout alone: hc-install's own mixes in stderr, where a CLI config warning
// (say, TF_CLI_CONFIG_FILE naming a missing file) breaks the JSON.
var terraformProduct = func() product.Product {
	p := product.Terraform
	p.GetVersion = jsonVersion
	return p
}()

func jsonVersion(ctx context.Context, path string) (*version.Version, error) {
	out, err := exec.CommandContext(ctx, path, "version", "-json").Output()
	if err != nil {
		return nil, fmt.Errorf("%s version -json: %w", filepath.Base(path), err)
	}
	var v struct {
		Version string `json:"terraform_version"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("%s version -json: %w", filepath.Base(path), err)
	}
	return version.NewVersion(v.Version)
}

// NotFoundError says that no binary satisfies what was asked, which ones
// there are, and how to add one.
type NotFoundError struct {
	Name       string
	Constraint string // what was asked for, both constraints joined; empty: any
	// Server and Stack, when both are set, are trueline.hcl's binary version
	// and the stack's, which no binary satisfies together.
	Server, Stack string
	Installed     []Binary // usable binaries found, newest first
	Problems      []string // binaries that could not be used, and why
	InstallFailed string   // why installing one failed, when it was tried
	Looked        []string // where they were looked for
	Hint          string   // how to add one
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	switch {
	case e.Server != "" && e.Stack != "":
		fmt.Fprintf(&b, "no %s satisfies both trueline.hcl's binary version %q and the stack's version %q", e.Name, e.Server, e.Stack)
	case e.Constraint != "":
		fmt.Fprintf(&b, "no %s satisfies %q", e.Name, e.Constraint)
	default:
		fmt.Fprintf(&b, "no %s found", e.Name)
	}
	if len(e.Installed) > 0 {
		vs := make([]string, len(e.Installed))
		for i, bin := range e.Installed {
			vs[i] = fmt.Sprintf("%s (%s)", bin.Version, bin.Path)
		}
		fmt.Fprintf(&b, "; installed: %s", strings.Join(vs, ", "))
	} else {
		fmt.Fprintf(&b, "; none is installed (looked in %s)", strings.Join(e.Looked, ", "))
	}
	if len(e.Problems) > 0 {
		fmt.Fprintf(&b, "; unusable: %s", strings.Join(e.Problems, "; "))
	}
	if e.InstallFailed != "" {
		fmt.Fprintf(&b, "; could not install one: %s", e.InstallFailed)
	}
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	switch {
	case e.Server != "" && e.Stack != "":
		b.WriteString(", or change the stack's version or trueline.hcl's binary version so that both allow one")
	case e.Constraint != "":
		b.WriteString(", or change the version constraint")
	}
	return b.String()
}

// Find locates a terraform or tofu binary: an explicit path alone, or else
// the newest version that satisfies the constraint among the tools
// directories and PATH (on a tie, the first found), or else (terraform
// only, when allowed) an install of the newest release that satisfies it.
// When nothing fits, the error is a *NotFoundError.
func Find(ctx context.Context, opts FindOptions) (Binary, error) {
	name := opts.Name
	if name == "" {
		name = "terraform"
	}
	var prod product.Product
	switch name {
	case "terraform":
		prod = terraformProduct
	case "tofu":
		prod = tofuProduct
	default:
		return Binary{}, fmt.Errorf("unknown binary %q: use \"terraform\" or \"tofu\"", name)
	}
	var constraints version.Constraints
	if opts.Constraint != "" {
		c, err := version.NewConstraint(opts.Constraint)
		if err != nil {
			return Binary{}, fmt.Errorf("version constraint %q: %w; write one such as \"~> 1.10\" or \">= 1.5, < 2\"", opts.Constraint, err)
		}
		constraints = c
	}
	satisfies := func(v *version.Version) bool { return constraints == nil || constraints.Check(v) }

	// Every version probe goes through the cache, hc-install's included, so
	// a warm run starts no `version` command.
	probed := map[string]*version.Version{}
	getVersion := prod.GetVersion
	prod.GetVersion = func(ctx context.Context, path string) (*version.Version, error) {
		if v, ok := probed[path]; ok {
			return v, nil
		}
		v, ok := opts.versions.get(path)
		if !ok {
			var err error
			if v, err = getVersion(ctx, path); err != nil {
				return nil, err
			}
			opts.versions.put(path, v)
		}
		probed[path] = v
		return v, nil
	}
	// probe runs an executable path for its version.
	probe := func(path string) (Binary, error) {
		if _, err := (&fs.AnyVersion{ExactBinPath: path}).Find(ctx); err != nil {
			return Binary{}, fmt.Errorf("%s: not an executable file", path)
		}
		v, err := prod.GetVersion(ctx, path)
		if err != nil {
			return Binary{}, fmt.Errorf("%s: %w", path, err)
		}
		return Binary{Name: name, Path: path, Version: v}, nil
	}

	if opts.Path != "" {
		p, err := filepath.Abs(opts.Path)
		if err != nil {
			return Binary{}, err
		}
		b, err := probe(p)
		if err == nil && !satisfies(b.Version) {
			err = fmt.Errorf("%s: version %s does not satisfy %q", p, b.Version, opts.Constraint)
		}
		if err != nil {
			return Binary{}, fmt.Errorf("%s binary %s is not usable (%v); fix the path or the version constraint", name, p, err)
		}
		return b, nil
	}

	nf := &NotFoundError{Name: name, Constraint: opts.Constraint}
	var best *Binary
	consider := func(b Binary) {
		nf.Installed = append(nf.Installed, b)
		if satisfies(b.Version) && (best == nil || b.Version.GreaterThan(best.Version)) {
			best = &b
		}
	}
	dirs := filepath.SplitList(opts.ToolsDir)
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		nf.Looked = append(nf.Looked, dir)
		for _, c := range versionDirs(dir, name) {
			// The directory's name says the version: only a version that
			// would be chosen runs to confirm it.
			if !satisfies(c.Version) || (best != nil && !c.Version.GreaterThan(best.Version)) {
				nf.Installed = append(nf.Installed, c)
				continue
			}
			b, err := probe(c.Path)
			if err == nil && !b.Version.Equal(c.Version) {
				err = fmt.Errorf("%s says it is version %s, not %s as its directory does", c.Path, b.Version, c.Version)
			}
			if err != nil {
				nf.Problems = append(nf.Problems, err.Error())
				continue
			}
			consider(b)
		}
		if p := filepath.Join(dir, name); isFile(p) {
			b, err := probe(p)
			if err != nil {
				nf.Problems = append(nf.Problems, err.Error())
				continue
			}
			consider(b)
		}
	}

	// PATH, through hc-install's sources: any version, an exact one or a
	// range. Each answers the first match on PATH.
	nf.Looked = append(nf.Looked, "PATH")
	var src interface {
		Find(context.Context) (string, error)
	}
	switch exact := exactVersion(opts.Constraint); {
	case constraints == nil:
		src = &fs.AnyVersion{Product: &prod}
	case exact != nil:
		src = &fs.ExactVersion{Product: prod, Version: exact}
	default:
		src = &fs.Version{Product: prod, Constraints: constraints}
	}
	if p, err := src.Find(ctx); err == nil {
		if b, err := probe(p); err == nil {
			consider(b)
		} else {
			nf.Problems = append(nf.Problems, err.Error())
		}
	}
	if best != nil {
		return *best, nil
	}

	nf.Installed = distinct(nf.Installed)
	if opts.Install != nil && name == "terraform" {
		p, err := opts.Install.terraform(ctx, prod, constraints)
		if err == nil {
			b, perr := probe(p)
			if perr == nil && satisfies(b.Version) {
				return b, nil
			}
			err = fmt.Errorf("the installed %s is not usable: %v", p, perr)
		}
		nf.InstallFailed = err.Error()
	}
	nf.Hint = addHint(name, dirs, opts.Install != nil)
	return Binary{}, nf
}

// addHint says how to add a binary of that name.
func addHint(name string, dirs []string, installs bool) string {
	dir := "a tools directory (TRUELINE_TOOLS_DIR)"
	for _, d := range dirs {
		if d != "" {
			dir = d
			break
		}
	}
	where := fmt.Sprintf("add one as %s/%s/<version>/%s or on PATH", dir, name, name)
	switch {
	case name == "tofu":
		return where + " (trueline installs no OpenTofu)"
	case !installs:
		return where + ", let trueline install it (trueline.hcl: binary { install = true })"
	}
	return where
}

// versionDirs lists <dir>/<name>/<version>/<name>, newest first, with the
// version its directory names.
func versionDirs(dir, name string) []Binary {
	entries, err := os.ReadDir(filepath.Join(dir, name))
	if err != nil {
		return nil // no such layout here: a flat directory, or none
	}
	var out []Binary
	for _, e := range entries {
		v, err := version.NewVersion(e.Name())
		if err != nil || !e.IsDir() {
			continue // say, an install in progress
		}
		p := filepath.Join(dir, name, e.Name(), name)
		if exists(p) {
			out = append(out, Binary{Name: name, Path: p, Version: v})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Version.GreaterThan(out[j].Version) })
	return out
}

// exactVersion returns the version a constraint names alone ("1.13.3",
// "= 1.13.3"), or nil.
func exactVersion(constraint string) *version.Version {
	s := strings.TrimSpace(constraint)
	if strings.Contains(s, ",") {
		return nil
	}
	s = strings.TrimSpace(strings.TrimPrefix(s, "="))
	v, err := version.NewVersion(s)
	if err != nil {
		return nil
	}
	return v
}

// distinct drops binaries that are the same file (a link in .tools/bin and
// its target) and sorts them newest first.
func distinct(bins []Binary) []Binary {
	seen := map[string]bool{}
	var out []Binary
	for _, b := range bins {
		real, err := filepath.EvalSymlinks(b.Path)
		if err != nil {
			real = b.Path
		}
		if seen[real] {
			continue
		}
		seen[real] = true
		out = append(out, b)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Version.GreaterThan(out[j].Version) })
	return out
}

// isFile reports whether path is a file, or a link to one: in a tools
// directory laid out by version, <dir>/terraform is a directory.
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
