// Package doctor checks that a server configuration is usable before
// trueline serve depends on it: the data directory, the binaries every
// stack asks for, Git access to each repository, its stacks and policies,
// forge tokens, notification targets, and the credentials of every state
// backend whose records trueline writes. Each check gives one result, with
// the fix when it fails.
//
// The checks reach the outside world only through a Prober, so the
// orchestration here is the same whatever clients serve uses.
package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/stacks"
	"github.com/trueline/trueline/state"
)

// Status is how a check went.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn" // usable, but worth a look
	Fail Status = "fail" // serve would not work as configured
)

// Result is one check.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// Prober reaches what the configuration names. Each method returns a short
// description of what it found ("tofu 1.10.10 at /usr/bin/tofu"), or an
// error that says what failed; errors that carry a fix say it after
// "fix: ".
type Prober interface {
	// Binary resolves the binary a stack (or the server's default) asks for.
	Binary(ctx context.Context, name, constraint string) (string, error)
	// Git fetches a repository and returns its tree at the watched branch.
	Git(ctx context.Context, r config.Repository) (fs.FS, string, error)
	// Forge checks the repository's forge credentials can open pull requests.
	Forge(ctx context.Context, r config.Repository) (string, error)
	// Notify checks a notification target is reachable and accepts trueline.
	Notify(ctx context.Context, n config.Notify) (string, error)
	// State checks the credentials of a workspace's backend reach where
	// trueline writes its records.
	State(ctx context.Context, b state.Backend, workspace string) (string, error)
}

// Options configure Run.
type Options struct {
	ConfigFile string // for the first line
	Timeout    time.Duration
	// Progress, when set, is told each result as it is known.
	Progress func(Result)
	// Secrets are scrubbed from every detail.
	Secrets drift.Secrets
}

// DefaultTimeout bounds one check.
const DefaultTimeout = 30 * time.Second

// Run checks cfg and returns one result per check, in the order they ran.
func Run(ctx context.Context, cfg config.Config, p Prober, opts Options) []Result {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	d := &doctor{cfg: cfg, p: p, opts: opts}
	d.add(Result{Check: "config", Status: OK, Detail: fmt.Sprintf("%s: %s, %s", orDefault(opts.ConfigFile, "flags"),
		plural(len(cfg.Repositories), "repository", "repositories"), plural(len(cfg.Notify), "notification target", "notification targets"))})
	d.dataDir()
	d.probe(ctx, "binary", "", func(ctx context.Context) (string, error) {
		return p.Binary(ctx, cfg.Binary, cfg.BinaryVersion)
	}, "install it (make tools builds both), or set binary { path } in trueline.hcl")
	for _, r := range cfg.Repositories {
		d.repository(ctx, r)
	}
	for _, n := range cfg.Notify {
		d.probe(ctx, "notify "+n.Target(), "", func(ctx context.Context) (string, error) { return p.Notify(ctx, n) },
			"check the webhook URL or token the notify block names")
	}
	if len(cfg.Repositories) == 0 {
		d.add(Result{Check: "repositories", Status: Fail, Detail: "no repository is configured",
			Fix: `add a repository "name" { url = "..." } block to trueline.hcl`})
	}
	return d.results
}

// Usable reports whether every check passed (warnings allowed).
func Usable(results []Result) bool {
	for _, r := range results {
		if r.Status == Fail {
			return false
		}
	}
	return true
}

type doctor struct {
	cfg     config.Config
	p       Prober
	opts    Options
	results []Result
}

func (d *doctor) add(r Result) {
	r.Detail = d.opts.Secrets.Scrub(r.Detail)
	r.Fix = d.opts.Secrets.Scrub(r.Fix)
	d.results = append(d.results, r)
	if d.opts.Progress != nil {
		d.opts.Progress(r)
	}
}

// probe runs one bounded check; fix is the advice for a failure whose
// error gives none.
func (d *doctor) probe(ctx context.Context, name, prefix string, fn func(context.Context) (string, error), fix string) bool {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	got, err := fn(ctx)
	if err != nil {
		detail, own := splitFix(err.Error())
		if own != "" {
			fix = own
		}
		if errors.Is(err, context.DeadlineExceeded) {
			detail = fmt.Sprintf("no answer within %s: %s", d.opts.Timeout, detail)
		}
		d.add(Result{Check: name, Status: Fail, Detail: prefix + detail, Fix: fix})
		return false
	}
	d.add(Result{Check: name, Status: OK, Detail: prefix + got})
	return true
}

