// Package stacks finds the stacks of a repository and reads their stack.hcl.
//
// A stack is a directory holding a Terraform root module and a stack.hcl:
//
//	stack {
//	  workspaces = ["default"]            # or workspace blocks, below
//	  schedule   = "0 2 * * *"            # cron, a descriptor such as @daily, or "nightly" (needs a window)
//	  window     = "01:00-05:00"          # run once a day at the workspace's slot in this window
//	  timezone   = "Europe/Berlin"        # default UTC
//	  policy     = "guarded"              # a policy from policies/*.hcl
//	  binary     = "tofu"                 # terraform (default) or tofu
//	  version    = "~> 1.10"              # a version constraint for the binary
//	  backend_config = ["backend.hcl"]    # -backend-config files or key=value
//	  watch      = ["../shared/**"]       # what the code reads that cannot be found statically
//	  mode       = "refresh-only"         # or "full" (default): see Config.Mode
//	  account    = "aws-prod"             # the cloud account its API calls count against
//	  ignore {
//	    attributes = ["sandbox_autoscaling_group.*.desired_capacity"]
//	  }
//	  workspace "staging" {
//	    var_files = ["staging.tfvars"]
//	    env       = { TF_VAR_size = "small" }
//	    mode      = "full"                # overrides the stack's mode
//	    account   = "aws-staging"         # overrides the stack's account
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
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/robfig/cron/v3"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/hcldiag"
	"github.com/trueline/trueline/scheduler"
	"github.com/zclconf/go-cty/cty"
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
	Cron          cron.Schedule // nil when Schedule is empty; every day for "nightly"
	Policy        string        // empty: report only
	Binary        string        // "terraform" or "tofu"; empty: the server's default
	Version       string        // version constraint; empty: any
	BackendConfig []string
	Ignore        []drift.Ignore
	// CreateWorkspaces lets runs create workspaces the backend does not
	// have yet; by default a missing workspace is an error.
	CreateWorkspaces bool
	// LockTimeout is how long plans and applies wait for a state lock;
	// zero: the server's setting.
	LockTimeout time.Duration
	// Watch are doublestar globs, relative to the stack directory, of
	// files the stack reads that Dependencies cannot find in the code
	// (file(var.x), a provider reading a path): serve checks them out and
	// a commit touching them plans the stack.
	Watch []string
	// VersionDeclared is where stack.hcl sets version
	// ("stacks/web/stack.hcl:4"), for errors about it.
	VersionDeclared string
	// Mode is how the stack's workspaces are planned: drift.Full, or
	// drift.RefreshOnly (drift alone, cheaper where pending code does not
	// matter); empty when stack.hcl does not say, and then the policy's
	// mode, or full, applies. Workspace.Mode is what a run uses.
	Mode drift.Mode
	// Window, when set, runs each workspace once on every day Cron picks,
	// at the workspace's slot in the window (scheduler.Slots), in Timezone;
	// nil: at Cron's own times.
	Window *scheduler.Window
	// Account names the cloud account whose API rate limit the stack's
	// runs count against ("aws-prod"); trueline.hcl's budget of that
	// account spreads them. Empty: none. Workspace.Account is what a run
	// uses.
	Account string
}

// Workspace is one state of a stack.
type Workspace struct {
	Name     string
	VarFiles []string // relative to the stack directory
	Env      map[string]string
	// Declared is where stack.hcl declares it ("stacks/web/stack.hcl:3"),
	// for errors about it.
	Declared string
	// Mode is the workspace block's mode, else the stack's; empty when
	// neither says (the policy's mode, or full, applies).
	Mode drift.Mode
	// Account is the workspace block's account, else the stack's.
	Account string
}

// accountName is what an account may be called: one label of trueline.hcl's
// budget blocks, and a metrics label value.
var accountName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// ValidAccount reports whether name may name an account: 1 to 64 letters,
// digits, '.', '_', ':' or '-', starting with a letter or a digit.
func ValidAccount(name string) bool { return accountName.MatchString(name) }

// CronParser accepts five fields and descriptors such as @daily. Read
// schedules from files with ParseCron, which also refuses ones that never fire.
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Nightly is the schedule that runs each workspace once a day inside the
// stack's window.
const Nightly = "nightly"

// everyDay picks every day for "nightly"; the window gives the time.
var everyDay, _ = CronParser.Parse("@daily")

// ErrNeverFires is wrapped by ParseCron's error for a schedule with no time
// within a year, such as "0 0 30 2 *" (30 February).
var ErrNeverFires = errors.New("never fires: no time matches within a year")

// ParseCron parses a schedule of stack.hcl, a policy or trueline.hcl. It
// refuses a schedule that does not fire within a year: robfig/cron's Next
// returns the zero time for one that never fires, which would read as
// "due now" forever.
func ParseCron(spec string) (cron.Schedule, error) {
	return parseCron(spec, time.Now())
}

