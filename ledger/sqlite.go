package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/run"
	_ "modernc.org/sqlite" // the "sqlite" driver
)

// migrations are applied in order; each runs once, in its own transaction.
var migrations = []string{
	// 1: runs and the queue.
	`CREATE TABLE runs (
		id            INTEGER PRIMARY KEY AUTOINCREMENT,
		repository    TEXT NOT NULL,
		stack         TEXT NOT NULL,
		workspace     TEXT NOT NULL,
		workspace_key TEXT NOT NULL,
		commit_sha    TEXT NOT NULL DEFAULT '',
		trigger       TEXT NOT NULL,
		triggers      TEXT NOT NULL DEFAULT '[]',
		status        TEXT NOT NULL,
		queued_at     INTEGER NOT NULL,
		started_at    INTEGER NOT NULL DEFAULT 0,
		finished_at   INTEGER NOT NULL DEFAULT 0,
		retry_of      INTEGER NOT NULL DEFAULT 0,
		applying      INTEGER NOT NULL DEFAULT 0,
		verdict       TEXT NOT NULL DEFAULT '',
		findings      TEXT NOT NULL DEFAULT '',
		action        TEXT NOT NULL DEFAULT '',
		action_reason TEXT NOT NULL DEFAULT '',
		error         TEXT NOT NULL DEFAULT '',
		log           TEXT NOT NULL DEFAULT '',
		duration_ms   INTEGER NOT NULL DEFAULT 0,
		record_error  TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX runs_status ON runs(status, queued_at);
	CREATE INDEX runs_workspace ON runs(workspace_key, id);
	CREATE UNIQUE INDEX runs_one_queued ON runs(workspace_key) WHERE status = 'queued';
	CREATE UNIQUE INDEX runs_one_running ON runs(workspace_key) WHERE status = 'running';`,
	// 2: the last commit of each repository whose runs were queued.
	`CREATE TABLE heads (
		repository TEXT PRIMARY KEY,
		commit_sha TEXT NOT NULL,
		updated_at INTEGER NOT NULL
	);`,
	// 3: the notification thread of each open incident.
	`CREATE TABLE threads (
		key        TEXT PRIMARY KEY,
		channel    TEXT NOT NULL,
		ts         TEXT NOT NULL,
		updated_at INTEGER NOT NULL
	);`,
	// 4: the open remediation pull request of each workspace.
	`CREATE TABLE pull_requests (
		workspace_key TEXT PRIMARY KEY,
		number        INTEGER NOT NULL,
		url           TEXT NOT NULL,
		updated_at    INTEGER NOT NULL
	);`,
	`CREATE TABLE workspaces (
		workspace_key TEXT PRIMARY KEY,
		repository    TEXT NOT NULL,
		stack         TEXT NOT NULL,
		workspace     TEXT NOT NULL,
		schedule      TEXT NOT NULL,
		timezone      TEXT NOT NULL,
		registered_at INTEGER NOT NULL
	);`,
	// 6: approvals: the fingerprint of an escalated plan a person approved.
	`ALTER TABLE runs ADD COLUMN approval TEXT NOT NULL DEFAULT '';`,
	// 7: where the run's record was written beside the state ("ledger": nowhere else).
	`ALTER TABLE runs ADD COLUMN record TEXT NOT NULL DEFAULT '';`,
	// 8: approvals bind to a plan hash: each run's, the approved run, who
	// approved, and the remediation branches whose merge approves.
	`ALTER TABLE runs ADD COLUMN plan_hash TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN plan_resources TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN approved_run INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE runs ADD COLUMN approved_by TEXT NOT NULL DEFAULT '';
	CREATE TABLE branches (
		workspace_key  TEXT PRIMARY KEY,
		name           TEXT NOT NULL,
		head_sha       TEXT NOT NULL,
		run_id         INTEGER NOT NULL,
		plan_hash      TEXT NOT NULL,
		plan_resources TEXT NOT NULL,
		updated_at     INTEGER NOT NULL
	);`,
	// 9: the action and its result apart, escalation, and the stage and kind
	// of a failure; older "apply:converged" actions are split.
	`ALTER TABLE runs ADD COLUMN action_result TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN escalated INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE runs ADD COLUMN failure_stage TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN failure_kind TEXT NOT NULL DEFAULT '';
	UPDATE runs SET action_result = substr(action, instr(action, ':') + 1), action = substr(action, 1, instr(action, ':') - 1)
		WHERE instr(action, ':') > 0;
	UPDATE runs SET escalated = 1 WHERE action_reason LIKE 'escalated%';
	UPDATE runs SET failure_kind = 'interrupted' WHERE status = 'interrupted';
	CREATE INDEX runs_converged ON runs(workspace_key, id) WHERE action = 'apply' AND action_result = 'converged';`,
	// 10: what was last announced for each workspace, so a restart does not
	// announce the same drift again.
	`CREATE TABLE announcements (
		workspace_key TEXT PRIMARY KEY,
		mark          TEXT NOT NULL,
		updated_at    INTEGER NOT NULL
	);`,
}

