// Command bench measures trueline against the floor and the plain CI loop on
// the same generated stacks, in one run, and prints wall times as ratios:
//
//	floor       bare `plan` in each already-initialised stack, as many in parallel as CPUs
//	plain loop  `init && plan` per stack, one after another, each in a fresh data dir
//	trueline    `trueline check`, cold (first run) and warm (second run)
//
// It also counts the terraform processes trueline starts per in-sync
// workspace (through a wrapper that logs every invocation of the real
// binary), the share of time spent in init, and trueline's own CPU.
//
// The sandbox cloud part (latency.go) plans stacks whose API calls take
// time, once without a rate limit and once against an account's limit
// with a budget.
//
// Usage: go run ./internal/bench [-n 20,50] [-binary tofu] [-smoke] [-only check|cloud|checkout|serve]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trueline/trueline/runner"
)

func main() {
	sizes := flag.String("n", "20,50,200", "comma-separated numbers of stacks")
	binName := flag.String("binary", "tofu", "terraform or tofu")
	smoke := flag.Bool("smoke", false, "a quick run with few stacks and no bars (for CI)")
	only := flag.String("only", "", "run only one part: check, cloud, checkout or serve")
	cloudStacks := flag.Int("cloud-stacks", 0, "stacks of the sandbox cloud part (default 200; 6 with -smoke)")
	pass := flag.String(passFlag, "", "internal: run one trueline pass from this JSON spec and print its result")
	daemonStacks := flag.Int("serve-stacks", 200, "stacks in the repository trueline serve watches")
	pushes := flag.Int("pushes", 20, "one-stack pushes to time")
	workspaces := flag.Int("workspaces", 5000, "registered workspaces for the memory figure")
	flag.Parse()
	if *pass != "" {
		runPass(*pass)
		return
	}
	if *smoke {
		*sizes, *daemonStacks, *pushes, *workspaces = "4", 6, 3, 50
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		log.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	tools := filepath.Join(root, ".tools")
	bin, err := runner.Find(context.Background(), runner.FindOptions{Name: *binName, ToolsDir: filepath.Join(tools, "bin")})
	if err != nil {
		log.Fatal(err)
	}
	trueline := filepath.Join(tools, "bin", "trueline")
	if out, err := exec.Command("go", "build", "-o", trueline, "./cmd/trueline").CombinedOutput(); err != nil {
		log.Fatalf("build trueline: %v\n%s", err, out)
	}
	b := &bench{bin: bin, trueline: trueline, cliConfig: filepath.Join(tools, "terraformrc"),
		pluginCache: filepath.Join(tools, "plugin-cache")}
	fmt.Printf("trueline bench: %s, %d CPUs\n", bin, runtime.NumCPU())
	ok := true
	if *only == "" || *only == "check" {
		for _, s := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				log.Fatalf("-n: bad size %q", s)
			}
			if !b.run(n, *smoke) {
				ok = false
			}
		}
	}
	if *only == "" || *only == "cloud" {
		if !b.latencyBench(*smoke, *cloudStacks) {
			ok = false
		}
	}
	if *only == "" || *only == "checkout" {
		checkoutBench(200)
	}
	if *only == "" || *only == "serve" {
		if !b.daemonBench(*daemonStacks, *pushes, *workspaces, *smoke) {
			ok = false
		}
	}
	if !ok {
		os.Exit(1)
	}
}

type bench struct {
	bin                              runner.Binary
	trueline, cliConfig, pluginCache string
}

type checkStats struct {
	Workspaces []struct {
		Verdict string `json:"verdict"`
		Init    bool   `json:"init"`
		Timing  struct {
			InitMS int64 `json:"init_ms"`
			PlanMS int64 `json:"plan_ms"`
			ShowMS int64 `json:"show_ms"`
		} `json:"timing"`
	} `json:"workspaces"`
	Stats struct {
		CPUSelfMS     int64 `json:"cpu_self_ms"`
		CPUChildrenMS int64 `json:"cpu_children_ms"`
	} `json:"stats"`
}