func parseCron(spec string, now time.Time) (cron.Schedule, error) {
	// robfig/cron v3.0.1 slices out of range on a TZ= prefix with no schedule after it.
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		return nil, fmt.Errorf("%q has a timezone but no schedule; write it like \"CRON_TZ=Europe/Berlin 0 2 * * *\"", spec)
	}
	sched, err := CronParser.Parse(spec)
	if err != nil {
		return nil, err
	}
	// Four consecutive years, so that whether a schedule is accepted does not
	// depend on the day it is read: 29 February alone fires once in four.
	for i := range 4 {
		from := now.AddDate(i, 0, 0)
		next := sched.Next(from)
		switch {
		case next.IsZero():
			return nil, fmt.Errorf("%w: check that the day of month exists in the month (there is no 30 February or 31 April)", ErrNeverFires)
		case next.After(from.AddDate(1, 0, 0)):
			return nil, fmt.Errorf("%w of %s (the next is %s); a schedule must fire at least once a year",
				ErrNeverFires, from.Format(time.DateOnly), next.Format(time.DateOnly))
		}
	}
	return sched, nil
}

// CronDetail is the detail of a diagnostic for ParseCron's error: the
// error and how to write a schedule, with example as the cron to show.
func CronDetail(err error, example string) string {
	if errors.Is(err, ErrNeverFires) {
		return err.Error() + "."
	}
	return fmt.Sprintf("%v. Use five cron fields (minute hour day-of-month month day-of-week), e.g. %q, or a descriptor such as @daily or @every 1h.", err, example)
}

type fileSchema struct {
	Stacks []stackBlock `hcl:"stack,block"`
}

type stackBlock struct {
	Workspaces     []string         `hcl:"workspaces,optional"`
	WorkspaceBlock []workspaceBlock `hcl:"workspace,block"`
	Schedule       *string          `hcl:"schedule,optional"`
	Window         *string          `hcl:"window,optional"`
	Timezone       *string          `hcl:"timezone,optional"`
	Policy         *string          `hcl:"policy,optional"`
	Binary         *string          `hcl:"binary,optional"`
	Version        *string          `hcl:"version,optional"`
	BackendConfig  []string         `hcl:"backend_config,optional"`
	Ignore         []ignoreBlock    `hcl:"ignore,block"`
	Create         *bool            `hcl:"create_workspaces,optional"`
	LockTimeout    *string          `hcl:"lock_timeout,optional"`
	Watch          []string         `hcl:"watch,optional"`
	Mode           *string          `hcl:"mode,optional"`
	Account        *string          `hcl:"account,optional"`
	Body           hcl.Body         `hcl:",body"`
	DefRange       hcl.Range        `hcl:",def_range"`
}

