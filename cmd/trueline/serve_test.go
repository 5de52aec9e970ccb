package main_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trueline/trueline/internal/gittest"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/sandbox"
)

// daemonRepo is a Git repository of sandbox stacks whose local state lives
// outside the repository, so the test can apply them before trueline runs.
type daemonRepo struct {
	git   *gittest.Repo
	state string
	cloud sandbox.Store
}

func newDaemonRepo(t *testing.T) *daemonRepo {
	return &daemonRepo{git: gittest.New(t), state: t.TempDir(), cloud: sandbox.Store{Root: t.TempDir()}}
}

func (r *daemonRepo) stack(name, body, stackHCL string) map[string]string {
	return map[string]string{
		"stacks/" + name + "/stack.hcl": stackHCL,
		"stacks/" + name + "/main.tf": fmt.Sprintf(`terraform {
  backend "local" {
    path = %q
  }
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {}
%s`, filepath.Join(r.state, name+".tfstate"), body),
	}
}

// apply applies stacks from the working tree, as a person would have.
func (r *daemonRepo) apply(t *testing.T, names ...string) {
	t.Helper()
	rn := testenv.Runner(t, testenv.Binary(t, "tofu"))
	rn.Env[sandbox.RootEnv] = r.cloud.Root
	for _, n := range names {
		dir := filepath.Join(r.git.Dir, "stacks", n)
		p, err := rn.Plan(context.Background(), runner.Job{Key: n, Dir: dir})
		if err != nil {
			t.Fatalf("plan %s: %v\n%s", n, err, p.Log)
		}
		if _, err := rn.Apply(context.Background(), p); err != nil {
			t.Fatalf("apply %s: %v", n, err)
		}
		p.Discard()
	}
}

type serveProc struct {
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done
}

