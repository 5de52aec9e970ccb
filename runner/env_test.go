package runner

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trueline/trueline/config"
)

// trueline's own secrets, and every variable a configuration names for a
// secret, stay out of terraform's environment.
func TestBuildEnvWithholdsSecrets(t *testing.T) {
	// The variables a trueline.hcl names for its secrets (token_env,
	// webhook_secret_env, webhook_url_env), read from a real configuration.
	src := `
repository "infra" {
  url                = "https://github.com/acme/infra.git"
  forge              = "github"
  token_env          = "GITHUB_TOKEN"
  webhook_secret_env = "GITHUB_WEBHOOK_SECRET"
}
repository "apps" {
  url       = "https://gitlab.com/acme/apps.git"
  forge     = "gitlab"
  token_env = "GITLAB_TOKEN"
}
notify "slack" "hook" {
  webhook_url_env = "SLACK_WEBHOOK_URL"
}
notify "slack" "bot" {
  token_env = "SLACK_BOT_TOKEN"
  channel   = "#infra"
}
`
	getenv := func(name string) string { return "secret-of-" + name }
	cfg, diags := config.Parse("trueline.hcl", []byte(src), getenv)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var named []string
	for _, r := range cfg.Repositories {
		for _, s := range []config.Secret{r.Token, r.WebhookSecret} {
			if n, ok := strings.CutPrefix(s.Source, "env "); ok {
				named = append(named, n)
			}
		}
	}
	for _, n := range cfg.Notify {
		for _, s := range []config.Secret{n.WebhookURL, n.Token} {
			if name, ok := strings.CutPrefix(s.Source, "env "); ok {
				named = append(named, name)
			}
		}
	}
	if len(named) != 5 {
		t.Fatalf("configuration names %v, want 5 variables", named)
	}

	environ := []string{
		"PATH=/usr/bin", "HOME=/home/t", "TF_LOG=debug", "AWS_PROFILE=prod", "SANDBOX_ROOT=/cloud",
		"TRUELINE_API_TOKEN=api-secret", "TRUELINE_API_TOKEN_SHA256=abc", "TRUELINE_TOKEN_ENV=GITHUB_TOKEN",
	}
	for _, n := range named {
		environ = append(environ, n+"="+getenv(n))
	}
	// The default passes none of them; even an operator's "pass everything"
	// passes no TRUELINE_ variable.
	for _, pass := range [][]string{nil, {"*"}} {
		env := buildEnv(environ, pass, map[string]string{"TRUELINE_FROM_STACK": "x"})
		for k, v := range env {
			if strings.HasPrefix(k, "TRUELINE_") || pass == nil && strings.Contains(v, "secret") {
				t.Errorf("pass %v: terraform gets %s=%s", pass, k, v)
			}
		}
		if env["PATH"] != "/usr/bin" || env["SANDBOX_ROOT"] != "/cloud" {
			t.Errorf("pass %v: PATH or SANDBOX_ROOT missing: %v", pass, env)
		}
	}
}

func TestPasses(t *testing.T) {
	for _, tc := range []struct {
		name string
		pass []string
		want bool
	}{
		{"PATH", nil, true},
		{"HOME", nil, true},
		{"LC_ALL", nil, true},
		{"LANG", nil, true},
		{"LANGUAGE", nil, false},
		{"https_proxy", nil, true},
		{"HTTPS_PROXY", nil, true},
		{"SSL_CERT_FILE", nil, true},
		{"TF_LOG_PROVIDER", nil, true},
		{"TF_TOKEN_app_terraform_io", nil, true},
		{"AWS_SECRET_ACCESS_KEY", nil, true},
		{"GOOGLE_APPLICATION_CREDENTIALS", nil, true},
		{"ARM_CLIENT_SECRET", nil, true},
		{"AZURE_TENANT_ID", nil, true},
		{"SANDBOX_READ_DELAY", nil, true},
		{"GITHUB_TOKEN", nil, false},
		{"SLACK_WEBHOOK_URL", nil, false},
		{"KUBECONFIG", nil, false},
		{"PATHX", nil, false},
		{"TRUELINE_API_TOKEN", nil, false},
		{"TRUELINE_API_TOKEN", []string{"*"}, false},
		{"TRUELINE_API_TOKEN", []string{"TRUELINE_API_TOKEN"}, false},
		{"KUBECONFIG", []string{"KUBECONFIG"}, true},
		{"PATH", []string{"KUBECONFIG"}, false},
		{"PATH", []string{}, false},
	} {
		if got := Passes(tc.name, tc.pass); got != tc.want {
			t.Errorf("Passes(%q, %v) = %v, want %v", tc.name, tc.pass, got, tc.want)
		}
	}
}

