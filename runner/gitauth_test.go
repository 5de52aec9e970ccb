package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSSHCommand(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name      string
		key, kh   string // relative to dir, or absolute
		want      string // with DIR for dir
		wantErr   string
		sshSeesIt bool // ssh -G reports exactly these files
	}{
		{name: "neither"},
		{name: "plain", key: "id_ed25519", kh: "known_hosts", sshSeesIt: true,
			want: "ssh -i DIR/id_ed25519 -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o 'UserKnownHostsFile=\"DIR/known_hosts\"' -o BatchMode=yes"},
		{name: "spaces", key: "my keys/id key", kh: "my keys/known hosts", sshSeesIt: true,
			want: "ssh -i 'DIR/my keys/id key' -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o 'UserKnownHostsFile=\"DIR/my keys/known hosts\"' -o BatchMode=yes"},
		{name: "quotes", key: `it's "here"/id`, kh: `it's "here"/k\h`, sshSeesIt: true,
			want: `ssh -i 'DIR/it'\''s "here"/id' -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o 'UserKnownHostsFile="DIR/it'\''s \"here\"/k\\h"' -o BatchMode=yes`},
		{name: "shell characters", key: "$(touch pwned);`x`/id", kh: "a&b|c;d/kh", sshSeesIt: true,
			want: "ssh -i 'DIR/$(touch pwned);`x`/id' -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o 'UserKnownHostsFile=\"DIR/a&b|c;d/kh\"' -o BatchMode=yes"},
		{name: "known hosts only", kh: "known_hosts",
			want: "ssh -o StrictHostKeyChecking=yes -o 'UserKnownHostsFile=\"DIR/known_hosts\"' -o BatchMode=yes"},
		{name: "key only", key: "id",
			want: "ssh -i DIR/id -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o BatchMode=yes"},
		{name: "percent", key: "100%/id", wantErr: "ssh expands %"},
		{name: "dollar brace", kh: "${HOME}/kh", wantErr: "ssh expands ${...}"},
		{name: "line break", kh: "a\nb/kh", wantErr: "line break"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			abs := func(p string) string {
				if p == "" || filepath.IsAbs(p) {
					return p
				}
				return filepath.Join(dir, p)
			}
			a := GitAuth{SSHKeyFile: abs(tc.key), KnownHostsFile: abs(tc.kh)}
			got, err := a.SSHCommand()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(tc.want, "DIR", dir); got != want {
				t.Errorf("command:\n got %s\nwant %s", got, want)
			}
			if !tc.sshSeesIt {
				return
			}
			// git runs the command with sh -c; ssh -G prints the files as
			// ssh understood them.
			for _, f := range []string{a.SSHKeyFile, a.KnownHostsFile} {
				if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("sh", "-c", got+` -G "$@"`, "sh", "git.example")
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("ssh -G: %v\n%s", err, out)
			}
			lines := strings.Split(string(out), "\n")
			for _, want := range []string{"identityfile " + a.SSHKeyFile, "userknownhostsfile " + a.KnownHostsFile,
				"stricthostkeychecking true", "batchmode yes", "identitiesonly yes"} {
				found := false
				for _, l := range lines {
					found = found || l == want
				}
				if !found {
					t.Errorf("ssh -G does not report %q:\n%s", want, out)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
				t.Error("the shell ran a command from a file name")
			}
		})
	}
	t.Run("relative paths become absolute", func(t *testing.T) {
		got, err := GitAuth{SSHKeyFile: "keys/id"}.SSHCommand()
		wd, _ := os.Getwd()
		if err != nil || !strings.Contains(got, "-i "+filepath.Join(wd, "keys/id")+" ") {
			t.Errorf("command = %q, %v; want the key relative to %s", got, err, wd)
		}
	})
}

