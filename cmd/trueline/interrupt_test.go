package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/sandbox"
)

// An apply stopped by SIGTERM is interrupted (terraform gets SIGINT and
// releases its lock); its retry never applies by itself. An apply killed
// with the server leaves its lock (here the s3 backend's lock file): the
// next run's error names it, and `trueline unlock` releases it.
func TestServeApplyInterrupted(t *testing.T) {
	r := newS3Repo(t, map[string]string{
		// A failed apply still saves the refreshed state, so what was drift
		// plans as pending afterwards: this policy applies both.
		"policies/guarded.hcl": "policy \"guarded\" {\n  on_drift   = \"apply\"\n  on_pending = \"apply\"\n}\n",
		"stacks/web/stack.hcl": "stack {\n  policy = \"guarded\"\n}\n",
	}, `resource "sandbox_autoscaling_group" "web" {
  name     = "web"
  min_size = 3
  max_size = 9
}`)
	s3, cloud, env := r.s3, r.cloud, r.env
	env = append(env, "TRUELINE_API_TOKEN=tok")
	slow := append(append([]string(nil), env...), sandbox.WriteDelayEnv+"=60s")
	data := t.TempDir()
	url := r.git.Serve()
	locked := func() bool { _, ok := s3.Get(t, "state", "web/terraform.tfstate.tflock"); return ok }
	trigger := func(p *serveProc) {
		t.Helper()
		req, _ := http.NewRequest("POST", p.url+"/api/v1/runs", strings.NewReader(`{"stack":"stacks/web"}`))
		req.Header.Set("Authorization", "Bearer tok")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("trigger: %v %v", err, resp.Status)
		}
	}
	applying := func(p *serveProc) {
		t.Helper()
		waitFor(t, 60*time.Second, "an apply in progress", func() bool {
			resp, err := http.Get(p.url + "/api/v1/runs?limit=1")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var out struct {
				Runs []struct {
					Status   string `json:"status"`
					Applying bool   `json:"applying"`
				} `json:"runs"`
			}
			json.NewDecoder(resp.Body).Decode(&out)
			return len(out.Runs) == 1 && out.Runs[0].Applying && out.Runs[0].Status == "running" && locked()
		})
		time.Sleep(time.Second) // let terraform call the (slow) cloud
	}
	minSize := func() string {
		o, _ := cloud.Get("sandbox_autoscaling_group", "web")
		return fmt.Sprint(o["min_size"])
	}

	p := startServe(t, data, slow, "--repo", url, "--poll", "1h", "--grace", "20s")
	waitFor(t, 60*time.Second, "the first run", func() bool { return countStatus(p.runs(t), "finished") == 1 })
	cloud.Update("sandbox_autoscaling_group", "web", func(o map[string]any) { o["min_size"] = 4 })

	// SIGTERM during the apply: terraform is interrupted and unlocks.
	trigger(p)
	applying(p)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(); err != nil {
		t.Errorf("serve exited with %v after SIGTERM, want 0", err)
	}
	if locked() {
		t.Errorf("terraform left its lock after SIGTERM")
	}
	// The retry plans, and does not apply by itself.
	p = startServe(t, data, slow, "--repo", url, "--poll", "1h", "--grace", "20s")
	waitFor(t, 60*time.Second, "the retry", func() bool {
		runs := p.runs(t)
		return len(runs) > 0 && runs[0].RetryOf != 0 && runs[0].Status == "finished"
	})
	if retry := p.runs(t)[0]; retry.Verdict == "in_sync" || retry.Action.Kind == "apply" ||
		!strings.Contains(retry.Action.Reason, "interrupted while applying") {
		t.Errorf("the retry of an interrupted apply: %+v", retry)
	}
	if got := minSize(); got != "4" {
		t.Errorf("min_size = %s: the interrupted apply was repeated", got)
	}

	// kill -9 during the apply: terraform dies with it and the lock stays.
	trigger(p)
	applying(p)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait()
	if !locked() {
		t.Fatal("no lock after a kill during apply; the rest of the test needs one")
	}
	// The lock's holder is dead: a short lock timeout lets the retry say so
	// at once (the default waits five minutes for a live holder).
	p = startServe(t, data, env, "--repo", url, "--poll", "1h", "--lock-timeout", "1s")
	var retry apiRun
	waitFor(t, 60*time.Second, "the retry after the kill", func() bool {
		runs := p.runs(t)
		if len(runs) > 0 && runs[0].RetryOf != 0 && runs[0].Status == "finished" {
			retry = runs[0]
			return true
		}
		return false
	})
	id := regexp.MustCompile(`ID:\s+([0-9a-f-]{36})`).FindStringSubmatch(errOf(retry))
	if retry.Verdict != "error" || id == nil {
		t.Fatalf("the retry does not name the held lock: %+v", retry)
	}
	unlock := func(args ...string) (string, error) {
		cmd := exec.Command(trueline, append([]string{"unlock", "--data-dir", data, "--binary", "tofu",
			"--binary-path", testenv.Tool(t, "tofu"), "--cli-config", testenv.CLIConfig(t)}, args...)...)
		cmd.Stdin = strings.NewReader("")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := unlock("stacks/web", id[1]); err == nil || !strings.Contains(out, "--yes") {
		t.Errorf("unlock without a terminal or --yes: %v\n%s", err, out)
	}
	if out, err := unlock("stacks/web", id[1], "--yes"); err != nil || !strings.Contains(out, "released lock "+id[1]) {
		t.Fatalf("unlock: %v\n%s", err, out)
	}
	if locked() {
		t.Error("the lock is still there after unlock")
	}
	// With the lock gone, a person's run applies and converges.
	trigger(p)
	waitFor(t, 60*time.Second, "the apply after unlock", func() bool {
		runs := p.runs(t)
		return len(runs) > 0 && runs[0].Trigger == "manual" && runs[0].Status == "finished"
	})
	if run := p.runs(t)[0]; !run.Converged() || minSize() != "3" {
		t.Errorf("after unlock: %+v, min_size %s", run, minSize())
	}
}