func TestBuildEnvExplicit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		environ  []string
		explicit []map[string]string
		want     map[string]string
	}{
		{
			name:    "inherited only when allowed",
			environ: []string{"PATH=/bin", "SECRET=x", "EMPTY=", "TZ=UTC"},
			want:    map[string]string{"PATH": "/bin", "TZ": "UTC"},
		},
		{
			name:     "explicit values pass whatever their names",
			environ:  []string{"PATH=/bin"},
			explicit: []map[string]string{{"KUBECONFIG": "/k"}},
			want:     map[string]string{"PATH": "/bin", "KUBECONFIG": "/k"},
		},
		{
			name:    "later maps win: runner, job, then trueline's own",
			environ: []string{"TF_DATA_DIR=/elsewhere", "TF_CLI_CONFIG_FILE=/env.rc"},
			explicit: []map[string]string{
				{"A": "runner", "B": "runner"},
				{"B": "job", "TF_DATA_DIR": "/job"},
				{"TF_DATA_DIR": "/work/data", "TF_CLI_CONFIG_FILE": "/trueline.rc"},
			},
			want: map[string]string{"A": "runner", "B": "job", "TF_DATA_DIR": "/work/data", "TF_CLI_CONFIG_FILE": "/trueline.rc"},
		},
		{
			name:     "no TRUELINE_ variable even when explicit",
			explicit: []map[string]string{{"TRUELINE_X": "1", "X": "1"}},
			want:     map[string]string{"X": "1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := buildEnv(tc.environ, nil, tc.explicit...)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

// The environment a terraform process really gets: a stand-in terraform
// writes it down.
func TestTerraformProcessEnvironment(t *testing.T) {
	dir := t.TempDir()
	dump := filepath.Join(dir, "env.txt")
	bin := filepath.Join(dir, "terraform")
	script := "#!/bin/sh\nenv >> '" + dump + "'\necho 'Error: stand-in terraform' >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TRUELINE_API_TOKEN", "api-token-secret")
	t.Setenv("GITHUB_TOKEN", "forge-token-secret")
	t.Setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.example/services/secret")
	t.Setenv("AWS_PROFILE", "prod")
	t.Setenv("TF_DATA_DIR", "/not/this/one")
	r := &Runner{Binary: Binary{Name: "terraform", Path: bin}, WorkDir: filepath.Join(dir, "work"), CLIConfig: "/etc/trueline.rc",
		Env: map[string]string{"TF_PLUGIN_CACHE_DIR": filepath.Join(dir, "cache"), "TRUELINE_X": "1"}}
	job := Job{Key: "infra/stacks/web/default", Dir: t.TempDir(), Env: map[string]string{"KUBECONFIG": "/k"}}
	if _, err := r.Plan(context.Background(), job); err == nil {
		t.Fatal("the stand-in terraform succeeded")
	}
	raw, err := os.ReadFile(dump)
	if err != nil {
		t.Fatalf("terraform never ran: %v", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	for k, v := range env {
		if strings.HasPrefix(k, "TRUELINE_") || strings.Contains(v, "secret") {
			t.Errorf("terraform got %s=%s", k, v)
		}
	}
	for k, want := range map[string]string{
		"PATH": os.Getenv("PATH"), "AWS_PROFILE": "prod", "KUBECONFIG": "/k", "TF_CLI_CONFIG_FILE": "/etc/trueline.rc",
		"TF_PLUGIN_CACHE_DIR": filepath.Join(dir, "cache"), "TF_DATA_DIR": filepath.Join(r.WorkDir, DirName(job.Key), "data"),
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
}

// What session hands terraform, without running it: the layering of
// trueline's environment, the runner's and the job's values and what
// trueline sets itself.
func TestProcessEnv(t *testing.T) {
	environ := []string{"PATH=/bin", "GITHUB_TOKEN=secret", "TF_CLI_CONFIG_FILE=/env.rc", "TF_DATA_DIR=/env/data", "KUBECONFIG=/k"}
	for _, tc := range []struct {
		name string
		r    *Runner
		job  Job
		want map[string]string
	}{
		{
			name: "the data directory always; an inherited CLI config when the runner has none",
			r:    &Runner{},
			want: map[string]string{"PATH": "/bin", "TF_CLI_CONFIG_FILE": "/env.rc", "TF_DATA_DIR": "/work/data"},
		},
		{
			name: "the runner's CLI config and plugin cache",
			r:    &Runner{CLIConfig: "/trueline.rc", Env: map[string]string{"TF_PLUGIN_CACHE_DIR": "/cache", "TF_LOG": "info"}},
			want: map[string]string{"PATH": "/bin", "TF_CLI_CONFIG_FILE": "/trueline.rc", "TF_DATA_DIR": "/work/data",
				"TF_PLUGIN_CACHE_DIR": "/cache", "TF_LOG": "info"},
		},
		{
			name: "the job overrides the runner's values, not trueline's own",
			r:    &Runner{CLIConfig: "/trueline.rc", Env: map[string]string{"TF_PLUGIN_CACHE_DIR": "/cache", "TF_LOG": "info"}},
			job: Job{Env: map[string]string{"TF_LOG": "debug", "TF_VAR_size": "small",
				"TF_DATA_DIR": "/job/data", "TF_CLI_CONFIG_FILE": "/job.rc", "TF_PLUGIN_CACHE_DIR": "/job/cache"}},
			want: map[string]string{"PATH": "/bin", "TF_CLI_CONFIG_FILE": "/trueline.rc", "TF_DATA_DIR": "/work/data",
				"TF_PLUGIN_CACHE_DIR": "/cache", "TF_LOG": "debug", "TF_VAR_size": "small"},
		},
		{
			name: "PassEnv replaces the default list",
			r:    &Runner{PassEnv: []string{"KUBECONFIG"}},
			want: map[string]string{"KUBECONFIG": "/k", "TF_DATA_DIR": "/work/data"},
		},
		{
			name: "no TRUELINE_ variable from the runner or the job",
			r:    &Runner{Env: map[string]string{"TRUELINE_API_TOKEN": "x"}},
			job:  Job{Env: map[string]string{"TRUELINE_X": "x"}},
			want: map[string]string{"PATH": "/bin", "TF_CLI_CONFIG_FILE": "/env.rc", "TF_DATA_DIR": "/work/data"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.r.processEnv(environ, tc.job, "/work/data")
			if !maps.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}
