package main_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trueline/trueline/internal/giteatest"
	"github.com/trueline/trueline/sandbox"
)

// secretStack holds secrets in several shapes: a sensitive variable in a
// map, a value read from the cloud's secret manager into a sensitive
// attribute and a nested block, and a sensitive output.
func secretStack(name string) string {
	return fmt.Sprintf(`
variable "team_token" {
  type      = string
  sensitive = true
  default   = "tok-PLANTED-team-4f1c9a"
}

data "sandbox_secret" "db" {
  name = "db"
}

resource "sandbox_app_config" "app" {
  name    = %q
  tags    = { team = "payments", token = var.team_token }
  env     = ["LEVEL=info", var.team_token]
  api_key = data.sandbox_secret.db.value

  rule {
    name   = "first"
    secret = data.sandbox_secret.db.value
  }
}

output "token" {
  value     = var.team_token
  sensitive = true
}
`, name)
}

// The secrets of secretStack and of the console change; none may appear on
// any surface trueline has.
var planted = []string{"tok-PLANTED-team-4f1c9a", "db-PLANTED-from-data-8e3b", "console-PLANTED-value-0c7d"}

// One end-to-end run plants secrets (in the cloud's secret manager, in a
// sensitive variable, and as a live value a console change wrote), lets
// trueline find the drift, open a revert pull request on a real Gitea,
// auto-apply another stack, notify Slack and post the report, and then
// searches every surface for them.
func TestPlantedSecretsReachNoSurface(t *testing.T) {
	gt := giteatest.Start(t)
	r := newDaemonRepo(t)
	if err := r.cloud.Put("secrets", "db", map[string]any{"value": "db-PLANTED-from-data-8e3b"}); err != nil {
		t.Fatal(err)
	}
	r.git.Commit("stacks", merge(
		map[string]string{
			".gitignore":           ".terraform.lock.hcl\n",
			"policies/review.hcl":  "policy \"review\" {\n  on_drift = \"pull_request\"\n  notify   = [\"slack.infra\"]\n}\n",
			"policies/guarded.hcl": "policy \"guarded\" {\n  on_drift = \"apply\"\n  notify   = [\"slack.infra\"]\n}\n",
		},
		r.stack("review", secretStack("review"), "stack {\n  policy = \"review\"\n}\n"),
		r.stack("guarded", secretStack("guarded"), "stack {\n  policy = \"guarded\"\n}\n"),
	))
	r.apply(t, "review", "guarded")
	// The secrets are in play: terraform's own state holds them.
	if b, _ := os.ReadFile(filepath.Join(r.state, "review.tfstate")); !strings.Contains(string(b), "db-PLANTED-from-data-8e3b") {
		t.Fatal("the state does not hold the planted secret: the test would prove nothing")
	}
	pushToGitea(t, gt, r.git)

	slack := newSlackReceiver(t)
	conf := filepath.Join(t.TempDir(), "trueline.hcl")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
repository "infra" {
  url       = %q
  forge     = "gitea"
  token_env = "GITEA_TOKEN"
  poll      = "1s"
}

notify "slack" "infra" {
  webhook_url_env = "SLACK_URL"
}

report {
  schedule = "@every 2s"
  notify   = ["slack.infra"]
}
`, gt.URL+"/trueline/infra.git")), 0o644)
	dataDir := t.TempDir()
	p := startServe(t, dataDir, []string{sandbox.RootEnv + "=" + r.cloud.Root, "GITEA_TOKEN=" + gt.Token, "TRUELINE_API_TOKEN=api",
		"SLACK_URL=" + slack.URL + "/hook"}, "--config", conf)
	waitFor(t, 90*time.Second, "the first runs", func() bool { return countStatus(p.runs(t), "finished") >= 2 })

	// The console writes a new secret value into both stacks' objects.
	for _, name := range []string{"review", "guarded"} {
		if err := r.cloud.Update("sandbox_app_config", name, func(o map[string]any) {
			o["tags"] = map[string]any{"team": "payments", "token": "console-PLANTED-value-0c7d"}
			o["api_key"] = "console-PLANTED-value-0c7d"
			o["env"] = []any{"LEVEL=info"}
		}); err != nil {
			t.Fatal(err)
		}
	}
	api := func(method, path, body string) string {
		t.Helper()
		req, _ := http.NewRequest(method, p.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer api")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %s\n%s", method, path, resp.Status, b)
		}
		return string(b)
	}
	api("POST", "/api/v1/runs", `{"stack":"stacks/review"}`)
	api("POST", "/api/v1/runs", `{"stack":"stacks/guarded"}`)
	waitFor(t, 90*time.Second, "the drift runs", func() bool {
		done := map[string]bool{}
		for _, run := range p.runs(t) {
			if run.Trigger == "manual" && run.Status == "finished" {
				done[run.Stack] = true
			}
		}
		return done["stacks/review"] && done["stacks/guarded"]
	})
	var pr giteaPR
	waitFor(t, 60*time.Second, "the revert pull request", func() bool {
		var prs []giteaPR
		if gt.TryAPI("GET", "/api/v1/repos/trueline/infra/pulls?state=open", nil, &prs) != nil || len(prs) == 0 {
			return false
		}
		pr = prs[0]
		return true
	})
	waitFor(t, 30*time.Second, "Slack to hear of the drift and the report", func() bool {
		drift, report := false, false
		for _, s := range slack.Payloads() {
			drift = drift || strings.Contains(s, "stacks/review")
			report = report || strings.Contains(s, "report")
		}
		return drift && report
	})
	runs := p.runs(t)
	var converged bool
	for _, run := range runs {
		converged = converged || (run.Stack == "stacks/guarded" && run.Converged())
	}
	if !converged {
		t.Errorf("the guarded stack did not converge: %+v", runs)
	}

	// Every surface, and what each must show so that the search means something.
	surfaces := map[string]string{}
	add := func(name, content, mustShow string) {
		t.Helper()
		if !strings.Contains(content, mustShow) {
			t.Errorf("surface %s does not show %q, so searching it proves nothing:\n%.2000s", name, mustShow, content)
		}
		surfaces[name] = content
	}
	add("GET /api/v1/runs", api("GET", "/api/v1/runs?limit=100", ""), "stacks/review")
	for _, run := range runs {
		add(fmt.Sprintf("GET /api/v1/runs/%d", run.ID), api("GET", fmt.Sprintf("/api/v1/runs/%d", run.ID), ""), run.Stack)
		add(fmt.Sprintf("page /runs/%d", run.ID), api("GET", fmt.Sprintf("/runs/%d", run.ID), ""), run.Stack)
	}
	add("GET /api/v1/workspaces", api("GET", "/api/v1/workspaces", ""), "stacks/review")
	add("GET /api/v1/stacks", api("GET", "/api/v1/stacks", ""), "stacks/review")
	add("GET /api/v1/status", api("GET", "/api/v1/status", ""), "infra")
	add("page /", api("GET", "/", ""), "stacks/review")
	add("page /workspace", api("GET", "/workspace?key="+url.QueryEscape("infra/stacks/review/default"), ""), "api_key")
	for _, f := range []string{"html", "markdown", "json"} {
		add("GET /report?format="+f, api("GET", "/report?format="+f, ""), "stacks/review")
	}
	add("GET /metrics", api("GET", "/metrics", ""), "trueline_")
	add("Slack payloads", strings.Join(slack.Payloads(), "\n"), "stacks/review")
	add("pull request body", pr.Title+"\n"+pr.Body, "api_key")
	var record struct {
		Content string `json:"content"`
	}
	gt.API("GET", "/api/v1/repos/trueline/infra/contents/.trueline/drift/stacks/review/default.md?ref="+url.QueryEscape(pr.Head.Ref), nil, &record)
	md, err := base64.StdEncoding.DecodeString(record.Content)
	if err != nil {
		t.Fatalf("the drift record's content: %v", err)
	}
	add("drift Markdown on the revert branch", string(md), "api_key")
	for _, args := range [][]string{
		{"report", "--data-dir", dataDir, "--format", "markdown"},
		{"report", "--data-dir", dataDir, "--format", "html"},
		{"report", "--data-dir", dataDir, "--format", "json"},
		{"runs", "--server", p.url, "--format", "json"},
		{"runs", "--server", p.url},
	} {
		cmd := exec.Command(trueline, args...)
		cmd.Env = append(os.Environ(), "TRUELINE_API_TOKEN=api")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("trueline %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		add("trueline "+strings.Join(args, " "), string(out), "stacks/review")
	}
	// Stop the server cleanly, so the ledger's last writes are in its files.
	p.cmd.Process.Signal(os.Interrupt)
	p.wait()
	add("serve's log", p.logs.String(), "stacks/review")
	ledgerFiles := ""
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if b, err := os.ReadFile(filepath.Join(dataDir, "trueline.db"+suffix)); err == nil {
			ledgerFiles += string(b)
		}
	}
	add("the ledger's files", ledgerFiles, "stacks/review")
	records := ""
	filepath.WalkDir(r.state, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(path, ".trueline") {
			b, _ := os.ReadFile(path)
			records += path + "\n" + string(b) + "\n"
		}
		return nil
	})
	add("records beside the state", records, "sandbox_app_config.app")

	for name, content := range surfaces {
		for _, secret := range planted {
			if i := strings.Index(content, secret); i >= 0 {
				t.Errorf("%s holds the secret %q: ...%s...", name, secret, content[max(0, i-200):min(len(content), i+len(secret)+50)])
			}
		}
	}
	t.Logf("searched %d surfaces for %d planted secrets", len(surfaces), len(planted))
}
