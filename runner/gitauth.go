package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// GitAuth is what terraform's Git module fetches (and trueline's lookups of
// module branches) authenticate with: the credentials of the repository the
// stack comes from. A token goes over HTTPS and to the repository's own host
// only; a key file goes over SSH, with host keys always checked.
type GitAuth struct {
	// URL is the repository's URL. The token is offered only to its host
	// (scheme, host and port; https on the host of an ssh or scp-style
	// URL): git asks GIT_ASKPASS for any host that answers 401, and a
	// module source on another host must not receive the token.
	URL string
	// Username goes with Token; empty means "x-access-token", which
	// GitHub, GitLab and Gitea accept with a token as the password.
	Username string
	Token    string
	// SSHKeyFile is the private key for ssh:// and scp-style sources.
	SSHKeyFile string
	// KnownHostsFile holds the host keys SSH accepts; empty: ssh's own
	// default (~/.ssh/known_hosts). Unknown or changed keys always fail.
	KnownHostsFile string
}

// DefaultGitUsername goes with a token when GitAuth.Username is empty.
const DefaultGitUsername = "x-access-token"

// SSHCommand is the GIT_SSH_COMMAND for a's key and known_hosts file, or ""
// when it names neither. Git runs it with sh -c, so every path is quoted for
// the shell; ssh then reads the -o value as a config line (quotes and
// backslashes) and expands % and ${} in both file names, so those are
// escaped or refused.
func (a GitAuth) SSHCommand() (string, error) {
	if a.SSHKeyFile == "" && a.KnownHostsFile == "" {
		return "", nil
	}
	parts := []string{"ssh"}
	if a.SSHKeyFile != "" {
		key, err := sshPath("ssh key file", a.SSHKeyFile)
		if err != nil {
			return "", err
		}
		// -i is not read as a config line, and ssh stats it before its %
		// expansion, so a % cannot be escaped there: sshPath refuses it.
		parts = append(parts, "-i", shellQuote(key), "-o", "IdentitiesOnly=yes")
	}
	parts = append(parts, "-o", "StrictHostKeyChecking=yes")
	if a.KnownHostsFile != "" {
		kh, err := sshPath("known_hosts file", a.KnownHostsFile)
		if err != nil {
			return "", err
		}
		q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(kh)
		parts = append(parts, "-o", shellQuote(`UserKnownHostsFile="`+q+`"`))
	}
	// Never a prompt (passphrase, password, unknown host): a run has no
	// one to answer it.
	parts = append(parts, "-o", "BatchMode=yes")
	return strings.Join(parts, " "), nil
}

// sshPath makes p absolute (ssh would expand a leading ~ and resolve a
// relative path against terraform's directory) and refuses what ssh would
// expand in it.
func sshPath(what, p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, p, err)
	}
	switch {
	case strings.ContainsAny(abs, "%\n\r\x00"):
		return "", fmt.Errorf("%s %q: ssh expands %% in file names (and a line break cannot pass); move or rename the file", what, p)
	case strings.Contains(abs, "${"):
		return "", fmt.Errorf("%s %q: ssh expands ${...} in file names; move or rename the file", what, p)
	}
	return abs, nil
}

// shellQuote quotes s for sh in single quotes; a single quote inside closes
// the quoting, is escaped with a backslash, and reopens it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tokenOrigins are the scheme://host[:port] forms git describes the
// repository's host with in its prompts: the token is answered for these
// only. An ssh or scp-style URL means https on the same host, where forges
// serve the same repositories over HTTPS. A local path has none.
func tokenOrigins(repoURL string) []string {
	if g, ok := scpRemote(repoURL); ok {
		repoURL = g
	}
	u, err := url.Parse(repoURL)
	if err != nil || u.Hostname() == "" {
		return nil
	}
	scheme, port := u.Scheme, u.Port()
	switch scheme {
	case "http", "https":
	case "ssh":
		scheme, port = "https", ""
	default:
		return nil
	}
	host := u.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	// git describes the host as the URL writes it: with or without the
	// scheme's default port.
	defaultPort := map[string]string{"http": "80", "https": "443"}[scheme]
	hosts := []string{host + ":" + port}
	if port == "" || port == defaultPort {
		hosts = []string{host, host + ":" + defaultPort}
	}
	var out []string
	for _, h := range hosts {
		out = append(out, scheme+"://"+h)
		if l := strings.ToLower(h); l != h {
			out = append(out, scheme+"://"+l)
		}
	}
	return out
}

