package main

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/trueline/trueline/ledger"
)

func newRunsCmd(g *globalFlags) *cobra.Command {
	var server, stack, format string
	var limit int
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List the runs a trueline server recorded, newest first",
		Example: `  trueline runs
  trueline runs --stack stacks/web --limit 5 --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return usageErr("--format %q: use text or json", format)
			}
			c := &apiClient{base: strings.TrimRight(server, "/"), token: os.Getenv("TRUELINE_API_TOKEN")}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if stack != "" {
				q.Set("stack", stack)
			}
			var page struct {
				Runs []ledger.Run `json:"runs"`
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			if err := c.do(ctx, "GET", "/api/v1/runs?"+q.Encode(), nil, http.StatusOK, &page); err != nil {
				return &exitError{code: 1, err: err}
			}
			if format == "json" {
				return encodeJSON(cmd.OutOrStdout(), page.Runs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			w := &errWriter{w: tw}
			w.printf("RUN\tWORKSPACE\tTRIGGER\tSTATUS\tVERDICT\tACTION\tQUEUED\n")
			for _, r := range page.Runs {
				w.printf("%d\t%s/%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Stack, r.Workspace.Name, r.Trigger, r.Status,
					dash(string(r.Verdict)), dash(r.Action.String()), r.QueuedAt.Local().Format("15:04:05"))
			}
			if w.err != nil {
				return w.err
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&server, "server", envOr("TRUELINE_SERVER", "http://127.0.0.1:8080"), "server `url`")
	fl.StringVar(&stack, "stack", "", "only runs of this stack `path`")
	fl.IntVar(&limit, "limit", 20, "how many runs")
	fl.StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
