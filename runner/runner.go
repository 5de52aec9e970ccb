// Package runner runs terraform or tofu for one workspace of a stack: init
// (only when what init consumes changed), workspace selection, plan to a saved
// plan file, show -json when the plan has changes, and apply of exactly that
// saved plan. Working directories persist per workspace between runs, so a
// warm, in-sync workspace costs one terraform process.
package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"
	"github.com/trueline/trueline/run"
)

// Runner runs terraform for workspaces. One Runner is shared by all
// concurrent runs of a process.
type Runner struct {
	Binary Binary
	// WorkDir holds one persistent directory per workspace (its TF_DATA_DIR,
	// init fingerprint and plan files).
	WorkDir string
	// CLIConfig is passed as TF_CLI_CONFIG_FILE when set.
	CLIConfig string
	// Env is added to the environment of every terraform process.
	Env map[string]string
	// PassEnv names the variables of trueline's own environment that
	// terraform inherits (a trailing "*" matches a prefix); nil means
	// DefaultPassEnv. TRUELINE_ variables never pass.
	PassEnv []string
	// Grace is how long terraform may take to stop after an interrupt
	// before it is killed. Zero means 30 seconds.
	Grace time.Duration
	// LogLimit caps the log kept per run, in bytes. Zero means 256 KiB.
	LogLimit int
	// GitRefTTL is how long the commit a Git module's branch resolved to
	// is reused by other runs (one lookup for every workspace calling the
	// module); zero means DefaultGitRefTTL, negative: every run looks up.
	GitRefTTL time.Duration

	// cacheMu guards the shared plugin cache: init holds it exclusively,
	// every other command shares it. See session.init.
	cacheMu   sync.RWMutex
	cacheOnce sync.Once
	cacheDir  string
	processes atomic.Int64

	refMu      sync.Mutex
	refs       map[string]*refLookup
	gitLookups atomic.Int64
}

// Job is one workspace of one stack at one checkout.
type Job struct {
	// Key identifies the workspace across runs, e.g. "repo/stacks/web/default";
	// it names the persistent working directory.
	Key       string
	Dir       string // the stack's root module
	Workspace string // "" means "default"
	VarFiles  []string
	// BackendConfig holds -backend-config values: files (relative to Dir) or key=value.
	BackendConfig []string
	Env           map[string]string
	// CreateWorkspace lets the run create Workspace when the backend does
	// not have it; otherwise a missing workspace is ErrNoWorkspace, since a
	// typo would plan creating everything.
	CreateWorkspace bool
	// LockTimeout is how long plan and apply wait for a state lock someone
	// else holds (a CI apply); zero: they do not wait.
	LockTimeout time.Duration
	// RefreshOnly plans with -refresh-only: what changed outside terraform,
	// without comparing the code. Such a plan only updates state; it is
	// never applied (see reconcile).
	RefreshOnly bool
	// OnLockWait, when set, is told when a command starts waiting for the
	// state lock (true) and when the wait ends (false).
	OnLockWait func(waiting bool)
	// Variables are terraform variables from the server's secrets (never
	// from Git); they win over the var files.
	Variables map[string]string
	// Git, when set, are the credentials init's Git module fetches and the
	// lookups of module branches use (see GitAuth).
	Git *GitAuth
	// Parallelism is terraform's -parallelism for plan and apply: how many
	// API calls go at once; zero: terraform's default (10).
	Parallelism int
}

// ErrNoWorkspace says that the backend has no state of the job's workspace.
var ErrNoWorkspace = errors.New("the backend has no such workspace")

// Plan is the outcome of planning one job. Call Discard when done with it:
// the saved plan file must not outlive the run.
type Plan struct {
	Job     Job
	Changes bool
	File    string       // the saved plan; empty after Discard
	JSON    *tfjson.Plan // nil when the plan has no changes
	Log     string
	Init    InitInfo
	Timing  Timing
}

// InitInfo says whether init ran and why.
type InitInfo struct {
	Ran    bool
	Reason string
}

// Timing splits a run's wall time by command.
type Timing struct {
	Init, Workspace, Plan, Show time.Duration
	// LockWait is the part of the above spent waiting for the state lock.
	LockWait time.Duration
}

// Processes reports how many terraform commands this runner has started.
func (r *Runner) Processes() int64 { return r.processes.Load() }