func TestTokenOrigins(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want []string
	}{
		{"https://github.com/acme/infra.git", []string{"https://github.com", "https://github.com:443"}},
		{"https://GitHub.com:443/acme/infra.git", []string{"https://GitHub.com", "https://github.com", "https://GitHub.com:443", "https://github.com:443"}},
		{"http://127.0.0.1:3000/trueline/infra.git", []string{"http://127.0.0.1:3000"}},
		{"https://user:pw@git.example:8443/x.git", []string{"https://git.example:8443"}},
		{"ssh://git@gitlab.example:2222/group/infra.git", []string{"https://gitlab.example", "https://gitlab.example:443"}},
		{"git@github.com:acme/infra.git", []string{"https://github.com", "https://github.com:443"}},
		{"https://[::1]:3000/x.git", []string{"https://[::1]:3000"}},
		{"/srv/git/infra", nil},
		{"file:///srv/git/infra", nil},
		{"", nil},
	} {
		if got := tokenOrigins(tc.url); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("tokenOrigins(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}

// The askpass helper answers git's prompts for the repository's origin
// only; every other host, and every prompt shaped to look like it, gets an
// empty answer.
func TestAskpassAnswersItsHostOnly(t *testing.T) {
	wd := t.TempDir()
	const token = "tok-3f9a1c"
	a := GitAuth{URL: "http://127.0.0.1:3000/trueline/infra.git", Token: token}
	dir, err := gitFiles(wd, a, tokenOrigins(a.URL))
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{".": 0o700, "askpass": 0o700, "token": 0o600, "username": 0o600, "origins": 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %v", name, err, st.Mode().Perm(), mode)
		}
	}
	for _, tc := range []struct{ prompt, want string }{
		{"Username for 'http://127.0.0.1:3000': ", DefaultGitUsername},
		{"Password for 'http://x-access-token@127.0.0.1:3000': ", token},
		{"Password for 'http://127.0.0.1:3000/trueline/mod.git': ", token}, // credential.useHttpPath
		{"Password for 'http://someone@else@127.0.0.1:3000': ", token},
		{"Username for 'http://127.0.0.1:3001': ", ""},
		{"Password for 'https://127.0.0.1:3000': ", ""}, // the same host over another scheme
		{"Password for 'http://evil.example': ", ""},
		{"Password for 'http://evil.example/127.0.0.1:3000': ", ""},
		{"Password for 'http://127.0.0.1:3000@evil.example': ", ""},
		{"Password for 'http://127.0.0.1:3000.evil.example': ", ""},
		{"Password for 'http://127.0.0.1:3000 ': ", ""},
		{"Password: ", ""},
		{"Enter passphrase for key '/root/.ssh/id': ", ""},
		{"", ""},
	} {
		out, err := exec.Command(filepath.Join(dir, "askpass"), tc.prompt).Output()
		if err != nil {
			t.Fatalf("askpass %q: %v", tc.prompt, err)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != tc.want {
			t.Errorf("askpass %q = %q, want %q", tc.prompt, got, tc.want)
		}
	}
	if _, err := gitFiles(wd, GitAuth{URL: a.URL, Token: "a\nb"}, tokenOrigins(a.URL)); err == nil || strings.Contains(err.Error(), "a\nb") {
		t.Errorf("a token with a line break: %v", err)
	}
}

func TestParseGitSource(t *testing.T) {
	for _, tc := range []struct {
		src    string
		want   gitSource
		ok     bool
		follow bool // the ref can move: it is looked up
	}{
		{"git::https://git.example/acme/mod.git?ref=main", gitSource{"https://git.example/acme/mod.git", "main"}, true, true},
		{"git::http://127.0.0.1:3000/trueline/private.git?ref=main", gitSource{"http://127.0.0.1:3000/trueline/private.git", "main"}, true, true},
		{"git::https://git.example/acme/mod.git//modules/vpc?ref=main", gitSource{"https://git.example/acme/mod.git", "main"}, true, true},
		{"git::https://git.example/acme/mod.git", gitSource{"https://git.example/acme/mod.git", ""}, true, true},
		{"git::https://git.example/acme/mod.git?ref=v1.2.0", gitSource{"https://git.example/acme/mod.git", "v1.2.0"}, true, false},
		{"git::https://git.example/acme/mod.git?ref=1.2.0-rc.1", gitSource{"https://git.example/acme/mod.git", "1.2.0-rc.1"}, true, false},
		{"git::https://git.example/a.git?ref=0123456789abcdef0123456789abcdef01234567", gitSource{"https://git.example/a.git", "0123456789abcdef0123456789abcdef01234567"}, true, false},
		{"git::https://git.example/a.git?ref=v1", gitSource{"https://git.example/a.git", "v1"}, true, true}, // a major-version branch
		{"git::https://git.example/a.git?ref=release/2024&depth=1", gitSource{"https://git.example/a.git", "release/2024"}, true, true},
		{"git::ssh://git@git.example:2222/acme/mod.git?ref=main", gitSource{"ssh://git@git.example:2222/acme/mod.git", "main"}, true, true},
		{"git::git@git.example:acme/mod.git//sub?ref=main", gitSource{"ssh://git@git.example/acme/mod.git", "main"}, true, true},
		{"git::deploy@git.example:acme/mod.git", gitSource{"ssh://deploy@git.example/acme/mod.git", ""}, true, true},
		{"git@github.com:acme/mod.git?ref=dev", gitSource{"ssh://git@github.com/acme/mod.git", "dev"}, true, true},
		{"github.com/acme/mod", gitSource{"https://github.com/acme/mod.git", ""}, true, true},
		{"github.com/acme/mod//sub?ref=main", gitSource{"https://github.com/acme/mod.git", "main"}, true, true},
		{"git::file:///srv/git/mod?ref=main", gitSource{"file:///srv/git/mod", "main"}, true, true},
		// Not Git.
		{"hashicorp/consul/aws", gitSource{}, false, false},
		{"app.terraform.io/acme/net/aws", gitSource{}, false, false},
		{"https://git.example/mod.zip", gitSource{}, false, false},
		{"s3::https://s3.amazonaws.com/bucket/mod.zip", gitSource{}, false, false},
		{"hg::http://hg.example/mod", gitSource{}, false, false},
		{"deploy@git.example:acme/mod.git", gitSource{}, false, false}, // go-getter detects only git@ without git::
		// Hostile: what git would take for an option or another transport,
		// control characters, and sources of any length.
		{"git::-uploadpack=touch@x:y", gitSource{}, false, false},
		{"git::ssh://-oProxyCommand=touch/x", gitSource{}, false, false},
		{"git::git@-oProxyCommand=x:y", gitSource{}, false, false},
		{"git::ext::sh -c touch% /tmp/pwned", gitSource{}, false, false},
		{"git::fd::3", gitSource{}, false, false},
		{"git::https://git.example/a.git?ref=--upload-pack=touch", gitSource{}, false, false},
		{"git::https://git.example/a.git?ref=main%0Agit%20x", gitSource{}, false, false},
		{"git::https://git.example/a\n.git", gitSource{}, false, false},
		{"git::https://git.example/" + strings.Repeat("a", maxSourceLen) + ".git", gitSource{}, false, false},
		{"git::https://git.example/a.git?ref=%zz", gitSource{}, false, false},
	} {
		g, ok := parseGitSource(tc.src)
		if ok != tc.ok || g != tc.want {
			t.Errorf("parseGitSource(%.80q) = %+v, %v; want %+v, %v", tc.src, g, ok, tc.want, tc.ok)
			continue
		}
		if ok && g.moves() != tc.follow {
			t.Errorf("%s: moves = %v, want %v", tc.src, g.moves(), tc.follow)
		}
	}
	g, _ := parseGitSource("git::https://user:s3cret@git.example/a.git?ref=main")
	if s := g.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "git.example/a.git?ref=main") {
		t.Errorf("String() = %q: want the source without its password", s)
	}
}

func TestFingerprintFile(t *testing.T) {
	f := fingerprint{Hash: "abc", Git: map[string]string{"https://b?ref=main": "2222", "https://a?ref=": "", "https://c?ref=dev": "3333"}}
	back := parseFingerprint(f.String())
	if !reflect.DeepEqual(back, f) {
		t.Errorf("round trip: %+v, want %+v", back, f)
	}
	if got := parseFingerprint("abc"); got.Hash != "abc" || len(got.Git) != 0 {
		t.Errorf("a fingerprint written before branches were followed: %+v", got)
	}
	now := fingerprint{Hash: "abc", Git: map[string]string{"https://a?ref=": "", "https://b?ref=main": "2223", "https://c?ref=dev": "3333", "https://d?ref=": "4444"}}
	if got, want := now.moved(f), []string{"https://b?ref=main", "https://d?ref="}; !reflect.DeepEqual(got, want) {
		t.Errorf("moved = %v, want %v", got, want)
	}
}

func TestForgetModules(t *testing.T) {
	tpl, err := os.ReadFile(filepath.Join("testdata", "gitmodule", "modules.json"))
	if err != nil {
		t.Fatal(err)
	}
	setup := func(t *testing.T, manifest string) string {
		data := t.TempDir()
		for _, d := range []string{"m/inner", "pinned", "reg", "gh"} {
			if err := os.MkdirAll(filepath.Join(data, "modules", d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(data, "modules", "modules.json"), []byte(strings.ReplaceAll(manifest, "DATA", data)), 0o644); err != nil {
			t.Fatal(err)
		}
		return data
	}
	keys := func(t *testing.T, data string) []string {
		b, err := os.ReadFile(filepath.Join(data, "modules", "modules.json"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, part := range strings.Split(string(b), `"Key":"`)[1:] {
			out = append(out, part[:strings.Index(part, `"`)])
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		manifest string
		moved    []string
		keys     []string // left in the manifest; nil: the manifest is gone
		gone     []string // installed copies removed
	}{
		{"a moved branch and its children", string(tpl), []string{"https://git.example/acme/mod.git?ref=main"},
			[]string{"", "pinned", "reg", "gh"}, []string{"m", "m/inner"}},
		{"the default branch", string(tpl), []string{"https://github.com/acme/gh.git?ref="},
			[]string{"", "m", "m.inner", "pinned", "reg"}, []string{"gh"}},
		{"nothing moved", string(tpl), nil, []string{"", "m", "m.inner", "pinned", "reg", "gh"}, nil},
		{"a source no record has", string(tpl), []string{"https://other.example/x.git?ref=main"},
			[]string{"", "m", "m.inner", "pinned", "reg", "gh"}, nil},
		{"an unreadable manifest goes whole", `{"Modules": 42}`, []string{"https://git.example/acme/mod.git?ref=main"},
			nil, []string{"m", "pinned", "reg", "gh"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := setup(t, tc.manifest)
			if err := forgetModules(data, tc.moved); err != nil {
				t.Fatal(err)
			}
			if tc.keys == nil {
				if _, err := os.Stat(filepath.Join(data, "modules")); !os.IsNotExist(err) {
					t.Errorf("the modules directory is still there: %v", err)
				}
			} else if got := keys(t, data); !reflect.DeepEqual(got, tc.keys) {
				t.Errorf("records = %q, want %q", got, tc.keys)
			}
			for _, d := range tc.gone {
				if _, err := os.Stat(filepath.Join(data, "modules", d)); !os.IsNotExist(err) {
					t.Errorf("%s is still installed", d)
				}
			}
		})
	}
	t.Run("a record pointing elsewhere keeps its directory", func(t *testing.T) {
		outside := t.TempDir()
		data := setup(t, strings.Replace(string(tpl), "DATA/modules/m\"", outside+"\"", 1))
		if err := forgetModules(data, []string{"https://git.example/acme/mod.git?ref=main"}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(outside); err != nil {
			t.Errorf("removed a directory outside the data directory: %v", err)
		}
	})
}

// One lookup per source and credentials while it is fresh, however many
// runs ask at once; a caller that goes away answers no one else.
func TestLookupRefIsShared(t *testing.T) {
	g := gitSource{Remote: "https://git.example/mod.git", Ref: "main"}
	auth := &GitAuth{URL: "https://git.example/infra.git", Token: "t"}
	r := &Runner{}
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.lookupRef(context.Background(), auth, g, func(context.Context) (string, error) {
				<-release
				return "1111", nil
			})
			if c != "1111" || err != nil {
				t.Errorf("lookup = %q, %v", c, err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := r.GitLookups(); n != 1 {
		t.Errorf("20 concurrent runs made %d lookups, want 1", n)
	}
	// Other credentials are another lookup: their answer may differ.
	_, _ = r.lookupRef(context.Background(), &GitAuth{URL: auth.URL, Token: "other"}, g, func(context.Context) (string, error) { return "2222", nil })
	if n := r.GitLookups(); n != 2 {
		t.Errorf("lookups = %d, want 2", n)
	}
	// A failure is shared too: a dead host costs one timeout, not one per run.
	fail := func(context.Context) (string, error) { return "", errors.New("unreachable") }
	g2 := gitSource{Remote: "https://down.example/x.git"}
	for range 3 {
		if _, err := r.lookupRef(context.Background(), nil, g2, fail); err == nil {
			t.Error("a failed lookup answered")
		}
	}
	if n := r.GitLookups(); n != 3 {
		t.Errorf("lookups = %d, want 3", n)
	}
	// A canceled caller's error is not an answer for the next run.
	ctx, cancel := context.WithCancel(context.Background())
	g3 := gitSource{Remote: "https://slow.example/x.git"}
	_, err := r.lookupRef(ctx, nil, g3, func(ctx context.Context) (string, error) { cancel(); return "", ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	if c, err := r.lookupRef(context.Background(), nil, g3, func(context.Context) (string, error) { return "3333", nil }); c != "3333" || err != nil {
		t.Errorf("after a canceled lookup: %q, %v", c, err)
	}
	// A negative TTL looks up every time.
	r2 := &Runner{GitRefTTL: -1}
	for range 3 {
		_, _ = r2.lookupRef(context.Background(), nil, g, func(context.Context) (string, error) { return "1111", nil })
	}
	if n := r2.GitLookups(); n != 3 {
		t.Errorf("with a negative TTL: %d lookups, want 3", n)
	}
}

// A stack with more Git sources than maxGitLookups looks up that many and
// says so; the rest keep their recorded commits.
func TestResolveRefsIsBounded(t *testing.T) {
	dir := t.TempDir()
	var sources []string
	old := map[string]string{}
	for i := range maxGitLookups + 8 {
		src := fmt.Sprintf("git::file://%s/missing-%d?ref=main", dir, i)
		sources = append(sources, src, src) // each twice: looked up once
		g, _ := parseGitSource(src)
		old[g.key()] = fmt.Sprintf("%040d", i)
	}
	sources = append(sources, "hashicorp/consul/aws", "./local", "git::https://git.example/a.git?ref=v1.0.0")
	r := &Runner{}
	s := &session{r: r, job: Job{Dir: dir}, log: newCapped(1 << 20), env: map[string]string{"PATH": os.Getenv("PATH"), "HOME": dir}}
	refs := s.resolveRefs(context.Background(), sources, old, nil)
	if n := r.GitLookups(); n != maxGitLookups {
		t.Errorf("%d lookups, want %d", n, maxGitLookups)
	}
	if len(refs) != maxGitLookups+8 {
		t.Errorf("%d sources resolved, want %d", len(refs), maxGitLookups+8)
	}
	for k, c := range refs {
		if c != old[k] {
			t.Errorf("%s = %q: a failed or skipped lookup must keep the recorded %q", k, c, old[k])
		}
	}
	log := s.log.String()
	if !strings.Contains(log, fmt.Sprintf("more than %d Git module sources", maxGitLookups)) || !strings.Contains(log, "cannot resolve") {
		t.Errorf("the run log does not say what was not followed:\n%s", log)
	}
}

func TestCleanupRemovesGitCredentials(t *testing.T) {
	root := t.TempDir()
	wd := filepath.Join(root, DirName("repo/stacks/web/default"))
	if err := os.MkdirAll(wd, 0o700); err != nil {
		t.Fatal(err)
	}
	dir, err := gitFiles(wd, GitAuth{URL: "https://git.example/a.git", Token: "left-behind"}, []string{"https://git.example"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Cleanup(root, nil, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the credentials a dead process left are still there: %v", err)
	}
}
