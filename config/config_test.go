package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/trueline/trueline/internal/hcldiag"
	"github.com/trueline/trueline/limiter"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseFull(t *testing.T) {
	src := `
listen   = ":9090"
data_dir = "/var/lib/trueline"
external_url = "https://trueline.example.com"
trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
schedule_jitter = "30s"
env = { SANDBOX_ROOT = "/tmp/cloud" }

binary {
  name    = "tofu"
  version = "~> 1.10"
}

limits {
  global         = 8
  per_repository = 3
}

repository "infra" {
  url       = "https://github.com/acme/infra.git"
  branch    = "prod"
  poll      = "30s"
  forge     = "github"
  token_env = "GH_TOKEN"
  webhook_secret_env = "GH_HOOK"
}

repository "local" {
  url = "/srv/git/local"
}
`
	cfg, diags := Parse("trueline.hcl", []byte(src), env(map[string]string{"GH_TOKEN": "ghp_secret", "GH_HOOK": "hook-secret"}))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if fmt.Sprint(cfg.TrustedProxies) != "[127.0.0.1/32 10.0.0.0/8]" || cfg.ExternalURL != "https://trueline.example.com" {
		t.Errorf("trusted proxies %v, external URL %q", cfg.TrustedProxies, cfg.ExternalURL)
	}
	if cfg.Listen != ":9090" || cfg.Binary != "tofu" || cfg.Global != 8 || cfg.PerRepository != 3 || cfg.ScheduleJitter != 30*time.Second {
		t.Errorf("config = %+v", cfg)
	}
	if len(cfg.Repositories) != 2 {
		t.Fatalf("repositories = %+v", cfg.Repositories)
	}
	r := cfg.Repositories[0]
	if r.Branch != "prod" || r.Poll != 30*time.Second || r.Forge != "github" || r.Token.Value() != "ghp_secret" || r.WebhookSecret.Value() != "hook-secret" {
		t.Errorf("repository = %+v", r)
	}
	if l := cfg.Repositories[1]; l.Branch != "main" || l.Poll != time.Minute || l.Forge != "none" || l.Token.IsSet() {
		t.Errorf("defaults = %+v", l)
	}
	// Secrets never print.
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("cfg", "repo", r.Token, "all", fmt.Sprintf("%v %+v", r, cfg))
	j, _ := json.Marshal(cfg)
	for _, out := range []string{sb.String(), string(j), fmt.Sprint(cfg)} {
		if strings.Contains(out, "ghp_secret") || strings.Contains(out, "hook-secret") {
			t.Errorf("a secret was printed: %s", out)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown attribute", "listn = \":80\"\n", `trueline.hcl:1,1: Unsupported argument`},
		{"inline token", "repository \"a\" {\n  url = \"x\"\n  token = \"ghp_123\"\n}\n", "trueline.hcl:3,11: Inline secret"},
		{"missing env", "repository \"a\" {\n  url = \"x\"\n  token_env = \"NOPE\"\n}\n", "trueline.hcl:3,15: Secret not set: The environment variable NOPE"},
		{"bad poll", "repository \"a\" {\n  url = \"x\"\n  poll = \"often\"\n}\n", "trueline.hcl:3,10: Invalid duration"},
		{"zero poll", "repository \"a\" {\n  url = \"x\"\n  poll = \"0s\"\n}\n", `trueline.hcl:3,10: Invalid poll interval: poll = "0s"`},
		{"zero poll, other unit", "repository \"a\" {\n  url = \"x\"\n  poll = \"0m\"\n}\n", "trueline.hcl:3,10: Invalid poll interval"},
		{"negative poll", "repository \"a\" {\n  url = \"x\"\n  poll = \"-1m\"\n}\n", `trueline.hcl:3,10: Invalid duration: poll = "-1m" is negative`},
		{"report cron that never fires", "report {\n  schedule = \"0 7 31 2 *\"\n  notify = []\n}\n", "trueline.hcl:2,14: Invalid schedule: never fires: no time matches within a year"},
		{"bad report cron", "report {\n  schedule = \"7am\"\n  notify = []\n}\n", "trueline.hcl:2,14: Invalid schedule"},
		{"bad forge", "repository \"a\" {\n  url = \"x\"\n  forge = \"bitbucket\"\n}\n", "Unknown forge"},
		{"duplicate", "repository \"a\" {\n  url = \"x\"\n}\nrepository \"a\" {\n  url = \"y\"\n}\n", "trueline.hcl:4,1: Duplicate repository"},
		{"no url", "repository \"a\" {\n}\n", `Missing required argument: The argument "url" is required`},
		{"bad listen", "listen = \"8080\"\n", "Invalid listen address"},
		{"bad trusted proxy", "trusted_proxies = [\"10.0.0.0/8\", \"proxy.internal\"]\n", `trueline.hcl:1,19: Invalid trusted proxy: "proxy.internal" is neither`},
		{"external URL without scheme", "external_url = \"trueline.example.com\"\n", "trueline.hcl:1,16: Invalid external URL"},
		{"bad binary", "binary {\n  name = \"pulumi\"\n}\n", "Unknown binary"},
		{"bad binary version", "binary {\n  version = \"about 1.13\"\n}\n", "trueline.hcl:2,13: Invalid version constraint"},
		{"releases_url without install", "binary {\n  releases_url = \"https://releases.example.com\"\n}\n", "trueline.hcl:2,18: Install settings without install"},
		{"releases_url not a URL", "binary {\n  install = true\n  releases_url = \"releases.example.com\"\n}\n", "trueline.hcl:3,18: Invalid releases URL"},
		{"releases_url with a password", "binary {\n  install = true\n  releases_url = \"https://u:pw@releases.example.com\"\n}\n", "trueline.hcl:3,18: Credentials in the releases URL"},
		{"public key missing", "binary {\n  install = true\n  public_key_file = \"/nonexistent/key.asc\"\n}\n", "trueline.hcl:3,21: Unusable release signing key: /nonexistent/key.asc"},
		{"public key not a key", "binary {\n  install = true\n  public_key_file = \"config_test.go\"\n}\n", "trueline.hcl:3,21: Unusable release signing key: config_test.go: openpgp"},
		{"bad limit", "limits {\n  global = 0\n}\n", "global must be at least 1"},
		{"budget of nothing", "budget \"aws-prod\" {\n  requests_per_second = 0\n}\n", `trueline.hcl:2,25: Invalid budget: budget "aws-prod": requests_per_second = 0; write the requests a second`},
		{"negative budget", "budget \"aws-prod\" {\n  requests_per_second = -5\n}\n", "trueline.hcl:2,25: Invalid budget"},
		{"budget past the bound", "budget \"aws-prod\" {\n  requests_per_second = 1e9\n}\n", "at most 1e+06"},
		{"budget without a rate", "budget \"aws-prod\" {\n}\n", `The argument "requests_per_second" is required`},
		{"budget without an account", "budget {\n  requests_per_second = 5\n}\n", "trueline.hcl:1,8: Missing account for budget"},
		{"budget of a bad account", "budget \"aws prod\" {\n  requests_per_second = 5\n}\n", `trueline.hcl:1,1: Invalid budget account: budget "aws prod": name the account as stack.hcl's account does`},
		{"budget twice", "budget \"a\" {\n  requests_per_second = 5\n}\nbudget \"a\" {\n  requests_per_second = 6\n}\n", `trueline.hcl:4,1: Duplicate budget: budget "a" is declared twice`},
		{"pass_env of trueline's own", "pass_env = [\"TRUELINE_*\"]\n", "trueline.hcl:1,12: Invalid pass_env entry"},
		{"pass_env glob inside", "pass_env = [\"A*B\"]\n", "Invalid pass_env entry"},
		{"known_hosts missing", "repository \"a\" {\n  url = \"x\"\n  ssh {\n    known_hosts_file = \"/nonexistent/known_hosts\"\n  }\n}\n", "trueline.hcl:4,24: Unreadable known_hosts file"},
		{"github app on gitea", "repository \"a\" {\n  url = \"x\"\n  forge = \"gitea\"\n  github_app {\n    app_id = 1\n    installation_id = 2\n    private_key_env = \"KEY\"\n  }\n}\n", "trueline.hcl:4,3: GitHub App without GitHub"},
		{"github app and token", "repository \"a\" {\n  url = \"x\"\n  forge = \"github\"\n  token_env = \"KEY\"\n  github_app {\n    app_id = 1\n    installation_id = 2\n    private_key_env = \"KEY\"\n  }\n}\n", "Two GitHub credentials"},
		{"github app without key", "repository \"a\" {\n  url = \"x\"\n  forge = \"github\"\n  github_app {\n    app_id = 1\n    installation_id = 2\n  }\n}\n", "GitHub App without a key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Parse("trueline.hcl", []byte(tc.src), env(nil))
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			if got := (&hcldiag.Error{Diags: diags}).Error(); !strings.Contains(got, tc.want) {
				t.Errorf("error %q does not contain %q", got, tc.want)
			}
		})
	}
}