// workdir returns the persistent directory of a job, created 0700 so that
// saved plans (which can hold secrets) are readable by this user only.
func (r *Runner) workdir(job Job) (string, error) {
	dir := filepath.Join(r.WorkDir, DirName(job.Key))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	return dir, nil
}

var safeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// DirName is the name of a job key's persistent directory under WorkDir:
// readable, and unique by a hash of the whole key.
func DirName(key string) string {
	sum := sha256.Sum256([]byte(key))
	name := safeName.ReplaceAllString(key, "_")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	return name + "-" + hex.EncodeToString(sum[:4])
}

// Cleanup tidies a working directory root. With leftovers (call it only
// when no run is in progress, i.e. at start) it removes saved plans,
// variable files and Git credential directories left by a process that
// died: they hold secrets in clear. When keep is not
// nil it removes the directories of job keys not in keep (workspaces that
// no longer exist). It says how many of each went.
func Cleanup(root string, keep map[string]bool, leftovers bool) (plans, dirs int, err error) {
	entries, err := os.ReadDir(root)
	if os.IsNotExist(err) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("clean up %s: %w", root, err)
	}
	wanted := map[string]bool{}
	for k := range keep {
		wanted[DirName(k)] = true
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if keep != nil && !wanted[e.Name()] {
			if err := os.RemoveAll(dir); err != nil {
				return plans, dirs, fmt.Errorf("clean up %s: %w", dir, err)
			}
			dirs++
			continue
		}
		if !leftovers {
			continue
		}
		saved, _ := filepath.Glob(filepath.Join(dir, "run-*.tfplan"))
		vars, _ := filepath.Glob(filepath.Join(dir, "variables-*.tfvars.json"))
		creds, _ := filepath.Glob(filepath.Join(dir, "git-*"))
		for _, f := range append(append(saved, vars...), creds...) {
			if err := os.RemoveAll(f); err != nil {
				return plans, dirs, fmt.Errorf("clean up %s: %w", f, err)
			}
			plans++
		}
	}
	return plans, dirs, nil
}

type session struct {
	r   *Runner
	job Job
	wd  string
	tf  *tfexec.Terraform
	env map[string]string // terraform's environment, without Git credentials
	log *capped
	out *lockWatch // the log, timing waits for the state lock
	// refs are the commits the job's Git module branches resolved to
	// before init; init records them, not a later answer, so that a
	// branch that moves during init is fetched again next time.
	refs map[string]string
}

func (r *Runner) session(job Job) (*session, error) {
	if job.Workspace == "" {
		job.Workspace = "default"
	}
	wd, err := r.workdir(job)
	if err != nil {
		return nil, err
	}
	tf, err := tfexec.NewTerraform(job.Dir, r.Binary.Path)
	if err != nil {
		return nil, err
	}
	// Only allowlisted variables of trueline's environment reach terraform:
	// the rest holds trueline's own secrets. See DefaultPassEnv.
	env := r.processEnv(os.Environ(), job, filepath.Join(wd, "data"))
	if err := tf.SetEnv(tfexec.CleanEnv(env)); err != nil {
		return nil, err
	}
	grace := r.Grace
	if grace == 0 {
		grace = 30 * time.Second
	}
	if err := tf.SetWaitDelay(grace); err != nil {
		return nil, err
	}
	limit := r.LogLimit
	if limit == 0 {
		limit = 256 << 10
	}
	log := newCapped(limit)
	out := &lockWatch{w: log, notify: job.OnLockWait}
	tf.SetStdout(out)
	tf.SetStderr(out)
	return &session{r: r, job: job, wd: wd, tf: tf, env: env, log: log, out: out}, nil
}

func (s *session) note(format string, args ...any) {
	_, _ = fmt.Fprintf(s.log, "trueline: "+format+"\n", args...) // writes to a capped log never fail
}