// SQLite is the embedded ledger.
type SQLite struct {
	db  *sql.DB
	now func() time.Time
}

var _ Ledger = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the ledger at path and migrates it.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	// One connection: writes are serialised in-process, and a claim's
	// read-then-write cannot interleave with another's.
	db.SetMaxOpenConns(1)
	l := &SQLite{db: db, now: time.Now}
	if err := l.migrate(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("ledger %s: %w", path, err), db.Close())
	}
	// The ledger holds run logs and who approved what: this user's only,
	// whatever mode an earlier version or a copy left. SQLite gives the -wal
	// and -shm files the database file's mode when it creates them.
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(f, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, errors.Join(fmt.Errorf("ledger %s: %w", path, err), db.Close())
		}
	}
	return l, nil
}

func (l *SQLite) migrate(ctx context.Context) error {
	if _, err := l.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	var current int
	if err := l.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return err
	}
	if current > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this trueline knows (%d); upgrade trueline", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		err := l.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, l.now().UnixMilli())
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *SQLite) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close closes the database.
func (l *SQLite) Close() error { return l.db.Close() }

const runColumns = `id, repository, stack, workspace, commit_sha, trigger, triggers, status, queued_at, started_at,
	finished_at, retry_of, applying, verdict, findings, action, action_reason, error, log, duration_ms, record_error, approval, record,
	plan_hash, plan_resources, approved_run, approved_by, action_result, escalated, failure_stage, failure_kind`

// listColumns are runColumns without the log: lists (pages, the report,
// metrics) never read logs, which are the bulk of a run's row.
var listColumns = strings.Replace(runColumns, " log,", " '',", 1)