func (b *bench) run(n int, smoke bool) bool {
	tmp, err := os.MkdirTemp("", "trueline-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(tmp) }() // a leftover temporary directory changes no figure
	repo := filepath.Join(tmp, "repo")
	dirs := generate(repo, n)

	// The wrapper counts every terraform process trueline starts.
	count := filepath.Join(tmp, "processes")
	wrapper := filepath.Join(tmp, b.bin.Name)
	must(os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\necho \"$1\" >> %q\nexec %q \"$@\"\n", count, b.bin.Path)), 0o755))

	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+b.cliConfig, "TF_PLUGIN_CACHE_DIR="+b.pluginCache, "TF_IN_AUTOMATION=1")
	cpus := runtime.NumCPU()

	// Setup, not measured: init (one at a time: concurrent inits sharing a
	// plugin cache are not safe) and apply every stack in place.
	for _, dir := range dirs {
		b.must(dir, env, "init", "-input=false")
	}
	parallel(dirs, cpus, func(dir string) { b.must(dir, env, "apply", "-input=false", "-auto-approve") })

	floor := timed(func() {
		parallel(dirs, cpus, func(dir string) { b.must(dir, env, "plan", "-input=false") })
	})
	plain := timed(func() {
		for i, dir := range dirs {
			e := append(env[:len(env):len(env)], "TF_DATA_DIR="+filepath.Join(tmp, "plain", strconv.Itoa(i)))
			b.must(dir, e, "init", "-input=false")
			b.must(dir, e, "plan", "-input=false")
		}
	})
	work := filepath.Join(tmp, "work")
	check := func() (time.Duration, checkStats, int) {
		// A count left from the last check would add its processes to this one.
		if err := os.Remove(count); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Fatal(err)
		}
		var st checkStats
		d := timed(func() {
			cmd := exec.Command(b.trueline, "check", "--repo", repo, "--format", "json", "-q",
				"--binary", b.bin.Name, "--binary-path", wrapper, "--cli-config", b.cliConfig,
				"--work-dir", work, "--plugin-cache", b.pluginCache, "--parallel", strconv.Itoa(cpus))
			cmd.Env = env
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				log.Fatalf("trueline check: %v\n%s", err, errb.String())
			}
			if err := json.Unmarshal(out.Bytes(), &st); err != nil {
				log.Fatal(err)
			}
		})
		raw, _ := os.ReadFile(count)
		return d, st, strings.Count(string(raw), "\n")
	}
	cold, coldStats, _ := check()
	warm, warmStats, warmProcs := check()

	share := func(st checkStats) (initShare, selfShare float64) {
		var initMS, total int64
		for _, w := range st.Workspaces {
			initMS += w.Timing.InitMS
			total += w.Timing.InitMS + w.Timing.PlanMS + w.Timing.ShowMS
		}
		if total > 0 {
			initShare = float64(initMS) / float64(total)
		}
		cpu := st.Stats.CPUSelfMS + st.Stats.CPUChildrenMS
		if cpu > 0 {
			selfShare = float64(st.Stats.CPUSelfMS) / float64(cpu)
		}
		return
	}
	coldInit, coldSelf := share(coldStats)
	warmInit, warmSelf := share(warmStats)
	for _, w := range warmStats.Workspaces {
		if w.Verdict != "in_sync" {
			log.Fatalf("a generated stack is not in sync: %s", w.Verdict)
		}
	}

	ratio := func(d time.Duration) string { return fmt.Sprintf("%.2fx", d.Seconds()/floor.Seconds()) }
	fmt.Printf("\nN=%d stacks\n", n)
	fmt.Printf("  %-46s %8s  %s\n", "how", "wall", "vs floor")
	row := func(name string, d time.Duration) { fmt.Printf("  %-46s %7.2fs  %s\n", name, d.Seconds(), ratio(d)) }
	row(fmt.Sprintf("floor: bare plan, %d in parallel", cpus), floor)
	row("plain loop: init && plan, one after another", plain)
	row("trueline check, cold (first run)", cold)
	row("trueline check, warm (second run)", warm)
	speedup := plain.Seconds() / warm.Seconds()
	perWS := float64(warmProcs) / float64(n)
	fmt.Printf("  trueline warm is %.2fx faster than the plain loop\n", speedup)
	fmt.Printf("  terraform processes per in-sync workspace, warm: %.2f\n", perWS)
	fmt.Printf("  share of terraform time in init: cold %.1f%%, warm %.1f%%\n", coldInit*100, warmInit*100)
	fmt.Printf("  trueline's own CPU share of all CPU: cold %.2f%%, warm %.2f%%\n", coldSelf*100, warmSelf*100)
	if smoke {
		return true
	}
	var result bars
	bar := result.check
	bar(warm.Seconds() <= 1.10*floor.Seconds(), "trueline warm ≤ 1.10x the floor")
	bar(speedup >= 1.6, "trueline warm ≥ 1.6x faster than the plain loop")
	bar(perWS <= 1.0, "one terraform process per in-sync workspace")
	bar(warmInit < 0.10, "warm run spends under 10% of its time in init")
	bar(warmSelf < 0.02, "trueline's own CPU under 2%")
	return !result.failed
}

// generate writes n in-sync-able stacks of time_static + terraform_data.
func generate(repo string, n int) []string {
	var dirs []string
	for i := 0; i < n; i++ {
		dir := filepath.Join(repo, "stacks", fmt.Sprintf("s%03d", i))
		must(os.MkdirAll(dir, 0o755))
		must(os.WriteFile(filepath.Join(dir, "stack.hcl"), []byte("stack {}\n"), 0o644))
		must(os.WriteFile(filepath.Join(dir, "main.tf"), []byte(fmt.Sprintf(`terraform {
  required_providers {
    time = { source = "hashicorp/time" }
  }
}

resource "time_static" "t" {}

resource "terraform_data" "d" {
  input = "s%03d"
}
`, i)), 0o644))
		dirs = append(dirs, dir)
	}
	return dirs
}

func (b *bench) must(dir string, env []string, args ...string) {
	cmd := exec.Command(b.bin.Path, args...)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("%s %s in %s: %v\n%s", b.bin.Name, args[0], dir, err, out)
	}
}

func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

func parallel(items []string, n int, f func(string)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, n)
	for _, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(it)
		}()
	}
	wg.Wait()
}

// bars prints each bar of a benchmark as ok or FAIL and remembers a failure.
type bars struct{ failed bool }

func (b *bars) check(pass bool, what string) {
	mark := "ok  "
	if !pass {
		mark, b.failed = "FAIL", true
	}
	fmt.Printf("  [%s] %s\n", mark, what)
}
