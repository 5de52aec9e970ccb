package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newPlanCmd(g *globalFlags) *cobra.Command {
	var serverURL, repo, format string
	cmd := &cobra.Command{
		Use:   "plan STACK[/WORKSPACE]",
		Short: "Ask a running trueline server to plan a stack now",
		Long: `plan queues a manual run on a running trueline server (trueline serve) for
every workspace of STACK, or for one workspace. If the workspace already has a
queued run, the trigger joins it. The bearer token is read from
TRUELINE_API_TOKEN.`,
		Example: `  trueline plan stacks/web
  trueline plan stacks/web/staging --server http://trueline.internal:8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, _ := json.Marshal(map[string]string{"repository": repo, "stack": args[0]})
			req, err := http.NewRequestWithContext(cmd.Context(), "POST", strings.TrimRight(serverURL, "/")+"/api/v1/runs", bytes.NewReader(body))
			if err != nil {
				return usageErr("--server: %v", err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tok := os.Getenv("TRUELINE_API_TOKEN"); tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("server %s: %w", serverURL, err)}
			}
			defer resp.Body.Close()
			var out struct {
				Error string `json:"error"`
				Runs  []struct {
					ID        int64    `json:"id"`
					Stack     string   `json:"stack"`
					Workspace string   `json:"workspace"`
					Triggers  []string `json:"triggers"`
				} `json:"runs"`
			}
			json.NewDecoder(resp.Body).Decode(&out)
			if resp.StatusCode != http.StatusAccepted {
				return &exitError{code: 1, err: fmt.Errorf("server said %s: %s", resp.Status, out.Error)}
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out.Runs)
			}
			for _, r := range out.Runs {
				fmt.Fprintf(cmd.OutOrStdout(), "queued run %d: %s/%s (triggers: %s)\n", r.ID, r.Stack, r.Workspace, strings.Join(r.Triggers, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&serverURL, "server", envOr("TRUELINE_SERVER", "http://127.0.0.1:8080"), "server `url`")
	cmd.Flags().StringVar(&repo, "repository", "", "repository `name` (needed when the server watches several)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}
