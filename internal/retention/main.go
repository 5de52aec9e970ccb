// Command retention measures what the retention settings save: it writes
// the same runs (ledger rows with their logs and findings, and the records
// beside local state) twice, once with retention off and once with the
// defaults (90 days, 500 runs per workspace), on a simulated clock, and
// prints the disk each uses.
//
// Usage: go run ./internal/retention [-runs 10000] [-workspaces 20] [-days 200]
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/state"
)

func main() {
	runs := flag.Int("runs", 10000, "runs in all")
	workspaces := flag.Int("workspaces", 20, "workspaces they are spread over")
	days := flag.Int("days", 200, "days the runs span")
	flag.Parse()
	def := config.Defaults().Retention
	fmt.Printf("retention: %d runs over %d workspaces and %d days; retention on = max_age %s, runs_per_workspace %d\n\n",
		*runs, *workspaces, *days, def.MaxAge, def.RunsPerWorkspace)
	fmt.Printf("| retention | ledger | records beside the state | record files | runs left in the ledger |\n| --- | --- | --- | --- | --- |\n")
	for _, ret := range []config.Retention{{}, def} {
		if err := measure(*runs, *workspaces, *days, ret); err != nil {
			log.Fatal(err)
		}
	}
}

func measure(runs, workspaces, days int, ret config.Retention) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "trueline-retention-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }() // a leftover temporary directory changes no figure
	led, err := ledger.OpenSQLite(ctx, filepath.Join(dir, "trueline.db"))
	if err != nil {
		return err
	}
	defer func() { _ = led.Close() }() // measured already; thrown away with its directory
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	led.SetClock(func() time.Time { return now })
	step := time.Duration(days) * 24 * time.Hour / time.Duration(runs)
	// A plan's text of a typical size, and findings of a drifted run.
	planLog := strings.Repeat("  # sandbox_autoscaling_group.web will be updated in-place\n      ~ min_size = 3 -> 4\n", 50)
	findings := drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{{Address: "sandbox_autoscaling_group.web",
		Action: "update", Attributes: []drift.Attribute{{Path: "min_size", Git: 3, Live: 4}}}}}
	lastPrune := now
	for i := range runs {
		ws := fmt.Sprintf("ws%02d", i%workspaces)
		req := ledger.Request{Workspace: run.Workspace{Repository: "infra", Stack: "stacks/web", Name: ws}, Trigger: "schedule"}
		run, _, err := led.Enqueue(ctx, req)
		if err != nil {
			return err
		}
		if _, err := led.Claim(ctx, ledger.Limits{}); err != nil {
			return err
		}
		verdict, f := drift.InSync, drift.InSyncResult()
		if i%5 == 0 {
			verdict, f = drift.Drifted, findings
		}
		if _, err := led.Finish(ctx, run.ID, ledger.Result{Verdict: verdict, Findings: f, Log: planLog, DurationMS: 1200}); err != nil {
			return err
		}
		w, err := state.WriterFor(ctx, state.Backend{Type: "local", Config: map[string]any{"path": filepath.Join(dir, "state", ws+".tfstate")}}, dir, "default")
		if err != nil {
			return err
		}
		rec := state.Record{Schema: state.SchemaID, Version: 1, RunID: run.ID, Repository: "infra", Stack: "stacks/web", Workspace: ws,
			Verdict: verdict, FinishedAt: now}
		if err := w.Write(ctx, rec); err != nil {
			return err
		}
		var before time.Time
		if ret.MaxAge > 0 {
			before = now.Add(-ret.MaxAge)
		}
		if ret.MaxAge > 0 || ret.RunsPerWorkspace > 0 {
			if _, err := w.(state.Pruner).Prune(ctx, before, ret.RunsPerWorkspace); err != nil {
				return err
			}
			// serve prunes the ledger every hour.
			if now.Sub(lastPrune) >= time.Hour {
				if _, err := led.Prune(ctx, before, ret.RunsPerWorkspace); err != nil {
					return err
				}
				lastPrune = now
			}
		}
		now = now.Add(step)
	}
	left, err := led.List(ctx, ledger.Filter{Limit: 1000})
	if err != nil {
		return err
	}
	count := len(left)
	if count == 1000 {
		count = -1 // more than a page
	}
	dbBytes := size(filepath.Join(dir, "trueline.db*"))
	recBytes, recFiles := tree(filepath.Join(dir, "state"))
	name := "off"
	if ret.MaxAge > 0 {
		name = "on"
	}
	leftText := fmt.Sprint(count)
	if count < 0 {
		leftText = "1000+"
	}
	fmt.Printf("| %s | %.1f MiB | %.1f MiB | %d | %s |\n", name, mib(dbBytes), mib(recBytes), recFiles, leftText)
	return nil
}

func size(glob string) int64 {
	files, _ := filepath.Glob(glob)
	var n int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}

// tree adds up the files under dir as the file system holds them (whole
// blocks: many small records cost more than their bytes).
func tree(dir string) (bytes int64, files int) {
	// The walk function skips what it cannot read and never fails.
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if st, err := os.Stat(p); err == nil {
				bytes += (st.Size() + 4095) / 4096 * 4096
				files++
			}
		}
		return nil
	})
	return bytes, files
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