// Plan initialises the job's working directory if needed, selects its
// workspace and plans it to a saved plan file.
func (r *Runner) Plan(ctx context.Context, job Job) (*Plan, error) {
	s, err := r.session(job)
	if err != nil {
		return nil, err
	}
	p := &Plan{Job: s.job}
	fail := func(err error) (*Plan, error) {
		p.Timing.LockWait = s.out.waited()
		p.Log = s.log.String()
		p.Discard()
		return p, err
	}

	// The Git credentials exist on disk only while init and the branch
	// lookups may need them.
	gitEnv, closeGit, err := s.openGit()
	if err != nil {
		return fail(run.Fail(run.Init, err))
	}
	reason, moved, err := s.initNeeded(ctx, gitEnv)
	if err == nil && reason != "" {
		err = s.init(ctx, reason, moved, gitEnv, p)
	}
	closeGit()
	if err != nil {
		return fail(err)
	}
	if err := s.selectWorkspace(ctx, p); err != nil {
		return fail(err)
	}

	p.File = filepath.Join(s.wd, fmt.Sprintf("run-%d.tfplan", time.Now().UnixNano()))
	err = s.plan(ctx, p)
	if err != nil && !p.Init.Ran && needsInit(err) {
		// The fingerprint missed something init depends on; init once and retry.
		s.note("plan says the working directory needs init; running init and planning again")
		gitEnv, closeGit, ierr := s.openGit()
		if ierr == nil {
			ierr = s.init(ctx, "plan asked for it", nil, gitEnv, p)
			closeGit()
		}
		if ierr != nil {
			return fail(ierr)
		}
		err = s.plan(ctx, p)
	}
	if err != nil {
		return fail(run.Fail(run.Plan, fmt.Errorf("plan: %w", cleanErr(err))))
	}
	if err := os.Chmod(p.File, 0o600); err != nil {
		return fail(err)
	}
	if p.Changes {
		start := time.Now()
		r.processes.Add(1)
		unlock := r.lockCache(false)
		// show -json holds every value in clear, sensitive ones included:
		// it is parsed, never logged. Its stderr (errors) still is.
		s.tf.SetStdout(io.Discard)
		plan, err := s.tf.ShowPlanFile(ctx, p.File)
		s.tf.SetStdout(s.out)
		unlock()
		p.Timing.Show = time.Since(start)
		if err != nil {
			return fail(run.Fail(run.Show, fmt.Errorf("show: %w", cleanErr(err))))
		}
		p.JSON = plan
	}
	p.Timing.LockWait = s.out.waited()
	p.Log = s.log.String()
	return p, nil
}

func (s *session) plan(ctx context.Context, p *Plan) error {
	varFiles := s.job.VarFiles
	if len(s.job.Variables) > 0 {
		// terraform-exec passes no TF_VAR_ environment; the server's
		// secrets reach terraform in a var file of the workspace's private
		// directory, last so that they win, removed when the plan is made
		// (the saved plan holds the values an apply needs).
		vf, err := s.writeVariables()
		if err != nil {
			return err
		}
		defer func() { _ = os.Remove(vf) }() // the workspace's plan files go at start, if this fails
		varFiles = append(append([]string(nil), varFiles...), vf)
	}
	start := time.Now()
	s.r.processes.Add(1)
	unlock := s.r.lockCache(false)
	changes, err := s.tf.Plan(ctx, planOptions(p.File, s.job.RefreshOnly, varFiles, s.job.LockTimeout, s.job.Parallelism)...)
	unlock()
	p.Timing.Plan += time.Since(start)
	p.Changes = changes
	return err
}

// writeVariables writes the job's variables to a 0600 JSON var file in the
// working directory (0700) and returns its path.
func (s *session) writeVariables() (string, error) {
	b, err := json.Marshal(s.job.Variables)
	if err != nil {
		return "", fmt.Errorf("variables: %w", err)
	}
	f, err := os.CreateTemp(s.wd, "variables-*.tfvars.json")
	if err != nil {
		return "", fmt.Errorf("variables: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name()) // it may hold part of a secret
		return "", fmt.Errorf("variables: %w", err)
	}
	return f.Name(), nil
}

// Apply applies exactly the saved plan file of p, nothing else: no variables,
// no refresh, no second plan. The plan must not have been discarded.
func (r *Runner) Apply(ctx context.Context, p *Plan) (log string, err error) {
	if p.File == "" {
		return "", errors.New("apply: the saved plan was discarded")
	}
	if p.Job.RefreshOnly {
		// Applying it would only write the refreshed values into the state,
		// accepting the drift without a word.
		return "", run.Fail(run.Apply, errors.New("apply: a refresh-only plan is never applied; plan in full to apply"))
	}
	s, err := r.session(p.Job)
	if err != nil {
		return "", err
	}
	r.processes.Add(1)
	unlock := r.lockCache(false)
	err = s.tf.Apply(ctx, applyOptions(p.File, p.Job.LockTimeout, p.Job.Parallelism)...)
	unlock()
	p.Timing.LockWait += s.out.waited()
	if err != nil {
		return s.log.String(), run.Fail(run.Apply, fmt.Errorf("apply: %w", cleanErr(err)))
	}
	return s.log.String(), nil
}

// ForceUnlock releases a state lock of the job's workspace by its ID, in
// the job's persistent working directory (which must have been initialised
// by an earlier run): for a lock a killed apply left behind.
func (r *Runner) ForceUnlock(ctx context.Context, job Job, lockID string) (log string, err error) {
	s, err := r.session(job)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(s.wd, "data")); err != nil {
		return "", fmt.Errorf("force-unlock: %s has never been initialised here; no run of it used this data directory", job.Key)
	}
	if err := s.selectWorkspace(ctx, &Plan{}); err != nil {
		return s.log.String(), err
	}
	r.processes.Add(1)
	if err := s.tf.ForceUnlock(ctx, lockID); err != nil {
		return s.log.String(), fmt.Errorf("force-unlock: %w", cleanErr(err))
	}
	return s.log.String(), nil
}