func TestParseBudgets(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []limiter.Budget
	}{
		{"none", "", nil},
		{"two accounts, in the file's order", "budget \"aws-prod\" {\n  requests_per_second = 20\n}\nbudget \"123456789012\" {\n  requests_per_second = 0.5\n}\n",
			[]limiter.Budget{{Account: "aws-prod", RequestsPerSecond: 20}, {Account: "123456789012", RequestsPerSecond: 0.5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse("trueline.hcl", []byte(tc.src), env(nil))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if !reflect.DeepEqual(cfg.Budgets, tc.want) {
				t.Errorf("budgets %+v, want %+v", cfg.Budgets, tc.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	tests := []struct {
		in   []string
		want string // the prefixes, or the error
	}{
		{nil, "[]"},
		{[]string{"127.0.0.1"}, "[127.0.0.1/32]"},
		{[]string{" ::1 ", "fd00::/8"}, "[::1/128 fd00::/8]"},
		{[]string{"::ffff:10.0.0.1"}, "[10.0.0.1/32]"},
		{[]string{"10.1.2.3/8"}, "[10.0.0.0/8]"},
		{[]string{"10.0.0.0/33"}, `"10.0.0.0/33" is neither an address nor a CIDR prefix`},
		{[]string{"fe80::1%eth0"}, `"fe80::1%eth0" is neither`},
		{[]string{""}, `"" is neither`},
	}
	for _, tc := range tests {
		got, err := ParseTrustedProxies(tc.in)
		out := fmt.Sprint(got)
		if err != nil {
			out = err.Error()
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("ParseTrustedProxies(%q) = %s, want %s", tc.in, out, tc.want)
		}
	}
}

func TestLoadResolvesFilesAndDataDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("file-token\n"), 0o600)
	path := filepath.Join(dir, "trueline.hcl")
	os.WriteFile(path, []byte(fmt.Sprintf("data_dir = \"state\"\nrepository \"a\" {\n  url = \"x\"\n  token_file = %q\n}\n", filepath.Join(dir, "token"))), 0o644)
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != filepath.Join(dir, "state") || cfg.Repositories[0].Token.Value() != "file-token" {
		t.Errorf("config = %+v", cfg)
	}
	if _, err := Load(filepath.Join(dir, "missing.hcl"), nil); err == nil {
		t.Error("missing file loaded")
	}
}

func TestSecretBindings(t *testing.T) {
	env := map[string]string{"DB_PASSWORD": "s3cret-db", "TOKEN": "tok"}
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	os.WriteFile(file, []byte("from-a-file\n"), 0o600)
	src := fmt.Sprintf(`
repository "infra" {
  url = "https://example.com/infra.git"
}
secret "db" {
  from_env   = "DB_PASSWORD"
  variable   = "db_password"
  stacks     = ["stacks/prod/*"]
  workspaces = ["prod"]
}
secret "key" {
  from_file = %q
  env       = "TF_TOKEN_app_example_com"
}
`, file)
	cfg, diags := Parse("trueline.hcl", []byte(src), func(k string) string { return env[k] })
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	db, key := cfg.Bindings[0], cfg.Bindings[1]
	if db.Value.Value() != "s3cret-db" || db.Variable != "db_password" || !db.Applies("infra", "stacks/prod/web", "prod") ||
		db.Applies("infra", "stacks/dev/web", "prod") || db.Applies("infra", "stacks/prod/web", "default") {
		t.Errorf("db = %+v", db)
	}
	if key.Value.Value() != "from-a-file" || key.Env != "TF_TOKEN_app_example_com" || !key.Applies("any", "stacks/x", "default") {
		t.Errorf("key = %+v", key)
	}
	if s := cfg.Secrets(); !slices.Contains(s, "s3cret-db") || !slices.Contains(s, "from-a-file") {
		t.Errorf("Secrets() = %v: bound secrets must be scrubbed too", s)
	}
	for _, bad := range []struct{ body, want string }{
		{`secret "x" {
  variable = "x"
}`, "Secret without a source"},
		{`secret "x" {
  from_env = "TOKEN"
}`, "Secret without one target"},
		{`secret "x" {
  from_env = "TOKEN"
  env      = "PATH"
}`, "Reserved environment variable"},
		{`secret "x" {
  from_env = "TOKEN"
  variable = "not a name"
}`, "Invalid variable name"},
	} {
		_, diags := Parse("trueline.hcl", []byte("repository \"infra\" {\n  url = \"https://example.com/infra.git\"\n}\n"+bad.body+"\n"), func(k string) string { return env[k] })
		if !diags.HasErrors() || !strings.Contains(diags.Error(), bad.want) {
			t.Errorf("%s: %v, want %q", bad.body, diags, bad.want)
		}
	}
}

func TestParseSSHAppAndPassEnv(t *testing.T) {
	dir := t.TempDir()
	hosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(hosts, []byte("gitea.internal ssh-ed25519 AAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `
pass_env = ["AWS_*", "KUBECONFIG"]
repository "infra" {
  url   = "git@github.com:acme/infra.git"
  forge = "github"
  ssh {
    known_hosts_file = "` + hosts + `"
  }
  github_app {
    app_id          = 12
    installation_id = 34
    private_key_env = "APP_KEY"
  }
}
`
	cfg, diags := Parse("trueline.hcl", []byte(src), env(map[string]string{"APP_KEY": "-----BEGIN RSA PRIVATE KEY-----"}))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := strings.Join(cfg.PassEnv, ","); got != "AWS_*,KUBECONFIG" {
		t.Errorf("pass_env = %q", got)
	}
	r := cfg.Repositories[0]
	if r.KnownHostsFile != hosts {
		t.Errorf("known hosts = %q", r.KnownHostsFile)
	}
	if a := r.GitHubApp; a == nil || a.AppID != 12 || a.InstallationID != 34 || a.PrivateKey.Value() != "-----BEGIN RSA PRIVATE KEY-----" || a.PrivateKey.String() != "***" {
		t.Errorf("github app = %+v", a)
	}
}

// TestParseBinaryInstall: the binary block's install settings, with a real
// armored key.
func TestParseBinaryInstall(t *testing.T) {
	e, err := openpgp.NewEntity("releases", "", "releases@example.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var key bytes.Buffer
	w, err := armor.Encode(&key, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "releases.asc")
	if err := os.WriteFile(keyFile, key.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, src         string
		install           bool
		url, version, key string
	}{
		{name: "none", src: "binary {\n  version = \"~> 1.13\"\n}\n", version: "~> 1.13"},
		{name: "HashiCorp's site and key", src: "binary {\n  install = true\n}\n", install: true},
		{name: "a mirror and its key", src: fmt.Sprintf("binary {\n  install = true\n  releases_url = \"https://releases.example.com/\"\n  public_key_file = %q\n}\n", keyFile),
			install: true, url: "https://releases.example.com/", key: key.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse("trueline.hcl", []byte(tc.src), env(nil))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if cfg.BinaryInstall != tc.install || cfg.BinaryReleasesURL != tc.url || cfg.BinaryVersion != tc.version || cfg.BinaryPublicKey != tc.key {
				t.Errorf("install %v, url %q, version %q, key %d bytes", cfg.BinaryInstall, cfg.BinaryReleasesURL, cfg.BinaryVersion, len(cfg.BinaryPublicKey))
			}
		})
	}
}
