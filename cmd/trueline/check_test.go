package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/sandbox"
)

var trueline string // the binary under test

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "trueline-bin-")
	if err != nil {
		panic(err)
	}
	trueline = filepath.Join(dir, "trueline")
	if out, err := exec.Command("go", "build", "-o", trueline, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build trueline: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const providerBlock = `terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}
`

func asg(name string, extra string) string {
	return fmt.Sprintf(`
resource "sandbox_autoscaling_group" "web" {
  name     = %q
  min_size = 3
  max_size = 9
%s}
`, name, extra)
}

func lb(name string, idle int) string {
	return fmt.Sprintf(`
resource "sandbox_load_balancer" "web" {
  name         = %q
  idle_timeout = %d
}
`, name, idle)
}

const (
	dbPassword      = "original-password-1"
	consolePassword = "changed-in-console-2"
)

// stacksUnderTest is the repository every check test starts from: one stack
// per scenario, each with its own sandbox object names.
func stacksUnderTest() map[string]string {
	return map[string]string{
		"stacks/insync/stack.hcl": "stack {}\n",
		"stacks/insync/main.tf": providerBlock + `
data "sandbox_image" "base" {
  name = "base"
}
` + asg("insync", "  launch_template = data.sandbox_image.base.id\n"),
		"stacks/console/stack.hcl":  "stack {}\n",
		"stacks/console/main.tf":    providerBlock + asg("console", ""),
		"stacks/code/stack.hcl":     "stack {}\n",
		"stacks/code/main.tf":       providerBlock + lb("code", 60),
		"stacks/both/stack.hcl":     "stack {}\n",
		"stacks/both/main.tf":       providerBlock + asg("both", "") + lb("both", 60),
		"stacks/deleted/stack.hcl":  "stack {}\n",
		"stacks/deleted/main.tf":    providerBlock + asg("deleted", ""),
		"stacks/ignored/stack.hcl":  "stack {\n  ignore {\n    attributes = [\"sandbox_autoscaling_group.*.desired_capacity\"]\n  }\n}\n",
		"stacks/ignored/main.tf":    providerBlock + asg("ignored", "  desired_capacity = 3\n"),
		"stacks/password/stack.hcl": "stack {}\n",
		"stacks/password/main.tf": providerBlock + `
variable "password" {
  type      = string
  sensitive = true
  default   = "` + dbPassword + `"
}

resource "sandbox_database" "main" {
  name           = "password"
  engine         = "postgres"
  instance_class = "small"
  password       = var.password
}
`,
		"stacks/brokentf/stack.hcl": "stack {}\n",
		"stacks/brokentf/main.tf":   providerBlock + asg("brokentf", ""),
	}
}

type env struct {
	repo, cloud string
	bin         runner.Binary
	workDir     string
}

// setup writes the repository, applies every stack, then makes each
// scenario's change behind Terraform's back or in the code.
func setup(t *testing.T, bin runner.Binary) env {
	t.Helper()
	e := env{repo: t.TempDir(), cloud: t.TempDir(), bin: bin, workDir: t.TempDir()}
	t.Setenv(sandbox.RootEnv, e.cloud)
	cloud := sandbox.Store{Root: e.cloud}
	cloud.Put("images", "base", map[string]any{"id": "img-1"})
	files := stacksUnderTest()
	testenv.WriteFiles(t, e.repo, files)

	r := testenv.Runner(t, bin)
	for name := range files {
		if filepath.Base(name) != "main.tf" {
			continue
		}
		dir := filepath.Join(e.repo, filepath.Dir(name))
		p, err := r.Plan(context.Background(), runner.Job{Key: dir, Dir: dir})
		if err != nil {
			t.Fatalf("plan %s: %v\n%s", dir, err, p.Log)
		}
		if _, err := r.Apply(context.Background(), p); err != nil {
			t.Fatalf("apply %s: %v", dir, err)
		}
		p.Discard()
	}

	// The console changes.
	set := func(typ, id string, kv map[string]any) {
		if err := cloud.Update(typ, id, func(o map[string]any) {
			for k, v := range kv {
				o[k] = v
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	set("sandbox_autoscaling_group", "console", map[string]any{"min_size": 4, "max_size": 12})
	set("sandbox_autoscaling_group", "both", map[string]any{"min_size": 4, "max_size": 12})
	set("sandbox_autoscaling_group", "ignored", map[string]any{"desired_capacity": 5})
	set("sandbox_database", "password", map[string]any{"password": consolePassword})
	cloud.Delete("sandbox_autoscaling_group", "deleted")
	// The code changes, and the broken stacks.
	testenv.WriteFiles(t, e.repo, map[string]string{
		"stacks/code/main.tf":        providerBlock + lb("code", 120),
		"stacks/both/main.tf":        providerBlock + asg("both", "") + lb("both", 120),
		"stacks/brokentf/main.tf":    providerBlock + "resource \"sandbox_autoscaling_group\" \"web\" {\n  name = \n}\n",
		"stacks/brokenhcl/stack.hcl": "stack {\n  schedule = \"every day\"\n}\n",
		"stacks/brokenhcl/main.tf":   providerBlock,
	})
	return e
}

type report struct {
	Version    int `json:"version"`
	Workspaces []struct {
		Stack     string    `json:"stack"`
		Workspace string    `json:"workspace"`
		Verdict   string    `json:"verdict"`
		Drift     []finding `json:"drift"`
		Pending   []finding `json:"pending"`
		Noise     []finding `json:"noise"`
		Error     *string   `json:"error"`
		Duration  *int64    `json:"duration_ms"`
	} `json:"workspaces"`
}

type finding struct {
	Address    string `json:"address"`
	Action     string `json:"action"`
	Attributes []struct {
		Path string `json:"path"`
		Git  any    `json:"git"`
		Live any    `json:"live"`
	} `json:"attributes"`
}

func (e env) check(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	base := []string{"check", "--repo", e.repo, "--binary", e.bin.Name, "--binary-path", e.bin.Path,
		"--cli-config", testenv.CLIConfig(t), "--work-dir", e.workDir, "--plugin-cache", filepath.Join(e.workDir, "cache"),
		"--log-level", "info"}
	cmd := exec.Command(trueline, append(base, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestCheck(t *testing.T) {
	for _, bin := range testenv.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			e := setup(t, bin)
			stdout, stderr, code := e.check(t, "--format", "json")
			if code != 1 {
				t.Errorf("exit code = %d, want 1 (errors win)\n%s", code, stderr)
			}
			var rep report
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("output is not the JSON report: %v\n%s", err, stdout)
			}
			if rep.Version != 1 {
				t.Errorf("version = %d", rep.Version)
			}
			got := map[string]int{}
			for i, w := range rep.Workspaces {
				got[w.Stack] = i
				if w.Drift == nil || w.Pending == nil || w.Noise == nil || w.Duration == nil {
					t.Errorf("%s: drift, pending, noise and duration_ms must always be present", w.Stack)
				}
			}
			if len(rep.Workspaces) != 9 {
				t.Fatalf("want 9 outcomes, got %d:\n%s", len(rep.Workspaces), stdout)
			}
			ws := func(stack string) int {
				i, ok := got["stacks/"+stack]
				if !ok {
					t.Fatalf("no outcome for %s", stack)
				}
				return i
			}
			verdict := func(stack, want string) {
				t.Helper()
				w := rep.Workspaces[ws(stack)]
				if w.Verdict != want {
					msg := ""
					if w.Error != nil {
						msg = *w.Error
					}
					t.Errorf("%s: verdict %s, want %s %s", stack, w.Verdict, want, msg)
				}
			}
			verdict("insync", "in_sync")
			verdict("console", "drifted")
			verdict("code", "pending")
			verdict("both", "drifted_and_pending")
			verdict("deleted", "drifted")
			verdict("ignored", "in_sync")
			verdict("password", "drifted")
			verdict("brokentf", "error")
			verdict("brokenhcl", "error")

			c := rep.Workspaces[ws("console")]
			if w := c.Workspace; w != "default" {
				t.Errorf("console workspace = %q", w)
			}
			if len(c.Drift) != 1 || c.Drift[0].Address != "sandbox_autoscaling_group.web" || c.Drift[0].Action != "update" {
				t.Fatalf("console drift = %+v", c.Drift)
			}
			attrs := fmt.Sprint(c.Drift[0].Attributes)
			if attrs != "[{max_size 9 12} {min_size 3 4}]" {
				t.Errorf("console drift attributes = %s, want max_size 9→12 and min_size 3→4", attrs)
			}
			if p := rep.Workspaces[ws("code")].Pending; len(p) != 1 || p[0].Address != "sandbox_load_balancer.web" ||
				fmt.Sprint(p[0].Attributes) != "[{idle_timeout 120 60}]" {
				t.Errorf("code pending = %+v", p)
			}
			b := rep.Workspaces[ws("both")]
			if len(b.Drift) != 1 || b.Drift[0].Address != "sandbox_autoscaling_group.web" || len(b.Pending) != 1 || b.Pending[0].Address != "sandbox_load_balancer.web" {
				t.Errorf("both: drift %+v pending %+v", b.Drift, b.Pending)
			}
			if d := rep.Workspaces[ws("deleted")].Drift; len(d) != 1 || d[0].Action != "create" {
				t.Errorf("deleted drift = %+v", d)
			}
			if n := rep.Workspaces[ws("ignored")].Noise; len(n) != 1 || fmt.Sprint(n[0].Attributes) != "[{desired_capacity 3 5}]" {
				t.Errorf("ignored noise = %+v", n)
			}
			if d := rep.Workspaces[ws("password")].Drift; len(d) != 1 || fmt.Sprint(d[0].Attributes) != "[{password (sensitive) (sensitive)}]" {
				t.Errorf("password drift = %+v", d)
			}
			if e := rep.Workspaces[ws("brokentf")].Error; e == nil || !strings.Contains(*e, "main.tf line 7") {
				t.Errorf("broken .tf error does not name main.tf line 7: %v", deref(e))
			}
			if e := rep.Workspaces[ws("brokenhcl")].Error; e == nil || !strings.Contains(*e, "stacks/brokenhcl/stack.hcl:2,14: Invalid schedule") {
				t.Errorf("broken stack.hcl error does not name the file and line: %v", deref(e))
			}
			for _, secret := range []string{dbPassword, consolePassword} {
				if strings.Contains(stdout, secret) || strings.Contains(stderr, secret) {
					t.Errorf("the password %q leaked into trueline's output", secret)
				}
			}

			// The text report says the same, for people.
			text, _, code := e.check(t, "--stack", "stacks/console", "--stack", "stacks/password")
			if code != 2 {
				t.Errorf("drift only: exit %d, want 2", code)
			}
			for _, want := range []string{"stacks/console/default", "drifted", "max_size: git 9, live 12", "password: git \"(sensitive)\""} {
				if !strings.Contains(text, want) {
					t.Errorf("text report lacks %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, consolePassword) || strings.Contains(text, "\x1b[") {
				t.Errorf("text report leaks the password or colours a pipe:\n%s", text)
			}
			if _, _, code := e.check(t, "--stack", "stacks/insync", "--stack", "stacks/ignored"); code != 0 {
				t.Errorf("in sync only: exit %d, want 0", code)
			}
		})
	}
}

func TestCheckUsageErrors(t *testing.T) {
	e := env{repo: t.TempDir(), workDir: t.TempDir(), bin: runner.Binary{Name: "tofu", Path: "/nonexistent"}}
	_, stderr, code := e.check(t)
	if code != 1 || !strings.Contains(stderr, "no stacks found") {
		t.Errorf("empty repo: exit %d, stderr %q", code, stderr)
	}
	testenv.WriteFiles(t, e.repo, map[string]string{"a/stack.hcl": "stack {}\n"})
	_, stderr, code = e.check(t, "--format", "yaml")
	if code != 1 || !strings.Contains(stderr, `--format "yaml"`) {
		t.Errorf("bad format: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = e.check(t, "--stack", "nothing/*")
	if code != 1 || !strings.Contains(stderr, "no workspace matches") {
		t.Errorf("no match: exit %d, stderr %q", code, stderr)
	}
	stdout, _, code := e.check(t, "--format", "json")
	if code != 1 || !strings.Contains(stdout, "/nonexistent") {
		t.Errorf("missing binary: exit %d, stdout %q", code, stdout)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// A refresh-only stack finds the console change and not the pending code:
// the JSON report says its mode, the text says the code was not compared,
// and one whose only change is in the code is in sync (exit 0). A full
// stack's outcome says mode full.
func TestCheckRefreshOnly(t *testing.T) {
	bin := testenv.Binary(t, "tofu")
	e := env{repo: t.TempDir(), cloud: t.TempDir(), bin: bin, workDir: t.TempDir()}
	t.Setenv(sandbox.RootEnv, e.cloud)
	cloud := sandbox.Store{Root: e.cloud}
	files := map[string]string{
		"stacks/cheap/stack.hcl":   "stack {\n  mode = \"refresh-only\"\n}\n",
		"stacks/cheap/main.tf":     providerBlock + asg("cheap", "") + lb("cheap", 60),
		"stacks/quiet/stack.hcl":   "stack {\n  mode = \"refresh-only\"\n}\n",
		"stacks/quiet/main.tf":     providerBlock + lb("quiet", 60),
		"stacks/full/stack.hcl":    "stack {}\n",
		"stacks/full/main.tf":      providerBlock + lb("full", 60),
		"stacks/badmode/stack.hcl": "stack {\n  mode = \"fast\"\n}\n",
	}
	testenv.WriteFiles(t, e.repo, files)
	r := testenv.Runner(t, bin)
	for _, stack := range []string{"cheap", "quiet", "full"} {
		dir := filepath.Join(e.repo, "stacks", stack)
		p, err := r.Plan(context.Background(), runner.Job{Key: dir, Dir: dir})
		if err != nil {
			t.Fatalf("plan %s: %v\n%s", dir, err, p.Log)
		}
		if _, err := r.Apply(context.Background(), p); err != nil {
			t.Fatalf("apply %s: %v", dir, err)
		}
		p.Discard()
	}
	if err := cloud.Update("sandbox_autoscaling_group", "cheap", func(o map[string]any) { o["min_size"], o["max_size"] = 4, 12 }); err != nil {
		t.Fatal(err)
	}
	testenv.WriteFiles(t, e.repo, map[string]string{
		"stacks/cheap/main.tf": providerBlock + asg("cheap", "") + lb("cheap", 120),
		"stacks/quiet/main.tf": providerBlock + lb("quiet", 120),
		"stacks/full/main.tf":  providerBlock + lb("full", 120),
	})

	stdout, stderr, code := e.check(t, "--format", "json")
	if code != 1 {
		t.Errorf("exit code = %d, want 1 (the bad mode)\n%s", code, stderr)
	}
	var rep struct {
		Workspaces []struct {
			Stack   string    `json:"stack"`
			Verdict string    `json:"verdict"`
			Mode    string    `json:"mode"`
			Drift   []finding `json:"drift"`
			Pending []finding `json:"pending"`
			Error   *string   `json:"error"`
		} `json:"workspaces"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("output is not the JSON report: %v\n%s", err, stdout)
	}
	got := map[string]string{}
	for _, w := range rep.Workspaces {
		got[w.Stack] = fmt.Sprintf("%s %s drift %d pending %d", w.Verdict, w.Mode, len(w.Drift), len(w.Pending))
		if w.Stack == "stacks/badmode" && (w.Error == nil || !strings.Contains(*w.Error, `stacks/badmode/stack.hcl:2,10: Invalid mode: mode = "fast"`)) {
			t.Errorf("a bad mode's error does not name the file and line: %v", deref(w.Error))
		}
	}
	for stack, want := range map[string]string{
		"stacks/cheap":   "drifted refresh-only drift 1 pending 0",
		"stacks/quiet":   "in_sync refresh-only drift 0 pending 0",
		"stacks/full":    "pending full drift 0 pending 1",
		"stacks/badmode": "error  drift 0 pending 0",
	} {
		if got[stack] != want {
			t.Errorf("%s: %q, want %q", stack, got[stack], want)
		}
	}

	text, progress, code := e.check(t, "--stack", "stacks/cheap", "--stack", "stacks/quiet")
	if code != 2 {
		t.Errorf("refresh-only drift: exit %d, want 2", code)
	}
	for _, want := range []string{"pending -  noise 0", "(refresh-only: the code was not compared)", "drifted (refresh-only: the code was not compared)",
		"min_size: git 3, live 4"} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(progress, "stacks/cheap/default: drifted, refresh-only") {
		t.Errorf("progress lacks the mode:\n%s", progress)
	}
	if _, _, code := e.check(t, "--stack", "stacks/quiet"); code != 0 {
		t.Errorf("refresh-only with pending code only: exit %d, want 0 (no drift)", code)
	}
}

// Relative --work-dir and --plugin-cache are relative to where check runs,
// not to each stack's directory, where terraform runs.
func TestCheckRelativeWorkDir(t *testing.T) {
	e := setup(t, testenv.Binary(t, "tofu"))
	cwd := t.TempDir()
	cmd := exec.Command(trueline, "check", "--repo", e.repo, "--binary", e.bin.Name, "--binary-path", e.bin.Path,
		"--cli-config", testenv.CLIConfig(t), "--work-dir", "work", "--plugin-cache", "cache", "--format", "json")
	cmd.Dir = cwd
	out, _ := cmd.Output() // some scenarios fail on purpose: exit 1
	var rep struct {
		Workspaces []struct {
			Stack string  `json:"stack"`
			Error *string `json:"error"`
			Stage string  `json:"stage"`
		} `json:"workspaces"`
	}
	if err := json.Unmarshal(out, &rep); err != nil || len(rep.Workspaces) == 0 {
		t.Fatalf("check's JSON: %v\n%s", err, out)
	}
	for _, w := range rep.Workspaces {
		// Only the broken scenarios fail, and not for want of a directory.
		if w.Error != nil && (!strings.HasPrefix(w.Stack, "stacks/broken") || strings.Contains(*w.Error, "no such file or directory")) {
			t.Errorf("%s failed at %s with relative directories: %s", w.Stack, w.Stage, *w.Error)
		}
	}
	if _, err := os.Stat(filepath.Join(cwd, "work")); err != nil {
		t.Errorf("the work dir is not under the current directory: %v", err)
	}
}
