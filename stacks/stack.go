// Package stacks finds the stacks of a repository and reads their stack.hcl.
//
// A stack is a directory holding a Terraform root module and a stack.hcl:
//
//	stack {
//	  workspaces = ["default"]            # or workspace blocks, below
//	  schedule   = "0 2 * * *"            # cron, or a descriptor such as @nightly
//	  timezone   = "Europe/Berlin"        # default UTC
//	  policy     = "guarded"              # a policy from policies/*.hcl
//	  binary     = "tofu"                 # terraform (default) or tofu
//	  version    = "~> 1.10"              # a version constraint for the binary
//	  backend_config = ["backend.hcl"]    # -backend-config files or key=value
//	  ignore {
//	    attributes = ["sandbox_autoscaling_group.*.desired_capacity"]
//	  }
//	  workspace "staging" {
//	    var_files = ["staging.tfvars"]
//	    env       = { TF_VAR_size = "small" }
//	  }
//	}
//
// Every problem is an hcl diagnostic naming file, line and column; one broken
// stack does not stop discovery of the others.
package stacks

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/robfig/cron/v3"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/hcldiag"
)

// FileName is the file that makes a directory a stack.
const FileName = "stack.hcl"

// Stack is one stack of a repository.
type Stack struct {
	Path   string  // relative to the repository root, slash-separated: "stacks/web"
	Dir    string  // absolute directory
	Config *Config // nil when Err is set
	Err    error   // the stack.hcl could not be read; see Diagnostics
}

// Config is a parsed stack.hcl.
type Config struct {
	Workspaces    []Workspace
	Schedule      string // empty: no scheduled runs
	Timezone      *time.Location
	Cron          cron.Schedule // nil when Schedule is empty
	Policy        string        // empty: report only
	Binary        string        // "terraform" or "tofu"; empty: the server's default
	Version       string        // version constraint; empty: any
	BackendConfig []string
	Ignore        []drift.Ignore
}

// Workspace is one state of a stack.
type Workspace struct {
	Name     string
	VarFiles []string // relative to the stack directory
	Env      map[string]string
}

// CronParser accepts five fields and descriptors such as @nightly.
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

type fileSchema struct {
	Stacks []stackBlock `hcl:"stack,block"`
}

type stackBlock struct {
	Workspaces     []string         `hcl:"workspaces,optional"`
	WorkspaceBlock []workspaceBlock `hcl:"workspace,block"`
	Schedule       *string          `hcl:"schedule,optional"`
	Timezone       *string          `hcl:"timezone,optional"`
	Policy         *string          `hcl:"policy,optional"`
	Binary         *string          `hcl:"binary,optional"`
	Version        *string          `hcl:"version,optional"`
	BackendConfig  []string         `hcl:"backend_config,optional"`
	Ignore         []ignoreBlock    `hcl:"ignore,block"`
	Body           hcl.Body         `hcl:",body"`
	DefRange       hcl.Range        `hcl:",def_range"`
}

type workspaceBlock struct {
	Name     string            `hcl:"name,label"`
	VarFiles []string          `hcl:"var_files,optional"`
	Env      map[string]string `hcl:"env,optional"`
	Body     hcl.Body          `hcl:",body"`
	DefRange hcl.Range         `hcl:",def_range"`
}

type ignoreBlock struct {
	Attributes []string `hcl:"attributes"`
	Body       hcl.Body `hcl:",body"`
}

