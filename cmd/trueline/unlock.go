package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/trueline/trueline/daemon"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/stacks"
	"golang.org/x/term"
)

type unlockFlags struct {
	dataDir, repo, binary, binaryPath, cliConfig string
	yes                                          bool
}

func newUnlockCmd(g *globalFlags) *cobra.Command {
	var f unlockFlags
	cmd := &cobra.Command{
		Use:   "unlock STACK[/WORKSPACE] LOCK_ID",
		Short: "Release a state lock that an interrupted apply left behind",
		Long: `unlock releases the state lock of one workspace, as terraform force-unlock
does, in the working directory trueline serve keeps for it (its data
directory, --data-dir). Use it after trueline was killed during an apply:
the run says the apply was interrupted, and the next run's error names the
lock and its ID.

Releasing a lock that someone else's apply still holds can corrupt the
state: unlock asks you to type the lock ID again, unless --yes.`,
		Example: `  trueline unlock stacks/web 8c1e5d3a-7b9f-4c2e-9a51-2f6b0d3e4a17 --data-dir /var/lib/trueline
  trueline unlock stacks/web/staging 8c1e5d3a-... --yes`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return runUnlock(cmd, g, f, args[0], args[1]) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", envOr("TRUELINE_DATA_DIR", ".trueline"), "trueline serve's data `directory`")
	fl.StringVar(&f.repo, "repository", "", "repository `name` (needed when the server watches several)")
	fl.StringVar(&f.binary, "binary", envOr("TRUELINE_BINARY", "terraform"), "terraform or tofu, for stacks that name none")
	fl.StringVar(&f.binaryPath, "binary-path", os.Getenv("TRUELINE_BINARY_PATH"), "explicit `path` of that binary")
	fl.StringVar(&f.cliConfig, "cli-config", os.Getenv("TF_CLI_CONFIG_FILE"), "terraform CLI config `file`, as serve uses it")
	fl.BoolVar(&f.yes, "yes", false, "do not ask for confirmation")
	return cmd
}

func runUnlock(cmd *cobra.Command, g *globalFlags, f unlockFlags, target, lockID string) (err error) {
	ctx := cmd.Context()
	dataDir, err := filepath.Abs(f.dataDir)
	if err != nil {
		return err
	}
	dbPath := filepath.Join(dataDir, "trueline.db")
	if _, err := os.Stat(dbPath); err != nil {
		return usageErr("no trueline data directory at %s (no trueline.db): pass serve's --data-dir", dataDir)
	}
	led, err := ledger.OpenSQLite(ctx, dbPath)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := led.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the ledger: %w", cerr)
		}
	}()
	all, err := led.Workspaces(ctx)
	if err != nil {
		return err
	}
	ws, err := findWorkspace(all, f.repo, target)
	if err != nil {
		return usageErr("%v", err)
	}
	key := ws.Key()
	checkout := daemon.CheckoutDir(dataDir, key)
	st := stacks.LoadFS(os.DirFS(checkout), ws.Stack)
	if st.Err != nil {
		return fmt.Errorf("%s: read its checkout in %s: %w", ws.Stack, checkout, st.Err)
	}
	tc := &runner.Toolchain{Default: f.binary, Path: f.binaryPath, ToolsDir: os.Getenv("TRUELINE_TOOLS_DIR"), CacheDir: dataDir}
	bin, err := tc.Binary(ctx, st.Config.Binary, st.Config.Version)
	if err != nil {
		return err
	}
	if !f.yes {
		if !term.IsTerminal(int(os.Stdin.Fd())) && cmd.InOrStdin() == os.Stdin {
			return usageErr("unlock asks for confirmation on a terminal; pass --yes to release the lock without asking")
		}
		if _, err := fmt.Fprintf(cmd.ErrOrStderr(), "Release state lock %s of %s (%s) in %s?\n"+
			"Only do this if no terraform process holds it. Type the lock ID again to confirm: ", lockID, ws.Stack, ws.Workspace.Name, ws.Repository); err != nil {
			return fmt.Errorf("ask for confirmation: %w", err)
		}
		if !confirmed(cmd.InOrStdin(), lockID) {
			return usageErr("not confirmed; the lock is kept")
		}
	}
	rn := &runner.Runner{Binary: bin, WorkDir: daemon.WorkRoot(dataDir), CLIConfig: f.cliConfig,
		Env: map[string]string{"TF_PLUGIN_CACHE_DIR": filepath.Join(dataDir, "plugin-cache")}}
	job := runner.Job{Key: key, Dir: filepath.Join(checkout, filepath.FromSlash(ws.Stack)), Workspace: ws.Workspace.Name,
		BackendConfig: st.Config.BackendConfig}
	if log, err := rn.ForceUnlock(ctx, job, lockID); err != nil {
		return fmt.Errorf("%s (%s): %w\n%s", ws.Stack, ws.Workspace.Name, err, strings.TrimSpace(log))
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "released lock %s of %s (%s)\n", lockID, ws.Stack, ws.Workspace.Name)
	return err
}

// findWorkspace resolves STACK or STACK/WORKSPACE among the workspaces
// serve knows, like `trueline plan` does.
func findWorkspace(all []ledger.Workspace, repo, target string) (ledger.Workspace, error) {
	var found []ledger.Workspace
	for _, w := range all {
		if repo != "" && w.Repository != repo {
			continue
		}
		if w.Stack == target && w.Name == "default" || w.Stack+"/"+w.Name == target {
			found = append(found, w)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return ledger.Workspace{}, fmt.Errorf("no workspace %q in this data directory: name it STACK or STACK/WORKSPACE as trueline runs lists it", target)
	}
	var repos []string
	for _, w := range found {
		repos = append(repos, w.Repository)
	}
	return ledger.Workspace{}, fmt.Errorf("%q is in several repositories (%s): pass --repository", target, strings.Join(repos, ", "))
}

func confirmed(in io.Reader, want string) bool {
	line, _ := bufio.NewReader(in).ReadString('\n')
	return strings.TrimSpace(line) == want
}