// Discard deletes the saved plan file.
func (p *Plan) Discard() {
	if p.File != "" {
		// Best effort: the file is private (0600) to the runner's working
		// directory, and Discard has no one to report to.
		_ = os.Remove(p.File)
		p.File = ""
	}
}

func (s *session) fingerprintPath() string { return filepath.Join(s.wd, "init.fingerprint") }

// initNeeded compares what init would consume now with what it consumed
// last time, and returns why init must run, or "" when it need not, and
// the Git sources whose branches moved (init must fetch them again). The
// branches are resolved (into s.refs) whether or not init runs: a cold
// init records them too.
func (s *session) initNeeded(ctx context.Context, gitEnv map[string]string) (string, []string, error) {
	hash, sources, err := initFingerprint(s.r.Binary, s.r.CLIConfig, s.job.Dir, s.job.BackendConfig)
	if err != nil {
		return "", nil, fmt.Errorf("init fingerprint: %w", err)
	}
	b, oldErr := os.ReadFile(s.fingerprintPath())
	old := parseFingerprint(string(b))
	s.refs = s.resolveRefs(ctx, sources, old.Git, gitEnv)
	if _, err := os.Stat(filepath.Join(s.wd, "data")); err != nil {
		return "new working directory", nil, nil
	}
	if oldErr != nil {
		return "no init fingerprint", nil, nil
	}
	now := fingerprint{Hash: hash, Git: s.refs}
	moved := now.moved(old)
	switch {
	case old.Hash != hash:
		return "providers, modules, backend or binary changed", moved, nil
	case len(moved) > 0:
		var names []string
		for _, k := range moved {
			g, _ := parseGitSource("git::" + k)
			names = append(names, g.String())
		}
		return "the branch of a Git module moved: " + strings.Join(names, ", "), moved, nil
	}
	return "", nil, nil
}

