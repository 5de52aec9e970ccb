// Package config reads trueline's server configuration, trueline.hcl:
//
//	listen          = "127.0.0.1:8080"
//	external_url    = "https://trueline.example.com"
//	data_dir        = "/var/lib/trueline"
//	trusted_proxies = ["127.0.0.1/32"]   # whose user header is believed
//
//	binary {
//	  name    = "tofu"        # terraform | tofu
//	  version = "~> 1.10"     # the default constraint; a stack's narrows it
//	  install = true          # install missing terraform versions (never tofu)
//	  releases_url    = "https://releases.example.com"  # default: HashiCorp's
//	  public_key_file = "/etc/trueline/releases.asc"    # default: HashiCorp's key
//	}
//
//	limits {
//	  global         = 32   # the most runs at once; the limit adapts between the CPU count and this
//	  per_repository = 2
//	}
//
//	budget "aws-prod" {      # the account's runs (stack.hcl account) spread to stay under
//	  requests_per_second = 20
//	}
//
//	retention {
//	  max_age            = "90d"  # runs, records and work dirs older than this go
//	  runs_per_workspace = 500    # and more than this many per workspace
//	}
//
//	database {
//	  url_env = "TRUELINE_DATABASE_URL"  # or url_file; postgres://... (default: SQLite in data_dir)
//	}
//
//	repository "infra" {
//	  url       = "https://github.com/acme/infra.git"
//	  branch    = "main"
//	  poll      = "1m"
//	  forge     = "github"            # github | gitlab | gitea | none
//	  token_env = "GITHUB_TOKEN"      # or token_file, or ssh_key_file
//	  webhook_secret_env = "GITHUB_WEBHOOK_SECRET"
//	}
//
// Secrets are named by environment variable or file, never written inline,
// and are never printed: a Secret formats as "***".
package config

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/trueline/trueline/internal/hcldiag"
	"github.com/trueline/trueline/limiter"
	"github.com/trueline/trueline/stacks"
)

// Secret holds a credential. It never prints its value.
type Secret struct {
	value  string
	Source string // where it came from, e.g. "env GITHUB_TOKEN"
}

// Value returns the secret itself; use it only where it is sent.
func (s Secret) Value() string { return s.value }

// IsSet reports whether a secret was configured.
func (s Secret) IsSet() bool { return s.value != "" }

func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return "***"
}

// MarshalText keeps secrets out of JSON and logs.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue keeps secrets out of slog.
func (s Secret) LogValue() string { return s.String() }

// NewSecret wraps a value read elsewhere (flags, tests).
func NewSecret(value, source string) Secret { return Secret{value: value, Source: source} }

// Config is the server configuration.
type Config struct {
	Listen         string
	ExternalURL    string         // how people reach the server, for links in pull requests and Slack
	TrustedProxies []netip.Prefix // reverse proxies whose user header is believed; none: nobody's
	DataDir        string
	Binary         string // terraform | tofu
	BinaryVersion  string // the default version constraint, which a stack's narrows
	BinaryPath     string
	CLIConfig      string
	Global         int // the most concurrent runs in all; the adaptive limit moves between the CPU count and this
	PerRepository  int // concurrent runs per repository
	ScheduleJitter time.Duration
	GracePeriod    time.Duration
	RunTimeout     time.Duration     // longest one run may take
	LockTimeout    time.Duration     // how long a run waits for a state lock; zero: 5 minutes
	Env            map[string]string // extra environment for every terraform run
	// PassEnv names the variables of the server's environment terraform
	// inherits (globs like "AWS_*"); nil: runner.DefaultPassEnv.
	PassEnv      []string
	Repositories []Repository
	Notify       []Notify
	Report       *Report
	Retention    Retention
	// Database is the ledger's URL (postgres://user:password@host/db), a
	// secret for its password; unset: SQLite in DataDir.
	Database Secret
	// Bindings give terraform secrets from the server, never from Git.
	Bindings []Binding
	// Budgets are API requests a second per cloud account (budget
	// blocks), by the account stacks name in stack.hcl.
	Budgets []limiter.Budget

	// BinaryInstall lets serve install terraform versions no stack finds
	// installed, from BinaryReleasesURL (empty: HashiCorp's releases site),
	// checking SHA256SUMS against BinaryPublicKey (armored; empty:
	// HashiCorp's key).
	BinaryInstall       bool
	BinaryReleasesURL   string
	BinaryPublicKey     string
	BinaryPublicKeyFile string
}

