package ledger

import (
	"context"
	"fmt"
)

// migrations are applied in order; each runs once, in its own transaction.
// They are written for both dialects: {{...}} are the type words
// dialect.types replaces (SQLite's are what these migrations always said).
var migrations = []string{
	// 1: runs and the queue.
	`CREATE TABLE runs (
		id            {{id}},
		repository    TEXT NOT NULL,
		stack         TEXT NOT NULL,
		workspace     TEXT NOT NULL,
		workspace_key TEXT NOT NULL,
		commit_sha    TEXT NOT NULL DEFAULT '',
		trigger       TEXT NOT NULL,
		triggers      TEXT NOT NULL DEFAULT '[]',
		status        TEXT NOT NULL,
		queued_at     {{time!}},
		started_at    {{time}},
		finished_at   {{time}},
		retry_of      {{int}} NOT NULL DEFAULT 0,
		applying      {{bool}},
		verdict       TEXT NOT NULL DEFAULT '',
		findings      TEXT NOT NULL DEFAULT '',
		action        TEXT NOT NULL DEFAULT '',
		action_reason TEXT NOT NULL DEFAULT '',
		error         TEXT NOT NULL DEFAULT '',
		log           TEXT NOT NULL DEFAULT '',
		duration_ms   {{int}} NOT NULL DEFAULT 0,
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
		updated_at {{time!}}
	);`,
	// 3: the notification thread of each open incident.
	`CREATE TABLE threads (
		key        TEXT PRIMARY KEY,
		channel    TEXT NOT NULL,
		ts         TEXT NOT NULL,
		updated_at {{time!}}
	);`,
	// 4: the open remediation pull request of each workspace.
	`CREATE TABLE pull_requests (
		workspace_key TEXT PRIMARY KEY,
		number        {{int}} NOT NULL,
		url           TEXT NOT NULL,
		updated_at    {{time!}}
	);`,
	`CREATE TABLE workspaces (
		workspace_key TEXT PRIMARY KEY,
		repository    TEXT NOT NULL,
		stack         TEXT NOT NULL,
		workspace     TEXT NOT NULL,
		schedule      TEXT NOT NULL,
		timezone      TEXT NOT NULL,
		registered_at {{time!}}
	);`,
	// 6: approvals: the fingerprint of an escalated plan a person approved.
	`ALTER TABLE runs ADD COLUMN approval TEXT NOT NULL DEFAULT '';`,
	// 7: where the run's record was written beside the state ("ledger": nowhere else).
	`ALTER TABLE runs ADD COLUMN record TEXT NOT NULL DEFAULT '';`,
	// 8: approvals bind to a plan hash: each run's, the approved run, who
	// approved, and the remediation branches whose merge approves.
	`ALTER TABLE runs ADD COLUMN plan_hash TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN plan_resources TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN approved_run {{int}} NOT NULL DEFAULT 0;
	ALTER TABLE runs ADD COLUMN approved_by TEXT NOT NULL DEFAULT '';
	CREATE TABLE branches (
		workspace_key  TEXT PRIMARY KEY,
		name           TEXT NOT NULL,
		head_sha       TEXT NOT NULL,
		run_id         {{int}} NOT NULL,
		plan_hash      TEXT NOT NULL,
		plan_resources TEXT NOT NULL,
		updated_at     {{time!}}
	);`,
	// 9: the action and its result apart, escalation, and the stage and kind
	// of a failure; older "apply:converged" actions are split.
	`ALTER TABLE runs ADD COLUMN action_result TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN escalated {{bool}};
	ALTER TABLE runs ADD COLUMN failure_stage TEXT NOT NULL DEFAULT '';
	ALTER TABLE runs ADD COLUMN failure_kind TEXT NOT NULL DEFAULT '';
	UPDATE runs SET action_result = substr(action, {{strpos}}(action, ':') + 1), action = substr(action, 1, {{strpos}}(action, ':') - 1)
		WHERE {{strpos}}(action, ':') > 0;
	UPDATE runs SET escalated = TRUE WHERE action_reason LIKE 'escalated%';
	UPDATE runs SET failure_kind = 'interrupted' WHERE status = 'interrupted';
	CREATE INDEX runs_converged ON runs(workspace_key, id) WHERE action = 'apply' AND action_result = 'converged';`,
	// 10: what was last announced for each workspace, so a restart does not
	// announce the same drift again.
	`CREATE TABLE announcements (
		workspace_key TEXT PRIMARY KEY,
		mark          TEXT NOT NULL,
		updated_at    {{time!}}
	);`,
}

// migrateLockKey is the Postgres advisory lock that serialises migrations
// of ledgers opened at the same time ("trlnmig").
const migrateLockKey int64 = 0x74726c6e6d6967

// migrate applies the migrations the database lacks, one transaction
// each. Every transaction first takes the database's write lock (Postgres:
// an advisory lock held until it ends; SQLite: its immediate transaction)
// and then reads the version, so of two processes opening one ledger at
// once, one applies a migration and the other finds it applied.
func (l *DB) migrate(ctx context.Context) error {
	for {
		var done bool
		err := l.tx(ctx, func(tx *txn) error {
			if l.d.migrateLock != "" {
				if _, err := tx.exec(ctx, l.d.migrateLock, migrateLockKey); err != nil {
					return fmt.Errorf("lock for migrations: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, l.d.types.Replace(
				`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at {{time!}})`)); err != nil {
				return err
			}
			var current int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
				return err
			}
			switch {
			case current > len(migrations):
				return fmt.Errorf("schema version %d is newer than this trueline knows (%d); upgrade trueline", current, len(migrations))
			case current == len(migrations):
				done = true
				return nil
			}
			v := current + 1
			if _, err := tx.ExecContext(ctx, l.d.types.Replace(migrations[v-1])); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			_, err := tx.exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, l.d.time(l.now()))
			return err
		})
		if err != nil || done {
			return err
		}
	}
}
