package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/trueline/trueline/source"
	"github.com/trueline/trueline/stacks"
)

// checkoutBench compares the two ways a run can get its files: one full
// checkout per commit shared by the commit's runs, or materialising only
// what the stack needs into the workspace's own directory (what trueline
// does), cold and after a commit that changed one file.
func checkoutBench(n int) {
	tmp, err := os.MkdirTemp("", "trueline-bench-checkout-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(tmp) }() // a leftover temporary directory changes no figure
	repoDir := filepath.Join(tmp, "repo")
	files := map[string]string{}
	for m := 0; m < 10; m++ {
		for f := 0; f < 5; f++ {
			files[fmt.Sprintf("modules/m%d/f%d.tf", m, f)] = fmt.Sprintf("# module %d file %d\n", m, f)
		}
	}
	for i := 0; i < n; i++ {
		dir := fmt.Sprintf("stacks/s%03d", i)
		files[dir+"/stack.hcl"] = "stack {}\n"
		files[dir+"/main.tf"] = fmt.Sprintf("module \"m\" {\n  source = \"../../modules/m%d\"\n}\n", i%10)
		files[dir+"/variables.tf"] = "variable \"x\" {\n  default = 1\n}\n"
		files[dir+"/README.md"] = "docs\n"
	}
	gitInit(repoDir, files)
	ctx := context.Background()
	r := &source.Repo{Name: "bench", URL: repoDir, Branch: "main"}
	if err := source.Open(ctx, r, filepath.Join(tmp, "cache")); err != nil {
		log.Fatal(err)
	}
	head, _ := r.Fetch(ctx)
	fsys, _ := r.FS(head)
	all, _ := stacks.DiscoverFS(fsys)
	deps := stacks.Dependencies(fsys, all[0])

	timeIt := func(reps int, f func(i int)) time.Duration {
		start := time.Now()
		for i := 0; i < reps; i++ {
			f(i)
		}
		return time.Since(start) / time.Duration(reps)
	}
	full := timeIt(5, func(i int) {
		must(r.Materialize(ctx, head, []string{"."}, filepath.Join(tmp, fmt.Sprintf("full%d", i))))
	})
	cold := timeIt(20, func(i int) {
		must(r.Materialize(ctx, head, deps, filepath.Join(tmp, fmt.Sprintf("ws%d", i))))
	})
	commit := gitCommit(repoDir, map[string]string{"modules/m0/f0.tf": "# changed\n"})
	if _, err := r.Fetch(ctx); err != nil {
		log.Fatal(err)
	}
	next := plumbing.NewHash(commit)
	warm := timeIt(20, func(i int) {
		must(r.Materialize(ctx, next, deps, filepath.Join(tmp, fmt.Sprintf("ws%d", i))))
	})
	fmt.Printf("\ncheckouts (%d stacks, %d files)\n", n, len(files))
	fmt.Printf("  one full checkout per commit:                 %8.2f ms\n", ms(full))
	fmt.Printf("  one stack and its modules, into a new dir:    %8.2f ms (%.0fx less)\n", ms(cold), full.Seconds()/cold.Seconds())
	fmt.Printf("  the same after a commit that changed a file:  %8.2f ms\n", ms(warm))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
