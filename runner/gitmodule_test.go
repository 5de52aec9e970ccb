package runner_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trueline/trueline/internal/giteatest"
	"github.com/trueline/trueline/internal/gittest"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/runner"
	"golang.org/x/crypto/ssh/knownhosts"
)

// gitStack writes testdata/gitmodule/stack, calling the module at source,
// to a new directory.
func gitStack(t *testing.T, source string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "gitmodule", "stack", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"main.tf": strings.ReplaceAll(string(b), "\"MODULE_SOURCE\"", fmt.Sprintf("%q", source))})
	return dir
}

// pushModule commits testdata/gitmodule/<version> as the module and pushes
// it to main of the Gitea repository name.
func pushModule(t *testing.T, srv *giteatest.Server, g *gittest.Repo, name, version string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "gitmodule", version, "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	c := g.Commit(version, map[string]string{"main.tf": string(b)})
	g.Git("push", "-q", srv.PushURL(name), "main")
	return c
}

// planned plans job and returns the plan's output v (the module's).
func planned(t *testing.T, r *runner.Runner, job runner.Job) (*runner.Plan, string) {
	t.Helper()
	p, err := r.Plan(context.Background(), job)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, p.Log)
	}
	p.Discard()
	if p.JSON == nil || p.JSON.PlannedValues == nil || p.JSON.PlannedValues.Outputs["v"] == nil {
		t.Fatalf("the plan has no output v:\n%s", p.Log)
	}
	v, _ := p.JSON.PlannedValues.Outputs["v"].Value.(string)
	return p, v
}

