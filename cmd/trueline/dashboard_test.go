package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/trueline/trueline/sandbox"
)

// artifacts is where screenshots go: $TRUELINE_ARTIFACTS, or a temp dir.
func artifacts(t *testing.T) string {
	if dir := os.Getenv("TRUELINE_ARTIFACTS"); dir != "" {
		os.MkdirAll(dir, 0o755)
		return dir
	}
	return t.TempDir()
}

// TestDashboardInChromium drives the dashboard of a server with real runs
// in headless Chromium.
func TestDashboardInChromium(t *testing.T) {
	browser := "/usr/bin/chromium"
	if _, err := os.Stat(browser); err != nil {
		t.Fatal("chromium is missing: install Debian's chromium (make tools does, as root)")
	}
	r := newDaemonRepo(t)
	r.git.Commit("stack", merge(map[string]string{".gitignore": ".terraform.lock.hcl\n"},
		r.stack("web", "\nresource \"sandbox_autoscaling_group\" \"web\" {\n  name     = \"dash\"\n  min_size = 3\n  max_size = 9\n}\n", "stack {\n  schedule = \"0 2 * * *\"\n}\n")))
	r.apply(t, "web")
	p := startServe(t, t.TempDir(), []string{sandbox.RootEnv + "=" + r.cloud.Root, "TRUELINE_API_TOKEN=dash-token"}, "--repo", r.git.Serve(), "--poll", "1h")
	waitFor(t, 60*time.Second, "the first run", func() bool { return countStatus(p.runs(t), "finished") >= 1 })
	r.cloud.Update("sandbox_autoscaling_group", "dash", func(o map[string]any) { o["min_size"], o["max_size"] = 4, 12 })
	// Queue the drift-finding run through the API, as an operator's script would.
	apiTrigger(t, p.url, "stacks/web", "dash-token")
	waitFor(t, 60*time.Second, "the drifted run", func() bool {
		runs := p.runs(t)
		return len(runs) == 2 && runs[0].Verdict == "drifted"
	})

	out := artifacts(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	shot := func(name string) chromedp.ActionFunc {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var buf []byte
			if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(out, name), buf, 0o644)
		})
	}
	text := func(sel string, into *string) chromedp.QueryAction { return chromedp.Text(sel, into, chromedp.ByQuery) }

	// The stacks page lists the drifted workspace.
	var stacksPage string
	if err := chromedp.Run(ctx, chromedp.Navigate(p.url+"/"), text("main", &stacksPage), shot("dashboard-stacks.png")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stacksPage, "stacks/web") || !strings.Contains(stacksPage, "drifted") {
		t.Errorf("stacks page:\n%s", stacksPage)
	}
	// The workspace page shows the attribute diff.
	var wsPage string
	if err := chromedp.Run(ctx, chromedp.Click(`a[href^="/workspace"]`, chromedp.ByQuery), chromedp.WaitVisible("h1", chromedp.ByQuery),
		text("main", &wsPage), shot("dashboard-workspace.png")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Current drift", "sandbox_autoscaling_group.web", "min_size", "max_size", "12", "web.tfstate.trueline/latest.json"} {
		if !strings.Contains(wsPage, want) {
			t.Errorf("workspace page lacks %q:\n%s", want, wsPage)
		}
	}
	// Plan now without signing in is refused.
	var refused string
	if err := chromedp.Run(ctx, chromedp.Click(`form[action="/workspace/plan"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery), text(".flash", &refused), shot("dashboard-refused.png")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(refused, "Sign in") || len(p.runs(t)) != 2 {
		t.Errorf("plan without a token: %q, %d runs", refused, len(p.runs(t)))
	}
	// Signed in with the token, it queues a run.
	var flash string
	wsURL := ""
	if err := chromedp.Run(ctx,
		chromedp.Navigate(p.url+"/login"), chromedp.SendKeys(`input[name="token"]`, "dash-token", chromedp.ByQuery),
		chromedp.Submit(`input[name="token"]`, chromedp.ByQuery), chromedp.WaitVisible(`a[href^="/workspace"]`, chromedp.ByQuery),
		chromedp.AttributeValue(`a[href^="/workspace"]`, "href", &wsURL, nil, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(ctx, chromedp.Navigate(p.url+wsURL),
		chromedp.Click(`form[action="/workspace/plan"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery), text(".flash", &flash), shot("dashboard-queued.png")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flash, "queued") {
		t.Errorf("after plan now: %q", flash)
	}
	waitFor(t, 30*time.Second, "the run the button queued", func() bool {
		runs := p.runs(t)
		return len(runs) == 3 && runs[0].Trigger == "manual"
	})
	t.Logf("screenshots in %s", out)
}
