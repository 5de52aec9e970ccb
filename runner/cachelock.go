package runner

import (
	"os"
	"path/filepath"
	"syscall"

	"github.com/hashicorp/hcl/v2/hclparse"
)

// lockCache takes the plugin cache lock, shared or exclusive, and returns
// the unlock. In this process an RWMutex keeps the order fair (a waiting
// init is not starved by a stream of plans); across processes (trueline
// serve and a trueline check, or test binaries) an flock on
// <cache>/.trueline.lock does the same job.
func (r *Runner) lockCache(exclusive bool) func() {
	if exclusive {
		r.cacheMu.Lock()
	} else {
		r.cacheMu.RLock()
	}
	unlockMu := r.cacheMu.RUnlock
	if exclusive {
		unlockMu = r.cacheMu.Unlock
	}
	dir := r.pluginCacheDir()
	if dir == "" {
		return unlockMu
	}
	// An unlockable cache still works within this process.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return unlockMu
	}
	f, err := os.OpenFile(filepath.Join(dir, ".trueline.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return unlockMu
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		if err := syscall.Flock(int(f.Fd()), how); err != syscall.EINTR {
			break
		}
	}
	return func() {
		// Closing the file releases the lock too, and nothing was written
		// to it: neither error leaves anything to undo.
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
		unlockMu()
	}
}

// pluginCacheDir is the cache terraform will use: TF_PLUGIN_CACHE_DIR of
// the runner or the process, else plugin_cache_dir of the CLI config.
func (r *Runner) pluginCacheDir() string {
	r.cacheOnce.Do(func() {
		if d := r.Env["TF_PLUGIN_CACHE_DIR"]; d != "" {
			r.cacheDir = d
			return
		}
		if d := os.Getenv("TF_PLUGIN_CACHE_DIR"); d != "" {
			r.cacheDir = d
			return
		}
		if r.CLIConfig == "" {
			return
		}
		src, err := os.ReadFile(r.CLIConfig)
		if err != nil {
			return
		}
		f, diags := hclparse.NewParser().ParseHCL(src, r.CLIConfig)
		if diags.HasErrors() {
			return
		}
		attrs, _ := f.Body.JustAttributes()
		if a, ok := attrs["plugin_cache_dir"]; ok {
			if v, d := a.Expr.Value(nil); !d.HasErrors() && v.Type().FriendlyName() == "string" {
				r.cacheDir = v.AsString()
			}
		}
	})
	return r.cacheDir
}
