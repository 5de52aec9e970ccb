// Command trueline keeps Terraform- and OpenTofu-managed infrastructure equal
// to what Git says: it plans stacks, tells drift from pending code, and
// reports, applies or proposes the fix.
//
// Exit codes, for scripts:
//
//	0  every workspace is in sync
//	1  an error: bad usage, or a workspace whose run failed (errors win)
//	2  drift or pending changes were found
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time.
var version = "dev"

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

type globalFlags struct {
	logLevel  string
	logFormat string
}

func newRoot() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:   "trueline",
		Short: "Keep Terraform and OpenTofu infrastructure equal to Git",
		Long: `trueline plans every workspace of your stacks, tells out-of-band drift apart
from code that is not applied yet, and reports, applies or proposes the fix.

A stack is a directory with a Terraform root module and a stack.hcl.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", envOr("TRUELINE_LOG_LEVEL", "warn"), "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", envOr("TRUELINE_LOG_FORMAT", "text"), "log format: text or json")
	root.AddCommand(newCheckCmd(&g), newServeCmd(&g), newPlanCmd(&g), newRunsCmd(&g), newReportCmd(&g), newUnlockCmd(&g), newDoctorCmd(&g))
	return root
}

func (g *globalFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usageErr("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErr("--log-format %q: use text or json", g.logFormat)
}

func usageErr(format string, args ...any) error {
	return &exitError{code: 1, err: fmt.Errorf(format, args...)}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRoot().ExecuteContext(ctx)
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "trueline:", ee.err)
		}
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "trueline:", err)
		os.Exit(1)
	}
}
