package main_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/trueline/trueline/internal/gittest"
	"github.com/trueline/trueline/internal/s3test"
	"github.com/trueline/trueline/internal/testenv"
)

// gitHubStandIn is GitHub for one repository and one app installation: the
// app JWT is checked as GitHub checks it, the installation token it hands
// out is what the API and Git over HTTPS must carry.
type gitHubStandIn struct {
	t        *testing.T
	key      *rsa.PublicKey
	appID    string
	token    string
	exchange atomic.Int32
	git      http.Handler
}

func (g *gitHubStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v3/app/installations/7890123/access_tokens":
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		claims := &jwt.RegisteredClaims{}
		tok, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return g.key, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(g.appID), jwt.WithIssuedAt(), jwt.WithExpirationRequired())
		if !ok || err != nil || !tok.Valid || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute {
			http.Error(w, `{"message":"A JSON web token could not be decoded"}`, http.StatusUnauthorized)
			return
		}
		g.exchange.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"token": g.token, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	case strings.HasPrefix(r.URL.Path, "/api/v3/"):
		if r.Header.Get("Authorization") != "Bearer "+g.token && r.Header.Get("Authorization") != "token "+g.token {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != "/api/v3/repos/acme/infra" {
			g.t.Errorf("doctor changed or asked for something on GitHub: %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"full_name": "acme/infra", "private": true,
			"permissions": map[string]bool{"pull": true, "push": true}})
	default:
		if user, pass, ok := r.BasicAuth(); !ok || user != "x-access-token" || pass != g.token {
			w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
			http.Error(w, "Authentication required", http.StatusUnauthorized)
			return
		}
		g.git.ServeHTTP(w, r)
	}
}

