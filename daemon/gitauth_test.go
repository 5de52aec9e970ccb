package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/internal/giteatest"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/source"
)

func TestGitAuth(t *testing.T) {
	tok := config.NewSecret("repo-token", "env GIT_TOKEN")
	for _, tc := range []struct {
		name    string
		rc      config.Repository
		authFor func(context.Context) (transport.AuthMethod, error)
		want    *runner.GitAuth
		wantErr string
	}{
		{name: "nothing configured", rc: config.Repository{Name: "infra", URL: "https://git.example/acme/infra.git"}},
		{name: "token", rc: config.Repository{Name: "infra", URL: "https://git.example/acme/infra.git", Token: tok},
			want: &runner.GitAuth{URL: "https://git.example/acme/infra.git", Token: "repo-token"}},
		{name: "ssh", rc: config.Repository{Name: "infra", URL: "git@git.example:acme/infra.git", SSHKeyFile: "/keys/id", KnownHostsFile: "/keys/known_hosts"},
			want: &runner.GitAuth{URL: "git@git.example:acme/infra.git", SSHKeyFile: "/keys/id", KnownHostsFile: "/keys/known_hosts"}},
		{name: "a token source wins over the configured token", rc: config.Repository{Name: "infra", URL: "https://git.example/acme/infra.git", Token: tok},
			authFor: func(context.Context) (transport.AuthMethod, error) {
				return &githttp.BasicAuth{Username: "x-access-token", Password: "installation-token"}, nil
			},
			want: &runner.GitAuth{URL: "https://git.example/acme/infra.git", Username: "x-access-token", Token: "installation-token"}},
		{name: "a token source alone", rc: config.Repository{Name: "infra", URL: "https://git.example/acme/infra.git"},
			authFor: func(context.Context) (transport.AuthMethod, error) {
				return &githttp.BasicAuth{Username: "x-access-token", Password: "installation-token"}, nil
			},
			want: &runner.GitAuth{URL: "https://git.example/acme/infra.git", Username: "x-access-token", Token: "installation-token"}},
		{name: "a token source that fails", rc: config.Repository{Name: "infra", URL: "https://git.example/acme/infra.git"},
			authFor: func(context.Context) (transport.AuthMethod, error) { return nil, errors.New("installation token: 401") },
			wantErr: "git credentials of repository infra: installation token: 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &repo{cfg: tc.rc, src: &source.Repo{Name: tc.rc.Name, URL: tc.rc.URL, AuthFor: tc.authFor}}
			got, err := (&Daemon{}).gitAuth(context.Background(), r)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Errorf("gitAuth = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A run's target carries its repository's Git credentials to the runner.
func TestRunCarriesGitAuth(t *testing.T) {
	f := newFixture(t)
	d := f.daemon(t)
	d.repos["infra"].cfg.Token = config.NewSecret("repo-token", "env GIT_TOKEN")
	f.runAll(t, d) // the runs the first commit queued
	if len(f.plan.targets) == 0 {
		t.Fatal("no run reached the planner")
	}
	for _, target := range f.plan.targets {
		if g := target.Git; g == nil || g.Token != "repo-token" || g.URL != f.git.Dir {
			t.Errorf("%s %s: Git credentials = %+v", target.Stack.Path, target.Workspace.Name, g)
		}
	}
}

// trueline's own SSH access checks the host key against the configured
// known_hosts file.
func TestAuthForChecksHostKeys(t *testing.T) {
	dir := t.TempDir()
	key := dir + "/id"
	giteatest.NewSSHKey(t, key)
	auth, err := authFor(config.Repository{Name: "infra", URL: "git@git.example:acme/infra.git", SSHKeyFile: key, KnownHostsFile: dir + "/missing"})
	if err != nil {
		t.Fatal(err)
	}
	pk, ok := auth.(*gitssh.PublicKeys)
	if !ok || pk.HostKeyCallback == nil {
		t.Fatalf("auth = %T without a host key callback", auth)
	}
	hostKey := giteatest.NewSSHKey(t, dir+"/host")
	err = pk.HostKeyCallback("git.example:22", nil, hostKey)
	if err == nil || !strings.Contains(err.Error(), dir+"/missing") || !strings.Contains(err.Error(), "ssh-keyscan git.example >> ") {
		t.Errorf("host key check without the known_hosts file: %v", err)
	}
}