// init runs terraform init with the job's Git credentials in its
// environment (gitEnv, for module fetches), after forgetting the installed
// copies of the moved Git sources.
func (s *session) init(ctx context.Context, reason string, moved []string, gitEnv map[string]string, p *Plan) error {
	// Init may write the shared plugin cache. Terraform 1.5's cache is not
	// safe for concurrent init; OpenTofu 1.10 panics now and then when two
	// inits link from a cache one of them is filling; and both rewrite the
	// cache entry of a provider the stack's lock file has no hash for,
	// pulling the binary from under a plan that runs from it. So such an
	// init runs alone. An OpenTofu init of a stack with a lock file only
	// links from the cache and runs beside the others. Warm runs skip init.
	_, noLockFile := os.Stat(filepath.Join(s.job.Dir, ".terraform.lock.hcl"))
	defer s.r.lockCache(noLockFile != nil || !s.r.Binary.IsTofu())()
	s.note("init (%s)", reason)
	// The old fingerprint goes first: an init that fails or is killed must
	// not be skipped next time.
	if err := os.Remove(s.fingerprintPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("init fingerprint: %w", err)
	}
	// init keeps an installed module whose source string is unchanged.
	if err := forgetModules(filepath.Join(s.wd, "data"), moved); err != nil {
		return run.Fail(run.Init, fmt.Errorf("init: %w", err))
	}
	if len(gitEnv) > 0 {
		env := make(map[string]string, len(s.env)+len(gitEnv))
		for k, v := range s.env {
			env[k] = v
		}
		for k, v := range gitEnv {
			env[k] = v
		}
		if err := s.tf.SetEnv(tfexec.CleanEnv(env)); err != nil {
			return err
		}
		// Only init fetches modules: later commands (and the providers
		// they start) do not see the credentials.
		defer func() { _ = s.tf.SetEnv(tfexec.CleanEnv(s.env)) }() // the same map was accepted when the session began
	}
	start := time.Now()
	s.r.processes.Add(1)
	err := s.tf.Init(ctx, initOptions(s.job.BackendConfig)...)
	p.Timing.Init += time.Since(start)
	p.Init = InitInfo{Ran: true, Reason: reason}
	if err != nil {
		err = cleanErr(err)
		if hint := gitHint(err.Error(), s.job.Git); hint != "" {
			return run.Fail(run.Init, fmt.Errorf("init: %w%s", err, hint))
		}
		return run.Fail(run.Init, fmt.Errorf("init: %w", err))
	}
	// Fingerprint after init: init may have written the lock file. The
	// branches stay as resolved before init.
	hash, _, err := initFingerprint(s.r.Binary, s.r.CLIConfig, s.job.Dir, s.job.BackendConfig)
	if err != nil {
		return fmt.Errorf("init fingerprint: %w", err)
	}
	fp := fingerprint{Hash: hash, Git: s.refs}
	return os.WriteFile(s.fingerprintPath(), []byte(fp.String()), 0o600)
}

// selectWorkspace makes job.Workspace current, creating it when it does not
// exist. The current workspace is kept in the data directory, so a warm
// working directory usually needs no command at all.
func (s *session) selectWorkspace(ctx context.Context, p *Plan) error {
	cur := "default"
	if b, err := os.ReadFile(filepath.Join(s.wd, "data", "environment")); err == nil {
		cur = strings.TrimSpace(string(b))
	}
	if cur == s.job.Workspace {
		return nil
	}
	start := time.Now()
	defer func() { p.Timing.Workspace += time.Since(start) }()
	s.r.processes.Add(1)
	err := s.tf.WorkspaceSelect(ctx, s.job.Workspace)
	if err == nil {
		return nil
	}
	if !strings.Contains(err.Error(), "doesn't exist") && !strings.Contains(err.Error(), "does not exist") {
		return fmt.Errorf("select workspace: %w", cleanErr(err))
	}
	if !s.job.CreateWorkspace {
		return fmt.Errorf("workspace %q: %w", s.job.Workspace, ErrNoWorkspace)
	}
	s.note("creating workspace %q", s.job.Workspace)
	s.r.processes.Add(1)
	if err := s.tf.WorkspaceNew(ctx, s.job.Workspace); err != nil {
		return fmt.Errorf("create workspace: %w", cleanErr(err))
	}
	return nil
}

// needsInit recognises terraform's and tofu's ways of saying that the
// working directory must be initialised again.
func needsInit(err error) bool {
	msg := err.Error()
	for _, s := range []string{
		"please run \"terraform init\"", "please run \"tofu init\"",
		"Run \"terraform init\"", "Run \"tofu init\"",
		"Backend initialization required", "Module not installed",
		"Inconsistent dependency lock file", "Required plugins are not installed",
		"Missing required provider", "Module source has changed", "Module version requirements have changed",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// cleanErr shortens terraform-exec's errors to terraform's own message.
func cleanErr(err error) error {
	if err == nil {
		return nil
	}
	var exitErr *tfexec.ErrNoSuitableBinary
	if errors.As(err, &exitErr) {
		return err
	}
	if ierr := interruptedErr(err); ierr != nil {
		return ierr
	}
	msg := strings.TrimSpace(errorText(err))
	// terraform-exec prefixes "exit status N\n\n"; the rest is terraform's stderr.
	if rest, ok := strings.CutPrefix(msg, "exit status "); ok {
		if _, body, ok := strings.Cut(rest, "\n"); ok {
			msg = strings.TrimSpace(body)
		}
	}
	return &terraformError{msg: msg, err: err}
}

type terraformError struct {
	msg string
	err error
}

func (e *terraformError) Error() string { return e.msg }
func (e *terraformError) Unwrap() error { return e.err }
