package daemon

import (
	"context"
	"path/filepath"
	"time"

	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/state"
)

// pruneEvery is how often retention is applied while serving.
const pruneEvery = time.Hour

// removeLeftovers removes saved plans a dead process left behind: they
// hold secrets in clear. Call it before any run starts.
func (d *Daemon) removeLeftovers() {
	if plans, _, err := runner.Cleanup(d.workDir(), nil, true); err != nil {
		d.log.Warn("cannot remove leftover plan files", "error", err)
	} else if plans > 0 {
		d.log.Info("removed plan files left by an earlier process", "files", plans)
	}
}

// maintain keeps disk use bounded: it applies the retention settings at
// start and every pruneEvery.
func (d *Daemon) maintain(ctx context.Context) {
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		d.prune(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// prune applies retention to the ledger, and removes the working
// directories and checkouts of workspaces that no longer exist (only once
// every repository has been read, so none is mistaken for removed).
func (d *Daemon) prune(ctx context.Context) {
	ret := d.cfg.Retention
	var before time.Time
	if ret.MaxAge > 0 {
		before = time.Now().Add(-ret.MaxAge)
	}
	if n, err := d.ledger.Prune(ctx, before, ret.RunsPerWorkspace); err != nil {
		d.log.Warn("cannot prune the ledger", "error", err)
	} else if n > 0 {
		d.log.Info("pruned old runs from the ledger", "runs", n)
	}
	if !d.Ready() {
		return
	}
	keep := map[string]bool{}
	d.mu.Lock()
	for key := range d.keys { // workspace keys, as runs name their directories
		keep[key] = true
	}
	d.mu.Unlock()
	if _, dirs, err := runner.Cleanup(d.workDir(), keep, false); err != nil {
		d.log.Warn("cannot remove working directories of removed workspaces", "error", err)
	} else if dirs > 0 {
		d.log.Info("removed working directories of workspaces that no longer exist", "directories", dirs)
	}
	// Checkouts are named like working directories (CheckoutDir).
	if _, dirs, err := runner.Cleanup(filepath.Dir(CheckoutDir(d.cfg.DataDir, "")), keep, false); err != nil {
		d.log.Warn("cannot remove checkouts of removed workspaces", "error", err)
	} else if dirs > 0 {
		d.log.Info("removed checkouts of workspaces that no longer exist", "directories", dirs)
	}
}

// workDir is where the reconciler keeps working directories (serve puts
// them under the data directory).
func (d *Daemon) workDir() string { return WorkRoot(d.cfg.DataDir) }

// pruneRecords applies retention to the records beside one workspace's
// state, after a new one was written there.
func (d *Daemon) pruneRecords(ctx context.Context, p state.Pruner, where string) {
	ret := d.cfg.Retention
	var before time.Time
	if ret.MaxAge > 0 {
		before = time.Now().Add(-ret.MaxAge)
	}
	if ret.MaxAge == 0 && ret.RunsPerWorkspace == 0 {
		return
	}
	if n, err := p.Prune(ctx, before, ret.RunsPerWorkspace); err != nil {
		d.log.Warn("cannot prune the records beside the state", "where", where, "error", err)
	} else if n > 0 {
		d.log.Debug("pruned records beside the state", "where", where, "records", n)
	}
}