// Binding gives terraform one secret from the server's environment or a
// file: as a terraform variable or as an environment variable, for the
// repositories, stacks and workspaces it names (globs; none: all).
type Binding struct {
	Name                             string
	Value                            Secret
	Variable                         string // a terraform variable's name, or
	Env                              string // an environment variable's name
	Repositories, Stacks, Workspaces []string
}

// Applies reports whether the binding is for a workspace.
func (b Binding) Applies(repository, stack, workspace string) bool {
	return globs(b.Repositories, repository) && globs(b.Stacks, stack) && globs(b.Workspaces, workspace)
}

func globs(patterns []string, name string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// Retention bounds what trueline keeps: ledger runs, records beside the
// state, and working directories of workspaces that no longer exist. Zero
// fields keep everything of that kind.
type Retention struct {
	MaxAge           time.Duration
	RunsPerWorkspace int
}

// Report is the scheduled drift report.
type Report struct {
	Schedule string
	Timezone string
	Since    time.Duration
	Notify   []string
}

// Notify is a notification target, named "<kind>.<name>" in policies.
type Notify struct {
	Kind       string // slack
	Name       string
	WebhookURL Secret
	Token      Secret
	Channel    string
	APIURL     string
}

// Target is the name policies use for it.
func (n Notify) Target() string { return n.Kind + "." + n.Name }

// Repository is one Git repository of stacks.
type Repository struct {
	Name       string
	URL        string
	Branch     string
	Poll       time.Duration
	Forge      string // github, gitlab, gitea, none
	APIURL     string // the forge's API, when not derived from URL
	Token      Secret // HTTPS token
	SSHKeyFile string
	// KnownHostsFile holds the host keys SSH accepts for this repository and
	// its SSH module sources; empty: ~/.ssh/known_hosts. Host keys are always
	// checked.
	KnownHostsFile string
	// GitHubApp authenticates as a GitHub App installation instead of a
	// personal token, for the forge API and Git over HTTPS.
	GitHubApp     *GitHubApp
	WebhookSecret Secret
}

// GitHubApp is a GitHub App installation trueline acts as. Installation
// tokens are exchanged with a JWT signed by PrivateKey and refreshed before
// they expire.
type GitHubApp struct {
	AppID          int64
	InstallationID int64
	PrivateKey     Secret // PEM
}

// Defaults for a configuration that leaves things out.
func Defaults() Config {
	return Config{
		Listen:         "127.0.0.1:8080",
		DataDir:        ".trueline",
		Binary:         "terraform",
		Global:         2,
		PerRepository:  2,
		ScheduleJitter: 5 * time.Minute,
		GracePeriod:    60 * time.Second,
		RunTimeout:     time.Hour,
		Retention:      Retention{MaxAge: 90 * 24 * time.Hour, RunsPerWorkspace: 500},
	}
}

type fileSchema struct {
	Listen         *string           `hcl:"listen,optional"`
	ExternalURL    *string           `hcl:"external_url,optional"`
	TrustedProxies []string          `hcl:"trusted_proxies,optional"`
	DataDir        *string           `hcl:"data_dir,optional"`
	CLIConfig      *string           `hcl:"cli_config,optional"`
	ScheduleJitter *string           `hcl:"schedule_jitter,optional"`
	GracePeriod    *string           `hcl:"grace_period,optional"`
	RunTimeout     *string           `hcl:"run_timeout,optional"`
	LockTimeout    *string           `hcl:"lock_timeout,optional"`
	Env            map[string]string `hcl:"env,optional"`
	PassEnv        []string          `hcl:"pass_env,optional"`
	Binary         *binaryBlock      `hcl:"binary,block"`
	Limits         *limitsBlock      `hcl:"limits,block"`
	Repositories   []repoBlock       `hcl:"repository,block"`
	Notify         []notifyBlock     `hcl:"notify,block"`
	Report         *reportBlock      `hcl:"report,block"`
	Retention      *retentionBlock   `hcl:"retention,block"`
	Database       *databaseBlock    `hcl:"database,block"`
	Secrets        []secretBlock     `hcl:"secret,block"`
	Budgets        []budgetBlock     `hcl:"budget,block"`
	Body           hcl.Body          `hcl:",body"`
}

type secretBlock struct {
	Name         string    `hcl:"name,label"`
	FromEnv      *string   `hcl:"from_env,optional"`
	FromFile     *string   `hcl:"from_file,optional"`
	Variable     *string   `hcl:"variable,optional"`
	Env          *string   `hcl:"env,optional"`
	Repositories []string  `hcl:"repositories,optional"`
	Stacks       []string  `hcl:"stacks,optional"`
	Workspaces   []string  `hcl:"workspaces,optional"`
	Body         hcl.Body  `hcl:",body"`
	DefRange     hcl.Range `hcl:",def_range"`
}

type sshBlock struct {
	KeyFile        *string  `hcl:"key_file,optional"`
	KnownHostsFile *string  `hcl:"known_hosts_file,optional"`
	Body           hcl.Body `hcl:",body"`
}

type appBlock struct {
	AppID          int64     `hcl:"app_id"`
	InstallationID int64     `hcl:"installation_id"`
	PrivateKeyEnv  *string   `hcl:"private_key_env,optional"`
	PrivateKeyFile *string   `hcl:"private_key_file,optional"`
	Body           hcl.Body  `hcl:",body"`
	DefRange       hcl.Range `hcl:",def_range"`
}

type databaseBlock struct {
	URL      *string   `hcl:"url,optional"`
	URLEnv   *string   `hcl:"url_env,optional"`
	URLFile  *string   `hcl:"url_file,optional"`
	Body     hcl.Body  `hcl:",body"`
	DefRange hcl.Range `hcl:",def_range"`
}

type retentionBlock struct {
	MaxAge           *string  `hcl:"max_age,optional"`
	RunsPerWorkspace *int     `hcl:"runs_per_workspace,optional"`
	Body             hcl.Body `hcl:",body"`
}

type reportBlock struct {
	Schedule string   `hcl:"schedule"`
	Timezone *string  `hcl:"timezone,optional"`
	Since    *string  `hcl:"since,optional"`
	Notify   []string `hcl:"notify"`
	Body     hcl.Body `hcl:",body"`
}

type notifyBlock struct {
	Kind           string    `hcl:"kind,label"`
	Name           string    `hcl:"name,label"`
	WebhookURLEnv  *string   `hcl:"webhook_url_env,optional"`
	WebhookURLFile *string   `hcl:"webhook_url_file,optional"`
	TokenEnv       *string   `hcl:"token_env,optional"`
	TokenFile      *string   `hcl:"token_file,optional"`
	Channel        *string   `hcl:"channel,optional"`
	APIURL         *string   `hcl:"api_url,optional"`
	Body           hcl.Body  `hcl:",body"`
	DefRange       hcl.Range `hcl:",def_range"`
}

type binaryBlock struct {
	Name          *string  `hcl:"name,optional"`
	Version       *string  `hcl:"version,optional"`
	Path          *string  `hcl:"path,optional"`
	Install       *bool    `hcl:"install,optional"`
	ReleasesURL   *string  `hcl:"releases_url,optional"`
	PublicKeyFile *string  `hcl:"public_key_file,optional"`
	Body          hcl.Body `hcl:",body"`
}

type budgetBlock struct {
	Account           string    `hcl:"account,label"`
	RequestsPerSecond float64   `hcl:"requests_per_second"`
	Body              hcl.Body  `hcl:",body"`
	DefRange          hcl.Range `hcl:",def_range"`
}

// maxBudget bounds a budget: more requests a second than any cloud
// allows one account is a typo.
const maxBudget = 1e6

type limitsBlock struct {
	Global        *int     `hcl:"global,optional"`
	PerRepository *int     `hcl:"per_repository,optional"`
	Body          hcl.Body `hcl:",body"`
}

type repoBlock struct {
	Name              string    `hcl:"name,label"`
	URL               string    `hcl:"url"`
	Branch            *string   `hcl:"branch,optional"`
	Poll              *string   `hcl:"poll,optional"`
	Forge             *string   `hcl:"forge,optional"`
	APIURL            *string   `hcl:"api_url,optional"`
	Token             *string   `hcl:"token,optional"`
	TokenEnv          *string   `hcl:"token_env,optional"`
	TokenFile         *string   `hcl:"token_file,optional"`
	SSHKeyFile        *string   `hcl:"ssh_key_file,optional"`
	SSH               *sshBlock `hcl:"ssh,block"`
	GitHubApp         *appBlock `hcl:"github_app,block"`
	WebhookSecret     *string   `hcl:"webhook_secret,optional"`
	WebhookSecretEnv  *string   `hcl:"webhook_secret_env,optional"`
	WebhookSecretFile *string   `hcl:"webhook_secret_file,optional"`
	Body              hcl.Body  `hcl:",body"`
	DefRange          hcl.Range `hcl:",def_range"`
}

// ParseAge reads a duration that may also be written in days ("90d").
func ParseAge(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != days {
			return 0, fmt.Errorf("not a number of days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative")
	}
	return d, nil
}

var hclIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

var repoName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Load reads a configuration file on top of the defaults. getenv resolves
// secrets named by environment variable (os.Getenv when nil).
func Load(path string, getenv func(string) string) (Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, diags := Parse(path, src, getenv)
	if diags.HasErrors() {
		return Config{}, &hcldiag.Error{Diags: diags}
	}
	if !filepath.IsAbs(cfg.DataDir) {
		cfg.DataDir = filepath.Join(filepath.Dir(path), cfg.DataDir)
	}
	return cfg, nil
}

// Parse reads configuration source on top of the defaults.
func Parse(filename string, src []byte, getenv func(string) string) (Config, hcl.Diagnostics) {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := Defaults()
	f, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() {
		return cfg, diags
	}
	var fs fileSchema
	diags = append(diags, gohcl.DecodeBody(f.Body, nil, &fs)...)
	if diags.HasErrors() {
		return cfg, diags
	}
	at := func(body hcl.Body, name string) *hcl.Range { return hcldiag.AttrRange(body, name) }
	bad := func(r *hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r})
	}
	duration := func(body hcl.Body, name string, v *string, into *time.Duration) {
		if v == nil {
			return
		}
		d, err := time.ParseDuration(*v)
		if err != nil {
			bad(at(body, name), "Invalid duration", fmt.Sprintf("%s = %q is not a duration; write it like \"30s\", \"5m\" or \"1h\".", name, *v))
			return
		}
		if d < 0 {
			bad(at(body, name), "Invalid duration", fmt.Sprintf("%s = %q is negative; write it like \"30s\", \"5m\" or \"1h\".", name, *v))
			return
		}
		*into = d
	}
	if fs.Listen != nil {
		if _, _, err := net.SplitHostPort(*fs.Listen); err != nil {
			bad(at(fs.Body, "listen"), "Invalid listen address", fmt.Sprintf("%q: %v; write host:port, e.g. \"127.0.0.1:8080\" or \":8080\".", *fs.Listen, err))
		}
		cfg.Listen = *fs.Listen
	}
	if fs.ExternalURL != nil {
		// The scheme also decides whether the session cookie is Secure.
		if u, err := url.Parse(*fs.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(at(fs.Body, "external_url"), "Invalid external URL", fmt.Sprintf("external_url = %q; write the http or https URL people reach the server at, e.g. \"https://trueline.example.com\".", *fs.ExternalURL))
		}
		cfg.ExternalURL = *fs.ExternalURL
	}
	if fs.TrustedProxies != nil {
		var err error
		if cfg.TrustedProxies, err = ParseTrustedProxies(fs.TrustedProxies); err != nil {
			bad(at(fs.Body, "trusted_proxies"), "Invalid trusted proxy", fmt.Sprintf("%v.", err))
		}
	}
	if fs.DataDir != nil {
		cfg.DataDir = *fs.DataDir
	}
	if fs.CLIConfig != nil {
		cfg.CLIConfig = *fs.CLIConfig
	}
	cfg.Env = fs.Env
	for _, p := range fs.PassEnv {
		if p == "" || strings.HasPrefix(p, "TRUELINE_") || strings.Contains(strings.TrimSuffix(p, "*"), "*") {
			bad(at(fs.Body, "pass_env"), "Invalid pass_env entry", fmt.Sprintf("%q: give names like \"AWS_*\" or \"KUBECONFIG\" (a \"*\" only at the end); TRUELINE_ variables never reach terraform.", p))
		}
	}
	if fs.PassEnv != nil {
		cfg.PassEnv = fs.PassEnv
	}
	duration(fs.Body, "schedule_jitter", fs.ScheduleJitter, &cfg.ScheduleJitter)
	duration(fs.Body, "grace_period", fs.GracePeriod, &cfg.GracePeriod)
	duration(fs.Body, "run_timeout", fs.RunTimeout, &cfg.RunTimeout)
	duration(fs.Body, "lock_timeout", fs.LockTimeout, &cfg.LockTimeout)
	if b := fs.Binary; b != nil {
		if b.Name != nil {
			if *b.Name != "terraform" && *b.Name != "tofu" {
				bad(at(b.Body, "name"), "Unknown binary", fmt.Sprintf("name = %q; use \"terraform\" or \"tofu\".", *b.Name))
			}
			cfg.Binary = *b.Name
		}
		if b.Version != nil {
			if _, err := version.NewConstraint(*b.Version); err != nil {
				bad(at(b.Body, "version"), "Invalid version constraint", fmt.Sprintf("version = %q: %v; write one such as \"~> 1.13\" or \">= 1.5, < 2\".", *b.Version, err))
			}
			cfg.BinaryVersion = *b.Version
		}
		if b.Path != nil {
			cfg.BinaryPath = *b.Path
		}
		binaryInstall(b, &cfg, at, bad)
	}
	if rb := fs.Retention; rb != nil {
		if rb.MaxAge != nil {
			d, err := ParseAge(*rb.MaxAge)
			if err != nil {
				bad(at(rb.Body, "max_age"), "Invalid retention age", fmt.Sprintf("max_age = %q: %v; write it like \"90d\" or \"720h\", or \"0\" to keep everything.", *rb.MaxAge, err))
			}
			cfg.Retention.MaxAge = d
		}
		if rb.RunsPerWorkspace != nil {
			if *rb.RunsPerWorkspace < 0 {
				bad(at(rb.Body, "runs_per_workspace"), "Invalid retention", "runs_per_workspace must be 0 (no cap) or more.")
			}
			cfg.Retention.RunsPerWorkspace = *rb.RunsPerWorkspace
		}
	}
	if l := fs.Limits; l != nil {
		if l.Global != nil {
			if *l.Global < 1 {
				bad(at(l.Body, "global"), "Invalid limit", "global must be at least 1.")
			}
			cfg.Global = *l.Global
		}
		if l.PerRepository != nil {
			if *l.PerRepository < 1 {
				bad(at(l.Body, "per_repository"), "Invalid limit", "per_repository must be at least 1.")
			}
			cfg.PerRepository = *l.PerRepository
		}
	}
	budgets := map[string]bool{}
	for _, b := range fs.Budgets {
		switch {
		case !stacks.ValidAccount(b.Account):
			bad(b.DefRange.Ptr(), "Invalid budget account", fmt.Sprintf("budget %q: name the account as stack.hcl's account does: 1 to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or a digit.", b.Account))
		case budgets[b.Account]:
			bad(b.DefRange.Ptr(), "Duplicate budget", fmt.Sprintf("budget %q is declared twice; keep one block per account.", b.Account))
		case !(b.RequestsPerSecond > 0 && b.RequestsPerSecond <= maxBudget): // NaN too
			bad(at(b.Body, "requests_per_second"), "Invalid budget", fmt.Sprintf("budget %q: requests_per_second = %g; write the requests a second trueline may send the account, more than 0 and at most %g, e.g. 80%% of its API rate limit.", b.Account, b.RequestsPerSecond, maxBudget))
		default:
			cfg.Budgets = append(cfg.Budgets, limiter.Budget{Account: b.Account, RequestsPerSecond: b.RequestsPerSecond})
		}
		budgets[b.Account] = true
	}

	seen := map[string]bool{}
	for _, rb := range fs.Repositories {
		r := Repository{Name: rb.Name, URL: rb.URL, Branch: "main", Poll: time.Minute, Forge: "none"}
		if !repoName.MatchString(rb.Name) {
			bad(rb.DefRange.Ptr(), "Invalid repository name", fmt.Sprintf("%q: use letters, digits, '.', '_' and '-'.", rb.Name))
		}
		if seen[rb.Name] {
			bad(rb.DefRange.Ptr(), "Duplicate repository", fmt.Sprintf("repository %q is declared twice.", rb.Name))
		}
		seen[rb.Name] = true
		if rb.URL == "" {
			bad(at(rb.Body, "url"), "Missing url", "url names the Git remote: https://..., ssh://..., file://... or a local path.")
		}
		if rb.Branch != nil {
			r.Branch = *rb.Branch
		}
		duration(rb.Body, "poll", rb.Poll, &r.Poll)
		if r.Poll == 0 {
			// A zero interval would fetch in a busy loop.
			bad(at(rb.Body, "poll"), "Invalid poll interval", fmt.Sprintf("poll = %q: trueline fetches the repository this often; use a positive duration such as \"1m\" (push webhooks fetch at once in between).", *rb.Poll))
		}
		if rb.Forge != nil {
			switch *rb.Forge {
			case "github", "gitlab", "gitea", "none":
				r.Forge = *rb.Forge
			default:
				bad(at(rb.Body, "forge"), "Unknown forge", fmt.Sprintf("forge = %q; use github, gitlab, gitea or none.", *rb.Forge))
			}
		}
		if rb.APIURL != nil {
			r.APIURL = *rb.APIURL
		}
		if rb.Token != nil {
			bad(at(rb.Body, "token"), "Inline secret", "Secrets are never written in the configuration: name them with token_env or token_file.")
		}
		if rb.WebhookSecret != nil {
			bad(at(rb.Body, "webhook_secret"), "Inline secret", "Secrets are never written in the configuration: use webhook_secret_env or webhook_secret_file.")
		}
		r.Token = secret(rb.Body, "token", rb.TokenEnv, rb.TokenFile, getenv, bad)
		r.WebhookSecret = secret(rb.Body, "webhook_secret", rb.WebhookSecretEnv, rb.WebhookSecretFile, getenv, bad)
		if rb.SSHKeyFile != nil {
			if _, err := os.Stat(*rb.SSHKeyFile); err != nil {
				bad(at(rb.Body, "ssh_key_file"), "Unreadable SSH key", fmt.Sprintf("%v.", err))
			}
			r.SSHKeyFile = *rb.SSHKeyFile
		}
		if sb := rb.SSH; sb != nil {
			if sb.KeyFile != nil {
				if rb.SSHKeyFile != nil {
					bad(at(sb.Body, "key_file"), "Two SSH keys", "Set ssh { key_file } or ssh_key_file, not both.")
				}
				if _, err := os.Stat(*sb.KeyFile); err != nil {
					bad(at(sb.Body, "key_file"), "Unreadable SSH key", fmt.Sprintf("%v.", err))
				}
				r.SSHKeyFile = *sb.KeyFile
			}
			if sb.KnownHostsFile != nil {
				if _, err := os.Stat(*sb.KnownHostsFile); err != nil {
					bad(at(sb.Body, "known_hosts_file"), "Unreadable known_hosts file", fmt.Sprintf("%v; write it with ssh-keyscan HOST > FILE and check the fingerprints.", err))
				}
				r.KnownHostsFile = *sb.KnownHostsFile
			}
		}
		if ab := rb.GitHubApp; ab != nil {
			if r.Forge != "github" {
				bad(ab.DefRange.Ptr(), "GitHub App without GitHub", fmt.Sprintf("github_app authenticates to GitHub only; set forge = \"github\" in repository %q or remove the block.", rb.Name))
			}
			if rb.TokenEnv != nil || rb.TokenFile != nil {
				bad(ab.DefRange.Ptr(), "Two GitHub credentials", "Use a github_app block or token_env/token_file, not both.")
			}
			if ab.AppID <= 0 || ab.InstallationID <= 0 {
				bad(ab.DefRange.Ptr(), "Invalid GitHub App", "app_id and installation_id are the positive numbers GitHub shows on the app's and the installation's settings pages.")
			}
			if ab.PrivateKeyEnv == nil && ab.PrivateKeyFile == nil {
				bad(ab.DefRange.Ptr(), "GitHub App without a key", "Set private_key_file = \"/run/secrets/github-app.pem\" (or private_key_env) to the app's PEM private key.")
			}
			r.GitHubApp = &GitHubApp{
				AppID:          ab.AppID,
				InstallationID: ab.InstallationID,
				PrivateKey:     secret(ab.Body, "private_key", ab.PrivateKeyEnv, ab.PrivateKeyFile, getenv, bad),
			}
		}
		cfg.Repositories = append(cfg.Repositories, r)
	}
	if db := fs.Database; db != nil {
		if db.URL != nil {
			bad(at(db.Body, "url"), "Inline secret", "The database URL holds a password: name it with url_env = \"TRUELINE_DATABASE_URL\" or url_file = \"/run/secrets/db-url\".")
		}
		if db.URLEnv == nil && db.URLFile == nil && db.URL == nil {
			bad(db.DefRange.Ptr(), "Database without a URL", "Set url_env = \"TRUELINE_DATABASE_URL\" or url_file = \"/run/secrets/db-url\" to a postgres://user:password@host:5432/database URL, or remove the block for SQLite in data_dir.")
		}
		cfg.Database = secret(db.Body, "url", db.URLEnv, db.URLFile, getenv, bad)
		if u := cfg.Database.Value(); u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") && !strings.HasPrefix(u, "sqlite://") {
			name := "url_env"
			if db.URLFile != nil {
				name = "url_file"
			}
			// The value is not quoted: it may be a password in the wrong place.
			bad(at(db.Body, name), "Not a database URL", fmt.Sprintf("The %s holds no postgres:// URL; write postgres://user:password@host:5432/database (or sqlite:///path/to/trueline.db) there.", cfg.Database.Source))
		}
	}
	if rb := fs.Report; rb != nil {
		rep := &Report{Schedule: rb.Schedule, Timezone: "UTC", Since: 24 * time.Hour, Notify: rb.Notify}
		if _, err := stacks.ParseCron(rb.Schedule); err != nil {
			bad(at(rb.Body, "schedule"), "Invalid schedule", stacks.CronDetail(err, "0 7 * * *"))
		}
		if rb.Timezone != nil {
			if _, err := time.LoadLocation(*rb.Timezone); err != nil {
				bad(at(rb.Body, "timezone"), "Unknown timezone", fmt.Sprintf("%q is not a known IANA timezone.", *rb.Timezone))
			}
			rep.Timezone = *rb.Timezone
		}
		duration(rb.Body, "since", rb.Since, &rep.Since)
		cfg.Report = rep
	}
	for _, sb := range fs.Secrets {
		b := Binding{Name: sb.Name, Repositories: sb.Repositories, Stacks: sb.Stacks, Workspaces: sb.Workspaces}
		if sb.FromEnv == nil && sb.FromFile == nil {
			bad(sb.DefRange.Ptr(), "Secret without a source", fmt.Sprintf("secret %q: set from_env = \"NAME\" or from_file = \"/run/secrets/%s\".", sb.Name, sb.Name))
		}
		b.Value = secret(sb.Body, "from", sb.FromEnv, sb.FromFile, getenv, bad)
		switch {
		case (sb.Variable == nil) == (sb.Env == nil):
			bad(sb.DefRange.Ptr(), "Secret without one target", fmt.Sprintf("secret %q: give it to terraform as variable = \"name\" or as env = \"NAME\", one of them.", sb.Name))
		case sb.Variable != nil:
			b.Variable = *sb.Variable
			if !hclIdent.MatchString(b.Variable) {
				bad(at(sb.Body, "variable"), "Invalid variable name", fmt.Sprintf("variable = %q is not a terraform variable name.", b.Variable))
			}
		default:
			b.Env = *sb.Env
			if why := stacks.ReservedEnv(b.Env); why != "" {
				bad(at(sb.Body, "env"), "Reserved environment variable", fmt.Sprintf("env = %q: %s.", b.Env, why))
			}
		}
		for field, pats := range map[string][]string{"repositories": b.Repositories, "stacks": b.Stacks, "workspaces": b.Workspaces} {
			for _, p := range pats {
				if _, err := path.Match(p, ""); err != nil {
					bad(at(sb.Body, field), "Invalid glob", fmt.Sprintf("%s lists %q: %v.", field, p, err))
				}
			}
		}
		cfg.Bindings = append(cfg.Bindings, b)
	}
	for _, nb := range fs.Notify {
		if nb.Kind != "slack" {
			bad(nb.DefRange.Ptr(), "Unknown notify kind", fmt.Sprintf("notify %q: trueline notifies \"slack\".", nb.Kind))
			continue
		}
		n := Notify{Kind: nb.Kind, Name: nb.Name}
		n.WebhookURL = secret(nb.Body, "webhook_url", nb.WebhookURLEnv, nb.WebhookURLFile, getenv, bad)
		n.Token = secret(nb.Body, "token", nb.TokenEnv, nb.TokenFile, getenv, bad)
		if nb.Channel != nil {
			n.Channel = *nb.Channel
		}
		if nb.APIURL != nil {
			n.APIURL = *nb.APIURL
		}
		switch {
		case n.WebhookURL.IsSet() && n.Token.IsSet():
			bad(nb.DefRange.Ptr(), "Two ways to reach Slack", "Use an incoming webhook (webhook_url_env) or a bot token (token_env) and a channel, not both.")
		case n.Token.IsSet() && n.Channel == "":
			bad(nb.DefRange.Ptr(), "Missing channel", "A bot token posts to a channel: set channel = \"#infra\" (or a channel id).")
		case !n.WebhookURL.IsSet() && !n.Token.IsSet() && !diags.HasErrors():
			bad(nb.DefRange.Ptr(), "Nothing to post with", "Set webhook_url_env (an incoming webhook) or token_env and channel (a bot token).")
		}
		cfg.Notify = append(cfg.Notify, n)
	}
	return cfg, diags
}