type workspaceBlock struct {
	Name     string            `hcl:"name,label"`
	VarFiles []string          `hcl:"var_files,optional"`
	Env      map[string]string `hcl:"env,optional"`
	Mode     *string           `hcl:"mode,optional"`
	Account  *string           `hcl:"account,optional"`
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
			Detail:  `A stack.hcl needs one stack block, e.g. stack { schedule = "@daily" }.`,
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
	mode := func(body hcl.Body, v *string, def hcl.Range) drift.Mode {
		if v == nil {
			return ""
		}
		m, err := drift.ParseMode(*v)
		if err != nil {
			diags = append(diags, errAt(attrRange(body, "mode", def), "Invalid mode", err.Error()+"."))
		}
		return m
	}
	cfg.Mode = mode(sb.Body, sb.Mode, sb.DefRange)
	account := func(body hcl.Body, v *string, def hcl.Range) string {
		if v == nil {
			return ""
		}
		if !accountName.MatchString(*v) {
			diags = append(diags, errAt(attrRange(body, "account", def), "Invalid account",
				fmt.Sprintf("account = %q; name the cloud account in 1 to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or a digit, as trueline.hcl's budget block names it (e.g. \"aws-prod\").", *v)))
			return ""
		}
		return *v
	}
	cfg.Account = account(sb.Body, sb.Account, sb.DefRange)

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
		cfg.Workspaces = append(cfg.Workspaces, Workspace{Name: name, Declared: where(attr("workspaces")), Mode: cfg.Mode, Account: cfg.Account})
	}
	for _, wb := range sb.WorkspaceBlock {
		if seen[wb.Name] {
			diags = append(diags, errAt(wb.DefRange.Ptr(), "Duplicate workspace",
				fmt.Sprintf("Workspace %q is declared twice; declare it once, either in workspaces or as a block.", wb.Name)))
			continue
		}
		seen[wb.Name] = true
		varFiles := attrRange(wb.Body, "var_files", wb.DefRange)
		for _, vf := range wb.VarFiles {
			isDir := func() {
				diags = append(diags, errAt(varFiles, "Var file is a directory",
					fmt.Sprintf("Var file %q is a directory in %s; name a .tfvars file.", vf, dir)))
			}
			switch c, inRepo := path.Clean(vf), path.Join(dir, vf); {
			// Terraform reads var files on the runner, relative to the
			// stack's checkout: one outside the repository reads whatever
			// happens to be on that machine. Shared var files elsewhere in
			// the repository (../../vars/prod.tfvars) are fine.
			case path.IsAbs(c) || filepath.IsAbs(vf) || inRepo == ".." || strings.HasPrefix(inRepo, "../"):
				diags = append(diags, errAt(varFiles, "Var file outside the repository",
					fmt.Sprintf("Var file %q is not inside the repository; name a file in it, relative to the stack directory, e.g. \"%s.tfvars\" or \"../../vars/%s.tfvars\".", vf, wb.Name, wb.Name)))
				continue
			case c == ".":
				isDir()
				continue
			case fsys == nil:
				continue
			}
			fi, err := fs.Stat(fsys, path.Join(dir, vf))
			switch {
			case err != nil:
				diags = append(diags, errAt(varFiles, "Missing var file",
					fmt.Sprintf("Var file %q does not exist in %s; var files are relative to the stack directory.", vf, path.Join(dir))))
			case fi.IsDir():
				isDir()
			}
		}
		for _, k := range sortedKeys(wb.Env) {
			if reason := reservedEnv(k); reason != "" {
				diags = append(diags, errAt(envKeyRange(wb.Body, k, wb.DefRange), "Reserved environment variable",
					fmt.Sprintf("env may not set %s: %s. Remove it from workspace %q; pass inputs as TF_VAR_name or var_files.", k, reason, wb.Name)))
			}
		}
		ws := Workspace{Name: wb.Name, VarFiles: wb.VarFiles, Env: wb.Env, Declared: where(wb.DefRange.Ptr()), Mode: cfg.Mode, Account: cfg.Account}
		if m := mode(wb.Body, wb.Mode, wb.DefRange); m != "" {
			ws.Mode = m
		}
		if a := account(wb.Body, wb.Account, wb.DefRange); a != "" {
			ws.Account = a
		}
		cfg.Workspaces = append(cfg.Workspaces, ws)
	}
	if len(cfg.Workspaces) == 0 {
		cfg.Workspaces = []Workspace{{Name: "default", Declared: where(sb.DefRange.Ptr()), Mode: cfg.Mode, Account: cfg.Account}}
	}
	if sb.Create != nil {
		cfg.CreateWorkspaces = *sb.Create
	}
	if sb.LockTimeout != nil {
		d, err := time.ParseDuration(*sb.LockTimeout)
		if err != nil || d < 0 {
			diags = append(diags, errAt(attr("lock_timeout"), "Invalid lock timeout",
				fmt.Sprintf("lock_timeout = %q; write a positive duration such as \"5m\" or \"30s\"; leave it out for the server's lock_timeout.", *sb.LockTimeout)))
		} else {
			cfg.LockTimeout = d
		}
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
		if *sb.Schedule == Nightly {
			if sb.Window == nil {
				diags = append(diags, errAt(attr("schedule"), "Nightly schedule without a window",
					`schedule = "nightly" runs each workspace once a day inside a window; add window = "01:00-05:00" (in the stack's timezone).`))
			}
			cfg.Cron = everyDay
		} else if sched, err := ParseCron(*sb.Schedule); err != nil {
			diags = append(diags, errAt(attr("schedule"), "Invalid schedule", CronDetail(err, "0 2 * * *")))
		} else {
			cfg.Cron = sched
		}
	}
	if sb.Window != nil {
		w, err := scheduler.ParseWindow(*sb.Window)
		switch {
		case err != nil:
			diags = append(diags, errAt(attr("window"), "Invalid window", err.Error()+"."))
		case sb.Schedule == nil:
			diags = append(diags, errAt(attr("window"), "Window without a schedule",
				`window sets the time of day of a schedule; add schedule = "nightly" for every day, or a cron that picks the days, e.g. "0 0 * * 1-5".`))
		default:
			cfg.Window = &w
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
		cfg.VersionDeclared = where(attr("version"))
		if _, err := version.NewConstraint(*sb.Version); err != nil {
			diags = append(diags, errAt(attr("version"), "Invalid version constraint",
				fmt.Sprintf("%v. Write a constraint such as \"~> 1.10\" or \">= 1.5, < 2\".", err)))
		}
	}
	for i, w := range sb.Watch {
		if why := badWatch(dir, w); why != "" {
			diags = append(diags, errAt(elemRange(sb.Body, "watch", i, sb.DefRange), "Invalid watch glob",
				fmt.Sprintf("watch glob %q %s. Write a glob relative to the stack directory that stays inside the repository, e.g. \"../shared/**\" or \"templates/*.tpl\".", w, why)))
			continue
		}
		cfg.Watch = append(cfg.Watch, w)
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

// badWatch says what is wrong with a watch glob of the stack in dir, or "".
func badWatch(dir, w string) string {
	switch joined := path.Join(dir, w); {
	case w == "":
		return "is empty"
	case path.IsAbs(w) || filepath.IsAbs(w):
		return "is absolute: serve checks out only the repository"
	case joined == ".." || strings.HasPrefix(joined, "../"):
		return "leaves the repository"
	case strings.Contains(w, "\\"):
		// Git paths use slashes; a backslash would escape the next character.
		return "holds a backslash; separate directories with /"
	case !doublestar.ValidatePattern(joined):
		return "is not a valid glob (check the brackets and braces)"
	case dotdot(joined) && strings.ContainsAny(joined, "{}"):
		// path.Join cannot see a ".." inside {a,..}: it could leave the repository.
		return "uses .. inside braces"
	}
	return ""
}

// elemRange finds where the i-th element of a list attribute is written,
// for diagnostics; the attribute, or fallback, when it cannot.
func elemRange(body hcl.Body, name string, i int, fallback hcl.Range) *hcl.Range {
	r := attrRange(body, name, fallback)
	content, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
	if content == nil || content.Attributes[name] == nil {
		return r
	}
	elems, diags := hcl.ExprList(content.Attributes[name].Expr)
	if diags.HasErrors() || i >= len(elems) {
		return r
	}
	return elems[i].Range().Ptr()
}

// where names a place in a file as file:line.
func where(r *hcl.Range) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line)
}

