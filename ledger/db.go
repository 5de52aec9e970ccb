package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/run"
)

// DB is the ledger on SQLite or on PostgreSQL: one implementation, whose
// SQL goes through a dialect (see dialect.go).
type DB struct {
	db   *sql.DB
	pool *pgxpool.Pool // Postgres: the pool under db; nil for SQLite
	d    dialect
	now  func() time.Time
}

// SQLite is the ledger opened by OpenSQLite: a DB, named so for the
// callers that open the embedded ledger.
type SQLite = DB

var _ Ledger = (*DB)(nil)

// Close closes the database.
func (l *DB) Close() error {
	err := l.db.Close()
	if l.pool != nil {
		l.pool.Close()
	}
	return err
}

// Dialect names the database under the ledger: "sqlite" or "postgres".
func (l *DB) Dialect() string { return l.d.name }

// txAttempts bounds how often a transaction that lost a race to another
// process (see retryable) is run again.
const txAttempts = 5

// tx runs fn in one transaction, and again, from the start, when it lost a
// race another process won (Postgres only; SQLite's writes are serial):
// fn must set its results afresh each time.
func (l *DB) tx(ctx context.Context, fn func(*txn) error) error {
	for attempt := 1; ; attempt++ {
		err := l.tx1(ctx, fn)
		if err == nil || attempt == txAttempts || !retryable(err) {
			return err
		}
	}
}

func (l *DB) tx1(ctx context.Context, fn func(*txn) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(&txn{Tx: tx, d: l.d}); err != nil {
		return errors.Join(err, rollback(tx))
	}
	return tx.Commit()
}

// rollback rolls tx back; a transaction whose connection broke is gone
// already, and that is no news.
func rollback(tx *sql.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) && !errors.Is(err, driver.ErrBadConn) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// retryable: a transaction that lost to a concurrent one in another
// process and succeeds when run again on what that one committed: two
// processes queueing a run of one workspace at once (the schema allows one
// queued run), a serialization failure, a deadlock.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01":
		return true
	case "23505":
		return pe.ConstraintName == "runs_one_queued" || pe.ConstraintName == "runs_one_running"
	}
	return false
}

// txn is a ledger transaction: its statements are written with "?" and
// rebound to the dialect. Tx is the database/sql transaction itself, for
// what must commit with the ledger's writes.
type txn struct {
	*sql.Tx
	d dialect
}

func (t *txn) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.ExecContext(ctx, t.d.rebind(q), args...)
}

func (t *txn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.QueryContext(ctx, t.d.rebind(q), args...)
}

func (t *txn) row(ctx context.Context, q string, args ...any) *sql.Row {
	return t.QueryRowContext(ctx, t.d.rebind(q), args...)
}

func (l *DB) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return l.db.ExecContext(ctx, l.d.rebind(q), args...)
}

func (l *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return l.db.QueryContext(ctx, l.d.rebind(q), args...)
}

func (l *DB) row(ctx context.Context, q string, args ...any) *sql.Row {
	return l.db.QueryRowContext(ctx, l.d.rebind(q), args...)
}

const runColumns = `id, repository, stack, workspace, commit_sha, trigger, triggers, status, queued_at, started_at,
	finished_at, retry_of, applying, verdict, findings, action, action_reason, error, log, duration_ms, record_error, approval, record,
	plan_hash, plan_resources, approved_run, approved_by, action_result, escalated, failure_stage, failure_kind`

// listColumns are runColumns without the log: lists (pages, the report,
// metrics) never read logs, which are the bulk of a run's row.
var listColumns = strings.Replace(runColumns, " log,", " '',", 1)