// splitFix separates "what failed; fix: what to do" as errors that know
// the fix write it.
func splitFix(msg string) (string, string) {
	if i := strings.LastIndex(msg, "fix: "); i > 0 {
		return strings.TrimRight(strings.TrimSpace(msg[:i]), ";:,"), strings.TrimSpace(msg[i+len("fix: "):])
	}
	return msg, ""
}

func (d *doctor) dataDir() {
	dir := d.cfg.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		d.add(Result{Check: "data dir", Status: Fail, Detail: err.Error(), Fix: "set data_dir in trueline.hcl to a directory trueline may create and write"})
		return
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		d.add(Result{Check: "data dir", Status: Fail, Detail: err.Error(), Fix: "make " + dir + " writable by the user trueline runs as"})
		return
	}
	_ = f.Close()
	_ = os.Remove(f.Name()) // a probe file; a leftover is harmless
	d.add(Result{Check: "data dir", Status: OK, Detail: dir + " is writable"})
}

// repository checks Git access, then every stack and policy at the
// branch's head, the binaries they ask for and their state backends, then
// the forge.
func (d *doctor) repository(ctx context.Context, r config.Repository) {
	var fsys fs.FS
	ok := d.probe(ctx, "git "+r.Name, "", func(ctx context.Context) (string, error) {
		f, head, err := d.p.Git(ctx, r)
		fsys = f
		return head, err
	}, gitFix(r))
	if r.Forge != "" && r.Forge != "none" {
		d.probe(ctx, "forge "+r.Name, r.Forge+": ", func(ctx context.Context) (string, error) { return d.p.Forge(ctx, r) }, forgeFix(r))
	}
	if !ok {
		return
	}
	all, err := stacks.DiscoverFS(fsys)
	switch {
	case err != nil:
		d.add(Result{Check: "stacks " + r.Name, Status: Fail, Detail: err.Error()})
		return
	case len(all) == 0:
		d.add(Result{Check: "stacks " + r.Name, Status: Warn, Detail: "no stack.hcl on branch " + r.Branch,
			Fix: "add a stack.hcl beside each root module trueline should plan (docs/stack-hcl.md)"})
		return
	}
	broken := 0
	for _, s := range all {
		if s.Err != nil {
			broken++
			d.add(Result{Check: "stack " + r.Name + "/" + s.Path, Status: Fail, Detail: s.Err.Error(),
				Fix: "fix " + s.Path + "/" + stacks.FileName + " at the line named"})
		}
	}
	d.add(Result{Check: "stacks " + r.Name, Status: statusIf(broken == 0), Detail: fmt.Sprintf("%s on %s, %d broken",
		plural(len(all), "stack", "stacks"), r.Branch, broken)})
	d.policies(r, fsys, all)
	d.binaries(ctx, r, all)
	d.backends(ctx, r, fsys, all)
}

