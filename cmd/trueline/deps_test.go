package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/sandbox"
)

// TestCheckAndServeReadTheSameFiles: a stack that reads files outside its
// directory (file and templatefile of ../shared and ../tpl, a symbolic
// link inside the repository, and a file only a watch glob names) gets the
// same verdict and findings from trueline check, in the working tree, and
// from trueline serve, in its checkout of the commit; and a commit that
// changes only one of those files plans the stack in serve, and only it.
func TestCheckAndServeReadTheSameFiles(t *testing.T) {
	r := newDaemonRepo(t)
	app := `
variable "conf_file" {
  type    = string
  default = "../../conf/app.json" # not known before planning: stack.hcl watches it
}

locals {
  sizes = jsondecode(file("../../shared/sizes.json"))
}

resource "sandbox_autoscaling_group" "web" {
  name             = trimspace(templatefile("${path.module}/../../tpl/name.tpl", { env = "prod" }))
  min_size         = local.sizes.min
  max_size         = jsondecode(file("${path.module}/limits.json")).max
  desired_capacity = jsondecode(file(var.conf_file)).desired
}
`
	files := merge(
		r.stack("app", app, "stack {\n  watch = [\"../../conf/*.json\"]\n}\n"),
		r.stack("other", "\nresource \"sandbox_load_balancer\" \"lb\" {\n  name = \"other\"\n}\n", "stack {}\n"),
		map[string]string{
			".gitignore":         ".terraform.lock.hcl\n",
			"shared/sizes.json":  `{"min": 3}`,
			"shared/limits.json": `{"max": 9}`,
			"tpl/name.tpl":       "app-${env}\n",
			"conf/app.json":      `{"desired": 5}`,
			"README.md":          "infra\n",
		},
	)
	testenv.WriteFiles(t, r.git.Dir, files)
	if err := os.Symlink("../../shared/limits.json", filepath.Join(r.git.Dir, "stacks/app/limits.json")); err != nil {
		t.Fatal(err)
	}
	c1 := r.git.Commit("stacks", nil)
	r.apply(t, "app", "other")
	// A console change, for both to find.
	if err := r.cloud.Update("sandbox_autoscaling_group", "app-prod", func(o map[string]any) { o["min_size"] = 4 }); err != nil {
		t.Fatal(err)
	}

	workDir := t.TempDir()
	check := func() map[string]string {
		t.Helper()
		cmd := exec.Command(trueline, "check", "--repo", r.git.Dir, "--format", "json", "--binary", "tofu",
			"--binary-path", testenv.Tool(t, "tofu"), "--cli-config", testenv.CLIConfig(t), "--work-dir", workDir,
			"--plugin-cache", filepath.Join(workDir, "cache"))
		cmd.Env = append(os.Environ(), sandbox.RootEnv+"="+r.cloud.Root)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil && cmd.ProcessState.ExitCode() == 1 {
			t.Fatalf("check: %v\n%s\n%s", err, out.String(), errb.String())
		}
		var rep report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("check output: %v\n%s", err, out.String())
		}
		got := map[string]string{}
		for _, w := range rep.Workspaces {
			var fs []string
			for _, f := range append(w.Drift, w.Pending...) {
				for _, a := range f.Attributes {
					fs = append(fs, fmt.Sprintf("%s %s %s: %v -> %v", f.Address, f.Action, a.Path, a.Git, a.Live))
				}
			}
			sort.Strings(fs)
			got[w.Stack] = w.Verdict + " " + strings.Join(fs, "; ")
		}
		return got
	}

	p := startServe(t, t.TempDir(), []string{sandbox.RootEnv + "=" + r.cloud.Root},
		"--repo", r.git.Dir, "--poll", "1s", "--schedule-jitter", "0s")
	// serve's finished runs of a commit, by stack, in check's form.
	served := func(commit string, n int) map[string]string {
		t.Helper()
		got := map[string]string{}
		waitFor(t, 120*time.Second, fmt.Sprintf("%d runs of %.8s", n, commit), func() bool {
			for _, run := range p.runs(t) {
				if run.Commit == commit && run.Status == "finished" {
					got[run.Stack] = fmt.Sprint(run.ID)
				}
			}
			return len(got) >= n
		})
		for stack, id := range got {
			var run apiRun
			getJSON(t, p.url+"/api/v1/runs/"+id, &run)
			if strings.Contains(run.Log, "not checked out") {
				t.Errorf("%s: serve left something out:\n%s", stack, run.Log)
			}
			var fs []string
			for _, f := range append(append([]drift.Finding{}, run.Findings.Drift...), run.Findings.Pending...) {
				for _, a := range f.Attributes {
					fs = append(fs, fmt.Sprintf("%s %s %s: %v -> %v", f.Address, f.Action, a.Path, a.Git, a.Live))
				}
			}
			sort.Strings(fs)
			got[stack] = string(run.Verdict) + " " + strings.Join(fs, "; ")
			if run.Verdict == drift.Error {
				got[stack] += errOf(run)
			}
		}
		return got
	}

	// The first commit: both see the console change, and nothing else.
	want := map[string]string{
		"stacks/app":   "drifted sandbox_autoscaling_group.web update min_size: 3 -> 4",
		"stacks/other": "in_sync ",
	}
	if got := served(c1, 2); !reflect.DeepEqual(got, want) {
		t.Errorf("serve at the first commit = %q, want %q", got, want)
	}
	if got := check(); !reflect.DeepEqual(got, want) {
		t.Errorf("check at the first commit = %q, want %q", got, want)
	}

	// A commit changing only ../shared/sizes.json plans app in serve (the
	// code now says what the console did), and not other.
	c2 := r.git.Commit("min 4", map[string]string{"shared/sizes.json": `{"min": 4}`})
	want = map[string]string{"stacks/app": "in_sync "}
	if got := served(c2, 1); !reflect.DeepEqual(got, want) {
		t.Errorf("serve after the shared file changed = %q, want %q", got, want)
	}
	if got := check(); got["stacks/app"] != want["stacks/app"] {
		t.Errorf("check after the shared file changed = %q, want %q", got, want)
	}

	// A commit changing only a file the watch glob names plans app too.
	c3 := r.git.Commit("desired 6", map[string]string{"conf/app.json": `{"desired": 6}`})
	want = map[string]string{"stacks/app": "pending sandbox_autoscaling_group.web update desired_capacity: 6 -> 5"} // git -> live
	if got := served(c3, 1); !reflect.DeepEqual(got, want) {
		t.Errorf("serve after the watched file changed = %q, want %q", got, want)
	}
	if got := check(); got["stacks/app"] != want["stacks/app"] {
		t.Errorf("check after the watched file changed = %q, want %q", got, want)
	}

	// The link's target is a dependency as well; a README is not.
	c4 := r.git.Commit("max 12", map[string]string{"shared/limits.json": `{"max": 12}`, "README.md": "infra, again\n"})
	if got := served(c4, 1); !strings.HasPrefix(got["stacks/app"], "pending ") || len(got) != 1 {
		t.Errorf("serve after the link's target changed = %q, want app pending", got)
	}
	c5 := r.git.Commit("docs", map[string]string{"README.md": "infra, docs only\n"})
	waitFor(t, 30*time.Second, "serve to see the docs commit", func() bool {
		return strings.Contains(p.logs.String(), c5[:12])
	})
	for _, run := range p.runs(t) {
		if run.Commit == c5 {
			t.Errorf("a commit touching only README.md planned %s", run.Stack)
		}
	}
}
