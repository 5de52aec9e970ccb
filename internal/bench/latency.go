package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/trueline/trueline/limiter"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/sandbox"
	"github.com/trueline/trueline/stacks"
)

// latencyBench measures trueline where the cloud, not the CPU, sets the
// pace: stacks of sandbox load balancers whose every API call takes
// latency, in two cases on the same stacks:
//
//	latency only   no rate limit: trueline check (its limit adapting up to
//	               ceiling runs) against the plain init && plan loop and
//	               against xargs -P <CPUs> plans
//	throttled      the account allows limit requests a second: trueline
//	               with a budget under it, against xargs -P 16 plans
//
// Each row prints its wall time, the peak resident memory of its process
// tree and its CPU time.
type latencyCase struct {
	stacks, resources int
	latency           time.Duration
	ceiling           int     // trueline's limits { global }
	limit, budget     float64 // the account's requests a second, and trueline's budget
	xargs             int     // -P of the throttled xargs
}

const benchAccount = "bench"

func (b *bench) latencyBench(smoke bool, n int) bool {
	c := latencyCase{stacks: 200, resources: 20, latency: 300 * time.Millisecond, ceiling: 32, limit: 100, budget: 80, xargs: 16}
	if smoke {
		c = latencyCase{stacks: 6, resources: 3, latency: 50 * time.Millisecond, ceiling: 32, limit: 20, budget: 16, xargs: 6}
	}
	if n > 0 {
		c.stacks = n
	}
	cpus := runtime.NumCPU()
	fmt.Printf("\nthe sandbox cloud: %d stacks of %d resources, %v per API call, %d CPUs\n", c.stacks, c.resources, c.latency, cpus)
	tmp, err := os.MkdirTemp("", "trueline-bench-latency-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(tmp) }() // a leftover temporary directory changes no figure
	repo, cloud, cache, work := filepath.Join(tmp, "repo"), sandbox.Store{Root: filepath.Join(tmp, "cloud")}, filepath.Join(tmp, "plugin-cache"), filepath.Join(tmp, "work")
	must(os.MkdirAll(cache, 0o755))
	dirs := generateCloud(repo, c.stacks, c.resources)
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+b.cliConfig, "TF_PLUGIN_CACHE_DIR="+cache, "TF_IN_AUTOMATION=1",
		sandbox.RootEnv+"="+cloud.Root)
	with := func(kv ...string) []string { return append(env[:len(env):len(env)], kv...) }
	latency := sandbox.ReadLatencyEnv + "=" + c.latency.String()
	limit := sandbox.RequestsPerSecondEnv + "=" + strconv.FormatFloat(c.limit, 'f', -1, 64)

	// Setup, not measured, without latency: the first init fills the
	// plugin cache; with its lock file in every stack the others init in
	// parallel; every stack is applied in place; trueline's working
	// directories are made by a first check.
	b.must(dirs[0], env, "init", "-input=false")
	lock, err := os.ReadFile(filepath.Join(dirs[0], ".terraform.lock.hcl"))
	must(err)
	for _, dir := range dirs[1:] {
		must(os.WriteFile(filepath.Join(dir, ".terraform.lock.hcl"), lock, 0o644))
	}
	parallel(dirs[1:], cpus, func(dir string) { b.must(dir, env, "init", "-input=false") })
	parallel(dirs, cpus, func(dir string) { b.must(dir, env, "apply", "-input=false", "-auto-approve", "-parallelism=20") })
	check := func(env []string) {
		cmd := exec.Command(b.trueline, "check", "--repo", repo, "--format", "json", "-q", "--binary", b.bin.Name, "--binary-path", b.bin.Path,
			"--cli-config", b.cliConfig, "--work-dir", work, "--plugin-cache", cache, "--parallel", strconv.Itoa(c.ceiling))
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			log.Fatalf("trueline check: %v\n%s", err, errb.String())
		}
		var st checkStats
		must(json.Unmarshal(out.Bytes(), &st))
		for _, w := range st.Workspaces {
			if w.Verdict != "in_sync" {
				log.Fatalf("a generated stack is not in sync: %s", w.Verdict)
			}
		}
	}
	check(env)

	fmt.Printf("\n  latency only (no rate limit)\n")
	header := func() { fmt.Printf("  %-58s %8s %9s %9s  %s\n", "how", "wall", "peak RSS", "CPU", "vs trueline") }
	header()
	plain := measure(func() {
		for i, dir := range dirs {
			e := with(latency, "TF_DATA_DIR="+filepath.Join(tmp, "plain", strconv.Itoa(i)))
			b.must(dir, e, "init", "-input=false")
			b.must(dir, e, "plan", "-input=false")
		}
	})
	xargs := measure(func() {
		if failed := b.xargs(dirs, cpus, with(latency)); failed > 0 {
			log.Fatalf("xargs -P %d: %d plans failed", cpus, failed)
		}
	})
	tl := measure(func() { check(with(latency)) })
	fmt.Printf("  %-58s %s\n", "trueline check --parallel "+strconv.Itoa(c.ceiling)+", warm", tl.row(tl))
	fmt.Printf("  %-58s %s\n", "plain loop: init && plan, one after another", plain.row(tl))
	fmt.Printf("  %-58s %s\n", fmt.Sprintf("xargs -P %d plans", cpus), xargs.row(tl))
	speedup := xargs.wall.Seconds() / tl.wall.Seconds()
	// The plans' own CPU on all CPUs is the least any order of them takes.
	cpuFloor := time.Duration(float64(xargs.cpu) / float64(cpus))
	fmt.Printf("  trueline is %.2fx faster than xargs -P %d and %.2fx faster than the plain loop\n", speedup, cpus, plain.wall.Seconds()/tl.wall.Seconds())
	fmt.Printf("  the plans' CPU on %d CPUs takes %.1fs at least (%.2fx faster than xargs at most); trueline took %.2fx that\n",
		cpus, cpuFloor.Seconds(), xargs.wall.Seconds()/cpuFloor.Seconds(), tl.wall.Seconds()/cpuFloor.Seconds())

	fmt.Printf("\n  throttled: the account allows %g requests/s (burst %g); trueline's budget %g/s\n", c.limit, c.limit, c.budget)
	header()
	var pass passResult
	// An account left alone for a second is full again: each row starts so.
	time.Sleep(time.Second)
	must(cloud.ResetStats(benchAccount))
	tb := measure(func() {
		pass = b.pass(passSpec{Repo: repo, WorkDir: work, PluginCache: cache, CLIConfig: b.cliConfig, Binary: b.bin.Path, Ceiling: c.ceiling,
			Budgets: []limiter.Budget{{Account: benchAccount, RequestsPerSecond: c.budget}}}, with(latency, limit))
	})
	tbStats, err := cloud.Stats(benchAccount)
	must(err)
	time.Sleep(time.Second)
	must(cloud.ResetStats(benchAccount))
	var failed int
	xb := measure(func() { failed = b.xargs(dirs, c.xargs, with(latency, limit)) })
	xbStats, err := cloud.Stats(benchAccount)
	must(err)
	ideal := time.Duration(float64(tbStats.Requests) / c.budget * float64(time.Second))
	fmt.Printf("  %-58s %s\n", fmt.Sprintf("trueline, budget %g/s, limit up to %d (reconcile.Check)", c.budget, c.ceiling), tb.row(tb))
	fmt.Printf("  %-58s %s\n", fmt.Sprintf("xargs -P %d plans", c.xargs), xb.row(tb))
	fmt.Printf("  trueline: %d requests, %d throttled (%d in its outcomes), %d runs failed; %.2fx the %.1fs the budget allows; at most %d runs at once\n",
		tbStats.Requests, tbStats.Throttled, pass.Throttled, pass.Failed, tb.wall.Seconds()/ideal.Seconds(), ideal.Seconds(), pass.Peak)
	fmt.Printf("  xargs -P %d: %d requests, %d throttling errors from the account, %d retries, %d plans failed\n",
		c.xargs, xbStats.Requests, xbStats.Throttled, xbStats.Retries, failed)
	if pass.Failed > 0 {
		log.Fatalf("trueline: %d runs failed", pass.Failed)
	}
	if smoke {
		return true
	}
	var result bars
	result.check(speedup >= 4, fmt.Sprintf("latency only: trueline ≥ 4x faster than xargs -P %d", cpus))
	result.check(tbStats.Throttled == 0, "throttled: no request of trueline's throttled")
	result.check(tb.wall <= ideal*5/4, "throttled: trueline within 1.25x of the time the budget allows")
	return !result.failed
}

