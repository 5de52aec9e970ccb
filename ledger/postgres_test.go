package ledger

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/trueline/trueline/internal/pgtest"
	"github.com/trueline/trueline/run"
)

// Two processes share one Postgres ledger: two DBs, each with its own pool.
func twoProcesses(t *testing.T) (url string, a, b *DB) {
	t.Helper()
	url = pgtest.New(t)
	return url, openURL(t, url), openURL(t, url)
}

// Claims from two processes, several workers each, never start one run twice.
func TestPostgresClaimsAcrossProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, a, b := twoProcesses(t)
	const runs = 40
	for i := range runs {
		if _, _, err := a.Enqueue(ctx, req(fmt.Sprintf("repo%d", i%4), fmt.Sprintf("stack%d", i), "default", "schedule")); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	claimedBy := map[int64]string{}
	var wg sync.WaitGroup
	for _, p := range []struct {
		name string
		l    *DB
	}{{"a", a}, {"b", b}} {
		for w := range 4 {
			wg.Go(func() {
				for {
					r, err := p.l.Claim(ctx, Limits{})
					if err != nil {
						t.Errorf("%s/%d: %v", p.name, w, err)
						return
					}
					if r == nil {
						return
					}
					mu.Lock()
					if by, ok := claimedBy[r.ID]; ok {
						t.Errorf("run %d claimed by %s and by %s/%d", r.ID, by, p.name, w)
					}
					claimedBy[r.ID] = fmt.Sprintf("%s/%d", p.name, w)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(claimedBy) != runs {
		t.Errorf("claimed %d runs, want %d", len(claimedBy), runs)
	}
	if running, _ := a.List(ctx, Filter{Status: Running, Limit: 1000}); len(running) != runs {
		t.Errorf("%d runs running, want %d", len(running), runs)
	}
}

// A per-repository limit holds across processes: concurrent claims in one
// repository never start more than the limit.
func TestPostgresRepositoryLimitAcrossProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, a, b := twoProcesses(t)
	const repos, perRepo, limit = 3, 6, 2
	for r := range repos {
		for s := range perRepo {
			if _, _, err := a.Enqueue(ctx, req(fmt.Sprintf("repo%d", r), fmt.Sprintf("stack%d", s), "default", "schedule")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Each round claims concurrently until nothing can start, checks the
	// limit, and finishes what it claimed, freeing the next round's places.
	for round := range perRepo / limit {
		var mu sync.Mutex
		var claimed []*Run
		var wg sync.WaitGroup
		for _, l := range []*DB{a, b, a, b, a, b} {
			wg.Go(func() {
				for {
					r, err := l.Claim(ctx, Limits{PerRepository: limit})
					if err != nil {
						t.Error(err)
						return
					}
					if r == nil {
						return
					}
					mu.Lock()
					claimed = append(claimed, r)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		per := map[string]int{}
		for _, r := range claimed {
			per[r.Repository]++
		}
		for r := range repos {
			if n := per[fmt.Sprintf("repo%d", r)]; n != limit {
				t.Errorf("round %d: repo%d has %d runs started, want the limit, %d", round, r, n, limit)
			}
		}
		for _, r := range claimed {
			if _, err := b.Finish(ctx, r.ID, Result{Verdict: "in_sync"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if q, _ := a.List(ctx, Filter{Status: Queued}); len(q) != 0 {
		t.Errorf("%d runs left queued", len(q))
	}
}

// Triggers of one workspace from two processes at once all join one
// queued run, and none of them is lost.
func TestPostgresEnqueueAcrossProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, a, b := twoProcesses(t)
	const n = 16
	var wg sync.WaitGroup
	ids := make([]int64, n)
	for i := range n {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Go(func() {
			r, _, err := l.Enqueue(ctx, req("infra", "stacks/web", "default", fmt.Sprintf("trigger%d", i)))
			if err != nil {
				t.Errorf("enqueue %d: %v", i, err)
			}
			ids[i] = r.ID
		})
	}
	wg.Wait()
	queued, err := a.List(ctx, Filter{Status: Queued})
	if err != nil || len(queued) != 1 {
		t.Fatalf("queued = %+v, %v; want one run", queued, err)
	}
	for i, id := range ids {
		if id != queued[0].ID {
			t.Errorf("enqueue %d returned run %d, want the one queued run %d", i, id, queued[0].ID)
		}
	}
	if len(queued[0].Triggers) != n {
		t.Errorf("the queued run has triggers %v; want all %d", queued[0].Triggers, n)
	}
}

// Ledgers opened at once on a new database apply each migration once.
func TestPostgresMigrationsOnceWhenOpenedTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.New(t)
	const openers = 4
	var wg sync.WaitGroup
	start := make(chan struct{})
	ledgers := make([]*DB, openers)
	for i := range openers {
		wg.Go(func() {
			<-start
			l, err := Open(ctx, url)
			if err != nil {
				t.Errorf("opener %d: %v", i, err)
				return
			}
			ledgers[i] = l
		})
	}
	close(start)
	wg.Wait()
	for _, l := range ledgers {
		if l != nil {
			t.Cleanup(func() { l.Close() })
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != len(migrations) {
		t.Fatalf("schema_migrations = %v; want 1 to %d once each", versions, len(migrations))
	}
	for i, v := range versions {
		if v != i+1 {
			t.Errorf("schema_migrations = %v; want 1 to %d once each", versions, len(migrations))
			break
		}
	}
}

// A connection killed in the middle of a ledger transaction leaves nothing
// of it: the transaction is held mid-way (its next statement waits for a
// row another session holds), its backend is terminated, and the ledger
// reads as before and goes on working.
func TestPostgresKilledConnectionLeavesNothingHalfWritten(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// setup prepares the ledger; held is the workspace whose queued
		// run another session inserts and holds uncommitted, so that op's
		// own insert for it waits.
		setup func(t *testing.T, l *DB) (held run.Workspace, op func(ctx context.Context) error)
		check func(t *testing.T, l *DB)
	}{
		{
			name: "EnqueueAll: the first run written, the second waiting",
			setup: func(t *testing.T, l *DB) (run.Workspace, func(context.Context) error) {
				reqs := []Request{req("infra", "stacks/a", "default", "commit"), req("infra", "stacks/b", "default", "commit")}
				return reqs[1].Workspace, func(ctx context.Context) error {
					_, err := l.EnqueueAll(ctx, "infra", "c1", reqs)
					return err
				}
			},
			check: func(t *testing.T, l *DB) {
				ctx := context.Background()
				if all, _ := l.List(ctx, Filter{}); len(all) != 0 {
					t.Errorf("the killed EnqueueAll left %d runs: %+v", len(all), all)
				}
				if h, _ := l.Head(ctx, "infra"); h != "" {
					t.Errorf("the killed EnqueueAll moved the head to %q", h)
				}
			},
		},
		{
			name: "Release: the run marked interrupted, its retry waiting",
			setup: func(t *testing.T, l *DB) (run.Workspace, func(context.Context) error) {
				ctx := context.Background()
				r, _, err := l.Enqueue(ctx, req("infra", "stacks/web", "default", "schedule"))
				if err != nil {
					t.Fatal(err)
				}
				if c, err := l.Claim(ctx, Limits{}); err != nil || c == nil {
					t.Fatalf("claim: %+v, %v", c, err)
				}
				return r.Workspace, func(ctx context.Context) error { return l.Release(ctx, []int64{r.ID}) }
			},
			check: func(t *testing.T, l *DB) {
				ctx := context.Background()
				all, _ := l.List(ctx, Filter{})
				if len(all) != 1 || all[0].Status != Running || all[0].Failure != nil || !all[0].FinishedAt.IsZero() {
					t.Errorf("after the killed Release, runs = %+v; want the one run still running, untouched", all)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			url := pgtest.New(t)
			l := openURL(t, url)
			held, op := tc.setup(t, l)

			holder, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Close(ctx)
			hold, err := holder.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := hold.Exec(ctx, `INSERT INTO runs (repository, stack, workspace, workspace_key, trigger, status, queued_at)
				VALUES ($1, $2, $3, $4, 'manual', 'queued', now())`, held.Repository, held.Stack, held.Name, held.Key()); err != nil {
				t.Fatal(err)
			}

			done := make(chan error, 1)
			go func() { done <- op(ctx) }()
			// The ledger's backend waiting for the held row's lock is the
			// one in the middle of its transaction.
			var pid int
			for pid == 0 {
				err := holder.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
					WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`).Scan(&pid)
				if err != nil && err != pgx.ErrNoRows {
					t.Fatal(err)
				}
				select {
				case err := <-done:
					t.Fatalf("the operation ended (%v) before it waited for the held row", err)
				case <-time.After(20 * time.Millisecond):
				}
			}
			var killed bool
			if err := holder.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&killed); err != nil || !killed {
				t.Fatalf("terminate backend %d: %v, %v", pid, killed, err)
			}
			if err := <-done; err == nil {
				t.Fatal("the operation whose connection was killed succeeded")
			}
			if err := hold.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			tc.check(t, l)
			// The pool replaced the dead connection.
			if _, _, err := l.Enqueue(ctx, req("infra", "stacks/after", "default", "manual")); err != nil {
				t.Errorf("the ledger does not work after the kill: %v", err)
			}
		})
	}
}
