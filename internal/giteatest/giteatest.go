// Package giteatest runs a real Gitea (built by `make tools`) on loopback
// for tests: an admin user, an API token and repositories.
package giteatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/trueline/trueline/internal/testenv"
	"golang.org/x/crypto/ssh"
)

// Server is a running Gitea.
type Server struct {
	URL   string // http://127.0.0.1:port
	User  string
	Token string
	// SSHPort and SSHHostKey are those of Gitea's built-in SSH server
	// (StartSSH only).
	SSHPort    int
	SSHHostKey ssh.PublicKey
	t          testing.TB
}

const password = "test-password-123"

// Start runs Gitea until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartSSH runs Gitea with its built-in SSH server too, on another
// loopback port, with an ed25519 host key made for the test.
func StartSSH(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil { // gitea takes the port next
		t.Fatal(err)
	}
	return port
}

func start(t testing.TB, withSSH bool) *Server {
	t.Helper()
	bin := testenv.Tool(t, "gitea")
	root := filepath.Join(testenv.Root(t), ".tools", "gitea-root")
	if _, err := os.Stat(filepath.Join(root, "options", "locale")); err != nil {
		t.Fatalf("%s/options/locale is missing: run `make tools`", root)
	}
	dir := t.TempDir()
	port := freePort(t)
	sshPort, sshSettings, hostKey := 0, "DISABLE_SSH = true", ssh.PublicKey(nil)
	if withSSH {
		sshPort = freePort(t)
		var keyFile string
		keyFile, hostKey = hostKeyFile(t, dir)
		sshSettings = fmt.Sprintf(`DISABLE_SSH = false
START_SSH_SERVER = true
BUILTIN_SSH_SERVER_USER = git
SSH_DOMAIN = 127.0.0.1
SSH_PORT = %[1]d
SSH_LISTEN_HOST = 127.0.0.1
SSH_LISTEN_PORT = %[1]d
SSH_SERVER_HOST_KEYS = %[2]s`, sshPort, keyFile)
	}
	ini := fmt.Sprintf(`APP_NAME = trueline-test
RUN_MODE = prod
RUN_USER = root
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true
WORK_PATH = %[1]s

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = %[2]d
ROOT_URL = http://127.0.0.1:%[2]d/
%[4]s
OFFLINE_MODE = true
STATIC_ROOT_PATH = %[3]s
APP_DATA_PATH = %[1]s/data
LFS_START_SERVER = false

[database]
DB_TYPE = sqlite3
PATH = %[1]s/gitea.db

[repository]
ROOT = %[1]s/repos
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = test-secret-key-not-for-production

[service]
DISABLE_REGISTRATION = true

[oauth2]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[mailer]
ENABLED = false

[log]
MODE = console
LEVEL = warn
ROOT_PATH = %[1]s/log
`, dir, port, root, sshSettings)
	conf := filepath.Join(dir, "app.ini")
	if err := os.WriteFile(conf, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		cmd := exec.Command(bin, append(args, "-c", conf)...)
		cmd.Env = append(os.Environ(), "GITEA_WORK_DIR="+dir, "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gitea %v: %v\n%s", args, err, out)
		}
	}
	run("migrate")
	run("admin", "user", "create", "--admin", "--username", "trueline", "--password", password,
		"--email", "trueline@example.invalid", "--must-change-password=false")
	web := exec.Command(bin, "web", "-c", conf)
	web.Env = append(os.Environ(), "GITEA_WORK_DIR="+dir, "HOME="+dir)
	var logs bytes.Buffer
	web.Stdout, web.Stderr = &logs, &logs
	if err := web.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Killed on purpose: Wait reports the kill, and a gitea that is
		// already gone cannot be killed.
		_ = web.Process.Kill()
		_ = web.Wait()
		if t.Failed() {
			t.Logf("gitea log:\n%s", logs.String())
		}
	})
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), User: "trueline", SSHPort: sshPort, SSHHostKey: hostKey, t: t}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/api/v1/version")
		if err == nil {
			_ = resp.Body.Close() // the status is the answer; the body is not read
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gitea did not start:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var tok struct {
		SHA1 string `json:"sha1"`
	}
	s.call("POST", "/api/v1/users/trueline/tokens", map[string]any{"name": "trueline", "scopes": []string{"all"}}, &tok, true)
	s.Token = tok.SHA1
	if withSSH {
		s.waitSSH(deadline, &logs)
	}
	return s
}

// call makes an API request (basic auth when basic, else the token) and
// decodes the answer into out.
func (s *Server) call(method, path string, body, out any, basic bool) {
	s.t.Helper()
	if err := s.try(method, path, body, out, basic); err != nil {
		s.t.Fatal(err)
	}
}

// TryAPI is API for polling loops: it returns the error instead of failing.
func (s *Server) TryAPI(method, path string, body, out any) error {
	return s.try(method, path, body, out, false)
}

func (s *Server) try(method, path string, body, out any, basic bool) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if basic {
		req.SetBasicAuth(s.User, password)
	} else {
		req.Header.Set("Authorization", "token "+s.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // closing a read body has nothing to report
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("gitea %s %s: %s\n%s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("gitea %s %s: %v\n%s", method, path, err, b)
		}
	}
	return nil
}

// API calls the API with the token.
func (s *Server) API(method, path string, body, out any) {
	s.t.Helper()
	s.call(method, path, body, out, false)
}

// CreateRepo makes an empty repository and returns its clone URL without credentials.
func (s *Server) CreateRepo(name string) string {
	s.t.Helper()
	s.API("POST", "/api/v1/user/repos", map[string]any{"name": name, "default_branch": "main", "private": false}, nil)
	return fmt.Sprintf("%s/%s/%s.git", s.URL, s.User, name)
}

// PushURL is a clone URL with the token, for git push.
func (s *Server) PushURL(name string) string {
	return fmt.Sprintf("http://%s:%s@%s/%s/%s.git", s.User, s.Token, s.URL[len("http://"):], s.User, name)
}
