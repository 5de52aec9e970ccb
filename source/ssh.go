package source

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHAuth authenticates to the repository at repoURL (ssh:// or
// scp-style, user@host:path) with the private key in keyFile, as the URL's
// user ("git" when it names none), and accepts only the host keys that
// knownHostsFile holds for the server. An empty knownHostsFile means
// SSH_KNOWN_HOSTS, or ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts, as
// ssh itself reads them. A host that is not there, or whose key differs,
// fails the clone, fetch or push with the host and the fix.
func SSHAuth(repoURL, keyFile, knownHostsFile string) (*gitssh.PublicKeys, error) {
	ep, err := transport.NewEndpoint(repoURL)
	if err != nil {
		return nil, fmt.Errorf("repository URL: %w", err)
	}
	user := ep.User
	if user == "" {
		user = "git"
	}
	auth, err := gitssh.NewPublicKeysFromFile(user, keyFile, "")
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", keyFile, err)
	}
	auth.HostKeyCallback, auth.HostKeyAlgorithms = hostKeyCheck(knownHostsFile, dialAddr(ep))
	return auth, nil
}

// dialAddr is the address go-git dials for ep: its host and port, or what
// ~/.ssh/config names for the host (HostName, Port).
func dialAddr(ep *transport.Endpoint) string {
	host, port := ep.Host, ep.Port
	if port <= 0 {
		port = 22
	}
	if c := gitssh.DefaultSSHConfig; c != nil {
		if h := c.Get(ep.Host, "Hostname"); h != "" {
			host = h
			if p, err := strconv.Atoi(c.Get(ep.Host, "Port")); err == nil && p > 0 {
				port = p
			}
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// hostKeyCheck is the host key callback for known_hosts file (or the
// default files), with errors that say what to do, and the key algorithms
// to ask addr for: those known_hosts holds for it, so that a server with
// several keys presents the one that is known. A missing known_hosts file
// fails each connection, not the start: the other repositories still run.
func hostKeyCheck(file, addr string) (ssh.HostKeyCallback, []string) {
	files := []string{file}
	if file == "" {
		files = defaultKnownHosts()
	}
	var present []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			present = append(present, f)
		}
	}
	if len(present) == 0 {
		return func(hostname string, _ net.Addr, key ssh.PublicKey) error {
			return fmt.Errorf("no known_hosts file (%s) to check the host key of %s (%s %s): %s, check the fingerprint, "+
				"and name the file in trueline.hcl (repository ssh { known_hosts_file })",
				strings.Join(files, ", "), hostname, key.Type(), ssh.FingerprintSHA256(key), keyscan(hostname, files[0]))
		}, nil
	}
	db, err := gitssh.NewKnownHostsDb(present...)
	if err != nil {
		return func(hostname string, _ net.Addr, _ ssh.PublicKey) error {
			return fmt.Errorf("check the host key of %s: %w", hostname, err)
		}, nil
	}
	check := db.HostKeyCallback()
	where := strings.Join(present, ", ")
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return fmt.Errorf("ssh host %s is not in %s (its %s key is %s): if that is the server's fingerprint, add it with %s",
				hostname, where, key.Type(), ssh.FingerprintSHA256(key), keyscan(hostname, present[0]))
		case errors.As(err, &ke):
			w := ke.Want[0]
			return fmt.Errorf("ssh host %s presented %s key %s, but %s:%d holds another key for it: the server's key changed, or something "+
				"is in between; only if the change is expected, remove the old line (ssh-keygen -R %s -f %s) and add the new key with %s",
				hostname, key.Type(), ssh.FingerprintSHA256(key), w.Filename, w.Line,
				shellQuote(knownhosts.Normalize(hostname)), shellQuote(w.Filename), keyscan(hostname, w.Filename))
		case errors.As(err, &re):
			return fmt.Errorf("ssh host %s presented %s key %s, which %s:%d revokes", hostname, key.Type(),
				ssh.FingerprintSHA256(key), re.Revoked.Filename, re.Revoked.Line)
		}
		return fmt.Errorf("check the host key of %s against %s: %w", hostname, where, err)
	}, db.HostKeyAlgorithms(addr)
}

// defaultKnownHosts are the files ssh reads when none is configured.
func defaultKnownHosts() []string {
	if env := filepath.SplitList(os.Getenv("SSH_KNOWN_HOSTS")); len(env) > 0 {
		return env
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return []string{"/etc/ssh/ssh_known_hosts"}
	}
	return []string{filepath.Join(home, ".ssh", "known_hosts"), "/etc/ssh/ssh_known_hosts"}
}

// keyscan is the command that adds hostname's keys to file.
func keyscan(hostname, file string) string {
	host, port, err := net.SplitHostPort(hostname)
	if err != nil {
		host, port = hostname, "22"
	}
	cmd := "ssh-keyscan "
	if port != "22" {
		cmd += "-p " + port + " "
	}
	return "`" + cmd + shellQuote(host) + " >> " + shellQuote(file) + "`"
}

// shellQuote quotes s for a shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