// ParseTrustedProxies reads proxy addresses: CIDR prefixes ("10.0.0.0/8")
// or single addresses ("127.0.0.1", "::1").
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix such as \"10.0.0.0/8\"", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Secrets lists every secret value of the configuration, for scrubbing.
func (c Config) Secrets() []string {
	var out []string
	add := func(s Secret) {
		if s.IsSet() {
			out = append(out, s.Value())
		}
	}
	for _, r := range c.Repositories {
		add(r.Token)
		add(r.WebhookSecret)
		if r.GitHubApp != nil {
			add(r.GitHubApp.PrivateKey)
		}
	}
	add(c.Database)
	for _, n := range c.Notify {
		add(n.WebhookURL)
		add(n.Token)
	}
	for _, b := range c.Bindings {
		add(b.Value)
	}
	return out
}

func secret(body hcl.Body, name string, env, file *string, getenv func(string) string, bad func(*hcl.Range, string, string)) Secret {
	switch {
	case env != nil && file != nil:
		bad(hcldiag.AttrRange(body, name+"_env"), "Two sources for one secret", fmt.Sprintf("Set %s_env or %s_file, not both.", name, name))
	case env != nil:
		v := getenv(*env)
		if v == "" {
			bad(hcldiag.AttrRange(body, name+"_env"), "Secret not set", fmt.Sprintf("The environment variable %s is empty or not set.", *env))
		}
		return Secret{value: v, Source: "env " + *env}
	case file != nil:
		b, err := os.ReadFile(*file)
		if err != nil {
			bad(hcldiag.AttrRange(body, name+"_file"), "Unreadable secret file", fmt.Sprintf("%v.", err))
		}
		return Secret{value: strings.TrimSpace(string(b)), Source: "file " + *file}
	}
	return Secret{}
}