func (d *doctor) policies(r config.Repository, fsys fs.FS, all []stacks.Stack) {
	named := map[string][]string{}
	for _, s := range all {
		if s.Config != nil && s.Config.Policy != "" {
			named[s.Config.Policy] = append(named[s.Config.Policy], s.Path)
		}
	}
	if len(named) == 0 {
		return
	}
	ps, err := policies.Load(fsys)
	if err != nil {
		d.add(Result{Check: "policies " + r.Name, Status: Fail, Detail: err.Error(), Fix: "fix the policy file at the line named"})
		return
	}
	var missing []string
	for name, users := range named {
		if ps[name] == nil {
			missing = append(missing, fmt.Sprintf("%q (used by %s)", name, strings.Join(users, ", ")))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		d.add(Result{Check: "policies " + r.Name, Status: Fail, Detail: "unknown policy " + strings.Join(missing, "; "),
			Fix: "declare it in " + policies.Dir + "/*.hcl or correct the stack's policy name"})
		return
	}
	d.add(Result{Check: "policies " + r.Name, Status: OK, Detail: plural(len(ps), "policy", "policies") + " read"})
}

// binaries resolves each distinct binary and constraint the stacks ask for.
func (d *doctor) binaries(ctx context.Context, r config.Repository, all []stacks.Stack) {
	type want struct{ name, constraint string }
	users := map[want][]string{}
	for _, s := range all {
		if s.Config == nil || (s.Config.Binary == "" && s.Config.Version == "") {
			continue
		}
		w := want{orDefault(s.Config.Binary, d.cfg.Binary), s.Config.Version}
		users[w] = append(users[w], s.Path)
	}
	wants := make([]want, 0, len(users))
	for w := range users {
		wants = append(wants, w)
	}
	sort.Slice(wants, func(i, j int) bool { return wants[i].name+wants[i].constraint < wants[j].name+wants[j].constraint })
	for _, w := range wants {
		w := w
		label := w.name
		if w.constraint != "" {
			label += " " + w.constraint
		}
		d.probe(ctx, "binary "+label, "", func(ctx context.Context) (string, error) {
			got, err := d.p.Binary(ctx, w.name, w.constraint)
			if err != nil {
				return "", fmt.Errorf("%w (asked for by %s)", err, strings.Join(users[w], ", "))
			}
			return got, nil
		}, "install a matching version, or change the stacks' version constraint")
	}
}

// backends checks each distinct state backend once: the same bucket and
// identity serve every stack that names them.
func (d *doctor) backends(ctx context.Context, r config.Repository, fsys fs.FS, all []stacks.Stack) {
	seen := map[string]bool{}
	for _, s := range all {
		if s.Config == nil {
			continue
		}
		b, err := state.Detect(fsys, s.Path, s.Config.BackendConfig)
		if err != nil {
			d.add(Result{Check: "state " + r.Name + "/" + s.Path, Status: Fail, Detail: err.Error()})
			continue
		}
		if b.Type == "local" {
			continue // beside the state file in serve's working directory: the data dir check covers it
		}
		key := identity(b)
		if seen[key] {
			continue
		}
		seen[key] = true
		ws := "default"
		if len(s.Config.Workspaces) > 0 {
			ws = s.Config.Workspaces[0].Name
		}
		d.probe(ctx, "state "+r.Name+"/"+s.Path, b.Type+": ", func(ctx context.Context) (string, error) {
			got, err := d.p.State(ctx, b, ws)
			if errors.Is(err, state.ErrLedgerOnly) {
				return "records of the " + b.Type + " backend stay in the ledger only", nil
			}
			return got, err
		}, "give trueline the credentials terraform uses for this backend (pass_env, secret blocks, or the backend's profile and assume_role)")
	}
}

// identity keys a backend by where records go and who writes them.
func identity(b state.Backend) string {
	m := maps.Clone(b.Config)
	delete(m, "key")          // one bucket and identity, whatever the key
	raw, _ := json.Marshal(m) // maps of strings, bools and numbers: sorted keys, never an error
	return b.Type + string(raw)
}

func gitFix(r config.Repository) string {
	switch {
	case r.SSHKeyFile != "":
		return "check that the key " + r.SSHKeyFile + " is a deploy key of the repository, and that known_hosts holds the host's key (ssh-keyscan HOST)"
	case r.Token.IsSet():
		return "check that the token (" + r.Token.Source + ") can read the repository and that branch " + r.Branch + " exists"
	case r.GitHubApp != nil:
		return "check that the GitHub App is installed on the repository with contents: read"
	}
	return "give the repository credentials (token_env, ssh { key_file }) if it is private, and check the URL and branch " + r.Branch
}

func forgeFix(r config.Repository) string {
	switch r.Forge {
	case "github":
		return "the token needs contents and pull requests read/write (classic: the repo scope)"
	case "gitlab":
		return "the token needs the api scope and Developer role on the project"
	case "gitea":
		return "the token needs repository read/write (write:repository)"
	}
	return ""
}

// Summary is the last line of the text output.
func Summary(results []Result) string {
	fails := 0
	for _, r := range results {
		if r.Status == Fail {
			fails++
		}
	}
	if fails == 0 {
		return "Everything trueline needs is usable."
	}
	return fmt.Sprintf("%d of %d checks failed: trueline serve would not work as configured.", fails, len(results))
}

// Line formats one result for a terminal.
func Line(r Result, width int) string {
	label := map[Status]string{OK: "ok  ", Warn: "warn", Fail: "FAIL"}[r.Status]
	s := fmt.Sprintf("%s  %-*s  %s\n", label, width, r.Check, r.Detail)
	if r.Fix != "" && r.Status != OK {
		s += fmt.Sprintf("      %*s  fix: %s\n", width, "", r.Fix)
	}
	return s
}

// WriteJSON prints {"usable": bool, "checks": [...]}.
func WriteJSON(w io.Writer, results []Result) error {
	if results == nil {
		results = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Usable bool     `json:"usable"`
		Checks []Result `json:"checks"`
	}{Usable(results), results})
}

func statusIf(ok bool) Status {
	if ok {
		return OK
	}
	return Fail
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return filepath.ToSlash(s)
}