// summaryRunColumns are listColumns of the latest run r in Summaries,
// each defaulted for a workspace that has no finished run yet.
var summaryRunColumns = func() string {
	ints := map[string]bool{"id": true, "retry_of": true, "duration_ms": true, "approved_run": true}
	bools := map[string]bool{"applying": true, "escalated": true}
	times := map[string]bool{"queued_at": true, "started_at": true, "finished_at": true} // NULL scans as unset
	var cols []string
	for _, c := range strings.Split(runColumns, ",") {
		c = strings.TrimSpace(c)
		switch {
		case c == "log":
			cols = append(cols, "''")
		case times[c]:
			cols = append(cols, "r."+c)
		case bools[c]:
			cols = append(cols, "COALESCE(r."+c+", FALSE)")
		case ints[c]:
			cols = append(cols, "COALESCE(r."+c+", 0)")
		default:
			cols = append(cols, "COALESCE(r."+c+", '')")
		}
	}
	return strings.Join(cols, ", ")
}()

type scanner interface{ Scan(...any) error }

func scanRun(s scanner) (Run, error) {
	var r Run
	err := scanRunWith(s, &r)
	return r, err
}

// scanRunWith scans leading columns into lead, then a run's columns into r.
func scanRunWith(s scanner, r *Run, lead ...any) error {
	var triggers, findings, resources, action, result, errMsg, stage, kind string
	var escalated bool
	err := s.Scan(append(lead, &r.ID, &r.Repository, &r.Stack, &r.Workspace.Name, &r.Commit, &r.Trigger, &triggers, &r.Status,
		moment{&r.QueuedAt}, moment{&r.StartedAt}, moment{&r.FinishedAt}, &r.RetryOf, &r.Applying, &r.Verdict, &findings, &action, &r.Action.Reason,
		&errMsg, &r.Log, &r.DurationMS, &r.RecordError, &r.Approval, &r.Record,
		&r.Plan.Plan, &resources, &r.ApprovedRun, &r.ApprovedBy, &result, &escalated, &stage, &kind)...)
	if err != nil {
		return err
	}
	r.Action.Kind, r.Action.Result, r.Action.Escalated = policies.Action(action), run.Result(result), escalated
	if errMsg != "" || stage != "" {
		r.Failure = &run.Failure{Stage: run.Stage(stage), Message: errMsg, TimedOut: kind == "timeout", Interrupted: kind == "interrupted"}
	}
	if resources != "" {
		if err := json.Unmarshal([]byte(resources), &r.Plan.Resources); err != nil {
			return fmt.Errorf("run %d: plan_resources: %w", r.ID, err)
		}
	}
	if triggers == "" {
		triggers = "[]" // no run (a summary of a workspace never checked)
	}
	if err := json.Unmarshal([]byte(triggers), &r.Triggers); err != nil {
		return fmt.Errorf("run %d: triggers: %w", r.ID, err)
	}
	if findings != "" {
		if err := json.Unmarshal([]byte(findings), &r.Findings); err != nil {
			return fmt.Errorf("run %d: findings: %w", r.ID, err)
		}
	}
	return nil
}

func (l *DB) Enqueue(ctx context.Context, req Request) (Run, bool, error) {
	var run Run
	var joined bool
	err := l.tx(ctx, func(tx *txn) error {
		var err error
		run, joined, err = l.enqueueTx(ctx, tx, req)
		return err
	})
	if err != nil {
		return Run{}, false, fmt.Errorf("enqueue %s: %w", req.Key(), err)
	}
	return run, joined, nil
}

func (l *DB) EnqueueAll(ctx context.Context, repository, head string, reqs []Request) ([]Run, error) {
	var runs []Run
	err := l.tx(ctx, func(tx *txn) error {
		runs = nil
		for _, req := range reqs {
			run, _, err := l.enqueueTx(ctx, tx, req)
			if err != nil {
				return fmt.Errorf("enqueue %s: %w", req.Key(), err)
			}
			runs = append(runs, run)
		}
		if head == "" {
			return nil
		}
		_, err := tx.exec(ctx, `INSERT INTO heads (repository, commit_sha, updated_at) VALUES (?, ?, ?)
			ON CONFLICT(repository) DO UPDATE SET commit_sha = excluded.commit_sha, updated_at = excluded.updated_at`,
			repository, head, l.d.time(l.now()))
		return err
	})
	if err != nil {
		return nil, err
	}
	return runs, nil
}

