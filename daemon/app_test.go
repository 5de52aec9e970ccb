package daemon

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/internal/gittest"
	"github.com/trueline/trueline/source"
)

// gitHubWithApp is GitHub as a GitHub App sees it: the token exchange
// (the app's JWT), the API and Git over HTTPS (an installation token).
type gitHubWithApp struct {
	t   *testing.T
	pub *rsa.PublicKey
	git http.Handler

	mu        sync.Mutex
	exchanges int
	tokens    map[string]bool
	apiCalls  int
	gitCalls  int
}

func (s *gitHubWithApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.URL.Path == "/api/v3/app/installations/34/access_tokens":
		raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		var c jwt.RegisteredClaims
		if _, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return s.pub, nil }, jwt.WithValidMethods([]string{"RS256"})); err != nil || c.Issuer != "12" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"message":"A JSON web token could not be decoded"}`)
			return
		}
		s.exchanges++
		tok := fmt.Sprintf("ghs_daemon%d", s.exchanges)
		s.tokens[tok] = true
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]string{"token": tok, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	case r.URL.Path == "/api/v3/repos/acme/infra/pulls":
		s.apiCalls++
		if !s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] {
			s.t.Errorf("API call with %q", r.Header.Get("Authorization"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `[]`)
	case strings.HasPrefix(r.URL.Path, "/acme/infra.git/"):
		s.gitCalls++
		if user, pw, _ := r.BasicAuth(); user != "x-access-token" || !s.tokens[pw] {
			w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.git.ServeHTTP(w, r)
	default:
		s.t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
	}
}

func appKey(t *testing.T) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// A repository with a github_app block reaches the API and Git over HTTPS
// with the installation's token; one exchange serves both.
func TestGitHubAppRepository(t *testing.T) {
	key, other := appKey(t), appKey(t)
	for _, tc := range []struct {
		name string
		key  []byte
		bad  string // the clone's error
	}{
		{name: "the app's key", key: key},
		{name: "another app's key", key: other, bad: "github app 12: installation token for installation 34"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			g := gittest.New(t)
			g.Commit("first", map[string]string{"stacks/web/main.tf": "# v1\n"})
			g.Git("config", "http.receivepack", "true")
			cgiGit, err := gittest.Backend(filepath.Dir(g.Dir))
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(key)
			parsed, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			gh := &gitHubWithApp{t: t, pub: &parsed.PublicKey, tokens: map[string]bool{},
				git: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					// acme/infra.git is the test's repository.
					r.URL.Path = "/" + filepath.Base(g.Dir) + strings.TrimPrefix(r.URL.Path, "/acme/infra.git")
					cgiGit.ServeHTTP(w, r)
				})}
			srv := httptest.NewServer(gh)
			defer srv.Close()
			rc := config.Repository{Name: "infra", URL: srv.URL + "/acme/infra.git", Branch: "main", Forge: "github",
				APIURL: srv.URL + "/api/v3/", GitHubApp: &config.GitHubApp{AppID: 12, InstallationID: 34,
					PrivateKey: config.NewSecret(string(tc.key), "file /run/secrets/app.pem")}}
			src, fg, err := connect(rc, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = source.Open(ctx, src, t.TempDir())
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) || !strings.Contains(err.Error(), "fix:") {
					t.Fatalf("clone: %v, want an error with %q and its fix", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			head, err := src.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := src.PushBranch(ctx, head, "trueline/stacks/web/default", map[string][]byte{"x": []byte("y")}, "Record drift"); err != nil {
				t.Fatal(err)
			}
			if _, err := fg.FindOpen(ctx, "trueline/stacks/web/default"); err != nil {
				t.Fatal(err)
			}
			// terraform's module fetches get the same token.
			ga, err := (&Daemon{}).gitAuth(ctx, &repo{cfg: rc, src: src})
			if err != nil || ga == nil || ga.Username != "x-access-token" || !gh.tokens[ga.Token] {
				t.Errorf("gitAuth = %+v, %v; want the installation token", ga, err)
			}
			if got := g.Git("rev-parse", "trueline/stacks/web/default^"); got != head.String() {
				t.Errorf("pushed branch on %s, want %s", got, head)
			}
			if gh.exchanges != 1 || gh.apiCalls != 1 || gh.gitCalls < 3 {
				t.Errorf("%d exchanges, %d API calls, %d Git requests; want 1, 1, at least 3", gh.exchanges, gh.apiCalls, gh.gitCalls)
			}
		})
	}
}

// Over SSH the app's token has no use: the key or the agent authenticates.
func TestGitHubAppOverSSH(t *testing.T) {
	rc := config.Repository{Name: "infra", URL: "git@github.example:acme/infra.git", Forge: "github",
		GitHubApp: &config.GitHubApp{AppID: 12, InstallationID: 34, PrivateKey: config.NewSecret(string(appKey(t)), "env KEY")}}
	src, fg, err := connect(rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if src.AuthFor != nil || fg == nil {
		t.Errorf("AuthFor set: %v, forge: %v; want SSH's own credentials and a forge", src.AuthFor != nil, fg)
	}
	if _, err := ForgeFor(config.Repository{Name: "infra", URL: rc.URL, Forge: "github",
		GitHubApp: &config.GitHubApp{AppID: 12, InstallationID: 34, PrivateKey: config.NewSecret("not a key", "env KEY")}}); err == nil ||
		!strings.Contains(err.Error(), "repository infra: github app 12") || strings.Contains(err.Error(), "not a key") {
		t.Errorf("ForgeFor with a bad key: %v", err)
	}
}
