package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/trueline/trueline/ledger"
)

type hooks struct {
	secret string
	forge  string
	pushed []string
}

func (h *hooks) WebhookSecret(repo string) (string, []byte, bool) {
	if repo != "infra" {
		return "", nil, false
	}
	return h.forge, []byte(h.secret), true
}

func (h *hooks) Pushed(repo, branch, after string) (bool, string) {
	if branch != "main" {
		return false, "branch " + branch + " is not watched"
	}
	h.pushed = append(h.pushed, repo+"@"+after)
	return true, "fetching"
}

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

const pushBody = `{"ref":"refs/heads/main","after":"abc123","repository":{"full_name":"acme/infra"}}`

func TestWebhooks(t *testing.T) {
	tests := []struct {
		name    string
		forge   string
		headers map[string]string
		body    string
		code    int
		pushed  bool
	}{
		{"github push", "github", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("s3cret", pushBody)}, pushBody, 202, true},
		{"github wrong signature", "github", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("other", pushBody)}, pushBody, 401, false},
		{"github signature without prefix", "github", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign("s3cret", pushBody)}, pushBody, 401, false},
		{"github no signature", "github", map[string]string{"X-GitHub-Event": "push"}, pushBody, 401, false},
		{"github ping", "github", map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + sign("s3cret", `{}`)}, `{}`, 202, false},
		{"github other branch", "github", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("s3cret", strings.Replace(pushBody, "main", "dev", 1))}, strings.Replace(pushBody, "main", "dev", 1), 202, false},
		{"gitea push", "gitea", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign("s3cret", pushBody)}, pushBody, 202, true},
		{"gitea wrong signature", "gitea", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign("s3cret", pushBody+" ")}, pushBody, 401, false},
		{"gitlab push", "gitlab", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "s3cret"}, pushBody, 202, true},
		{"gitlab wrong token", "gitlab", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "s3cre"}, pushBody, 401, false},
		{"gitlab merge request", "gitlab", map[string]string{"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": "s3cret"}, `{}`, 202, false},
		{"gitlab tag push", "gitlab", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "s3cret"}, `{"ref":"refs/tags/v1"}`, 202, false},
		{"gitlab garbage", "gitlab", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "s3cret"}, `not json`, 400, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &hooks{secret: "s3cret", forge: tc.forge}
			s := New(Options{Hooks: h})
			req := httptest.NewRequest("POST", "/hooks/"+tc.forge+"/infra", strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Errorf("status = %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if got := len(h.pushed) > 0; got != tc.pushed {
				t.Errorf("pushed = %v, want %v", h.pushed, tc.pushed)
			}
			if tc.code == 401 && !strings.Contains(rec.Body.String(), "does not match") {
				t.Errorf("a 401 should say what did not match: %s", rec.Body)
			}
		})
	}
}

func TestWebhookLimitsAndRouting(t *testing.T) {
	h := &hooks{secret: "s3cret", forge: "github"}
	m := NewMetrics(nil) // only its counters are read here
	s := New(Options{Hooks: h, Metrics: m})
	do := func(path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+sign("s3cret", body))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("/hooks/github/infra", strings.Repeat("x", MaxWebhookBody+1)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", rec.Code)
	}
	if rec := do("/hooks/github/unknown", pushBody); rec.Code != 404 {
		t.Errorf("unknown repository: %d", rec.Code)
	}
	if rec := do("/hooks/gitlab/infra", pushBody); rec.Code != 404 {
		t.Errorf("wrong forge for the repository: %d", rec.Code)
	}
	h.secret = ""
	if rec := do("/hooks/github/infra", pushBody); rec.Code != 401 || !strings.Contains(rec.Body.String(), "webhook_secret_env") {
		t.Errorf("no secret configured: %d %s", rec.Code, rec.Body)
	}
	count := func(forge, res string) float64 { return testutil.ToFloat64(m.webhooks.WithLabelValues(forge, res)) }
	// The unknown repository is not counted: only configured ones are.
	if count("github", "rejected") != 1 || count("gitlab", "rejected") != 1 || count("github", "malformed") != 1 {
		t.Errorf("webhook deliveries: github rejected %v, gitlab rejected %v, github malformed %v",
			count("github", "rejected"), count("gitlab", "rejected"), count("github", "malformed"))
	}
}

// Paths anyone can make up answer 404 and add no metric series.
func TestWebhookUnknownRoutesAddNoSeries(t *testing.T) {
	led, err := ledger.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	srv := httptest.NewServer(New(Options{Ledger: led, Hooks: &hooks{secret: "s3cret", forge: "github"}, Metrics: NewMetrics(led)}))
	t.Cleanup(srv.Close)
	random := func() string { return "x" + rand.Text()[:12] }
	tests := []struct {
		name        string
		forge, repo func() string
	}{
		{"unknown forge, configured repository", random, func() string { return "infra" }},
		{"known forge, unknown repository", func() string { return "github" }, random},
		{"both unknown", random, random},
	}
	var made []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 34 {
				forge, repo := tc.forge(), tc.repo()
				made = append(made, forge, repo)
				resp, body := do(t, "POST", srv.URL+"/hooks/"+forge+"/"+repo, "", pushBody,
					map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("s3cret", pushBody)})
				if resp.StatusCode != http.StatusNotFound {
					t.Fatalf("POST /hooks/%s/%s: %d %s", forge, repo, resp.StatusCode, body)
				}
			}
		})
	}
	_, scrape := do(t, "GET", srv.URL+"/metrics", "", "", nil)
	for _, name := range made {
		if name != "infra" && name != "github" && strings.Contains(scrape, name) {
			t.Errorf("/metrics has a series for %q", name)
		}
	}
	for line := range strings.Lines(scrape) {
		if strings.HasPrefix(line, "trueline_webhook_deliveries_total{") && !strings.HasSuffix(line, " 0\n") {
			t.Errorf("a delivery to an unknown path was counted: %s", line)
		}
	}
}

func TestReadiness(t *testing.T) {
	fetched := false
	s := New(Options{Ready: func() bool { return fetched }})
	status := func() int {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code
	}
	if status() != 503 {
		t.Error("ready before serving")
	}
	s.SetServing(true)
	if status() != 503 {
		t.Error("ready before the repositories were fetched")
	}
	fetched = true
	if status() != 200 {
		t.Error("not ready while serving with every repository fetched")
	}
	s.SetServing(false)
	if status() != 503 {
		t.Error("ready while stopping")
	}
}