func (l *DB) enqueueTx(ctx context.Context, tx *txn, req Request) (Run, bool, error) {
	if req.Repository == "" || req.Stack == "" || req.Name == "" || req.Trigger == "" {
		return Run{}, false, errors.New("repository, stack, workspace and trigger are required")
	}
	// Locked (Postgres), so that a trigger joining in another process
	// waits for this one rather than writing over its triggers.
	row := tx.row(ctx, `SELECT `+runColumns+` FROM runs WHERE workspace_key = ? AND status = 'queued'`+l.d.forUpdate, req.Key())
	existing, err := scanRun(row)
	if err == nil {
		// Join: remember the trigger, and run at the newer commit.
		if !contains(existing.Triggers, req.Trigger) {
			existing.Triggers = append(existing.Triggers, req.Trigger)
		}
		switch {
		case req.Approval != "":
			// An approval pins the commit the person reviewed.
			existing.Commit, existing.Approval = req.Commit, req.Approval
			existing.ApprovedRun, existing.ApprovedBy = req.ApprovedRun, req.ApprovedBy
		case existing.Approval != "":
			// Keep the approved commit; the daemon plans the newer one after.
		case req.Commit != "":
			existing.Commit = req.Commit
		}
		t, _ := json.Marshal(existing.Triggers)
		if _, err := tx.exec(ctx, `UPDATE runs SET triggers = ?, commit_sha = ?, approval = ?, approved_run = ?, approved_by = ? WHERE id = ?`,
			string(t), existing.Commit, existing.Approval, existing.ApprovedRun, existing.ApprovedBy, existing.ID); err != nil {
			return Run{}, false, err
		}
		return existing, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Run{}, false, err
	}
	t, _ := json.Marshal([]string{req.Trigger})
	run, err := scanRun(tx.row(ctx, `INSERT INTO runs (repository, stack, workspace, workspace_key, commit_sha, trigger, triggers, status, queued_at, retry_of,
		approval, approved_run, approved_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?) RETURNING `+runColumns,
		req.Repository, req.Stack, req.Name, req.Key(), req.Commit, req.Trigger, string(t), l.d.time(l.now()), req.RetryOf,
		req.Approval, req.ApprovedRun, req.ApprovedBy))
	return run, false, err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (l *DB) Claim(ctx context.Context, lim Limits) (*Run, error) {
	var claimed *Run
	err := l.tx(ctx, func(tx *txn) error {
		claimed = nil
		// Longest-expected first among the startable: a workspace's last
		// duration orders the queue, so one slow stack does not finish last.
		q := `SELECT r.id, r.repository FROM runs r
			LEFT JOIN (SELECT workspace_key, MAX(id) AS last FROM runs WHERE status = 'finished' GROUP BY workspace_key) f
			  ON f.workspace_key = r.workspace_key
			LEFT JOIN runs p ON p.id = f.last
			WHERE r.status = 'queued'
			  AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.status = 'running' AND x.workspace_key = r.workspace_key)`
		args := []any{}
		if lim.PerRepository > 0 {
			q += ` AND (SELECT COUNT(*) FROM runs y WHERE y.status = 'running' AND y.repository = r.repository) < ?`
			args = append(args, lim.PerRepository)
		}
		q += ` ORDER BY COALESCE(p.duration_ms, 1e18) DESC, r.queued_at, r.id LIMIT 1` + l.d.skipLocked
		var id int64
		for attempt := 0; ; attempt++ {
			var repo string
			if err := tx.row(ctx, q, args...).Scan(&id, &repo); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return nil
				}
				return err
			}
			if lim.PerRepository <= 0 || l.d.repositoryLock == "" {
				break
			}
			// The count above may miss a run another process is claiming
			// in the same repository right now: count again under the
			// repository's lock, which that claim holds until it commits.
			if _, err := tx.exec(ctx, l.d.repositoryLock, repo); err != nil {
				return err
			}
			var running int
			if err := tx.row(ctx, `SELECT COUNT(*) FROM runs WHERE status = 'running' AND repository = ?`, repo).Scan(&running); err != nil {
				return err
			}
			if running < lim.PerRepository {
				break
			}
			if attempt == 10 {
				return nil // the queue moved under every pick; the next claim tries again
			}
			// The next pick's snapshot sees that claim and passes over the repository.
		}
		if _, err := tx.exec(ctx, `UPDATE runs SET status = 'running', started_at = ? WHERE id = ?`, l.d.time(l.now()), id); err != nil {
			return err
		}
		r, err := scanRun(tx.row(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
		claimed = &r
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return claimed, nil
}

func (l *DB) SetCommit(ctx context.Context, id int64, commit string) error {
	return l.update(ctx, id, `UPDATE runs SET commit_sha = ? WHERE id = ? AND status = 'running'`, commit, id)
}

func (l *DB) MarkApplying(ctx context.Context, id int64) error {
	return l.update(ctx, id, `UPDATE runs SET applying = TRUE WHERE id = ? AND status = 'running' AND applying = FALSE`, id)
}

// Finish records a running run's result and returns the finished run, as
// every reader after it (the record, the announcement) takes it.
func (l *DB) Finish(ctx context.Context, id int64, res Result) (Run, error) {
	resources, err := marshalResources(res.Plan)
	if err != nil {
		return Run{}, fmt.Errorf("run %d: %w", id, err)
	}
	var findings []byte
	if res.Findings.Verdict != "" {
		if findings, err = json.Marshal(res.Findings); err != nil {
			return Run{}, fmt.Errorf("run %d: findings: %w", id, err)
		}
	}
	var errMsg, stage, kind string
	if f := res.Failure; f != nil {
		errMsg, stage = f.Message, string(f.Stage)
		switch {
		case f.TimedOut:
			kind = "timeout"
		case f.Interrupted:
			kind = "interrupted"
		}
	}
	err = l.update(ctx, id, `UPDATE runs SET status = 'finished', finished_at = ?, verdict = ?, findings = ?, action = ?,
		action_reason = ?, action_result = ?, escalated = ?, error = ?, failure_stage = ?, failure_kind = ?, log = ?,
		duration_ms = ?, record_error = ?, plan_hash = ?, plan_resources = ?
		WHERE id = ? AND status = 'running'`,
		l.d.time(l.now()), res.Verdict, string(findings), string(res.Action.Kind), res.Action.Reason, string(res.Action.Result),
		res.Action.Escalated, errMsg, stage, kind, res.Log,
		res.DurationMS, res.RecordError, res.Plan.Plan, resources, id)
	if err != nil {
		return Run{}, err
	}
	return l.Get(ctx, id)
}

func marshalResources(p drift.PlanHash) (string, error) {
	if len(p.Resources) == 0 {
		return "", nil
	}
	b, err := json.Marshal(p.Resources)
	return string(b), err
}

func (l *DB) SetBranch(ctx context.Context, key string, b Branch) error {
	resources, err := marshalResources(b.Plan)
	if err != nil {
		return err
	}
	_, err = l.exec(ctx, `INSERT INTO branches (workspace_key, name, head_sha, run_id, plan_hash, plan_resources, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (workspace_key) DO UPDATE SET name = excluded.name, head_sha = excluded.head_sha, run_id = excluded.run_id,
		  plan_hash = excluded.plan_hash, plan_resources = excluded.plan_resources, updated_at = excluded.updated_at`,
		key, b.Name, b.Head, b.RunID, b.Plan.Plan, resources, l.d.time(l.now()))
	if err != nil {
		return fmt.Errorf("branch of %s: %w", key, err)
	}
	return nil
}

func (l *DB) Branch(ctx context.Context, key string) (Branch, bool, error) {
	var b Branch
	var resources string
	err := l.row(ctx, `SELECT name, head_sha, run_id, plan_hash, plan_resources FROM branches WHERE workspace_key = ?`, key).
		Scan(&b.Name, &b.Head, &b.RunID, &b.Plan.Plan, &resources)
	if errors.Is(err, sql.ErrNoRows) {
		return Branch{}, false, nil
	}
	if err == nil && resources != "" {
		err = json.Unmarshal([]byte(resources), &b.Plan.Resources)
	}
	if err != nil {
		return Branch{}, false, fmt.Errorf("branch of %s: %w", key, err)
	}
	return b, true, nil
}

// update runs one statement that must touch exactly the run id.
func (l *DB) update(ctx context.Context, id int64, q string, args ...any) error {
	res, err := l.exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("run %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("run %d: not running, or already in that state", id)
	}
	return nil
}

func (l *DB) Recover(ctx context.Context) ([]Run, error) {
	return l.interrupt(ctx, `SELECT `+runColumns+` FROM runs WHERE status = 'running' ORDER BY id`, nil,
		"interrupted: trueline stopped during the run")
}

func (l *DB) Release(ctx context.Context, ids []int64) error {
	for _, id := range ids {
		if _, err := l.interrupt(ctx, `SELECT `+runColumns+` FROM runs WHERE status = 'running' AND id = ?`, []any{id},
			"interrupted: trueline was stopped"); err != nil {
			return err
		}
	}
	return nil
}

// interrupt marks the selected running runs interrupted and queues each
// again once, unless it was itself a retry or its workspace already has a
// queued run. A run that had started applying says so: its apply is never
// repeated, the retry plans afresh and shows where the apply got.
func (l *DB) interrupt(ctx context.Context, query string, args []any, msg string) ([]Run, error) {
	var out []Run
	err := l.tx(ctx, func(tx *txn) error {
		out = nil
		rows, err := tx.query(ctx, query+l.d.forUpdate, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, r)
		}
		rows.Close()
		now := l.d.time(l.now())
		for i, r := range out {
			m := msg
			if r.Applying {
				m += " (an apply had started; it is not repeated, the next plan shows where it got)"
			}
			if _, err := tx.exec(ctx, `UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?, failure_kind = 'interrupted',
				failure_stage = CASE WHEN applying = TRUE THEN 'apply' ELSE '' END WHERE id = ?`, now, m, r.ID); err != nil {
				return err
			}
			out[i].Status = Interrupted
			if r.RetryOf != 0 {
				continue // re-run once, not forever
			}
			key := r.Workspace.Key()
			var queued int
			if err := tx.row(ctx, `SELECT COUNT(*) FROM runs WHERE workspace_key = ? AND status = 'queued'`, key).Scan(&queued); err != nil {
				return err
			}
			if queued > 0 {
				continue // a later trigger already queued one
			}
			t, _ := json.Marshal([]string{"retry"})
			if _, err := tx.exec(ctx, `INSERT INTO runs (repository, stack, workspace, workspace_key, commit_sha, trigger, triggers, status, queued_at, retry_of)
				VALUES (?, ?, ?, ?, ?, 'retry', ?, 'queued', ?, ?)`,
				r.Repository, r.Stack, r.Workspace.Name, key, r.Commit, string(t), now, r.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("interrupt runs: %w", err)
	}
	return out, nil
}

func (l *DB) Get(ctx context.Context, id int64) (Run, error) {
	r, err := scanRun(l.row(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	return r, err
}

func (l *DB) List(ctx context.Context, f Filter) ([]Run, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if f.Repository != "" {
		add("repository = ?", f.Repository)
	}
	if f.Stack != "" {
		add("stack = ?", f.Stack)
	}
	if f.Workspace != "" {
		add("workspace = ?", f.Workspace)
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if f.Before > 0 {
		add("id < ?", f.Before)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 50
	}
	q := `SELECT ` + listColumns + ` FROM runs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)
	return l.runs(ctx, q, args...)
}

func (l *DB) runs(ctx context.Context, q string, args ...any) ([]Run, error) {
	rows, err := l.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (l *DB) Head(ctx context.Context, repository string) (string, error) {
	var c string
	err := l.row(ctx, `SELECT commit_sha FROM heads WHERE repository = ?`, repository).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return c, err
}

// Thread implements notify.Threads.
func (l *DB) Thread(ctx context.Context, key string) (string, string, error) {
	var ch, ts string
	err := l.row(ctx, `SELECT channel, ts FROM threads WHERE key = ?`, key).Scan(&ch, &ts)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil
	}
	return ch, ts, err
}

func (l *DB) SetThread(ctx context.Context, key, channel, ts string) error {
	_, err := l.exec(ctx, `INSERT INTO threads (key, channel, ts, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET channel = excluded.channel, ts = excluded.ts, updated_at = excluded.updated_at`,
		key, channel, ts, l.d.time(l.now()))
	return err
}

func (l *DB) DeleteThread(ctx context.Context, key string) error {
	_, err := l.exec(ctx, `DELETE FROM threads WHERE key = ?`, key)
	return err
}

func (l *DB) PullRequest(ctx context.Context, key string) (int64, string, error) {
	var n int64
	var u string
	err := l.row(ctx, `SELECT number, url FROM pull_requests WHERE workspace_key = ?`, key).Scan(&n, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return n, u, err
}

func (l *DB) SetPullRequest(ctx context.Context, key string, number int64, url string) error {
	_, err := l.exec(ctx, `INSERT INTO pull_requests (workspace_key, number, url, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(workspace_key) DO UPDATE SET number = excluded.number, url = excluded.url, updated_at = excluded.updated_at`,
		key, number, url, l.d.time(l.now()))
	return err
}

func (l *DB) DeletePullRequest(ctx context.Context, key string) error {
	_, err := l.exec(ctx, `DELETE FROM pull_requests WHERE workspace_key = ?`, key)
	return err
}

func (l *DB) Announce(ctx context.Context, key, mark string) (bool, error) {
	// One statement: it returns a row only when it inserted the mark or
	// changed it, so of two processes announcing the same, one sends.
	var one int
	err := l.row(ctx, `INSERT INTO announcements (workspace_key, mark, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(workspace_key) DO UPDATE SET mark = excluded.mark, updated_at = excluded.updated_at
		WHERE announcements.mark <> excluded.mark
		RETURNING 1`, key, mark, l.d.time(l.now())).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("announcement of %s: %w", key, err)
	}
	return true, nil
}

func (l *DB) SetRecord(ctx context.Context, id int64, where, errMsg string) error {
	_, err := l.exec(ctx, `UPDATE runs SET record = ?, record_error = ? WHERE id = ?`, where, errMsg, id)
	return err
}

func (l *DB) Converged(ctx context.Context, since time.Time) ([]Run, error) {
	return l.runs(ctx, `SELECT `+listColumns+` FROM runs WHERE status = 'finished' AND action = 'apply'
		AND action_result = 'converged' AND finished_at >= ? ORDER BY id DESC`, l.d.bound(since))
}

func (l *DB) LastApplied(ctx context.Context, key string) (string, error) {
	var c string
	err := l.row(ctx, `SELECT commit_sha FROM runs WHERE workspace_key = ? AND status = 'finished'
		AND action = 'apply' AND action_result = 'converged' ORDER BY id DESC LIMIT 1`, key).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return c, err
}

// The drift age rule, as SQL over the runs aliased a. A finished run that
// found drift and did not apply it to convergence is drift; a finished run
// that found none (in sync, or only pending code), or that applied and
// converged, ends it; a failed or interrupted run does neither, so an error
// in the middle of an incident does not reset its age. The incident began
// with the first drift run after the last run that ended drift.
func isDrift(a string) string {
	return fmt.Sprintf(`(%[1]s.status = 'finished' AND %[1]s.verdict IN ('drifted', 'drifted_and_pending')
		AND NOT (%[1]s.action = 'apply' AND %[1]s.action_result = 'converged'))`, a)
}

func endsDrift(a string) string {
	return fmt.Sprintf(`(%[1]s.status = 'finished' AND (%[1]s.verdict IN ('in_sync', 'pending')
		OR (%[1]s.action = 'apply' AND %[1]s.action_result = 'converged')))`, a)
}

func (l *DB) Summaries(ctx context.Context) ([]Summary, error) {
	rows, err := l.query(ctx, `WITH keys AS (
			SELECT workspace_key, repository, stack, workspace, schedule, timezone, TRUE AS registered, registered_at FROM workspaces
			UNION ALL
			SELECT workspace_key, repository, stack, workspace, '', '', FALSE, NULL FROM runs
			WHERE status = 'finished' AND workspace_key NOT IN (SELECT workspace_key FROM workspaces)
			GROUP BY workspace_key, repository, stack, workspace -- not DISTINCT, which makes Postgres type the NULL as text
		),
		latest AS (SELECT workspace_key, MAX(id) AS id FROM runs WHERE status = 'finished' GROUP BY workspace_key),
		starts AS (
			SELECT r.workspace_key, MIN(r.started_at) AS since FROM runs r WHERE `+isDrift("r")+`
			AND r.id > COALESCE((SELECT MAX(x.id) FROM runs x WHERE x.workspace_key = r.workspace_key AND `+endsDrift("x")+`), 0)
			GROUP BY r.workspace_key
		)
		SELECT k.repository, k.stack, k.workspace, k.schedule, k.timezone, k.registered, k.registered_at, COALESCE(p.url, ''),
			s.since, `+summaryRunColumns+`
		FROM keys k
		LEFT JOIN latest lt ON lt.workspace_key = k.workspace_key
		LEFT JOIN runs r ON r.id = lt.id
		LEFT JOIN pull_requests p ON p.workspace_key = k.workspace_key
		LEFT JOIN starts s ON s.workspace_key = k.workspace_key
		ORDER BY k.repository, k.stack, k.workspace`)
	if err != nil {
		return nil, fmt.Errorf("summaries: %w", err)
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var sm Summary
		var r Run
		err := scanRunWith(rows, &r, &sm.Workspace.Repository, &sm.Workspace.Stack, &sm.Workspace.Name, &sm.Schedule, &sm.Timezone,
			&sm.Registered, moment{&sm.RegisteredAt}, &sm.PullRequest, moment{&sm.DriftedSince})
		if err != nil {
			return nil, fmt.Errorf("summaries: %w", err)
		}
		if r.ID != 0 {
			sm.Latest = &r
		}
		out = append(out, sm)
	}
	return out, rows.Err()
}

func (l *DB) DriftedSince(ctx context.Context, key string, upTo int64) (time.Time, error) {
	var since time.Time
	err := l.row(ctx, `SELECT MIN(r.started_at) FROM runs r WHERE r.workspace_key = ? AND r.id <= ? AND `+isDrift("r")+`
		AND r.id > COALESCE((SELECT MAX(x.id) FROM runs x WHERE x.workspace_key = ? AND x.id <= ? AND `+endsDrift("x")+`), 0)`,
		key, upTo, key, upTo).Scan(moment{&since})
	if err != nil {
		return time.Time{}, fmt.Errorf("drifted since of %s: %w", key, err)
	}
	return since, nil
}

func (l *DB) SetWorkspaces(ctx context.Context, repository string, ws []Workspace) error {
	return l.tx(ctx, func(tx *txn) error {
		keep := map[string]bool{}
		now := l.d.time(l.now())
		for _, w := range ws {
			key := WorkspaceKey(repository, w.Stack, w.Name)
			keep[key] = true
			if _, err := tx.exec(ctx, `INSERT INTO workspaces (workspace_key, repository, stack, workspace, schedule, timezone, registered_at)
				VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(workspace_key) DO UPDATE SET schedule = excluded.schedule, timezone = excluded.timezone`,
				key, repository, w.Stack, w.Name, w.Schedule, w.Timezone, now); err != nil {
				return err
			}
		}
		rows, err := tx.query(ctx, `SELECT workspace_key FROM workspaces WHERE repository = ?`, repository)
		if err != nil {
			return err
		}
		var gone []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return err
			}
			if !keep[k] {
				gone = append(gone, k)
			}
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		rows.Close()
		for _, k := range gone {
			if _, err := tx.exec(ctx, `DELETE FROM workspaces WHERE workspace_key = ?`, k); err != nil {
				return err
			}
		}
		return nil
	})
}

func (l *DB) Workspaces(ctx context.Context) ([]Workspace, error) {
	rows, err := l.query(ctx, `SELECT repository, stack, workspace, schedule, timezone, registered_at FROM workspaces
		ORDER BY repository, stack, workspace`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Workspace
	for rows.Next() {
		var w Workspace
		if err := rows.Scan(&w.Repository, &w.Stack, &w.Workspace.Name, &w.Schedule, &w.Timezone, moment{&w.RegisteredAt}); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

func (l *DB) Prune(ctx context.Context, before time.Time, keepPerWorkspace int) (int, error) {
	if before.IsZero() && keepPerWorkspace <= 0 {
		return 0, nil
	}
	cutoff := l.d.bound(before) // zero: the epoch, which no run finished before
	keep := keepPerWorkspace
	if keep <= 0 {
		keep = -1 // no cap
	}
	// Old or beyond the cap, and none of: the latest finished run of its
	// workspace; the last run that ended drift and the first drift run
	// after it, which date the open drift (isDrift, endsDrift); a run whose
	// plan a remediation branch or a waiting approval still refers to.
	res, err := l.exec(ctx, `DELETE FROM runs WHERE id IN (
		SELECT x.id FROM (
			SELECT id, workspace_key, finished_at, ROW_NUMBER() OVER (PARTITION BY workspace_key ORDER BY id DESC) AS n
			FROM runs WHERE status IN ('finished', 'interrupted')
		) x
		WHERE (x.finished_at < ? OR (? > 0 AND x.n > ?))
		  AND x.id NOT IN (SELECT MAX(id) FROM runs WHERE status = 'finished' GROUP BY workspace_key)
		  AND x.id NOT IN (SELECT MAX(e.id) FROM runs e WHERE `+endsDrift("e")+` GROUP BY e.workspace_key)
		  AND x.id NOT IN (SELECT MIN(d.id) FROM runs d WHERE `+isDrift("d")+`
			AND d.id > COALESCE((SELECT MAX(s.id) FROM runs s WHERE s.workspace_key = d.workspace_key AND `+endsDrift("s")+`), 0)
			GROUP BY d.workspace_key)
		  AND x.id NOT IN (SELECT run_id FROM branches)
		  AND x.id NOT IN (SELECT approved_run FROM runs WHERE status IN ('queued', 'running')))`,
		cutoff, keep, keep)
	if err != nil {
		return 0, fmt.Errorf("prune runs: %w", err)
	}
	n, _ := res.RowsAffected()
	if n >= vacuumAfter && l.d.vacuum {
		// Give the space back to the file system, not only to SQLite.
		if _, err := l.exec(ctx, `VACUUM`); err != nil {
			return int(n), fmt.Errorf("prune runs: vacuum: %w", err)
		}
	}
	return int(n), nil
}

// vacuumAfter is how many pruned runs make a VACUUM worth its pause.
const vacuumAfter = 100

// SetClock replaces the ledger's clock, for tests that need fixed times.
func (l *DB) SetClock(now func() time.Time) { l.now = now }