// TestDoctorAWSExample checks the AWS example's configuration as a platform
// team would before serving it: its repository on a GitHub reached with the
// app, its S3 state backend through assume_role, and Slack, all stand-ins
// on loopback; then each failure gets its line and fix.
func TestDoctorAWSExample(t *testing.T) {
	// The example, as the team's repository.
	repo := gittest.New(t)
	files := map[string]string{}
	root := filepath.Join("..", "..", "examples", "aws-asg-alb")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// S3 and STS: the state bucket belongs to the role's identity only.
	s3 := s3test.Start(t)
	s3.User(t, "base-access", "base-secret-key")
	s3.User(t, "role-access", "role-secret-key")
	s3.BucketOwnedBy(t, "acme-terraform-state", "role-access")
	const role = "arn:aws:iam::111122223333:role/terraform-state"
	sts := s3test.StartSTS(t, role, "acme-infra", map[string]string{"base-access": "base-secret-key"},
		aws.Credentials{AccessKeyID: "role-access", SecretAccessKey: "role-secret-key"})
	mainTF := files["stacks/web/main.tf"]
	for _, r := range []struct{ from, to string }{
		{`region       = "eu-central-1"`, `region       = "us-east-1"`},
		{`use_lockfile = true`, "use_lockfile = true\n    use_path_style = true\n    endpoints = { s3 = \"" + s3.Endpoint + "\", sts = \"" + sts.URL + "\" }"},
	} {
		if !strings.Contains(mainTF, r.from) {
			t.Fatalf("main.tf no longer has %q", r.from)
		}
		mainTF = strings.Replace(mainTF, r.from, r.to, 1)
	}
	files["stacks/web/main.tf"] = mainTF
	delete(files, "trueline.hcl")
	repo.Commit("infra", files)
	bare := filepath.Join(t.TempDir(), "acme", "infra.git")
	if out, err := exec.Command("git", "clone", "-q", "--bare", repo.Dir, bare).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	// GitHub with the app, and Git over HTTP behind it.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	backend, err := gittest.Backend(filepath.Dir(filepath.Dir(bare)))
	if err != nil {
		t.Fatal(err)
	}
	gh := &gitHubStandIn{t: t, key: &key.PublicKey, appID: "123456", token: "ghs_installation_token_1234567890", git: backend}
	github := httptest.NewServer(gh)
	defer github.Close()

	// Slack: a live incoming webhook refuses an empty payload.
	var posted atomic.Int32
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/services/T0/B0/live" {
			http.Error(w, "no_service", http.StatusNotFound)
			return
		}
		if string(body) != "{}" {
			posted.Add(1)
		}
		http.Error(w, "invalid_payload", http.StatusBadRequest)
	}))
	defer slack.Close()

	// The example's trueline.hcl, pointed at the stand-ins.
	src, err := os.ReadFile(filepath.Join(root, "trueline.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := strings.NewReplacer(
		`url    = "https://github.com/acme/infra.git"`, `url    = "`+github.URL+`/acme/infra.git"`+"\n  api_url = \""+github.URL+"/api/v3/\"",
		`data_dir     = "/var/lib/trueline"`, `data_dir     = "`+filepath.Join(dir, "data")+`"`,
	).Replace(string(src))
	if conf == string(src) || !strings.Contains(conf, "api_url") {
		t.Fatal("the example's trueline.hcl changed: update the test's replacements")
	}
	confPath := filepath.Join(dir, "trueline.hcl")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	doctor := func(t *testing.T, slackURL, baseSecret string) (map[string]string, string, int) {
		t.Helper()
		cmd := exec.Command(trueline, "doctor", "--config", confPath, "--format", "json", "--timeout", "20s")
		cmd.Env = append(os.Environ(),
			"TRUELINE_TOOLS_DIR="+testenv.ToolsDir(t),
			"GITHUB_APP_PRIVATE_KEY="+keyPEM,
			"GITHUB_WEBHOOK_SECRET=webhook-secret",
			"SLACK_WEBHOOK_URL="+slackURL,
			"AWS_ACCESS_KEY_ID=base-access",
			"AWS_SECRET_ACCESS_KEY="+baseSecret,
			"AWS_CONFIG_FILE="+filepath.Join(dir, "no-aws-config"),
			"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "no-aws-credentials"),
			"AWS_EC2_METADATA_DISABLED=true",
		)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		code := 0
		if err := cmd.Run(); err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatal(err)
			}
			code = ee.ExitCode()
		}
		var got struct {
			Usable bool `json:"usable"`
			Checks []struct{ Check, Status, Detail, Fix string }
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("doctor's JSON: %v\n%s\n%s", err, out.String(), errb.String())
		}
		status := map[string]string{}
		for _, c := range got.Checks {
			status[c.Check] = c.Status + ": " + c.Detail + " | " + c.Fix
		}
		all := out.String() + errb.String()
		for _, secret := range []string{keyPEM[40:80], "base-secret-key", "role-secret-key", gh.token, "webhook-secret"} {
			if strings.Contains(all, secret) {
				t.Errorf("doctor's output holds a secret (%q):\n%s", secret, all)
			}
		}
		return status, all, code
	}

	t.Run("usable", func(t *testing.T) {
		status, out, code := doctor(t, slack.URL+"/services/T0/B0/live", "base-secret-key")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		for check, want := range map[string]string{
			"config":                 "ok: ",
			"binary":                 "ok: tofu 1.10.10",
			"git infra":              "ok: main at ",
			"forge infra":            "ok: github: can push to acme/infra",
			"stacks infra":           "ok: 1 stack on main, 0 broken",
			"policies infra":         "ok: 1 policy read",
			"binary tofu ~> 1.10":    "ok: tofu 1.10.10",
			"state infra/stacks/web": "ok: s3: can write records to s3://acme-terraform-state/web/terraform.tfstate.trueline/",
			"notify slack.infra":     "ok: incoming webhook answers",
			"data dir":               "ok: ",
		} {
			if !strings.HasPrefix(status[check], want) {
				t.Errorf("%s = %q, want %q...", check, status[check], want)
			}
		}
		if len(sts.Calls()) == 0 {
			t.Error("the state check never assumed the backend's role")
		}
		if gh.exchange.Load() == 0 {
			t.Error("the app's installation token was never exchanged")
		}
		if keys := s3.List(t, "acme-terraform-state", ""); len(keys) != 0 {
			t.Errorf("the state probe was left in the bucket: %v", keys)
		}
	})

	t.Run("failures name the fix", func(t *testing.T) {
		status, out, code := doctor(t, slack.URL+"/services/T0/B0/revoked", "wrong-base-secret")
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		for check, want := range map[string][]string{
			"state infra/stacks/web": {"fail: ", "SignatureDoesNotMatch"},
			"notify slack.infra":     {"fail: ", "answered 404", "create a new incoming webhook"},
			"git infra":              {"ok: "},
		} {
			for _, w := range want {
				if !strings.Contains(status[check], w) {
					t.Errorf("%s = %q, want %q in it", check, status[check], w)
				}
			}
		}
	})
	if posted.Load() != 0 {
		t.Errorf("doctor posted %d messages to Slack", posted.Load())
	}
}