// summaryRunColumns are listColumns of the latest run r in Summaries,
// each defaulted for a workspace that has no finished run yet.
var summaryRunColumns = func() string {
	ints := map[string]bool{"id": true, "queued_at": true, "started_at": true, "finished_at": true, "retry_of": true,
		"applying": true, "duration_ms": true, "approved_run": true, "escalated": true}
	var cols []string
	for _, c := range strings.Split(runColumns, ",") {
		c = strings.TrimSpace(c)
		switch {
		case c == "log":
			cols = append(cols, "''")
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
	var queued, started, finished int64
	var applying, escalated int
	err := s.Scan(append(lead, &r.ID, &r.Repository, &r.Stack, &r.Workspace.Name, &r.Commit, &r.Trigger, &triggers, &r.Status,
		&queued, &started, &finished, &r.RetryOf, &applying, &r.Verdict, &findings, &action, &r.Action.Reason,
		&errMsg, &r.Log, &r.DurationMS, &r.RecordError, &r.Approval, &r.Record,
		&r.Plan.Plan, &resources, &r.ApprovedRun, &r.ApprovedBy, &result, &escalated, &stage, &kind)...)
	if err != nil {
		return err
	}
	r.Action.Kind, r.Action.Result, r.Action.Escalated = policies.Action(action), run.Result(result), escalated != 0
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
	r.QueuedAt = fromMillis(queued)
	r.StartedAt = fromMillis(started)
	r.FinishedAt = fromMillis(finished)
	r.Applying = applying != 0
	return nil
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func (l *SQLite) Enqueue(ctx context.Context, req Request) (Run, bool, error) {
	var run Run
	var joined bool
	err := l.tx(ctx, func(tx *sql.Tx) error {
		var err error
		run, joined, err = l.enqueueTx(ctx, tx, req)
		return err
	})
	if err != nil {
		return Run{}, false, fmt.Errorf("enqueue %s: %w", req.Key(), err)
	}
	return run, joined, nil
}

func (l *SQLite) EnqueueAll(ctx context.Context, repository, head string, reqs []Request) ([]Run, error) {
	var runs []Run
	err := l.tx(ctx, func(tx *sql.Tx) error {
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
		_, err := tx.ExecContext(ctx, `INSERT INTO heads (repository, commit_sha, updated_at) VALUES (?, ?, ?)
			ON CONFLICT(repository) DO UPDATE SET commit_sha = excluded.commit_sha, updated_at = excluded.updated_at`,
			repository, head, l.now().UnixMilli())
		return err
	})
	if err != nil {
		return nil, err
	}
	return runs, nil
}

func (l *SQLite) enqueueTx(ctx context.Context, tx *sql.Tx, req Request) (Run, bool, error) {
	if req.Repository == "" || req.Stack == "" || req.Name == "" || req.Trigger == "" {
		return Run{}, false, errors.New("repository, stack, workspace and trigger are required")
	}
	row := tx.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE workspace_key = ? AND status = 'queued'`, req.Key())
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
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET triggers = ?, commit_sha = ?, approval = ?, approved_run = ?, approved_by = ? WHERE id = ?`,
			string(t), existing.Commit, existing.Approval, existing.ApprovedRun, existing.ApprovedBy, existing.ID); err != nil {
			return Run{}, false, err
		}
		return existing, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Run{}, false, err
	}
	t, _ := json.Marshal([]string{req.Trigger})
	res, err := tx.ExecContext(ctx, `INSERT INTO runs (repository, stack, workspace, workspace_key, commit_sha, trigger, triggers, status, queued_at, retry_of,
		approval, approved_run, approved_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)`,
		req.Repository, req.Stack, req.Name, req.Key(), req.Commit, req.Trigger, string(t), l.now().UnixMilli(), req.RetryOf,
		req.Approval, req.ApprovedRun, req.ApprovedBy)
	if err != nil {
		return Run{}, false, err
	}
	id, _ := res.LastInsertId()
	run, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
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

func (l *SQLite) Claim(ctx context.Context, lim Limits) (*Run, error) {
	var claimed *Run
	err := l.tx(ctx, func(tx *sql.Tx) error {
		// Longest-expected first among the startable: a workspace's last
		// duration orders the queue, so one slow stack does not finish last.
		q := `SELECT r.id FROM runs r
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
		q += ` ORDER BY COALESCE(p.duration_ms, 1e18) DESC, r.queued_at, r.id LIMIT 1`
		var id int64
		if err := tx.QueryRowContext(ctx, q, args...).Scan(&id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = 'running', started_at = ? WHERE id = ?`, l.now().UnixMilli(), id); err != nil {
			return err
		}
		r, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
		claimed = &r
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return claimed, nil
}

func (l *SQLite) SetCommit(ctx context.Context, id int64, commit string) error {
	return l.update(ctx, id, `UPDATE runs SET commit_sha = ? WHERE id = ? AND status = 'running'`, commit, id)
}

func (l *SQLite) MarkApplying(ctx context.Context, id int64) error {
	return l.update(ctx, id, `UPDATE runs SET applying = 1 WHERE id = ? AND status = 'running' AND applying = 0`, id)
}

// Finish records a running run's result and returns the finished run, as
// every reader after it (the record, the announcement) takes it.
func (l *SQLite) Finish(ctx context.Context, id int64, res Result) (Run, error) {
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
		l.now().UnixMilli(), res.Verdict, string(findings), string(res.Action.Kind), res.Action.Reason, string(res.Action.Result),
		boolInt(res.Action.Escalated), errMsg, stage, kind, res.Log,
		res.DurationMS, res.RecordError, res.Plan.Plan, resources, id)
	if err != nil {
		return Run{}, err
	}
	return l.Get(ctx, id)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func marshalResources(p drift.PlanHash) (string, error) {
	if len(p.Resources) == 0 {
		return "", nil
	}
	b, err := json.Marshal(p.Resources)
	return string(b), err
}

func (l *SQLite) SetBranch(ctx context.Context, key string, b Branch) error {
	resources, err := marshalResources(b.Plan)
	if err != nil {
		return err
	}
	_, err = l.db.ExecContext(ctx, `INSERT INTO branches (workspace_key, name, head_sha, run_id, plan_hash, plan_resources, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (workspace_key) DO UPDATE SET name = excluded.name, head_sha = excluded.head_sha, run_id = excluded.run_id,
		  plan_hash = excluded.plan_hash, plan_resources = excluded.plan_resources, updated_at = excluded.updated_at`,
		key, b.Name, b.Head, b.RunID, b.Plan.Plan, resources, l.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("branch of %s: %w", key, err)
	}
	return nil
}

func (l *SQLite) Branch(ctx context.Context, key string) (Branch, bool, error) {
	var b Branch
	var resources string
	err := l.db.QueryRowContext(ctx, `SELECT name, head_sha, run_id, plan_hash, plan_resources FROM branches WHERE workspace_key = ?`, key).
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
func (l *SQLite) update(ctx context.Context, id int64, q string, args ...any) error {
	res, err := l.db.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("run %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("run %d: not running, or already in that state", id)
	}
	return nil
}

func (l *SQLite) Recover(ctx context.Context) ([]Run, error) {
	return l.interrupt(ctx, `SELECT `+runColumns+` FROM runs WHERE status = 'running' ORDER BY id`, nil,
		"interrupted: trueline stopped during the run")
}

func (l *SQLite) Release(ctx context.Context, ids []int64) error {
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
func (l *SQLite) interrupt(ctx context.Context, query string, args []any, msg string) ([]Run, error) {
	var out []Run
	err := l.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
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
		now := l.now().UnixMilli()
		for i, r := range out {
			m := msg
			if r.Applying {
				m += " (an apply had started; it is not repeated, the next plan shows where it got)"
			}
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?, failure_kind = 'interrupted',
				failure_stage = CASE WHEN applying = 1 THEN 'apply' ELSE '' END WHERE id = ?`, now, m, r.ID); err != nil {
				return err
			}
			out[i].Status = Interrupted
			if r.RetryOf != 0 {
				continue // re-run once, not forever
			}
			key := r.Workspace.Key()
			var queued int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE workspace_key = ? AND status = 'queued'`, key).Scan(&queued); err != nil {
				return err
			}
			if queued > 0 {
				continue // a later trigger already queued one
			}
			t, _ := json.Marshal([]string{"retry"})
			if _, err := tx.ExecContext(ctx, `INSERT INTO runs (repository, stack, workspace, workspace_key, commit_sha, trigger, triggers, status, queued_at, retry_of)
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

func (l *SQLite) Get(ctx context.Context, id int64) (Run, error) {
	r, err := scanRun(l.db.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	return r, err
}

func (l *SQLite) List(ctx context.Context, f Filter) ([]Run, error) {
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
	return l.query(ctx, q, args...)
}

func (l *SQLite) query(ctx context.Context, q string, args ...any) ([]Run, error) {
	rows, err := l.db.QueryContext(ctx, q, args...)
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

func (l *SQLite) Head(ctx context.Context, repository string) (string, error) {
	var c string
	err := l.db.QueryRowContext(ctx, `SELECT commit_sha FROM heads WHERE repository = ?`, repository).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return c, err
}

// Thread implements notify.Threads.
func (l *SQLite) Thread(ctx context.Context, key string) (string, string, error) {
	var ch, ts string
	err := l.db.QueryRowContext(ctx, `SELECT channel, ts FROM threads WHERE key = ?`, key).Scan(&ch, &ts)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil
	}
	return ch, ts, err
}

func (l *SQLite) SetThread(ctx context.Context, key, channel, ts string) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO threads (key, channel, ts, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET channel = excluded.channel, ts = excluded.ts, updated_at = excluded.updated_at`,
		key, channel, ts, l.now().UnixMilli())
	return err
}

func (l *SQLite) DeleteThread(ctx context.Context, key string) error {
	_, err := l.db.ExecContext(ctx, `DELETE FROM threads WHERE key = ?`, key)
	return err
}

func (l *SQLite) PullRequest(ctx context.Context, key string) (int64, string, error) {
	var n int64
	var u string
	err := l.db.QueryRowContext(ctx, `SELECT number, url FROM pull_requests WHERE workspace_key = ?`, key).Scan(&n, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return n, u, err
}

func (l *SQLite) SetPullRequest(ctx context.Context, key string, number int64, url string) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO pull_requests (workspace_key, number, url, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(workspace_key) DO UPDATE SET number = excluded.number, url = excluded.url, updated_at = excluded.updated_at`,
		key, number, url, l.now().UnixMilli())
	return err
}

func (l *SQLite) DeletePullRequest(ctx context.Context, key string) error {
	_, err := l.db.ExecContext(ctx, `DELETE FROM pull_requests WHERE workspace_key = ?`, key)
	return err
}

func (l *SQLite) Announce(ctx context.Context, key, mark string) (bool, error) {
	var fresh bool
	err := l.tx(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT mark FROM announcements WHERE workspace_key = ?`, key).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err == nil && cur == mark {
			return nil
		}
		fresh = true
		_, err = tx.ExecContext(ctx, `INSERT INTO announcements (workspace_key, mark, updated_at) VALUES (?, ?, ?)
			ON CONFLICT(workspace_key) DO UPDATE SET mark = excluded.mark, updated_at = excluded.updated_at`, key, mark, l.now().UnixMilli())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("announcement of %s: %w", key, err)
	}
	return fresh, nil
}

func (l *SQLite) SetRecord(ctx context.Context, id int64, where, errMsg string) error {
	_, err := l.db.ExecContext(ctx, `UPDATE runs SET record = ?, record_error = ? WHERE id = ?`, where, errMsg, id)
	return err
}

func (l *SQLite) Converged(ctx context.Context, since time.Time) ([]Run, error) {
	return l.query(ctx, `SELECT `+listColumns+` FROM runs WHERE status = 'finished' AND action = 'apply'
		AND action_result = 'converged' AND finished_at >= ? ORDER BY id DESC`, since.UnixMilli())
}

func (l *SQLite) LastApplied(ctx context.Context, key string) (string, error) {
	var c string
	err := l.db.QueryRowContext(ctx, `SELECT commit_sha FROM runs WHERE workspace_key = ? AND status = 'finished'
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

func (l *SQLite) Summaries(ctx context.Context) ([]Summary, error) {
	rows, err := l.db.QueryContext(ctx, `WITH keys AS (
			SELECT workspace_key, repository, stack, workspace, schedule, timezone, 1 AS registered, registered_at FROM workspaces
			UNION ALL
			SELECT DISTINCT workspace_key, repository, stack, workspace, '', '', 0, 0 FROM runs
			WHERE status = 'finished' AND workspace_key NOT IN (SELECT workspace_key FROM workspaces)
		),
		latest AS (SELECT workspace_key, MAX(id) AS id FROM runs WHERE status = 'finished' GROUP BY workspace_key),
		starts AS (
			SELECT r.workspace_key, MIN(r.started_at) AS since FROM runs r WHERE `+isDrift("r")+`
			AND r.id > COALESCE((SELECT MAX(x.id) FROM runs x WHERE x.workspace_key = r.workspace_key AND `+endsDrift("x")+`), 0)
			GROUP BY r.workspace_key
		)
		SELECT k.repository, k.stack, k.workspace, k.schedule, k.timezone, k.registered, k.registered_at, COALESCE(p.url, ''),
			COALESCE(s.since, 0), `+summaryRunColumns+`
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
		var registered int
		var since, registeredAt int64
		var r Run
		err := scanRunWith(rows, &r, &sm.Workspace.Repository, &sm.Workspace.Stack, &sm.Workspace.Name, &sm.Schedule, &sm.Timezone,
			&registered, &registeredAt, &sm.PullRequest, &since)
		if err != nil {
			return nil, fmt.Errorf("summaries: %w", err)
		}
		sm.Registered, sm.RegisteredAt = registered != 0, fromMillis(registeredAt)
		sm.DriftedSince = fromMillis(since)
		if r.ID != 0 {
			sm.Latest = &r
		}
		out = append(out, sm)
	}
	return out, rows.Err()
}

func (l *SQLite) DriftedSince(ctx context.Context, key string, upTo int64) (time.Time, error) {
	var ms sql.NullInt64
	err := l.db.QueryRowContext(ctx, `SELECT MIN(r.started_at) FROM runs r WHERE r.workspace_key = ? AND r.id <= ? AND `+isDrift("r")+`
		AND r.id > COALESCE((SELECT MAX(x.id) FROM runs x WHERE x.workspace_key = ? AND x.id <= ? AND `+endsDrift("x")+`), 0)`,
		key, upTo, key, upTo).Scan(&ms)
	if err != nil || !ms.Valid {
		return time.Time{}, err
	}
	return fromMillis(ms.Int64), nil
}

func (l *SQLite) SetWorkspaces(ctx context.Context, repository string, ws []Workspace) error {
	return l.tx(ctx, func(tx *sql.Tx) error {
		keep := map[string]bool{}
		now := l.now().UnixMilli()
		for _, w := range ws {
			key := WorkspaceKey(repository, w.Stack, w.Name)
			keep[key] = true
			if _, err := tx.ExecContext(ctx, `INSERT INTO workspaces (workspace_key, repository, stack, workspace, schedule, timezone, registered_at)
				VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(workspace_key) DO UPDATE SET schedule = excluded.schedule, timezone = excluded.timezone`,
				key, repository, w.Stack, w.Name, w.Schedule, w.Timezone, now); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, `SELECT workspace_key FROM workspaces WHERE repository = ?`, repository)
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
			if _, err := tx.ExecContext(ctx, `DELETE FROM workspaces WHERE workspace_key = ?`, k); err != nil {
				return err
			}
		}
		return nil
	})
}

func (l *SQLite) Workspaces(ctx context.Context) ([]Workspace, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT repository, stack, workspace, schedule, timezone, registered_at FROM workspaces
		ORDER BY repository, stack, workspace`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Workspace
	for rows.Next() {
		var w Workspace
		var at int64
		if err := rows.Scan(&w.Repository, &w.Stack, &w.Workspace.Name, &w.Schedule, &w.Timezone, &at); err != nil {
			return nil, err
		}
		w.RegisteredAt = fromMillis(at)
		out = append(out, w)
	}
	return out, rows.Err()
}

func (l *SQLite) Prune(ctx context.Context, before time.Time, keepPerWorkspace int) (int, error) {
	if before.IsZero() && keepPerWorkspace <= 0 {
		return 0, nil
	}
	cutoff := int64(0)
	if !before.IsZero() {
		cutoff = before.UnixMilli()
	}
	keep := keepPerWorkspace
	if keep <= 0 {
		keep = -1 // no cap
	}
	// Old or beyond the cap, and none of: the latest finished run of its
	// workspace; the last run that ended drift and the first drift run
	// after it, which date the open drift (isDrift, endsDrift); a run whose
	// plan a remediation branch or a waiting approval still refers to.
	res, err := l.db.ExecContext(ctx, `DELETE FROM runs WHERE id IN (
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
	if n >= vacuumAfter {
		// Give the space back to the file system, not only to SQLite.
		if _, err := l.db.ExecContext(ctx, `VACUUM`); err != nil {
			return int(n), fmt.Errorf("prune runs: vacuum: %w", err)
		}
	}
	return int(n), nil
}

// vacuumAfter is how many pruned runs make a VACUUM worth its pause.
const vacuumAfter = 100

// SetClock replaces the ledger's clock, for tests that need fixed times.
func (l *SQLite) SetClock(now func() time.Time) { l.now = now }
