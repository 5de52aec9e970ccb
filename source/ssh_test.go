package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/trueline/trueline/internal/giteatest"
	"github.com/trueline/trueline/internal/gittest"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshAlias is ~/.ssh/config for go-git: scp-style addresses have no port,
// so the test's host alias names the SSH server's.
type sshAlias map[string]map[string]string

func (a sshAlias) Get(host, key string) string { return a[host][key] }

// Clone, fetch and push over SSH to the real Gitea, by ssh:// URL and by
// scp-style address, with host keys checked against known_hosts; a host
// that is not there, or whose key differs, fails with the host and the fix.
func TestSSHWithKnownHosts(t *testing.T) {
	ctx := context.Background()
	srv := giteatest.StartSSH(t)
	srv.CreatePrivateRepo("infra")
	g := gittest.New(t)
	c1 := g.Commit("first", map[string]string{"stacks/web/main.tf": "# web\n"})
	g.Git("push", "-q", srv.PushURL("infra"), "main")

	dir := filepath.Join(t.TempDir(), "ssh files")
	key := filepath.Join(dir, "id_ed25519")
	srv.AddSSHKey(key)
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte(srv.KnownHosts()), 0o600); err != nil {
		t.Fatal(err)
	}
	// scp-style addresses reach the server's port through an alias, as a
	// Host block in ~/.ssh/config would.
	saved := gitssh.DefaultSSHConfig
	gitssh.DefaultSSHConfig = sshAlias{"gitea.test": {"Hostname": "127.0.0.1", "Port": fmt.Sprint(srv.SSHPort)}}
	t.Cleanup(func() { gitssh.DefaultSSHConfig = saved })

	for _, url := range []string{srv.SSHURL("infra"), "git@gitea.test:" + srv.User + "/infra.git"} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			auth, err := SSHAuth(url, key, known)
			if err != nil {
				t.Fatal(err)
			}
			r := &Repo{Name: "infra", URL: url, Branch: "main", Auth: auth}
			if err := Open(ctx, r, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			head, err := r.Fetch(ctx)
			if err != nil || head.String() != c1 {
				t.Fatalf("fetch: %v %s, want %s", err, head, c1)
			}
			branch := "trueline/ssh-" + strings.SplitN(url, ":", 2)[0]
			pushed, err := r.PushBranch(ctx, head, branch, map[string][]byte{"stacks/web/main.tf": []byte("# fixed\n")}, "fix")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Fields(g.Git("ls-remote", srv.PushURL("infra"), "refs/heads/"+branch)); len(got) == 0 || got[0] != pushed.String() {
				t.Errorf("the server has %s at %v, want %s", branch, got, pushed)
			}
		})
	}

	other := giteatest.NewSSHKey(t, filepath.Join(dir, "other"))
	addr := knownhosts.Normalize(fmt.Sprintf("127.0.0.1:%d", srv.SSHPort))
	for _, tc := range []struct {
		name  string
		known string // "-" for no file at all
		want  []string
	}{
		{"unknown host", "", []string{"is not in", fmt.Sprintf("ssh-keyscan -p %d 127.0.0.1 >> ", srv.SSHPort), "SHA256:"}},
		{"another host's key only", knownhosts.Line([]string{"git.example"}, srv.SSHHostKey) + "\n", []string{"is not in", "ssh-keyscan -p"}},
		{"changed key", knownhosts.Line([]string{addr}, other) + "\n", []string{"holds another key for it", ":1", "ssh-keygen -R '" + addr + "'", "ssh-keyscan -p"}},
		{"no known_hosts file", "-", []string{"no known_hosts file", "known_hosts_file", "ssh-keyscan -p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if tc.known != "-" {
				if err := os.WriteFile(kh, []byte(tc.known), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for _, url := range []string{srv.SSHURL("infra"), "git@gitea.test:" + srv.User + "/infra.git"} {
				auth, err := SSHAuth(url, key, kh)
				if err != nil {
					t.Fatal(err)
				}
				err = Open(ctx, &Repo{Name: "infra", URL: url, Branch: "main", Auth: auth}, t.TempDir())
				if err == nil {
					t.Fatalf("%s: cloned from a host known_hosts does not vouch for", url)
				}
				for _, want := range append(tc.want, "127.0.0.1:"+fmt.Sprint(srv.SSHPort)) {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: error lacks %q:\n%v", url, want, err)
					}
				}
			}
		})
	}
}

func TestSSHAuthErrors(t *testing.T) {
	if _, err := SSHAuth("git@git.example:acme/infra.git", filepath.Join(t.TempDir(), "missing"), ""); err == nil || !strings.Contains(err.Error(), "ssh key") {
		t.Errorf("a missing key: %v", err)
	}
	key := filepath.Join(t.TempDir(), "id")
	giteatest.NewSSHKey(t, key)
	for url, user := range map[string]string{
		"git@git.example:acme/infra.git":          "git",
		"ssh://deploy@git.example/acme/infra.git": "deploy",
		"ssh://git.example:2222/acme/infra.git":   "git",
	} {
		auth, err := SSHAuth(url, key, "")
		if err != nil || auth.User != user {
			t.Errorf("%s: user %q, %v; want %q", url, auth.User, err, user)
		}
	}
}
