package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hc-install/fs"
	"github.com/hashicorp/hc-install/product"
	"github.com/hashicorp/hc-install/releases"
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
	ToolsDir   string // a directory tried before PATH, e.g. .tools/bin
	// Install lets terraform be installed from the HashiCorp releases site
	// into InstallDir when nothing local fits. It needs network access.
	Install    bool
	InstallDir string

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

// Find locates a terraform or tofu binary: an explicit path, then ToolsDir,
// then PATH, then (terraform only, when allowed) an install of the newest
// release that satisfies the constraint. The error lists what was tried.
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
			return Binary{}, fmt.Errorf("version constraint %q: %w", opts.Constraint, err)
		}
		constraints = c
	}

	var tried []string
	check := func(path string) (Binary, bool) {
		v, cached := opts.versions.get(path)
		if !cached {
			var err error
			v, err = prod.GetVersion(ctx, path)
			if err != nil {
				tried = append(tried, fmt.Sprintf("%s: %v", path, err))
				return Binary{}, false
			}
			opts.versions.put(path, v)
		}
		if constraints != nil && !constraints.Check(v) {
			tried = append(tried, fmt.Sprintf("%s: version %s does not satisfy %q", path, v, opts.Constraint))
			return Binary{}, false
		}
		return Binary{Name: name, Path: path, Version: v}, true
	}

	if opts.Path != "" {
		p, err := filepath.Abs(opts.Path)
		if err != nil {
			return Binary{}, err
		}
		if b, ok := check(p); ok {
			return b, nil
		}
		return Binary{}, fmt.Errorf("%s binary %s is not usable (%s); fix the path or the version constraint",
			name, p, strings.Join(tried, "; "))
	}

	if opts.ToolsDir != "" {
		p := filepath.Join(opts.ToolsDir, name)
		if _, err := os.Stat(p); err == nil {
			if b, ok := check(p); ok {
				return b, nil
			}
		} else {
			tried = append(tried, p+": not found")
		}
	}

	// PATH, through hc-install so that its executable checks apply.
	if constraints != nil {
		src := &fs.Version{Product: prod, Constraints: constraints}
		if p, err := src.Find(ctx); err == nil {
			if b, ok := check(p); ok {
				return b, nil
			}
		} else {
			tried = append(tried, fmt.Sprintf("PATH: %v", err))
		}
	} else {
		src := &fs.AnyVersion{Product: &prod}
		if p, err := src.Find(ctx); err == nil {
			if b, ok := check(p); ok {
				return b, nil
			}
		} else {
			tried = append(tried, fmt.Sprintf("PATH: %v", err))
		}
	}

	if opts.Install && name == "terraform" {
		dir := opts.InstallDir
		if dir == "" {
			return Binary{}, errors.New("installing terraform needs an install directory")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Binary{}, err
		}
		lv := &releases.LatestVersion{Product: prod, Constraints: constraints, InstallDir: dir}
		p, err := lv.Install(ctx)
		if err == nil {
			if b, ok := check(p); ok {
				return b, nil
			}
		} else {
			tried = append(tried, fmt.Sprintf("releases: %v", err))
		}
	}

	want := name
	if opts.Constraint != "" {
		want += " " + opts.Constraint
	}
	hint := "run `make tools`, put it on PATH, or name it with --binary-path"
	return Binary{}, fmt.Errorf("no %s found (tried %s); %s", want, strings.Join(tried, "; "), hint)
}
