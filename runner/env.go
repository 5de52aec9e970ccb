package runner

import "strings"

// DefaultPassEnv names the variables of trueline's own environment that
// terraform and its providers inherit when Runner.PassEnv is nil. A name
// ending in "*" matches every name with that prefix. Everything else stays
// behind: trueline's environment holds its own secrets (API tokens, forge
// tokens, webhook secrets, Slack URLs), and terraform runs providers and
// modules that the stacks' authors chose.
//
// It covers the system (PATH, HOME, user, temporary directory, time zone,
// locale), TLS roots and proxies, the SSH agent (git module sources),
// Terraform's own settings (TF_*; TF_DATA_DIR, TF_CLI_CONFIG_FILE and
// TF_PLUGIN_CACHE_DIR are set by trueline when it has them), and the
// credentials of the AWS, Google, Azure and sandbox providers. Extend it
// with Runner.PassEnv, e.g. append(runner.DefaultPassEnv, "KUBECONFIG").
var DefaultPassEnv = append(append([]string(nil), SystemPassEnv...), CredentialPassEnv...)

// SystemPassEnv is the part of DefaultPassEnv terraform cannot run without;
// a configured pass list (trueline.hcl pass_env) is added to it.
var SystemPassEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LC_*",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
	"SSH_AUTH_SOCK",
	"TF_*",
}

// CredentialPassEnv is the part of DefaultPassEnv that carries cloud
// credentials; trueline.hcl pass_env replaces it.
var CredentialPassEnv = []string{"AWS_*", "GOOGLE_*", "ARM_*", "AZURE_*", "SANDBOX_*"}

// PassList is the pass list for a configured pass_env: SystemPassEnv and
// the configured names, or DefaultPassEnv when none is configured.
func PassList(configured []string) []string {
	if configured == nil {
		return DefaultPassEnv
	}
	return append(append([]string(nil), SystemPassEnv...), configured...)
}

// withheldPrefix marks trueline's own variables: they never reach
// terraform, whatever PassEnv says and wherever they come from.
const withheldPrefix = "TRUELINE_"

// Passes reports whether a variable of trueline's environment named name
// reaches terraform under the pass list (DefaultPassEnv when nil).
func Passes(name string, pass []string) bool {
	if pass == nil {
		pass = DefaultPassEnv
	}
	if strings.HasPrefix(name, withheldPrefix) {
		return false
	}
	for _, p := range pass {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if name == p {
			return true
		}
	}
	return false
}

// buildEnv is the environment of a terraform process: the variables of
// environ (os.Environ form) that pass, then each explicit map in order,
// later ones winning. No TRUELINE_ variable is ever included.
func buildEnv(environ, pass []string, explicit ...map[string]string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if Passes(k, pass) {
			env[k] = v
		}
	}
	for _, m := range explicit {
		for k, v := range m {
			if !strings.HasPrefix(k, withheldPrefix) {
				env[k] = v
			}
		}
	}
	return env
}

// processEnv is the environment of a job's terraform processes: what passes
// of trueline's environment (environ), the runner's values, the job's, and
// last what trueline sets itself, which a job cannot override: the job's
// data directory, the CLI config and the plugin cache that lockCache guards.
func (r *Runner) processEnv(environ []string, job Job, dataDir string) map[string]string {
	own := map[string]string{"TF_DATA_DIR": dataDir}
	if r.CLIConfig != "" {
		own["TF_CLI_CONFIG_FILE"] = r.CLIConfig
	}
	if d := r.Env["TF_PLUGIN_CACHE_DIR"]; d != "" {
		own["TF_PLUGIN_CACHE_DIR"] = d
	}
	return buildEnv(environ, r.PassEnv, r.Env, job.Env, own)
}
