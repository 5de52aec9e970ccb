package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/ledger"
)

type planFlags struct {
	server, repo, format string
	wait                 bool
	timeout              time.Duration
}

func newPlanCmd(g *globalFlags) *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan STACK[/WORKSPACE]",
		Short: "Ask a running trueline server to plan a stack now",
		Long: `plan queues a manual run on a running trueline server (trueline serve) for
every workspace of STACK, or for one workspace. If the workspace already has a
queued run, the trigger joins it. The bearer token is read from
TRUELINE_API_TOKEN.

With --wait it waits for the runs to finish, prints what they found and did,
and exits like check: 0 in sync (or converged), 2 drift or pending left, 1 error.`,
		Example: `  trueline plan stacks/web
  trueline plan stacks/web/staging --wait --server http://trueline.internal:8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runPlan(cmd, f, args[0]) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", envOr("TRUELINE_SERVER", "http://127.0.0.1:8080"), "server `url`")
	fl.StringVar(&f.repo, "repository", "", "repository `name` (needed when the server watches several)")
	fl.StringVar(&f.format, "format", "text", "output format: text or json")
	fl.BoolVar(&f.wait, "wait", false, "wait for the runs to finish (and for the server to come up)")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Minute, "how long --wait waits")
	return cmd
}

func runPlan(cmd *cobra.Command, f planFlags, target string) error {
	if f.format != "text" && f.format != "json" {
		return usageErr("--format %q: use text or json", f.format)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	c := &apiClient{base: strings.TrimRight(f.server, "/"), token: os.Getenv("TRUELINE_API_TOKEN")}
	body, _ := json.Marshal(map[string]string{"repository": f.repo, "stack": target})
	var queued struct {
		Runs []ledger.Run `json:"runs"`
	}
	for {
		err := c.do(ctx, "POST", "/api/v1/runs", body, http.StatusAccepted, &queued)
		var refused *connError
		if err == nil {
			break
		}
		if !f.wait || !errors.As(err, &refused) || ctx.Err() != nil {
			return &exitError{code: 1, err: err}
		}
		time.Sleep(200 * time.Millisecond) // the server is still starting
	}
	out := cmd.OutOrStdout()
	if !f.wait {
		if f.format == "json" {
			return encodeJSON(out, queued.Runs)
		}
		w := &errWriter{w: out}
		for _, r := range queued.Runs {
			w.printf("queued run %d: %s/%s (triggers: %s)\n", r.ID, r.Stack, r.Workspace.Name, strings.Join(r.Triggers, ", "))
		}
		return w.err
	}
	var done []ledger.Run
	for _, q := range queued.Runs {
		for {
			var r ledger.Run
			if err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/runs/%d", q.ID), nil, http.StatusOK, &r); err != nil {
				return &exitError{code: 1, err: err}
			}
			if r.Status == ledger.Finished || r.Status == ledger.Interrupted {
				done = append(done, r)
				break
			}
			select {
			case <-ctx.Done():
				return &exitError{code: 1, err: fmt.Errorf("run %d did not finish within %s", q.ID, f.timeout)}
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	if f.format == "json" {
		if err := encodeJSON(out, done); err != nil {
			return err
		}
	} else {
		for _, r := range done {
			if err := printRun(out, r); err != nil {
				return err
			}
		}
	}
	code := 0
	for _, r := range done {
		switch {
		case r.Verdict == drift.Error || r.Status == ledger.Interrupted:
			code = 1
		case r.Verdict == drift.InSync || r.Converged():
		case code == 0:
			code = 2
		}
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

func printRun(out io.Writer, r ledger.Run) error {
	w := &errWriter{w: out}
	w.printf("run %d %s/%s at %.12s: %s\n", r.ID, r.Stack, r.Workspace.Name, r.Commit, r.Verdict)
	if res := r.Findings; res.Verdict != "" {
		for _, l := range []struct {
			kind string
			fs   []drift.Finding
		}{{"drift", res.Drift}, {"pending", res.Pending}} {
			for _, f := range l.fs {
				w.printf("  %-7s %s (%s)\n", l.kind, f.Address, f.Action)
				for _, a := range f.Attributes {
					w.printf("      %s: git %s, live %s\n", a.Path, drift.FormatValue(a.Git), drift.FormatValue(a.Live))
				}
			}
		}
	}
	if a := r.Action; a.Kind != "" {
		w.printf("  action  %s — %s\n", a, a.Reason)
	}
	if f := r.Failure; f != nil {
		at := ""
		if f.Stage != "" {
			at = " at " + string(f.Stage)
		}
		w.printf("  failed%s: %s\n", at, f.Message)
	}
	return w.err
}

func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// apiClient calls trueline's JSON API.
type apiClient struct {
	base, token string
}

type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }

func (c *apiClient) do(ctx context.Context, method, path string, body []byte, want int, into any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return usageErr("--server: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return &connError{err: fmt.Errorf("server %s: %w", c.base, err)}
	}
	// The body is read to the end (or to the limit); closing it can tell
	// nothing more.
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("server %s: read the response: %w", c.base, err)
	}
	if resp.StatusCode != want {
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			// Not trueline's JSON error, e.g. a proxy's page: the status says it.
			return fmt.Errorf("server said %s", resp.Status)
		}
		return fmt.Errorf("server said %s: %s", resp.Status, e.Error)
	}
	return json.Unmarshal(b, into)
}
