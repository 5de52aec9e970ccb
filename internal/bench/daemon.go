package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/trueline/trueline/internal/gittest"
)

// daemonBench measures `trueline serve`: webhook-to-plan-start latency over
// pushes that each touch one stack, how many stacks each push planned, and
// the daemon's resident memory with many registered workspaces.
func (b *bench) daemonBench(stacks, pushes, workspaces int, smoke bool) bool {
	tmp, err := os.MkdirTemp("", "trueline-bench-daemon-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(tmp) }() // a leftover temporary directory changes no figure
	fmt.Printf("\ntrueline serve: %d stacks, %d pushes of one stack each\n", stacks, pushes)

	repo := filepath.Join(tmp, "repos", "infra")
	files := map[string]string{}
	for i := 0; i < stacks; i++ {
		dir := fmt.Sprintf("stacks/s%03d", i)
		files[dir+"/stack.hcl"] = "stack {}\n"
		files[dir+"/main.tf"] = fmt.Sprintf("resource \"terraform_data\" \"d\" {\n  input = \"s%03d\"\n}\n", i)
	}
	gitInit(repo, files)
	url := serveGit(filepath.Dir(repo))

	const secret = "bench-secret"
	srv := b.startServe(tmp, "infra", []string{"--repo", url + "/infra", "--forge", "github", "--webhook-secret-env", "BENCH_HOOK_SECRET",
		"--poll", "1h", "--parallel", "2"}, "BENCH_HOOK_SECRET="+secret)
	defer srv.stop()
	// The first look plans every stack; wait for that to settle.
	srv.waitRuns(func(runs []benchRun) bool { return countFinished(runs) >= stacks }, 10*time.Minute)

	var latencies []time.Duration
	planned := map[int]int{}
	for i := 0; i < pushes; i++ {
		stack := fmt.Sprintf("stacks/s%03d", (i*7)%stacks)
		commit := gitCommit(repo, map[string]string{stack + "/main.tf": fmt.Sprintf("resource \"terraform_data\" \"d\" {\n  input = %q\n}\n", fmt.Sprint(stack, i))})
		body := fmt.Sprintf(`{"ref":"refs/heads/main","after":%q}`, commit)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		req, _ := http.NewRequest("POST", srv.url+"/hooks/github/infra", strings.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		sent := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			log.Fatalf("webhook: %v %v", err, resp)
		}
		_ = resp.Body.Close() // the status is the answer; the body is not read
		var mine []benchRun
		srv.waitRuns(func(runs []benchRun) bool {
			mine = mine[:0]
			for _, r := range runs {
				if r.Commit == commit && r.Trigger == "webhook" {
					mine = append(mine, r)
				}
			}
			return len(mine) > 0 && !mine[0].StartedAt.IsZero() && mine[0].Status == "finished"
		}, time.Minute)
		latencies = append(latencies, mine[0].StartedAt.Sub(sent))
		planned[len(mine)]++
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	p50 := latencies[len(latencies)/2]
	p95 := latencies[min(len(latencies)-1, len(latencies)*95/100)]
	fmt.Printf("  webhook to plan start: p50 %v, p95 %v (%d pushes)\n", p50.Round(time.Millisecond), p95.Round(time.Millisecond), len(latencies))
	exact := planned[1] == pushes
	fmt.Printf("  stacks planned per one-stack push: %s\n", describe(planned))
	srv.stop()

	// Memory with many registered workspaces: 5 workspaces per stack.
	wsRepo := filepath.Join(tmp, "repos", "many")
	files = map[string]string{}
	perStack := 5
	for i := 0; i < workspaces/perStack; i++ {
		dir := fmt.Sprintf("stacks/s%04d", i)
		files[dir+"/stack.hcl"] = "stack {\n  workspaces        = [\"a\", \"b\", \"c\", \"d\", \"e\"]\n  create_workspaces = true\n  schedule   = \"0 2 * * *\"\n}\n"
		files[dir+"/main.tf"] = "resource \"terraform_data\" \"d\" {}\n"
	}
	gitInit(wsRepo, files)
	many := b.startServe(tmp, "many", []string{"--repo", url + "/many", "--poll", "1h", "--parallel", "1"})
	defer many.stop()
	var status struct {
		Workspaces int `json:"workspaces"`
		Scheduled  int `json:"scheduled"`
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if getJSON(many.url+"/api/v1/status", &status) == nil && status.Workspaces >= workspaces {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a few runs in, queue full
	rss, hwm := procMemory(many.cmd.Process.Pid)
	fmt.Printf("  resident memory with %d registered workspaces (%d scheduled): %d MB (peak %d MB), terraform excluded\n",
		status.Workspaces, status.Scheduled, rss>>20, hwm>>20)
	if smoke {
		return true
	}
	var result bars
	bar := result.check
	bar(p50 < 250*time.Millisecond, "webhook to plan start p50 under 250 ms")
	bar(exact, "a one-stack push plans exactly that stack")
	bar(status.Workspaces >= workspaces && hwm < 150<<20, fmt.Sprintf("memory with %d workspaces under 150 MB", workspaces))
	return !result.failed
}

func describe(m map[int]int) string {
	var parts []string
	for n, c := range m {
		parts = append(parts, fmt.Sprintf("%d stack(s) in %d push(es)", n, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

type benchRun struct {
	ID        int64     `json:"id"`
	Commit    string    `json:"commit"`
	Trigger   string    `json:"trigger"`
	Status    string    `json:"status"`
	StartedAt time.Time `json:"started_at"`
}

func countFinished(runs []benchRun) int {
	n := 0
	for _, r := range runs {
		if r.Status == "finished" {
			n++
		}
	}
	return n
}

type serveProc struct {
	cmd *exec.Cmd
	url string
	log *bytes.Buffer
}

func (b *bench) startServe(tmp, name string, args []string, env ...string) *serveProc {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil { // serve takes the port next
		log.Fatal(err)
	}
	base := []string{"serve", "--listen", addr, "--data-dir", filepath.Join(tmp, "data-"+name), "--binary", b.bin.Name,
		"--binary-path", b.bin.Path, "--cli-config", b.cliConfig, "--schedule-jitter", "0s"}
	cmd := exec.Command(b.trueline, append(base, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	p := &serveProc{cmd: cmd, url: "http://" + addr, log: &logs}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			_ = resp.Body.Close() // the status is the answer; the body is not read
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			log.Fatalf("trueline serve did not get ready:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *serveProc) stop() {
	if p.cmd.ProcessState == nil {
		// A serve that already exited cannot be signalled, and its exit
		// status after an interrupt measures nothing: both are ignored.
		_ = p.cmd.Process.Signal(os.Interrupt)
		_ = p.cmd.Wait()
	}
}

func (p *serveProc) waitRuns(cond func([]benchRun) bool, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var page struct{ Runs []benchRun }
		if getJSON(p.url+"/api/v1/runs?limit=500", &page) == nil && cond(page.Runs) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	log.Fatalf("timed out waiting for runs")
}

// getJSON decodes url's JSON body into v; the callers poll, so an answer
// that does not decode is asked again.
func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // closing a read body has nothing to report
	return json.NewDecoder(resp.Body).Decode(v)
}

// procMemory reads VmRSS and VmHWM of a process, in bytes.
func procMemory(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm
}

func git(dir string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.invalid",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.invalid")
	out, err := cmd.CombinedOutput()
	if err != nil {
		log.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func gitInit(dir string, files map[string]string) {
	must(os.MkdirAll(dir, 0o755))
	git(dir, "init", "-q", "-b", "main")
	gitCommit(dir, files)
}

func gitCommit(dir string, files map[string]string) string {
	for name, content := range files {
		p := filepath.Join(dir, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(content), 0o644))
	}
	git(dir, "add", "-A")
	git(dir, "commit", "-q", "-m", "bench")
	return git(dir, "rev-parse", "HEAD")
}

// serveGit serves the repositories under root over smart HTTP on loopback.
func serveGit(root string) string {
	h, err := gittest.Backend(root)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	// Serves until the bench exits; a failure shows as serve failing to fetch.
	go func() { _ = http.Serve(ln, http.StripPrefix("/git", h)) }()
	return "http://" + ln.Addr().String() + "/git"
}
