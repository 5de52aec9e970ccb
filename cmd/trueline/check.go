package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/stacks"
)

type checkFlags struct {
	repo        string
	stacks      []string
	workspace   string
	parallel    int
	format      string
	quiet       bool
	binary      string
	binaryPath  string
	cliConfig   string
	workDir     string
	pluginCache string
	timeout     time.Duration
	lockTimeout time.Duration
}

func newCheckCmd(g *globalFlags) *cobra.Command {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Plan every workspace once and report drift and pending changes",
		Long: `check plans every matching workspace of the repository at its current
checkout, in parallel, classifies each plan, and prints a report.

A workspace whose mode is refresh-only (stack.hcl, or its policy) plans
with -refresh-only: it finds drift alone, and its in_sync means no drift,
the code not compared; the report says so ("mode" in JSON). check never
applies anything.

Exit status: 0 when every workspace is in sync, 2 when any is drifted or
pending, 1 when any run failed (errors win over drift).`,
		Example: `  trueline check
  trueline check --repo ../infra --stack 'stacks/prod/*' --format json
  trueline check --stack stacks/web --workspace staging`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCheck(cmd, g, f) },
	}
	cache := cacheDir()
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "repo", ".", "repository `path` holding the stacks")
	fl.StringArrayVar(&f.stacks, "stack", nil, "only stacks whose path matches this `glob` (repeatable)")
	fl.StringVar(&f.workspace, "workspace", "", "only this workspace `name`")
	fl.IntVar(&f.parallel, "parallel", 0, "plans to run at once (default: number of CPUs)")
	fl.StringVar(&f.format, "format", "text", "output format: text or json")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress lines on stderr")
	fl.StringVar(&f.binary, "binary", envOr("TRUELINE_BINARY", "terraform"), "binary for stacks that name none: terraform or tofu")
	fl.StringVar(&f.binaryPath, "binary-path", os.Getenv("TRUELINE_BINARY_PATH"), "explicit `path` of that binary (default: $TRUELINE_TOOLS_DIR, then PATH)")
	fl.StringVar(&f.cliConfig, "cli-config", os.Getenv("TF_CLI_CONFIG_FILE"), "terraform CLI config `file` for every run")
	fl.StringVar(&f.workDir, "work-dir", envOr("TRUELINE_WORK_DIR", filepath.Join(cache, "work")), "persistent working directories")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Minute, "longest one workspace's plan may take before terraform is interrupted")
	fl.DurationVar(&f.lockTimeout, "lock-timeout", reconcile.DefaultLockTimeout, "how long a plan waits for a state lock someone else holds")
	fl.StringVar(&f.pluginCache, "plugin-cache", envOr("TRUELINE_PLUGIN_CACHE", filepath.Join(cache, "plugin-cache")), "shared provider plugin cache")
	return cmd
}

func cacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "trueline")
	}
	return filepath.Join(os.TempDir(), "trueline")
}

func runCheck(cmd *cobra.Command, g *globalFlags, f checkFlags) error {
	if f.format != "text" && f.format != "json" {
		return usageErr("--format %q: use text or json", f.format)
	}
	logger, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	repo, err := filepath.Abs(f.repo)
	if err != nil {
		return usageErr("--repo: %v", err)
	}
	all, err := stacks.Discover(repo)
	if err != nil {
		return usageErr("%v", err)
	}
	if len(all) == 0 {
		return usageErr("%s: %v", repo, stacks.ErrNoStacks)
	}
	pols, err := policies.Load(os.DirFS(repo))
	if err != nil {
		return usageErr("%v", err)
	}
	targets, broken := reconcile.Select(all, pols, f.stacks, f.workspace)
	if len(targets) == 0 && len(broken) == 0 {
		return usageErr("no workspace matches --stack %q --workspace %q (found %d stacks in %s)", f.stacks, f.workspace, len(all), repo)
	}
	// Terraform runs in each stack's directory: the directories it is
	// given must not be relative to ours.
	for _, dir := range []*string{&f.workDir, &f.pluginCache} {
		if *dir == "" {
			continue
		}
		abs, err := filepath.Abs(*dir)
		if err != nil {
			return usageErr("%v", err)
		}
		*dir = abs
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return usageErr("%v", err)
		}
	}

	start := time.Now()
	progress := newProgress(cmd.ErrOrStderr(), f.quiet)
	rec := reconcile.New(reconcile.Options{
		Toolchain: &runner.Toolchain{
			Default:  f.binary,
			Path:     f.binaryPath,
			ToolsDir: os.Getenv("TRUELINE_TOOLS_DIR"),
			CacheDir: f.workDir,
		},
		WorkDir:     f.workDir,
		CLIConfig:   f.cliConfig,
		PluginCache: f.pluginCache,
		Parallel:    f.parallel,
		Timeout:     f.timeout,
		LockTimeout: f.lockTimeout,
		Logger:      logger,
		Progress:    progress.event,
	})
	// Last durations order the runs, longest first; they live in the work dir.
	// Without them the runs only come in another order, so the check goes on.
	durFile := filepath.Join(f.workDir, "durations.json")
	last := map[string]int64{}
	if b, err := os.ReadFile(durFile); err == nil {
		if err := json.Unmarshal(b, &last); err != nil {
			logger.Warn("ignoring the last durations", "file", durFile, "error", err)
			last = map[string]int64{}
		}
	}
	repoKey := "local:" + repo
	checked := rec.Check(cmd.Context(), repoKey, targets, last)
	for _, o := range checked {
		if !o.Failed() {
			last[repoKey+"/"+o.Stack+"/"+o.Workspace] = o.DurationMS
		}
	}
	if b, err := json.Marshal(last); err == nil {
		if err := os.WriteFile(durFile, b, 0o644); err != nil {
			logger.Warn("cannot save the durations", "file", durFile, "error", err)
		}
	}
	outcomes := append(broken, checked...)
	reconcile.SortOutcomes(outcomes)
	progress.done()

	out := cmd.OutOrStdout()
	if f.format == "json" {
		stats := cpuStats()
		stats.WallMS = time.Since(start).Milliseconds()
		stats.Processes = rec.Processes()
		err = writeJSON(out, outcomes, stats)
	} else {
		err = writeText(out, outcomes, useColor(out))
	}
	if err != nil {
		return err
	}
	if code := exitCode(outcomes); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// exitCode: 1 when any run failed, 2 when any found drift or pending code.
func exitCode(outcomes []reconcile.Outcome) int {
	code := 0
	for _, o := range outcomes {
		switch o.Verdict {
		case drift.Error:
			return 1
		case drift.InSync:
		default:
			code = 2
		}
	}
	return code
}

// cpuStats reads the CPU time of this process and of its waited-for
// children. A figure the system cannot give stays 0.
func cpuStats() runStats {
	ms := func(who int) int64 {
		var r syscall.Rusage
		if err := syscall.Getrusage(who, &r); err != nil {
			return 0
		}
		return (r.Utime.Nano() + r.Stime.Nano()) / 1e6
	}
	return runStats{CPUSelfMS: ms(syscall.RUSAGE_SELF), CPUChildrenMS: ms(syscall.RUSAGE_CHILDREN)}
}