// askpassScript answers git's prompts ("Username for 'https://host': ",
// "Password for 'https://user@host': ") from the files beside it, for the
// origins listed there only; any other host gets an empty answer, so git
// fails there as it would without credentials. It runs no other command.
const askpassScript = `#!/bin/sh
# Written by trueline as GIT_ASKPASS: answers git's credential prompts for the
# repository's own host only, from the 0600 files beside it.
d=${0%/*}
u=${1#*\'}
u=${u%\'*}
case $u in
*://*) ;;
*) echo; exit 0 ;;
esac
scheme=${u%%://*}
rest=${u#*://}
authority=${rest%%/*}
origin=$scheme://${authority##*@}
ok=
while IFS= read -r o || [ -n "$o" ]; do
	[ "$o" = "$origin" ] && ok=1
done < "$d/origins"
if [ -z "$ok" ]; then
	echo
	exit 0
fi
case $1 in
Username*) f=$d/username ;;
Password*) f=$d/token ;;
*) echo; exit 0 ;;
esac
IFS= read -r v < "$f" || [ -n "$v" ]
printf '%s\n' "$v"
`

// gitFiles writes the askpass helper and its answers into a new 0700
// directory under wd (the job's private directory) and returns it. The
// token is in a 0600 file, never on a command line, in a URL or in the
// environment of terraform's providers.
func gitFiles(wd string, a GitAuth, origins []string) (string, error) {
	user := a.Username
	if user == "" {
		user = DefaultGitUsername
	}
	if strings.ContainsAny(a.Token, "\n\r\x00") || strings.ContainsAny(user, "\n\r\x00") {
		return "", errors.New("the Git token or username holds a line break or NUL; check the file or variable it is read from")
	}
	dir, err := os.MkdirTemp(wd, "git-")
	if err != nil {
		return "", fmt.Errorf("git credentials: %w", err)
	}
	for _, f := range []struct {
		name, content string
		mode          os.FileMode
	}{
		{"token", a.Token, 0o600},
		{"username", user, 0o600},
		{"origins", strings.Join(origins, "\n") + "\n", 0o600},
		{"askpass", askpassScript, 0o700},
	} {
		if err := writeNew(filepath.Join(dir, f.name), f.content, f.mode); err != nil {
			_ = os.RemoveAll(dir) // the write's error is the one to report; Cleanup removes leftovers
			return "", fmt.Errorf("git credentials: %w", err)
		}
	}
	return dir, nil
}