// wait waits for the process to exit and returns its exit status.
func (p *serveProc) wait() error {
	<-p.done
	return p.err
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startServe runs `trueline serve` and waits until it is ready.
func startServe(t *testing.T, dataDir string, env []string, args ...string) *serveProc {
	t.Helper()
	addr := freePort(t)
	base := []string{"serve", "--listen", addr, "--data-dir", dataDir, "--binary", "tofu",
		"--binary-path", testenv.Tool(t, "tofu"), "--cli-config", testenv.CLIConfig(t), "--log-level", "info"}
	cmd := exec.Command(trueline, append(base, args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &serveProc{cmd: cmd, url: "http://" + addr, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		p.wait()
		if t.Failed() {
			t.Logf("serve log:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 30s; log:\n%s", p.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiRun is a run as the API answers it: the ledger's own type.
type apiRun = ledger.Run

// errOf is a run's failure message, or "".
func errOf(r apiRun) string {
	if r.Failure == nil {
		return ""
	}
	return r.Failure.Message
}

func (p *serveProc) runs(t *testing.T) []apiRun {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/runs?limit=500")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct{ Runs []apiRun }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return page.Runs
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestServeCommitsSchedulesAndWebhooks(t *testing.T) {
	r := newDaemonRepo(t)
	module := func(name, m string) string {
		return fmt.Sprintf("\nmodule \"svc\" {\n  source = \"../../modules/%s\"\n  name   = %q\n}\n", m, name)
	}
	lbModule := "terraform {\n  required_providers {\n    sandbox = { source = \"trueline/sandbox\" }\n  }\n}\n\nvariable \"name\" {\n  type = string\n}\n\nresource \"sandbox_load_balancer\" \"lb\" {\n  name = var.name\n}\n"
	files := merge(
		map[string]string{".gitignore": ".terraform.lock.hcl\n", "modules/m1/main.tf": lbModule, "modules/m2/main.tf": lbModule},
		r.stack("a", module("a", "m1"), "stack {}\n"),
		r.stack("b", module("b", "m1"), "stack {}\n"),
		r.stack("c", module("c", "m2"), "stack {}\n"),
		r.stack("d", "\nresource \"sandbox_autoscaling_group\" \"web\" {\n  name     = \"d\"\n  min_size = 3\n  max_size = 9\n}\n",
			"stack {\n  schedule = \"@every 2s\"\n  policy   = \"watch\"\n}\n"),
		map[string]string{"policies/watch.hcl": "policy \"watch\" {\n  on_drift = \"report\"\n  notify   = [\"slack.infra\"]\n}\n"},
	)
	c1 := r.git.Commit("stacks", files)
	r.apply(t, "a", "b", "c", "d")

	// Slack is a local receiver; the server notifies it through trueline.hcl.
	slack := newSlackReceiver(t)
	conf := filepath.Join(t.TempDir(), "trueline.hcl")
	os.WriteFile(conf, []byte("notify \"slack\" \"infra\" {\n  webhook_url_env = \"SLACK_URL\"\n}\n\nreport {\n  schedule = \"@every 2s\"\n  notify   = [\"slack.infra\"]\n}\n"), 0o644)

	const secret = "hook-secret"
	p := startServe(t, t.TempDir(), []string{sandbox.RootEnv + "=" + r.cloud.Root, "HOOK_SECRET=" + secret, "SLACK_URL=" + slack.URL + "/hook"},
		"--config", conf, "--repo", r.git.Serve(), "--forge", "gitea", "--webhook-secret-env", "HOOK_SECRET", "--poll", "1h", "--schedule-jitter", "0s")

	// The first look at the repository plans every stack once.
	waitFor(t, 60*time.Second, "the first runs of all four stacks", func() bool {
		done := map[string]bool{}
		for _, run := range p.runs(t) {
			if run.Trigger == "commit" && run.Status == "finished" && run.Commit == c1 {
				if run.Verdict != "in_sync" {
					t.Fatalf("%s: %s %s", run.Stack, run.Verdict, errOf(run))
				}
				done[run.Stack] = true
			}
		}
		return len(done) == 4
	})

	// A push that touches module m1 plans exactly a and b.
	c2 := r.git.Commit("touch m1", map[string]string{"modules/m1/main.tf": lbModule + "# a comment\n"})
	body := fmt.Sprintf(`{"ref":"refs/heads/main","after":%q}`, c2)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	req, _ := http.NewRequest("POST", p.url+"/hooks/gitea/"+filepath.Base(r.git.Dir), strings.NewReader(body))
	req.Header.Set("X-Gitea-Event", "push")
	req.Header.Set("X-Gitea-Signature", hex.EncodeToString(mac.Sum(nil)))
	sent := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %s", resp.Status)
	}
	var pushed []apiRun
	waitFor(t, 60*time.Second, "the runs of the push", func() bool {
		pushed = nil
		finished := 0
		for _, run := range p.runs(t) {
			if run.Commit == c2 && run.Trigger == "webhook" {
				pushed = append(pushed, run)
				if run.Status == "finished" {
					finished++
				}
			}
		}
		return finished >= 2
	})
	time.Sleep(time.Second) // anything else the push queued would show now
	var stacksRun []string
	for _, run := range p.runs(t) {
		if run.Commit == c2 && run.Trigger != "schedule" {
			stacksRun = append(stacksRun, run.Stack)
		}
	}
	sort.Strings(stacksRun)
	if strings.Join(stacksRun, ",") != "stacks/a,stacks/b" {
		t.Errorf("the push planned %v, want exactly stacks/a and stacks/b", stacksRun)
	}
	first := pushed[0].StartedAt
	for _, run := range pushed {
		if run.StartedAt.Before(first) {
			first = run.StartedAt
		}
	}
	t.Logf("webhook to first plan start: %v", first.Sub(sent).Round(time.Millisecond))

	// A console change is found by the next scheduled run.
	changed := time.Now()
	if err := r.cloud.Update("sandbox_autoscaling_group", "d", func(o map[string]any) { o["min_size"] = 4 }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a scheduled run that finds the drift", func() bool {
		for _, run := range p.runs(t) {
			if run.Stack == "stacks/d" && run.Trigger == "schedule" && run.Verdict == "drifted" && run.StartedAt.After(changed) {
				return true
			}
		}
		return false
	})
	// ...and Slack hears of it once, however many scheduled runs see it;
	// the scheduled drift report arrives too, with a link to the full report.
	drifts := func() (drift []string, reports []string) {
		for _, p := range slack.Payloads() {
			if strings.Contains(p, "trueline drift report") {
				reports = append(reports, p)
			} else {
				drift = append(drift, p)
			}
		}
		return
	}
	waitFor(t, 10*time.Second, "the Slack notification", func() bool { d, _ := drifts(); return len(d) > 0 })
	time.Sleep(3 * time.Second)
	d, reports := drifts()
	if len(d) != 1 || !strings.Contains(d[0], "Drift in stacks/d (default)") || !strings.Contains(d[0], "min_size: git `3` → live `4`") {
		t.Errorf("Slack drift payloads = %q", d)
	}
	if len(reports) == 0 || !strings.Contains(reports[len(reports)-1], "1 drifted") || !strings.Contains(reports[0], "/report?since=24h0m0s") {
		t.Errorf("Slack report payloads = %q", reports)
	}
	// The full report is served.
	resp, err = http.Get(p.url + "/report?format=markdown")
	if err != nil {
		t.Fatal(err)
	}
	md, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(md), "## Drifted (1)") || !strings.Contains(string(md), "stacks/d (default)") {
		t.Errorf("report:\n%s", md)
	}

	// The metrics agree with what happened.
	resp, err = http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`trueline_runs_total{trigger="commit",verdict="in_sync"} 4`,
		`trueline_runs_total{trigger="webhook",verdict="in_sync"} 2`,
		`trueline_webhook_deliveries_total{forge="gitea",result="accepted"} 1`,
		`trueline_workspaces{verdict="drifted"} 1`,
		`trueline_workspaces{verdict="in_sync"} 3`,
		`trueline_run_duration_seconds_count{verdict="drifted"}`,
		`trueline_queue_depth`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(metrics), `trueline_oldest_drift_age_seconds 0`+"\n") {
		t.Error("a drifted workspace exists, but the oldest drift age is 0")
	}
}

func TestServeSurvivesKillAndStopsCleanly(t *testing.T) {
	r := newDaemonRepo(t)
	r.git.Commit("stack", merge(map[string]string{".gitignore": ".terraform.lock.hcl\n"},
		r.stack("e", "\nresource \"sandbox_load_balancer\" \"e\" {\n  name = \"e\"\n}\n", "stack {}\n")))
	r.apply(t, "e")
	data := t.TempDir()
	env := []string{sandbox.RootEnv + "=" + r.cloud.Root}
	url := r.git.Serve()

	// A slow cloud keeps the first run in progress; kill -9 the server then.
	p := startServe(t, data, append(env, sandbox.DelayEnv+"=60s"), "--repo", url, "--poll", "1h")
	waitFor(t, 30*time.Second, "a running run", func() bool {
		runs := p.runs(t)
		return len(runs) == 1 && runs[0].Status == "running"
	})
	time.Sleep(500 * time.Millisecond) // let terraform get into the plan
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait()

	p = startServe(t, data, env, "--repo", url, "--poll", "1h")
	waitFor(t, 60*time.Second, "the retry to finish", func() bool {
		for _, run := range p.runs(t) {
			if run.RetryOf != 0 && run.Status == "finished" {
				return true
			}
		}
		return false
	})
	runs := p.runs(t)
	if len(runs) != 2 {
		t.Fatalf("want exactly the killed run and its retry, got %+v", runs)
	}
	retry, killed := runs[0], runs[1]
	if killed.Status != "interrupted" || !strings.Contains(errOf(killed), "interrupted") {
		t.Errorf("killed run = %+v", killed)
	}
	if retry.RetryOf != killed.ID || retry.Trigger != "retry" || retry.Verdict != "in_sync" || retry.Commit != killed.Commit {
		t.Errorf("retry = %+v", retry)
	}

	// SIGTERM: the running plan is interrupted, the process exits 0 within
	// the grace period, and the run is queued again.
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait()
	p = startServe(t, data, append(env, sandbox.DelayEnv+"=60s"), "--repo", url, "--poll", "1h", "--grace", "5s")
	req, _ := http.NewRequest("POST", p.url+"/api/v1/runs", strings.NewReader(`{"stack":"stacks/e"}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("manual trigger without a token: %v %v", err, resp.Status)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait()
	p = startServe(t, data, append(env, sandbox.DelayEnv+"=60s", "TRUELINE_API_TOKEN=tok"), "--repo", url, "--poll", "1h", "--grace", "5s")
	req, _ = http.NewRequest("POST", p.url+"/api/v1/runs", strings.NewReader(`{"stack":"stacks/e/default"}`))
	req.Header.Set("Authorization", "Bearer tok")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("manual trigger: %v %v", err, resp.Status)
	}
	waitFor(t, 30*time.Second, "the manual run to start", func() bool {
		runs := p.runs(t)
		return len(runs) > 0 && runs[0].Trigger == "manual" && runs[0].Status == "running"
	})
	time.Sleep(500 * time.Millisecond)
	stopAt := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	err := p.wait()
	if err != nil {
		t.Errorf("serve exited with %v after SIGTERM, want 0", err)
	}
	if d := time.Since(stopAt); d > 15*time.Second {
		t.Errorf("stopping took %v", d)
	}
	// Read the ledger through a fresh server (no slow cloud): the manual run
	// was interrupted and its retry runs.
	p = startServe(t, data, env, "--repo", url, "--poll", "1h")
	waitFor(t, 60*time.Second, "the retry of the stopped run", func() bool {
		runs := p.runs(t)
		return len(runs) == 4 && runs[0].RetryOf == runs[1].ID && runs[0].Status == "finished" && runs[1].Status == "interrupted"
	})
}

// slackReceiver is a local Slack incoming webhook that keeps what it gets.
type slackReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	payloads []string
}

func newSlackReceiver(t *testing.T) *slackReceiver {
	s := &slackReceiver{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		s.mu.Lock()
		s.payloads = append(s.payloads, string(b))
		s.mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(s.Close)
	return s
}

// Payloads are the bodies received so far.
func (s *slackReceiver) Payloads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.payloads...)
}
