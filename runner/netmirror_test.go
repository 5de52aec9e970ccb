package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/trueline/trueline/internal/mirrortest"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/runner"
)

// The tests here install providers as a deployment does: over HTTPS from a
// provider network mirror, into a shared plugin cache (TF_PLUGIN_CACHE_DIR,
// as trueline sets it), with no filesystem mirror in the CLI config.

// netRunner is a runner whose providers come from srv only, with an empty
// plugin cache of its own.
func netRunner(t *testing.T, bin runner.Binary, srv *mirrortest.Server) (*runner.Runner, string) {
	t.Helper()
	cache := filepath.Join(t.TempDir(), "plugin-cache")
	env := srv.Env()
	env["TF_PLUGIN_CACHE_DIR"] = cache
	return &runner.Runner{Binary: bin, WorkDir: t.TempDir(), CLIConfig: srv.CLIConfig(t), Env: env}, cache
}

// netSources are the providers of testdata/netmirror as bin names them.
func netSources(bin runner.Binary) []string {
	host := "registry.terraform.io"
	if bin.IsTofu() {
		host = "registry.opentofu.org"
	}
	return []string{host + "/trueline/sandbox", host + "/hashicorp/time"}
}

// netStack copies testdata/netmirror to a new directory, with lockFile as
// its .terraform.lock.hcl when not empty.
func netStack(t *testing.T, lockFile string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "netmirror", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"main.tf": string(src)}
	if lockFile != "" {
		files[".terraform.lock.hcl"] = lockFile
	}
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, files)
	return dir
}

// lockedHashes checks that the stack's lock file selects each provider
// with the hash the mirror serves.
func lockedHashes(t *testing.T, srv *mirrortest.Server, dir string, sources []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ".terraform.lock.hcl"))
	if err != nil {
		t.Fatalf("lock file: %v", err)
	}
	lock := string(b)
	for _, src := range sources {
		_, block, ok := strings.Cut(lock, fmt.Sprintf("provider %q {", src))
		block, _, _ = strings.Cut(block, "\n}")
		v := srv.Versions(src)[0]
		if !ok || !strings.Contains(block, fmt.Sprintf("%q", v)) || !strings.Contains(block, fmt.Sprintf("%q", srv.Hash(t, src, v))) {
			t.Errorf("the lock file does not select %s %s with the served hash %s:\n%s", src, v, srv.Hash(t, src, v), lock)
		}
	}
}

func netPlan(t *testing.T, r *runner.Runner, job runner.Job) *runner.Plan {
	t.Helper()
	p, err := r.Plan(context.Background(), job)
	if err != nil {
		t.Fatalf("plan %s: %v\n%s", job.Key, err, p.Log)
	}
	p.Discard()
	if !p.Init.Ran || !p.Changes {
		t.Errorf("plan %s: init ran %v, changes %v; want a cold init and a plan creating the stack", job.Key, p.Init.Ran, p.Changes)
	}
	return p
}

// TestNetworkMirrorInit: a cold init installs both providers over the
// network into the shared cache and locks the served hashes; a second
// workspace of the stack, in a working directory of its own, installs
// them from the cache without downloading an archive again.
func TestNetworkMirrorInit(t *testing.T) {
	for _, bin := range testenv.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			srv := mirrortest.Start(t, mirrortest.Options{})
			r, cache := netRunner(t, bin, srv)
			dir := netStack(t, "")
			sources := netSources(bin)
			cloud := map[string]string{"SANDBOX_ROOT": t.TempDir()}

			netPlan(t, r, runner.Job{Key: "net/web/default", Dir: dir, Env: cloud})
			for _, src := range sources {
				if n := srv.Downloads(src); n != 1 {
					t.Errorf("cold init downloaded %s %d times, want once", src, n)
				}
				if !mirrortest.Cached(cache, src, srv.Versions(src)[0]) {
					t.Errorf("%s is not in the plugin cache %s", src, cache)
				}
			}
			lockedHashes(t, srv, dir, sources)

			netPlan(t, r, runner.Job{Key: "net/web/staging", Dir: dir, Workspace: "staging", CreateWorkspace: true, Env: cloud})
			for _, src := range sources {
				if n := srv.Downloads(src); n != 1 {
					t.Errorf("after the second workspace's init, %s was downloaded %d times, want once (the plugin cache has it)", src, n)
				}
			}
		})
	}
}