// generateCloud writes n stacks of r sandbox load balancers in account
// "bench", the account named in stack.hcl too.
func generateCloud(repo string, n, r int) []string {
	var dirs []string
	for i := range n {
		dir := filepath.Join(repo, "stacks", fmt.Sprintf("s%03d", i))
		must(os.MkdirAll(dir, 0o755))
		must(os.WriteFile(filepath.Join(dir, "stack.hcl"), []byte(fmt.Sprintf("stack {\n  account = %q\n}\n", benchAccount)), 0o644))
		must(os.WriteFile(filepath.Join(dir, "main.tf"), []byte(fmt.Sprintf(`terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {
  account = %q
}

resource "sandbox_load_balancer" "lb" {
  count   = %d
  name    = "s%03d-${count.index}"
  subnets = ["a", "b"]
}
`, benchAccount, r, i)), 0o644))
		dirs = append(dirs, dir)
	}
	return dirs
}

// xargs plans every directory with xargs -P p, as a CI job would, and
// returns how many plans failed.
func (b *bench) xargs(dirs []string, p int, env []string) int {
	cmd := exec.Command("xargs", "-P", strconv.Itoa(p), "-n", "1", "sh", "-c",
		`cd "$1" && "$0" plan -input=false >/dev/null 2>&1 || echo failed`, b.bin.Path)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(strings.Join(dirs, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("xargs: %v", err)
	}
	return strings.Count(string(out), "failed")
}

// measured is one row: wall time, the peak resident memory of the process
// tree under the benchmark (the sum of its processes' RSS, sampled every
// 100 ms), and the CPU time of the processes it waited for.
type measured struct {
	wall time.Duration
	peak int64 // bytes
	cpu  time.Duration
}

func (m measured) row(base measured) string {
	return fmt.Sprintf("%7.2fs %6d MB %8.1fs  %.2fx", m.wall.Seconds(), m.peak>>20, m.cpu.Seconds(), m.wall.Seconds()/base.wall.Seconds())
}

func measure(f func()) measured {
	stop := watchTree(os.Getpid(), 100*time.Millisecond)
	before := childCPU()
	start := time.Now()
	f()
	m := measured{wall: time.Since(start)}
	m.cpu = childCPU() - before
	m.peak = stop()
	return m
}

func childCPU() time.Duration {
	var r syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &r); err != nil {
		return 0
	}
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// watchTree samples the summed RSS of root's descendants until stop,
// which returns the peak.
func watchTree(root int, every time.Duration) (stop func() int64) {
	var mu sync.Mutex
	var peak int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			rss := treeRSS(root)
			mu.Lock()
			peak = max(peak, rss)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// treeRSS is the summed resident memory of root's descendants, from
// /proc/<pid>/stat (ppid, the 4th field; rss in pages, the 24th).
func treeRSS(root int) int64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	rss := map[int]int64{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name, in parentheses, may hold spaces: fields count
		// from after its closing one.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 22 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pages, _ := strconv.ParseInt(f[21], 10, 64)
		parent[pid], rss[pid] = ppid, pages*int64(os.Getpagesize())
	}
	var sum int64
	for pid, r := range rss {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == root {
				sum += r
				break
			}
		}
	}
	return sum
}

