package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/report"
)

func newReportCmd(g *globalFlags) *cobra.Command {
	var dataDir, format, output string
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "report",
		Short: "The drift report across all stacks, from the ledger",
		Long: `report reads the ledger of a trueline server (its data directory; the server
may keep running) and prints what is drifted and for how long, what was
auto-applied, the open remediation pull requests, pending code, errors, and the
workspaces that were not checked within their schedule.

The HTML format is one self-contained page that reads well printed.`,
		Example: `  trueline report --data-dir /var/lib/trueline
  trueline report --since 72h --format html --output drift.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if format != "markdown" && format != "html" && format != "json" {
				return usageErr("--format %q: use markdown, html or json", format)
			}
			path := filepath.Join(dataDir, "trueline.db")
			if _, err := os.Stat(path); err != nil {
				return usageErr("no ledger at %s: point --data-dir at the directory trueline serve uses", path)
			}
			led, err := ledger.OpenSQLite(cmd.Context(), path)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			defer func() {
				if cerr := led.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("close the ledger: %w", cerr)
				}
			}()
			rep, err := report.Build(cmd.Context(), led, time.Now(), since)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			var text string
			switch format {
			case "markdown":
				text, err = rep.Markdown()
			case "html":
				text, err = rep.HTML()
			case "json":
				var b []byte
				b, err = json.MarshalIndent(rep, "", "  ")
				text = string(b) + "\n"
			}
			if err != nil {
				return err
			}
			if output != "" {
				if err := os.WriteFile(output, []byte(text), 0o644); err != nil {
					return &exitError{code: 1, err: err}
				}
				_, err = fmt.Fprintf(cmd.ErrOrStderr(), "trueline: report written to %s\n", output)
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), text)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", envOr("TRUELINE_DATA_DIR", ".trueline"), "the server's data `directory`")
	fl.DurationVar(&since, "since", 24*time.Hour, "how far back \"auto-applied\" looks")
	fl.StringVar(&format, "format", "markdown", "markdown, html or json")
	fl.StringVarP(&output, "output", "o", "", "write to this `file` instead of stdout")
	return cmd
}
