package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/daemon"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/hcldiag"
	"github.com/trueline/trueline/internal/redact"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/limiter"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/server"
)

type serveFlags struct {
	config, repo, branch, forge, listen, dataDir string
	externalURL                                  string
	binary, binaryPath, cliConfig                string
	poll, jitter, grace, lockTimeout             time.Duration
	parallel                                     int
	tokenEnv, webhookSecretEnv, apiURL           string
}

func newServeCmd(g *globalFlags) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the reconciler: watch repositories, plan on schedules and commits",
		Long: `serve keeps Git checkouts of the configured repositories, plans each
workspace on its cron schedule and whenever a commit touches its stack,
takes webhooks from GitHub, GitLab and Gitea, and records every run in the
ledger (SQLite in the data directory).

Configure it with trueline.hcl (--config), or for one repository with flags:

  trueline serve --repo https://github.com/acme/infra.git --token-env GITHUB_TOKEN

SIGTERM or SIGINT stop it cleanly: no new runs start, running terraform
processes are interrupted and given the grace period, and unfinished runs
are marked interrupted and queued again once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd, g, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", os.Getenv("TRUELINE_CONFIG"), "configuration `file` (trueline.hcl)")
	fl.StringVar(&f.repo, "repo", os.Getenv("TRUELINE_REPO"), "Git `url` of the one repository to watch (instead of --config)")
	fl.StringVar(&f.branch, "branch", envOr("TRUELINE_BRANCH", "main"), "branch to watch, with --repo")
	fl.StringVar(&f.forge, "forge", envOr("TRUELINE_FORGE", "none"), "forge of --repo: github, gitlab, gitea or none")
	fl.DurationVar(&f.poll, "poll", time.Minute, "how often to fetch, with --repo")
	fl.StringVar(&f.apiURL, "forge-api", os.Getenv("TRUELINE_FORGE_API"), "the forge's API `url`, when not derived from --repo")
	fl.StringVar(&f.tokenEnv, "token-env", os.Getenv("TRUELINE_TOKEN_ENV"), "environment `variable` holding the HTTPS token, with --repo")
	fl.StringVar(&f.webhookSecretEnv, "webhook-secret-env", os.Getenv("TRUELINE_WEBHOOK_SECRET_ENV"), "environment `variable` holding the webhook secret, with --repo")
	fl.StringVar(&f.listen, "listen", os.Getenv("TRUELINE_LISTEN"), "HTTP `address` (default 127.0.0.1:8080)")
	fl.StringVar(&f.externalURL, "external-url", os.Getenv("TRUELINE_EXTERNAL_URL"), "`url` people reach the server at, for links (default http://<listen>)")
	fl.StringVar(&f.dataDir, "data-dir", os.Getenv("TRUELINE_DATA_DIR"), "`directory` for the ledger, checkouts and working directories (default .trueline)")
	fl.StringVar(&f.binary, "binary", os.Getenv("TRUELINE_BINARY"), "terraform or tofu, for stacks that name none")
	fl.StringVar(&f.binaryPath, "binary-path", os.Getenv("TRUELINE_BINARY_PATH"), "explicit `path` of that binary")
	fl.StringVar(&f.cliConfig, "cli-config", os.Getenv("TF_CLI_CONFIG_FILE"), "terraform CLI config `file` for every run")
	fl.IntVar(&f.parallel, "parallel", 0, "runs at once in all (default from the config, else 2)")
	fl.DurationVar(&f.jitter, "schedule-jitter", -1, "largest delay added to scheduled times (default 5m)")
	fl.DurationVar(&f.grace, "grace", -1, "how long running terraform gets to stop on shutdown (default 60s)")
	fl.DurationVar(&f.lockTimeout, "lock-timeout", 0, "how long plans and applies wait for a state lock someone else holds (default 5m)")
	return cmd
}

// serveConfig merges the configuration file (if any) with the flags.
func serveConfig(f serveFlags) (config.Config, error) {
	cfg := config.Defaults()
	if f.config != "" {
		var err error
		if cfg, err = config.Load(f.config, nil); err != nil {
			var de *hcldiag.Error
			if errors.As(err, &de) {
				return cfg, usageErr("%v", err)
			}
			return cfg, usageErr("%v", err)
		}
	}
	if f.repo != "" {
		r := config.Repository{Name: repoNameOf(f.repo), URL: f.repo, Branch: f.branch, Poll: f.poll, Forge: f.forge, APIURL: f.apiURL}
		for _, s := range []struct {
			env  string
			into *config.Secret
		}{{f.tokenEnv, &r.Token}, {f.webhookSecretEnv, &r.WebhookSecret}} {
			if s.env == "" {
				continue
			}
			v := os.Getenv(s.env)
			if v == "" {
				return cfg, usageErr("the environment variable %s is empty or not set", s.env)
			}
			*s.into = config.NewSecret(v, "env "+s.env)
		}
		cfg.Repositories = append(cfg.Repositories, r)
	}
	if len(cfg.Repositories) == 0 {
		return cfg, usageErr("nothing to watch: pass --repo URL, or --config trueline.hcl with repository blocks")
	}
	set := func(v string, into *string) {
		if v != "" {
			*into = v
		}
	}
	set(f.listen, &cfg.Listen)
	set(f.externalURL, &cfg.ExternalURL)
	if cfg.ExternalURL == "" {
		cfg.ExternalURL = "http://" + cfg.Listen
	}
	set(f.dataDir, &cfg.DataDir)
	set(f.binary, &cfg.Binary)
	set(f.binaryPath, &cfg.BinaryPath)
	set(f.cliConfig, &cfg.CLIConfig)
	if f.parallel > 0 {
		cfg.Global = f.parallel
	}
	if f.jitter >= 0 {
		cfg.ScheduleJitter = f.jitter
	}
	if f.grace >= 0 {
		cfg.GracePeriod = f.grace
	}
	if f.lockTimeout > 0 {
		cfg.LockTimeout = f.lockTimeout
	}
	if cfg.Binary != "terraform" && cfg.Binary != "tofu" {
		return cfg, usageErr("--binary %q: use terraform or tofu", cfg.Binary)
	}
	if names := inheritedSecrets(cfg); len(names) > 0 {
		return cfg, usageErr("terraform inherits %s, which holds a trueline secret: name a variable outside TF_*, AWS_*, GOOGLE_*, ARM_*, AZURE_*, SANDBOX_* and the system ones (e.g. GITHUB_TOKEN)", strings.Join(names, ", "))
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg, err
	}
	cfg.DataDir = abs
	return cfg, nil
}

// prepareDataDir creates the data directory 0700, and makes an existing one
// 0700 too: it holds the ledger, checkouts, saved plans and local state.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	return nil
}

// inheritedSecrets names the environment variables holding trueline's own
// secrets (token_env, webhook_secret_env, webhook_url_env, --token-env,
// --webhook-secret-env) that terraform would inherit under
// its pass list (pass_env), e.g. an AWS_ or TF_ name. Every other variable
// stays out of terraform's environment.
func inheritedSecrets(cfg config.Config) []string {
	var names []string
	check := func(s config.Secret) {
		if n, ok := strings.CutPrefix(s.Source, "env "); ok && runner.Passes(n, runner.PassList(cfg.PassEnv)) {
			names = append(names, n)
		}
	}
	for _, r := range cfg.Repositories {
		check(r.Token)
		check(r.WebhookSecret)
	}
	for _, n := range cfg.Notify {
		check(n.WebhookURL)
		check(n.Token)
	}
	return names
}

// toolchainFor finds the binaries a configuration asks for, as serve and
// doctor both do: the server's binary and version constraint as defaults,
// TRUELINE_TOOLS_DIR and the data directory's tools/ (where installed
// terraform versions live, found there whether or not installing is still
// on) before PATH.
func toolchainFor(cfg config.Config) *runner.Toolchain {
	tools := filepath.Join(cfg.DataDir, "tools")
	var install *runner.Install
	if cfg.BinaryInstall {
		install = &runner.Install{Dir: tools, ReleasesURL: cfg.BinaryReleasesURL, PublicKey: cfg.BinaryPublicKey}
	}
	return &runner.Toolchain{
		Default:    cfg.Binary,
		Path:       cfg.BinaryPath,
		Constraint: cfg.BinaryVersion,
		ToolsDir:   os.Getenv("TRUELINE_TOOLS_DIR") + string(os.PathListSeparator) + tools,
		Install:    install,
		CacheDir:   cfg.DataDir,
	}
}

func repoNameOf(url string) string {
	name := strings.TrimSuffix(path.Base(strings.TrimRight(url, "/")), ".git")
	if name == "" || name == "." || name == "/" {
		return "default"
	}
	return name
}

func runServe(cmd *cobra.Command, g *globalFlags, f serveFlags) (err error) {
	logger, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	cfg, err := serveConfig(f)
	if err != nil {
		return err
	}
	// Whatever a log line quotes (an SDK error with a webhook URL, a
	// repository URL with a token), trueline's own secrets never show.
	var known []string
	for _, s := range cfg.Secrets() {
		known = append(known, redact.URL(s)...)
	}
	logger = slog.New(redact.Handler(logger.Handler(), drift.SecretsFrom(known...)))
	ctx := cmd.Context()
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return err
	}
	// The configured database (its errors never show the URL), else
	// SQLite in the data directory.
	ledgerURL := filepath.Join(cfg.DataDir, "trueline.db")
	if cfg.Database.IsSet() {
		ledgerURL = cfg.Database.Value()
	}
	led, err := ledger.Open(ctx, ledgerURL)
	if err != nil {
		if cfg.Database.IsSet() {
			return fmt.Errorf("%w; check the URL in trueline.hcl's database block (%s) and that the database takes connections", err, cfg.Database.Source)
		}
		return err
	}
	defer func() {
		if cerr := led.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the ledger: %w", cerr)
		}
	}()
	// One limiter for the daemon's run slots and the accounts' budgets.
	limits := limiter.New(limiter.Options{Ceiling: cfg.Global, Budgets: cfg.Budgets, Logger: logger})
	rec := reconcile.New(reconcile.Options{
		Toolchain:   toolchainFor(cfg),
		WorkDir:     daemon.WorkRoot(cfg.DataDir),
		CLIConfig:   cfg.CLIConfig,
		PluginCache: filepath.Join(cfg.DataDir, "plugin-cache"),
		Env:         cfg.Env,
		PassEnv:     runner.PassList(cfg.PassEnv),
		Parallel:    cfg.Global,
		Grace:       cfg.GracePeriod,
		Timeout:     cfg.RunTimeout,
		LockTimeout: cfg.LockTimeout,
		Logger:      logger,
		Act:         true,
		// trueline's own secrets never reach terraform, but are scrubbed
		// from anything terraform says all the same.
		Secrets: drift.SecretsFrom(cfg.Secrets()...),
		Limiter: limits,
	})
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "plugin-cache"), 0o755); err != nil {
		return fmt.Errorf("plugin cache: %w", err)
	}
	d, err := daemon.New(cfg, led, rec, logger)
	if err != nil {
		return usageErr("%v", err)
	}
	metrics := server.NewMetrics(led)
	d.Observe = metrics.ObserveRun
	limits.Observe(metrics.ObserveThrottled)
	auth, err := authFromEnv(cfg)
	if err != nil {
		return err
	}
	if auth.ProxyHeader != "" && len(auth.TrustedProxies) == 0 {
		logger.Warn("the proxy user header is ignored: no trusted proxies are configured (trusted_proxies, TRUELINE_TRUSTED_PROXIES)", "header", auth.ProxyHeader)
	}
	srv := server.New(server.Options{Ledger: led, Hooks: d, Trigger: d, Status: d, Metrics: metrics, Auth: auth, Ready: d.Ready, Logger: logger})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return usageErr("listen on %s: %v", cfg.Listen, err)
	}
	// Every phase of a request is bounded, so slow or idle clients cannot
	// hold connections open. Nothing trueline serves streams: the longest
	// answers are a drift report and a scrape.
	httpSrv := &http.Server{Handler: srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// The daemon runs until ctx ends or the HTTP server fails; a failed
	// server stops the daemon too, and is the command's error.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	serveErr := make(chan error, 1)
	go func() {
		if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server failed; stopping", "error", err)
			serveErr <- fmt.Errorf("HTTP server: %w", err)
			stopRun()
		}
	}()
	logger.Info("trueline serving", "address", "http://"+ln.Addr().String(), "data_dir", cfg.DataDir, "repositories", len(cfg.Repositories))
	if _, err := fmt.Fprintf(cmd.ErrOrStderr(), "trueline: listening on http://%s\n", ln.Addr()); err != nil {
		logger.Warn("cannot print the listening address", "error", err)
	}

	srv.SetServing(true)
	err = d.Run(runCtx)
	srv.SetServing(false)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("HTTP server did not shut down cleanly", "error", err)
	}
	select {
	case serr := <-serveErr:
		if err == nil {
			err = serr
		}
	default:
	}
	logger.Info("trueline stopped")
	return err
}

// authFromEnv: TRUELINE_API_TOKEN (a token), TRUELINE_API_TOKEN_SHA256 (hex
// SHA-256 of tokens, comma-separated), TRUELINE_READ_REQUIRES_TOKEN=true,
// TRUELINE_PROXY_USER_HEADER (a trusted reverse proxy's user header),
// TRUELINE_TRUSTED_PROXIES (that proxy's addresses, comma-separated; instead
// of the configuration's trusted_proxies). The session cookie is Secure when
// the external URL is https.
func authFromEnv(cfg config.Config) (*server.Auth, error) {
	a := &server.Auth{ReadToken: os.Getenv("TRUELINE_READ_REQUIRES_TOKEN") == "true", ProxyHeader: os.Getenv("TRUELINE_PROXY_USER_HEADER"),
		TrustedProxies: cfg.TrustedProxies}
	if u, err := url.Parse(cfg.ExternalURL); err == nil && u.Scheme == "https" {
		a.SecureCookie = true
	}
	if v := os.Getenv("TRUELINE_TRUSTED_PROXIES"); v != "" {
		var list []string
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		proxies, err := config.ParseTrustedProxies(list)
		if err != nil {
			return nil, usageErr("TRUELINE_TRUSTED_PROXIES: %v", err)
		}
		a.TrustedProxies = proxies
	}
	if t := os.Getenv("TRUELINE_API_TOKEN"); t != "" {
		a.TokenHashes = append(a.TokenHashes, server.HashToken(t))
	}
	for i, h := range strings.Split(os.Getenv("TRUELINE_API_TOKEN_SHA256"), ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			// Not the value: it may be a token put here by mistake.
			return nil, usageErr("TRUELINE_API_TOKEN_SHA256: entry %d (%d characters) is not a hex SHA-256 (64 hex digits)", i+1, len(h))
		}
		a.TokenHashes = append(a.TokenHashes, [32]byte(b))
	}
	return a, nil
}