// passSpec is what the benchmark's child process runs: reconcile.Check of
// a repository's stacks with a limiter of the given ceiling and budgets,
// the pass trueline serve makes, in its own process so that its memory
// and CPU are measured apart from the benchmark's.
type passSpec struct {
	Repo, WorkDir, PluginCache, CLIConfig, Binary string
	Ceiling                                       int
	Budgets                                       []limiter.Budget
}

type passResult struct {
	Failed, Throttled, Requests, Peak int
}

// passFlag names the spec that makes the benchmark a child pass.
const passFlag = "pass"

func (b *bench) pass(spec passSpec, env []string) passResult {
	exe, err := os.Executable()
	must(err)
	raw, err := json.Marshal(spec)
	must(err)
	cmd := exec.Command(exe, "-"+passFlag, string(raw))
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		log.Fatalf("the trueline pass: %v\n%s", err, errb.String())
	}
	var res passResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		log.Fatalf("the trueline pass: %v\n%s", err, out.String())
	}
	return res
}

// runPass is the child process: it checks the repository's stacks as the
// key `trueline check` gives them (so the working directories it made are
// warm) and prints a passResult.
func runPass(raw string) {
	var spec passSpec
	must(json.Unmarshal([]byte(raw), &spec))
	all, err := stacks.Discover(spec.Repo)
	must(err)
	targets, broken := reconcile.Select(all, nil, nil, "")
	if len(broken) > 0 {
		log.Fatalf("broken stacks: %+v", broken)
	}
	lim := limiter.New(limiter.Options{Ceiling: spec.Ceiling, Budgets: spec.Budgets})
	rec := reconcile.New(reconcile.Options{Toolchain: &runner.Toolchain{Default: "tofu", Path: spec.Binary}, WorkDir: spec.WorkDir,
		CLIConfig: spec.CLIConfig, PluginCache: spec.PluginCache, Limiter: lim})
	var res passResult
	for _, o := range rec.Check(context.Background(), "local:"+spec.Repo, targets, nil) {
		if o.Failed() {
			res.Failed++
			fmt.Fprintln(os.Stderr, o.Stack, o.Failure.Message)
		}
		res.Throttled += o.Throttled
		res.Requests += o.Requests
	}
	res.Peak = lim.Peak()
	must(json.NewEncoder(os.Stdout).Encode(res))
}
