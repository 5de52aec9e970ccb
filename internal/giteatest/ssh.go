package giteatest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// CreatePrivateRepo makes an empty private repository and returns its
// clone URL without credentials.
func (s *Server) CreatePrivateRepo(name string) string {
	s.t.Helper()
	s.API("POST", "/api/v1/user/repos", map[string]any{"name": name, "default_branch": "main", "private": true}, nil)
	return fmt.Sprintf("%s/%s/%s.git", s.URL, s.User, name)
}

// SSHURL is the ssh:// clone URL of a repository (StartSSH).
func (s *Server) SSHURL(name string) string {
	return fmt.Sprintf("ssh://git@127.0.0.1:%d/%s/%s.git", s.SSHPort, s.User, name)
}

// KnownHosts is the known_hosts line of the SSH server's host key.
func (s *Server) KnownHosts() string {
	return knownhosts.Line([]string{knownhosts.Normalize(fmt.Sprintf("127.0.0.1:%d", s.SSHPort))}, s.SSHHostKey) + "\n"
}

// AddSSHKey makes a new ed25519 key, registers its public half with the
// user and writes the private half (OpenSSH format, 0600) to file.
func (s *Server) AddSSHKey(file string) {
	s.t.Helper()
	pub, priv := newKey(s.t)
	writeKey(s.t, file, priv)
	s.API("POST", "/api/v1/user/keys", map[string]any{"title": ssh.FingerprintSHA256(pub),
		"key": strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))}, nil)
}

// NewSSHKey writes a new ed25519 private key that no server knows to file.
func NewSSHKey(t testing.TB, file string) ssh.PublicKey {
	t.Helper()
	pub, priv := newKey(t)
	writeKey(t, file, priv)
	return pub
}

func newKey(t testing.TB) (ssh.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp, priv
}

func writeKey(t testing.TB, file string, priv ed25519.PrivateKey) {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

// hostKeyFile writes the SSH server's host key into dir.
func hostKeyFile(t testing.TB, dir string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv := newKey(t)
	file := filepath.Join(dir, "ssh", "host_ed25519")
	writeKey(t, file, priv)
	return file, pub
}

// waitSSH waits until the SSH server presents its host key.
func (s *Server) waitSSH(deadline time.Time, logs *bytes.Buffer) {
	s.t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", s.SSHPort)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			var got ssh.PublicKey
			cfg := &ssh.ClientConfig{User: "git", Timeout: 5 * time.Second,
				HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error { got = key; return nil }}
			c, _, _, herr := ssh.NewClientConn(conn, addr, cfg)
			if c != nil {
				_ = c.Close() // a probe: nothing to report
			}
			_ = conn.Close() // a probe: nothing to report
			if got != nil {
				if !bytes.Equal(got.Marshal(), s.SSHHostKey.Marshal()) {
					s.t.Fatalf("gitea's SSH server presents %s, not the host key it was given", ssh.FingerprintSHA256(got))
				}
				return
			}
			_ = herr // authentication fails without a key; the host key is what matters
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("gitea's SSH server did not start on %s:\n%s", addr, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