// ReservedEnv says why neither a stack nor the server's secrets may set an
// environment variable for terraform, or "".
func ReservedEnv(name string) string { return reservedEnv(name) }

// reservedEnv says why a stack may not set an environment variable, or "".
func reservedEnv(name string) string {
	switch n := strings.ToUpper(name); {
	case n == "TF_DATA_DIR":
		return "trueline keeps each workspace's providers, modules and backend in a data directory of its own"
	case n == "TF_CLI_CONFIG_FILE", n == "TF_PLUGIN_CACHE_DIR":
		return "the server's CLI configuration and shared plugin cache apply to every stack (trueline.hcl cli_config)"
	case n == "PATH":
		return "it would change which programs terraform and its providers run"
	case strings.HasPrefix(n, "LD_"), strings.HasPrefix(n, "DYLD_"):
		return "dynamic linker variables change the code terraform and its providers load"
	case n == "TF_CLI_ARGS", strings.HasPrefix(n, "TF_CLI_ARGS_"):
		return "extra command-line arguments could change what is planned and applied (-state, -lock=false, -var-file) behind the reviewed plan"
	case n == "TF_WORKSPACE":
		return "the workspace is chosen by stack.hcl; this would plan another one"
	}
	return ""
}

// envKeyRange finds where a key of a workspace's env map is written, for
// diagnostics; the env attribute, or fallback, when it cannot.
func envKeyRange(body hcl.Body, key string, fallback hcl.Range) *hcl.Range {
	content, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "env"}}})
	if content == nil || content.Attributes["env"] == nil {
		return fallback.Ptr()
	}
	expr := content.Attributes["env"].Expr
	pairs, diags := hcl.ExprMap(expr)
	if diags.HasErrors() {
		return expr.Range().Ptr()
	}
	for _, kv := range pairs {
		if v, diags := kv.Key.Value(nil); !diags.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() && v.AsString() == key {
			return kv.Key.Range().Ptr()
		}
	}
	return expr.Range().Ptr()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
// whose stack.hcl is broken is returned with Err set, and so is a
// directory that cannot be read (stacks in it would otherwise go missing
// without a word); only a failure to read root is an error.
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

// DiscoverFS finds every stack in a file system, such as a commit's tree,
// as Discover does. Stack.Dir is left empty.
func DiscoverFS(fsys fs.FS) ([]Stack, error) {
	var out []Stack
	unreadable := map[string]bool{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			// A directory that cannot be read does not stop discovery, but
			// the stacks in it must not vanish: it stands in for them, as a
			// stack with the error, and the run of it fails saying why.
			unreadable[p] = true
			out = append(out, Stack{Path: p, Err: fmt.Errorf("stacks under %s cannot be found: %w", p, err)})
			return nil
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
		if unreadable[path.Dir(p)] {
			return nil // listed in part: the directory's error stands for its stack
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