// Parse reads one stack.hcl. fsys and dir (the stack's directory in fsys)
// are for checking that var files exist; a nil fsys skips that check.
func Parse(filename string, src []byte, fsys fs.FS, dir string) (*Config, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	var fsch fileSchema
	diags = append(diags, gohcl.DecodeBody(f.Body, nil, &fsch)...)
	if diags.HasErrors() {
		return nil, diags
	}
	switch len(fsch.Stacks) {
	case 0:
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Missing stack block",
			Detail:  `A stack.hcl needs one stack block, e.g. stack { schedule = "@nightly" }.`,
			Subject: &hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	case 1:
	default:
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Duplicate stack block",
			Detail:  "A stack.hcl holds one stack block; merge the two, or move one into its own directory.",
			Subject: fsch.Stacks[1].DefRange.Ptr(),
		}}
	}
	sb := fsch.Stacks[0]
	cfg := &Config{Timezone: time.UTC, BackendConfig: sb.BackendConfig}
	attr := func(name string) *hcl.Range { return attrRange(sb.Body, name, sb.DefRange) }

	seen := map[string]bool{}
	for _, name := range sb.Workspaces {
		if name == "" || strings.ContainsAny(name, "/ ") {
			diags = append(diags, errAt(attr("workspaces"), "Invalid workspace name",
				fmt.Sprintf("Workspace name %q may not be empty or contain '/' or spaces.", name)))
			continue
		}
		if seen[name] {
			diags = append(diags, errAt(attr("workspaces"), "Duplicate workspace",
				fmt.Sprintf("Workspace %q is listed twice.", name)))
		}
		seen[name] = true
		cfg.Workspaces = append(cfg.Workspaces, Workspace{Name: name})
	}
	for _, wb := range sb.WorkspaceBlock {
		if seen[wb.Name] {
			diags = append(diags, errAt(wb.DefRange.Ptr(), "Duplicate workspace",
				fmt.Sprintf("Workspace %q is declared twice; declare it once, either in workspaces or as a block.", wb.Name)))
			continue
		}
		seen[wb.Name] = true
		for _, vf := range wb.VarFiles {
			if fsys == nil {
				break
			}
			if _, err := fs.Stat(fsys, path.Join(dir, vf)); err != nil {
				diags = append(diags, errAt(attrRange(wb.Body, "var_files", wb.DefRange), "Missing var file",
					fmt.Sprintf("Var file %q does not exist in %s; var files are relative to the stack directory.", vf, path.Join(dir))))
			}
		}
		cfg.Workspaces = append(cfg.Workspaces, Workspace{Name: wb.Name, VarFiles: wb.VarFiles, Env: wb.Env})
	}
	if len(cfg.Workspaces) == 0 {
		cfg.Workspaces = []Workspace{{Name: "default"}}
	}

	if sb.Timezone != nil {
		loc, err := time.LoadLocation(*sb.Timezone)
		if err != nil {
			diags = append(diags, errAt(attr("timezone"), "Unknown timezone",
				fmt.Sprintf("%q is not a known IANA timezone; use a name such as \"Europe/Berlin\" or \"UTC\".", *sb.Timezone)))
		} else {
			cfg.Timezone = loc
		}
	}
	if sb.Schedule != nil {
		cfg.Schedule = *sb.Schedule
		sched, err := CronParser.Parse(*sb.Schedule)
		if err != nil {
			diags = append(diags, errAt(attr("schedule"), "Invalid schedule",
				fmt.Sprintf("%v. Use five cron fields (minute hour day-of-month month day-of-week), e.g. \"0 2 * * *\", or a descriptor such as @nightly or @every 1h.", err)))
		} else {
			cfg.Cron = sched
		}
	}
	if sb.Policy != nil {
		cfg.Policy = *sb.Policy
	}
	if sb.Binary != nil {
		switch *sb.Binary {
		case "terraform", "tofu":
			cfg.Binary = *sb.Binary
		default:
			diags = append(diags, errAt(attr("binary"), "Unknown binary",
				fmt.Sprintf("binary is %q; use \"terraform\" or \"tofu\".", *sb.Binary)))
		}
	}
	if sb.Version != nil {
		cfg.Version = *sb.Version
		if _, err := version.NewConstraint(*sb.Version); err != nil {
			diags = append(diags, errAt(attr("version"), "Invalid version constraint",
				fmt.Sprintf("%v. Write a constraint such as \"~> 1.10\" or \">= 1.5, < 2\".", err)))
		}
	}
	for _, ib := range sb.Ignore {
		for _, rule := range ib.Attributes {
			ig, err := drift.ParseIgnore(rule)
			if err != nil {
				diags = append(diags, errAt(attrRange(ib.Body, "attributes", sb.DefRange), "Invalid ignore rule", err.Error()))
				continue
			}
			cfg.Ignore = append(cfg.Ignore, ig)
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

func errAt(r *hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r}
}

// DiagnosticsError carries a stack's diagnostics; its text names file,
// line and column.
type DiagnosticsError = hcldiag.Error

// attrRange finds where an attribute is written, for diagnostics.
func attrRange(body hcl.Body, name string, fallback hcl.Range) *hcl.Range {
	if r := hcldiag.AttrRange(body, name); r != nil {
		return r
	}
	return fallback.Ptr()
}

// skipDirs are never searched for stacks.
var skipDirs = map[string]bool{".git": true, ".terraform": true, "vendor": true, "node_modules": true, ".trueline": true}

// Discover finds every stack under root, a directory on disk. A stack
// whose stack.hcl is broken is returned with Err set; only a failure to
// walk root is an error.
func Discover(root string) ([]Stack, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("discover stacks: %w", err)
	}
	out, err := DiscoverFS(os.DirFS(root))
	if err != nil {
		return nil, fmt.Errorf("discover stacks in %s: %w", root, err)
	}
	for i := range out {
		out[i].Dir = filepath.Join(root, filepath.FromSlash(out[i].Path))
	}
	return out, nil
}

// DiscoverFS finds every stack in a file system, such as a commit's tree.
// Stack.Dir is left empty.
func DiscoverFS(fsys fs.FS) ([]Stack, error) {
	var out []Stack
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			return nil // an unreadable corner does not stop discovery
		}
		if d.IsDir() {
			if p != "." && skipDirs[d.Name()] {
				return fs.SkipDir
			}
			return nil
		}
		if d.Name() != FileName {
			return nil
		}
		out = append(out, LoadFS(fsys, path.Dir(p)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// LoadFS reads the stack at dir (slash-separated, relative to the root of fsys).
func LoadFS(fsys fs.FS, dir string) Stack {
	s := Stack{Path: dir}
	name := path.Join(dir, FileName)
	src, err := fs.ReadFile(fsys, name)
	if err != nil {
		s.Err = err
		return s
	}
	// Diagnostics name the file relative to the repository, as a user sees it.
	cfg, diags := Parse(name, src, fsys, dir)
	if diags.HasErrors() {
		s.Err = &DiagnosticsError{Diags: diags}
		return s
	}
	s.Config = cfg
	return s
}

// ErrNoStacks is returned by callers that need at least one stack.
var ErrNoStacks = errors.New("no stacks found: a stack is a directory with a stack.hcl")
