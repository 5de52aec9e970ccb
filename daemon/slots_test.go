package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/internal/gittest"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/limiter"
	"github.com/trueline/trueline/reconcile"
)

// gated holds every run until the test opens the gate, counting how many
// run at once.
type gated struct {
	mu            sync.Mutex
	running, peak int
	done          int
	gate          chan struct{}
}

func (g *gated) Run(_ context.Context, _ string, t reconcile.Target) reconcile.Outcome {
	g.mu.Lock()
	g.running++
	g.peak = max(g.peak, g.running)
	g.mu.Unlock()
	<-g.gate
	g.mu.Lock()
	g.running--
	g.done++
	g.mu.Unlock()
	return inSync(t)
}

func (g *gated) counts() (running, peak, done int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running, g.peak, g.done
}

// withLimiter is a planner with its own limiter, as reconcile.Reconciler.
type withLimiter struct {
	*gated
	lim *limiter.Limiter
}

func (w withLimiter) Limiter() *limiter.Limiter { return w.lim }

// TestRunSlots queues eight runs of one repository and checks how many
// the daemon runs at once: limits { global } when the planner has no
// limiter, else the planner's slots, whatever global says.
func TestRunSlots(t *testing.T) {
	const stacks = 8
	for _, tc := range []struct {
		name    string
		global  int
		planner func(g *gated) Planner
		want    int
	}{
		{"global", 3, func(g *gated) Planner { return g }, 3},
		{"the planner's slots", 8, func(g *gated) Planner {
			return withLimiter{g, limiter.New(limiter.Options{Floor: 2, Ceiling: 2})}
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := gittest.New(t)
			files := map[string]string{}
			for i := range stacks {
				files[fmt.Sprintf("stacks/s%d/stack.hcl", i)] = "stack {}\n"
				files[fmt.Sprintf("stacks/s%d/main.tf", i)] = ""
			}
			repo.Commit("stacks", files)
			data := t.TempDir()
			led, err := ledger.OpenSQLite(context.Background(), filepath.Join(data, "trueline.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { led.Close() })
			cfg := config.Defaults()
			cfg.DataDir, cfg.Global, cfg.PerRepository = data, tc.global, stacks
			cfg.Repositories = []config.Repository{{Name: "infra", URL: repo.Dir, Branch: "main", Poll: time.Hour, Forge: "none"}}
			g := &gated{gate: make(chan struct{})}
			d, err := New(cfg, led, tc.planner(g), nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan error, 1)
			go func() { stopped <- d.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-stopped; err != nil {
					t.Error(err)
				}
			}()
			// The first fetch queues a run of every workspace.
			waitUntil(t, "runs to start", func() bool { running, _, _ := g.counts(); return running == tc.want })
			time.Sleep(300 * time.Millisecond) // and no more start
			if _, peak, _ := g.counts(); peak != tc.want {
				t.Errorf("%d runs at once, want %d", peak, tc.want)
			}
			close(g.gate)
			waitUntil(t, "every run to finish", func() bool { _, _, done := g.counts(); return done == stacks })
			if _, peak, _ := g.counts(); peak != tc.want {
				t.Errorf("%d runs at once, want at most %d", peak, tc.want)
			}
		})
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