// noSecretIn fails when a file under dir holds secret.
func noSecretIn(t *testing.T, dir, secret string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), secret) {
			t.Errorf("%s holds the token after the run", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A module in a private repository of the real Gitea, fetched by init with
// the repository's token over HTTP and with its key over SSH; followed
// when its branch moves.
func TestPrivateGitModule(t *testing.T) {
	srv := giteatest.StartSSH(t)
	ctx := context.Background()
	for _, bin := range testenv.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			name := "private-" + bin.Name
			srv.CreatePrivateRepo(name)
			resp, err := http.Get(srv.URL + "/api/v1/repos/" + srv.User + "/" + name)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close() // the status is the answer
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("the module repository answers %s without credentials; it must be private", resp.Status)
			}
			mod := gittest.New(t)
			pushModule(t, srv, mod, name, "v1")
			source := "git::" + srv.URL + "/" + srv.User + "/" + name + ".git?ref=main"
			repoURL := srv.URL + "/" + srv.User + "/infra.git" // the stacks' repository, on the same host
			r := testenv.Runner(t, bin)

			t.Run("a wrong token fails clearly", func(t *testing.T) {
				const wrong = "0000wrong0token0000"
				p, err := r.Plan(ctx, runner.Job{Key: "refused", Dir: gitStack(t, source), Git: &runner.GitAuth{URL: repoURL, Token: wrong}})
				if err == nil {
					t.Fatal("init with a wrong token succeeded")
				}
				msg := err.Error()
				for _, want := range []string{"init:", "Authentication failed", name + ".git", "fix: the module's Git host refused the repository's token"} {
					if !strings.Contains(msg, want) {
						t.Errorf("error lacks %q:\n%s", want, msg)
					}
				}
				if strings.Contains(msg, wrong) || strings.Contains(p.Log, wrong) {
					t.Errorf("the token is in the error or the log:\n%s\n%s", msg, p.Log)
				}
				noSecretIn(t, r.WorkDir, wrong)
			})

			auth := &runner.GitAuth{URL: repoURL, Token: srv.Token}
			job := runner.Job{Key: "web", Dir: gitStack(t, source), Git: auth}
			t.Run("the token fetches it", func(t *testing.T) {
				before := r.GitLookups()
				p, v := planned(t, r, job)
				if !p.Init.Ran || v != "one" {
					t.Errorf("init ran %v, output %q; want init and \"one\"\n%s", p.Init.Ran, v, p.Log)
				}
				// A second workspace calling the same module shares the lookup.
				other := runner.Job{Key: "web2", Dir: gitStack(t, source), Git: auth}
				if p, v := planned(t, r, other); !p.Init.Ran || v != "one" {
					t.Errorf("second workspace: init ran %v, output %q", p.Init.Ran, v)
				}
				if n := r.GitLookups() - before; n != 1 {
					t.Errorf("two workspaces calling one module made %d lookups, want 1", n)
				}
				// Unmoved: init is skipped.
				if p, _ := planned(t, r, job); p.Init.Ran {
					t.Errorf("init ran again with the branch where it was: %s", p.Init.Reason)
				}
				noSecretIn(t, r.WorkDir, srv.Token)
			})

			t.Run("a moved branch is fetched again", func(t *testing.T) {
				pushModule(t, srv, mod, name, "v2")
				// The next run: a new process (trueline check), or serve once
				// the lookup is older than GitRefTTL.
				next := &runner.Runner{Binary: r.Binary, WorkDir: r.WorkDir, CLIConfig: r.CLIConfig, Env: r.Env}
				p, v := planned(t, next, job)
				if !p.Init.Ran || !strings.Contains(p.Init.Reason, "moved") || v != "two" {
					t.Errorf("after the move: init ran %v (%s), output %q; want init and \"two\"\n%s", p.Init.Ran, p.Init.Reason, v, p.Log)
				}
				if p, v := planned(t, next, job); p.Init.Ran || v != "two" {
					t.Errorf("the run after: init ran %v (%s), output %q", p.Init.Ran, p.Init.Reason, v)
				}
			})

			t.Run("ssh with a key and known_hosts", func(t *testing.T) {
				// Paths with spaces and quotes reach ssh intact.
				dir := filepath.Join(t.TempDir(), `keys of "infra" it's`)
				key := filepath.Join(dir, "id ed25519")
				srv.AddSSHKey(key)
				known := filepath.Join(dir, "known hosts")
				if err := os.WriteFile(known, []byte(srv.KnownHosts()), 0o600); err != nil {
					t.Fatal(err)
				}
				sshSource := "git::" + srv.SSHURL(name) + "?ref=main"
				sshAuth := &runner.GitAuth{URL: srv.SSHURL("infra"), SSHKeyFile: key, KnownHostsFile: known}
				p, v := planned(t, r, runner.Job{Key: "ssh", Dir: gitStack(t, sshSource), Git: sshAuth})
				if !p.Init.Ran || v != "two" {
					t.Errorf("over ssh: init ran %v, output %q\n%s", p.Init.Ran, v, p.Log)
				}
				if strings.Contains(p.Log, "cannot resolve") {
					t.Errorf("the branch lookup over ssh failed:\n%s", p.Log)
				}

				// The server's address with a key that is not its own.
				otherKey := giteatest.NewSSHKey(t, filepath.Join(dir, "other"))
				changed := knownhosts.Line([]string{knownhosts.Normalize(fmt.Sprintf("127.0.0.1:%d", srv.SSHPort))}, otherKey) + "\n"
				for _, tc := range []struct{ name, known string }{
					{"unknown host", ""},
					{"changed host key", changed},
				} {
					t.Run(tc.name, func(t *testing.T) {
						kh := filepath.Join(dir, "kh-"+strings.ReplaceAll(tc.name, " ", "-"))
						if err := os.WriteFile(kh, []byte(tc.known), 0o600); err != nil {
							t.Fatal(err)
						}
						bad := &runner.GitAuth{URL: sshAuth.URL, SSHKeyFile: key, KnownHostsFile: kh}
						_, err := r.Plan(ctx, runner.Job{Key: "ssh-" + tc.name, Dir: gitStack(t, sshSource), Git: bad})
						if err == nil {
							t.Fatal("init succeeded against a host key known_hosts does not hold")
						}
						for _, want := range []string{"Host key verification failed", "ssh-keyscan", kh} {
							if !strings.Contains(err.Error(), want) {
								t.Errorf("error lacks %q:\n%v", want, err)
							}
						}
					})
				}
			})
		})
	}
}