// binaryInstall reads the install settings of the binary block: where
// terraform releases come from and the key that signs them.
func binaryInstall(b *binaryBlock, cfg *Config, at func(hcl.Body, string) *hcl.Range, bad func(*hcl.Range, string, string)) {
	if b.Install != nil {
		cfg.BinaryInstall = *b.Install
	}
	for _, name := range []string{"releases_url", "public_key_file"} {
		if at(b.Body, name) != nil && !cfg.BinaryInstall {
			bad(at(b.Body, name), "Install settings without install", fmt.Sprintf("%s only says how terraform is installed; add install = true to the binary block, or remove it.", name))
		}
	}
	if b.ReleasesURL != nil {
		u, err := url.Parse(*b.ReleasesURL)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			bad(at(b.Body, "releases_url"), "Invalid releases URL", fmt.Sprintf("releases_url = %q; write the URL of a server laid out like HashiCorp's releases site, e.g. \"https://releases.example.com\".", *b.ReleasesURL))
		case u.User != nil:
			bad(at(b.Body, "releases_url"), "Credentials in the releases URL", "releases_url would show its password in logs and errors; use a releases server that needs none.")
		default:
			cfg.BinaryReleasesURL = *b.ReleasesURL
		}
	}
	if b.PublicKeyFile != nil {
		cfg.BinaryPublicKeyFile = *b.PublicKeyFile
		raw, err := os.ReadFile(*b.PublicKeyFile)
		if err == nil {
			_, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(raw))
		}
		if err != nil {
			bad(at(b.Body, "public_key_file"), "Unusable release signing key", fmt.Sprintf("%s: %v; give the armored OpenPGP public key (gpg --armor --export KEYID) that signs the releases' SHA256SUMS.", *b.PublicKeyFile, err))
			return
		}
		cfg.BinaryPublicKey = string(raw)
	}
}