// TestNetworkMirrorParallelInits: cold inits of distinct workspaces at
// once, sharing an empty plugin cache, all succeed, and each provider's
// archive is downloaded at most as often as the case allows.
func TestNetworkMirrorParallelInits(t *testing.T) {
	const n = 6
	for _, tc := range []struct {
		name string
		// locked: the stacks have a committed lock file.
		locked bool
		// maxDownloads of each provider's archive. With a lock file the
		// first init fills the cache and the others link from it; without
		// one, both binaries download again to record the origin's hashes.
		maxDownloads int
	}{
		{name: "committed lock files", locked: true, maxDownloads: 1},
		{name: "no lock files", locked: false, maxDownloads: n},
	} {
		for _, bin := range testenv.Binaries(t) {
			t.Run(tc.name+"/"+bin.Name, func(t *testing.T) {
				srv := mirrortest.Start(t, mirrortest.Options{})
				r, cache := netRunner(t, bin, srv)
				sources := netSources(bin)
				lock := ""
				if tc.locked {
					lock = srv.LockFile(t, strings.Split(sources[0], "/")[0])
				}
				dirs := make([]string, n)
				for i := range dirs {
					dirs[i] = netStack(t, lock)
				}
				var wg sync.WaitGroup
				errs := make([]error, n)
				logs := make([]string, n)
				for i, dir := range dirs {
					wg.Go(func() {
						job := runner.Job{Key: fmt.Sprintf("net/web-%d/default", i), Dir: dir, Env: map[string]string{"SANDBOX_ROOT": t.TempDir()}}
						p, err := r.Plan(context.Background(), job)
						p.Discard()
						errs[i], logs[i] = err, p.Log
						if err == nil && !p.Init.Ran {
							errs[i] = fmt.Errorf("no init ran in a new working directory")
						}
					})
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Errorf("workspace %d: %v\n%s", i, err, logs[i])
					}
				}
				for _, src := range sources {
					got := srv.Downloads(src)
					if got < 1 || got > tc.maxDownloads {
						t.Errorf("%s was downloaded %d times by %d inits, want 1 to %d", src, got, n, tc.maxDownloads)
					}
					if !mirrortest.Cached(cache, src, srv.Versions(src)[0]) {
						t.Errorf("%s is not in the plugin cache %s", src, cache)
					}
				}
				for _, dir := range dirs {
					lockedHashes(t, srv, dir, sources)
				}
			})
		}
	}
}

// TestNetworkMirrorWrongHash: hashes that do not match the archive, listed
// by the mirror or recorded in the stack's lock file, fail init, naming the
// checksum; nothing is cached and the lock file stays as it was.
func TestNetworkMirrorWrongHash(t *testing.T) {
	for _, tc := range []struct {
		name string
		// mirror lists wrong hashes; otherwise the lock file records them.
		mirror bool
		// want is in the error for each provider (source, version, and
		// the hash the mirror lists).
		want func(src, v, h string) string
	}{
		{name: "listed by the mirror", mirror: true,
			want: func(_, _, h string) string { return fmt.Sprintf("doesn't match the expected checksum %q", h) }},
		{name: "recorded in the lock file", mirror: false,
			want: func(src, v, _ string) string {
				return fmt.Sprintf("the current package for %s %s doesn't match any of the checksums previously recorded in the dependency lock file", src, v)
			}},
	} {
		for _, bin := range testenv.Binaries(t) {
			t.Run(tc.name+"/"+bin.Name, func(t *testing.T) {
				srv := mirrortest.Start(t, mirrortest.Options{WrongHash: tc.mirror})
				r, cache := netRunner(t, bin, srv)
				sources := netSources(bin)
				lock := ""
				if !tc.mirror {
					lock = mirrortest.Start(t, mirrortest.Options{WrongHash: true}).LockFile(t, strings.Split(sources[0], "/")[0])
				}
				dir := netStack(t, lock)
				p, err := r.Plan(context.Background(), runner.Job{Key: "net/web/default", Dir: dir, Env: map[string]string{"SANDBOX_ROOT": t.TempDir()}})
				p.Discard()
				if err == nil {
					t.Fatalf("init succeeded:\n%s", p.Log)
				}
				if st := run.StageOf(err); st != run.Init {
					t.Errorf("failed at stage %q, want %q", st, run.Init)
				}
				got, _ := os.ReadFile(filepath.Join(dir, ".terraform.lock.hcl"))
				if string(got) != lock {
					t.Errorf("the lock file was written:\n%s", got)
				}
				msg := strings.Join(strings.Fields(err.Error()), " ") // terraform wraps its lines
				for _, src := range sources {
					v := srv.Versions(src)[0]
					if want := tc.want(src, v, srv.Hash(t, src, v)); !strings.Contains(msg, want) {
						t.Errorf("the error does not say %q for %s: %v", want, src, err)
					}
					if mirrortest.Cached(cache, src, v) {
						t.Errorf("%s is in the plugin cache", src)
					}
				}
			})
		}
	}
}
