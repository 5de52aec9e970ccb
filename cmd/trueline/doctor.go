package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/daemon"
	"github.com/trueline/trueline/doctor"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/forge"
	"github.com/trueline/trueline/notify"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/source"
	"github.com/trueline/trueline/state"
)

type doctorFlags struct {
	config, format string
	timeout        time.Duration
}

func newDoctorCmd(g *globalFlags) *cobra.Command {
	var f doctorFlags
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that trueline.hcl, its repositories, stacks and credentials are usable",
		Long: `doctor reads trueline.hcl and checks everything trueline serve will depend
on, one line per check, with the fix for each failure:

  the data directory          can be created and written
  binaries                    the server's and each stack's binary and version resolve
  Git                         each repository can be fetched with its credentials
  stacks and policies         every stack.hcl and the policies they name parse
  forges                      the token (or GitHub App) can push and open pull requests
  notification targets        Slack accepts the webhook or token (nothing is posted)
  state backends              records can be written where the state lives, with the
                              backend's identity (a probe object is written and deleted)

It changes nothing else. Exit status: 0 when everything is usable, 1 when a
check failed.`,
		Example: `  trueline doctor --config /etc/trueline/trueline.hcl
  trueline doctor --config trueline.hcl --format json | jq '.checks[] | select(.status == "fail")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDoctor(cmd, g, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", os.Getenv("TRUELINE_CONFIG"), "configuration `file` (trueline.hcl)")
	fl.StringVar(&f.format, "format", "text", "output format: text or json")
	fl.DurationVar(&f.timeout, "timeout", doctor.DefaultTimeout, "longest one check may take")
	return cmd
}

func runDoctor(cmd *cobra.Command, g *globalFlags, f doctorFlags) error {
	if f.config == "" {
		return usageErr("doctor checks a configuration: pass --config trueline.hcl")
	}
	if f.format != "text" && f.format != "json" {
		return usageErr("--format %q: use text or json", f.format)
	}
	if _, err := g.logger(cmd.ErrOrStderr()); err != nil {
		return err
	}
	cfg, err := serveConfig(serveFlags{config: f.config, jitter: -1, grace: -1})
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "trueline-doctor-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }() // fetched copies; a leftover is harmless
	p := &prober{cfg: cfg, gitDir: tmp, tools: toolchainFor(cfg)}
	out := cmd.OutOrStdout()
	opts := doctor.Options{ConfigFile: f.config, Timeout: f.timeout, Secrets: drift.SecretsFrom(cfg.Secrets()...)}
	if f.format == "text" {
		// One line per check as it is known: a slow forge shows which it is.
		width := 24
		opts.Progress = func(r doctor.Result) { _, _ = io.WriteString(out, doctor.Line(r, width)) } // the exit status tells the rest
	}
	results := doctor.Run(cmd.Context(), cfg, p, opts)
	if f.format == "json" {
		if err := doctor.WriteJSON(out, results); err != nil {
			return err
		}
	} else if _, err := io.WriteString(out, "\n"+doctor.Summary(results)+"\n"); err != nil {
		return err
	}
	if !doctor.Usable(results) {
		return &exitError{code: 1}
	}
	return nil
}

// prober reaches what the configuration names with serve's own clients.
type prober struct {
	cfg    config.Config
	gitDir string
	tools  *runner.Toolchain
}

func (p *prober) Binary(ctx context.Context, name, constraint string) (string, error) {
	bin, err := p.tools.Binary(ctx, name, constraint)
	if err != nil {
		return "", err
	}
	return bin.String(), nil
}

func (p *prober) Git(ctx context.Context, r config.Repository) (fs.FS, string, error) {
	src, err := daemon.SourceFor(r)
	if err != nil {
		return nil, "", err
	}
	if err := source.Open(ctx, src, p.gitDir); err != nil {
		return nil, "", err
	}
	head, err := src.Fetch(ctx)
	if err != nil {
		return nil, "", err
	}
	fsys, err := src.FS(head)
	if err != nil {
		return nil, "", err
	}
	return fsys, fmt.Sprintf("%s at %s", r.Branch, head.String()[:12]), nil
}

func (p *prober) Forge(ctx context.Context, r config.Repository) (string, error) {
	fg, err := daemon.ForgeFor(r)
	if err != nil {
		return "", err
	}
	return forge.Access(ctx, fg)
}

func (p *prober) Notify(ctx context.Context, n config.Notify) (string, error) {
	s := &notify.Slack{Name: n.Name, WebhookURL: n.WebhookURL.Value(), Token: n.Token.Value(), Channel: n.Channel,
		APIURL: n.APIURL, Secrets: p.cfg.Secrets()}
	return s.Check(ctx)
}

func (p *prober) State(ctx context.Context, b state.Backend, workspace string) (string, error) {
	return state.Check(ctx, b, workspace)
}