func writeNew(path, content string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// openGit prepares the job's Git credentials for the commands that may
// fetch modules (init) and for branch lookups: the environment that carries
// them, and a close that removes the files holding them.
func (s *session) openGit() (map[string]string, func(), error) {
	a := s.job.Git
	if a == nil {
		return nil, func() {}, nil
	}
	env := map[string]string{"GIT_TERMINAL_PROMPT": "0"}
	sshCmd, err := a.SSHCommand()
	if err != nil {
		return nil, nil, fmt.Errorf("git credentials: %w", err)
	}
	if sshCmd != "" {
		env["GIT_SSH_COMMAND"] = sshCmd
	}
	origins := tokenOrigins(a.URL)
	if a.Token == "" || len(origins) == 0 {
		return env, func() {}, nil
	}
	dir, err := gitFiles(s.wd, *a, origins)
	if err != nil {
		return nil, nil, err
	}
	env["GIT_ASKPASS"] = filepath.Join(dir, "askpass")
	return env, func() { _ = os.RemoveAll(dir) }, nil // a leftover goes at the next start (Cleanup)
}

// gitHint adds the fix to an init that failed on a Git module source.
func gitHint(msg string, a *GitAuth) string {
	switch {
	case strings.Contains(msg, "Host key verification failed"):
		where := "~/.ssh/known_hosts"
		if a != nil && a.KnownHostsFile != "" {
			where = a.KnownHostsFile
		}
		return "\nfix: a module's SSH host is not in " + where + " or its key differs: check the host's fingerprint and add it with `ssh-keyscan -p PORT HOST >> " + where + "` (trueline.hcl repository ssh { known_hosts_file })"
	case strings.Contains(msg, "Permission denied (publickey"):
		return "\nfix: the module's SSH host refused the key: make the repository's ssh key_file a deploy key of the module's repository too"
	case strings.Contains(msg, "Authentication failed"), strings.Contains(msg, "could not read Username"), strings.Contains(msg, "could not read Password"):
		if a != nil && a.Token != "" {
			return "\nfix: the module's Git host refused the repository's token: give it read access to the module's repository; it is offered on the repository's own host (" + strings.Join(tokenOrigins(a.URL), ", ") + ") only"
		}
		return "\nfix: the module's repository is private: set the repository's token (trueline.hcl repository token_env or token_file), which module fetches on the repository's host use"
	}
	return ""
}

// DefaultGitRefTTL is how long a resolved branch is reused when
// Runner.GitRefTTL is zero.
const DefaultGitRefTTL = 30 * time.Second

const (
	// gitLookupTimeout bounds one git ls-remote.
	gitLookupTimeout = 30 * time.Second
	// maxGitLookups bounds the distinct Git sources one run looks up;
	// the others keep the commit last recorded.
	maxGitLookups = 32
)

// refLookup is one resolution of a branch, shared by every run that asks
// for the same source with the same credentials while it is fresh.
type refLookup struct {
	done     chan struct{}
	at       time.Time
	commit   string
	err      error
	canceled bool // its caller went away: not an answer for anyone else
}

// GitLookups reports how many branch lookups (git ls-remote) this runner
// has made.
func (r *Runner) GitLookups() int64 { return r.gitLookups.Load() }

// lookupRef resolves g once per GitRefTTL per credentials, however many
// runs ask at once: a hundred workspaces calling one module cost one
// lookup.
func (r *Runner) lookupRef(ctx context.Context, auth *GitAuth, g gitSource, do func(context.Context) (string, error)) (string, error) {
	ttl := r.GitRefTTL
	if ttl == 0 {
		ttl = DefaultGitRefTTL
	}
	key := lookupKey(auth, g)
	for {
		r.refMu.Lock()
		if r.refs == nil {
			r.refs = map[string]*refLookup{}
		}
		e := r.refs[key]
		if e == nil || e.stale(ttl) {
			for k, old := range r.refs {
				if old.stale(ttl) {
					delete(r.refs, k)
				}
			}
			e = &refLookup{done: make(chan struct{})}
			r.refs[key] = e
			r.refMu.Unlock()
			r.gitLookups.Add(1)
			commit, err := do(ctx)
			e.commit, e.err, e.at = commit, err, time.Now()
			if err != nil && ctx.Err() != nil {
				e.canceled = true
				r.refMu.Lock()
				if r.refs[key] == e {
					delete(r.refs, key)
				}
				r.refMu.Unlock()
			}
			close(e.done)
			return commit, err
		}
		r.refMu.Unlock()
		select {
		case <-e.done:
			if !e.canceled {
				return e.commit, e.err
			}
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func (e *refLookup) stale(ttl time.Duration) bool {
	select {
	case <-e.done:
		return e.canceled || ttl < 0 || time.Since(e.at) >= ttl
	default:
		return false
	}
}

// lookupKey names a source with the credentials it is looked up with (a
// hash: the token stays out of the map).
func lookupKey(a *GitAuth, g gitSource) string {
	h := sha256.New()
	if a != nil {
		for _, f := range []string{a.URL, a.Username, a.Token, a.SSHKeyFile, a.KnownHostsFile} {
			h.Write([]byte(f))
			h.Write([]byte{0})
		}
	}
	h.Write([]byte(g.key()))
	return hex.EncodeToString(h.Sum(nil))
}

// resolveRefs looks up the commit of every Git source among sources whose
// ref can move. A lookup that fails keeps the commit recorded in old (a
// remote that is down must not cost an init per run, nor hide the next
// move), and says so in the run log.
func (s *session) resolveRefs(ctx context.Context, sources []string, old map[string]string, gitEnv map[string]string) map[string]string {
	refs := map[string]string{}
	env := s.gitLookupEnv(gitEnv)
	n := 0
	for _, src := range sources {
		g, ok := parseGitSource(src)
		if !ok || !g.moves() {
			continue
		}
		key := g.key()
		if _, done := refs[key]; done {
			continue
		}
		if n == maxGitLookups {
			s.note("more than %d Git module sources with branches; %s and the others after it are not looked up, and their branches not followed", maxGitLookups, g)
			for _, rest := range sources {
				if g, ok := parseGitSource(rest); ok && g.moves() {
					if _, done := refs[g.key()]; !done {
						refs[g.key()] = old[g.key()]
					}
				}
			}
			break
		}
		n++
		commit, err := s.r.lookupRef(ctx, s.job.Git, g, func(ctx context.Context) (string, error) {
			return lsRemote(ctx, s.job.Dir, env, g)
		})
		if err != nil {
			s.note("cannot resolve %s (%v); its branch is not followed until a lookup works", g, err)
			commit = old[key]
		}
		refs[key] = commit
	}
	return refs
}

// gitLookupEnv is the environment of a lookup: terraform's own (so git sees
// what terraform's git would) with the job's Git credentials, and never a
// prompt.
func (s *session) gitLookupEnv(gitEnv map[string]string) []string {
	env := make([]string, 0, len(s.env)+len(gitEnv)+1)
	for k, v := range s.env {
		if _, ours := gitEnv[k]; !ours && k != "GIT_TERMINAL_PROMPT" {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range gitEnv {
		if k != "GIT_TERMINAL_PROMPT" {
			env = append(env, k+"="+v)
		}
	}
	return append(env, "GIT_TERMINAL_PROMPT=0")
}

// lsRemote asks the remote for the commit of g's ref: the branch, else the
// tag (peeled), or HEAD when g names no ref. It runs in a session of its
// own, with no terminal, so that neither git nor ssh can prompt; its
// output is bounded.
func lsRemote(ctx context.Context, dir string, env []string, g gitSource) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, gitLookupTimeout)
	defer cancel()
	want := []string{"HEAD"}
	if g.Ref != "" {
		want = []string{"refs/heads/" + g.Ref, "refs/tags/" + g.Ref + "^{}", "refs/tags/" + g.Ref}
	}
	args := []string{"ls-remote", "--", g.Remote, "HEAD"}
	if g.Ref != "" {
		args = append(args[:3], "refs/heads/"+g.Ref, "refs/tags/"+g.Ref)
	}
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = env
	out, errOut := &limitedBuffer{max: 64 << 10}, &limitedBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = out, errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// The whole session goes on timeout: ssh as well as git.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("git ls-remote: %w", ctx.Err())
		}
		msg := lastLine(errOut.String(), err)
		if u, perr := url.Parse(g.Remote); perr == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "***")
			}
		}
		return "", fmt.Errorf("git ls-remote: %s", msg)
	}
	found := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if hash, ref, ok := strings.Cut(strings.TrimSpace(line), "\t"); ok {
			found[ref] = hash
		}
	}
	for _, w := range want {
		if h := found[w]; commitRef.MatchString(h) {
			return h, nil
		}
	}
	if g.Ref == "" {
		return "", errors.New("the remote names no HEAD")
	}
	return "", fmt.Errorf("the remote has no branch or tag %q", g.Ref)
}

// lastLine is the last line git wrote to stderr, or err.
func lastLine(stderr string, err error) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	max int
	buf []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return string(b.buf) }
