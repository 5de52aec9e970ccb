package report

import (
	"context"
	"flag"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/run"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fixture fills a ledger with a morning's worth of runs at fixed times.
func fixture(t *testing.T) (ledger.Ledger, time.Time) {
	t.Helper()
	ctx := context.Background()
	l, err := ledger.OpenSQLite(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	clock := time.Date(2026, 11, 22, 20, 0, 0, 0, time.UTC)
	l.SetClock(func() time.Time { return clock })
	l.SetWorkspaces(ctx, "infra", []ledger.Workspace{
		{Workspace: run.Workspace{Stack: "stacks/web", Name: "default"}, Schedule: "0 2 * * *", Timezone: "UTC"},
		{Workspace: run.Workspace{Stack: "stacks/api", Name: "default"}, Schedule: "@every 1h", Timezone: "UTC"},
		{Workspace: run.Workspace{Stack: "stacks/db", Name: "default"}, Timezone: "UTC"},
		{Workspace: run.Workspace{Stack: "stacks/net", Name: "prod"}, Schedule: "0 2 * * *", Timezone: "Europe/Berlin"},
	})
	do := func(at time.Time, stack string, verdict drift.Verdict, action run.Action, errMsg string, res drift.Result) {
		clock = at
		r, _, err := l.Enqueue(ctx, ledger.Request{Workspace: run.Workspace{Repository: "infra", Stack: stack, Name: "default"}, Trigger: "schedule", Commit: strings.Repeat("c", 40)})
		if err != nil {
			t.Fatal(err)
		}
		l.Claim(ctx, ledger.Limits{})
		clock = at.Add(30 * time.Second)
		var failure *run.Failure
		if errMsg != "" {
			failure = &run.Failure{Stage: run.Plan, Message: errMsg}
		}
		if _, err := l.Finish(ctx, r.ID, ledger.Result{Verdict: verdict, Findings: res, Action: action, Failure: failure}); err != nil {
			t.Fatal(err)
		}
	}
	asg := drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{{Address: "sandbox_autoscaling_group.web", Action: "update",
		Attributes: []drift.Attribute{{Path: "min_size", Git: 3.0, Live: 4.0}, {Path: "max_size", Git: 9.0, Live: 12.0}}}}}
	lb := drift.Result{Verdict: drift.Pending, Pending: []drift.Finding{{Address: "sandbox_load_balancer.api", Action: "update",
		Attributes: []drift.Attribute{{Path: "idle_timeout", Git: 120.0, Live: 60.0}}}}}
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	do(day.Add(1*time.Hour), "stacks/api", "drifted", run.Action{Kind: "apply", Result: "converged", Reason: "drift: on_drift = apply (policy guarded), within guardrails"}, "", asg)
	do(day.Add(2*time.Hour), "stacks/web", "drifted", run.Action{Kind: "pull_request", Reason: "drift: on_drift = pull_request (policy review)"}, "", asg)
	do(day.Add(5*time.Hour), "stacks/web", "drifted", run.Action{Kind: "pull_request", Reason: "drift: on_drift = pull_request (policy review)"}, "", asg)
	do(day.Add(6*time.Hour), "stacks/api", "pending", run.Action{Kind: "report", Reason: "pending code: on_pending = report (policy guarded)"}, "", lb)
	do(day.Add(6*time.Hour+time.Minute), "stacks/db", "error", run.Action{Reason: ""}, "stacks/db (workspace default): plan: Error: Invalid expression\n\n  on main.tf line 7", drift.Result{})
	l.SetPullRequest(ctx, "infra/stacks/web/default", 12, "https://git.example/acme/infra/pulls/12")
	return l, day.Add(7 * time.Hour)
}

func TestMarkdownGolden(t *testing.T) {
	l, now := fixture(t)
	rep, err := Build(context.Background(), l, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	md, err := rep.Markdown()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.golden.md")
	if *update {
		os.WriteFile(golden, []byte(md), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if md != string(want) {
		t.Errorf("the Markdown report differs from %s (go test ./report -update rewrites it):\n%s", golden, md)
	}
	if rep.Summary() != "4 workspaces: 1 drifted, 1 pending, 1 errors, 1 auto-applied in 24h, 1 open pull requests, 1 overdue" {
		t.Errorf("summary = %s", rep.Summary())
	}
}

// TestHTMLInChromium renders the HTML report in headless Chromium and
// checks the screenshot it takes.
func TestHTMLInChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is missing: install Debian's chromium (apt-get install chromium); .ci/run does")
	}
	l, now := fixture(t)
	rep, _ := Build(context.Background(), l, now, 24*time.Hour)
	html, err := rep.HTML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html, "<style>") || strings.Contains(html, "<script") || strings.Contains(html, "http-equiv") {
		t.Error("the HTML report must be one self-contained file without scripts")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	os.WriteFile(page, []byte(html), 0o644)
	shot := filepath.Join(dir, "report.png")
	cmd := exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1200,1600", "--screenshot="+shot, "file://"+page)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 1600 {
		t.Errorf("screenshot is %dx%d, want 1200x1600", b.Dx(), b.Dy())
	}
	// Not a blank page: count the pixels that are not the background.
	ink := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			if r, g, bl, _ := img.At(x, y).RGBA(); r < 0xe000 || g < 0xe000 || bl < 0xe000 {
				ink++
			}
		}
	}
	if ink < 500 {
		t.Errorf("the screenshot looks blank (%d inked samples)", ink)
	}
	if art := os.Getenv("TRUELINE_ARTIFACTS"); art != "" {
		os.MkdirAll(art, 0o755)
		data, _ := os.ReadFile(shot)
		os.WriteFile(filepath.Join(art, "report.png"), data, 0o644)
	}
}
