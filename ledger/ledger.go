// Package ledger keeps runs and the run queue, in SQLite (embedded, the
// default: modernc.org/sqlite, no cgo, WAL) or in PostgreSQL (pgx v5), which
// several trueline processes can share. Open picks the database by URL.
//
// One implementation, DB, serves both: its SQL is written once, with "?"
// placeholders, and a small dialect (dialect.go) gives each database its
// placeholders, column types (Postgres: timestamptz and boolean), and
// locking. SQLite has one writer, the ledger's only connection. Postgres
// claims with SELECT ... FOR UPDATE SKIP LOCKED, so two processes never
// claim one run; serialises claims in one repository with an advisory lock,
// so a per-repository limit holds across processes; and runs a transaction
// that lost a race to another process (two enqueues of one workspace) again.
// Migrations are versioned (schema_migrations) and applied at open, each in
// a transaction that first takes the database's write lock (an advisory lock
// on Postgres), so ledgers opened at once migrate once.
//
// A job queue beside the ledger: on Postgres, DB is a database/sql *sql.DB
// over pgx's stdlib driver, drawn from a pgxpool.Pool (stdlib.OpenDBFromPool).
// A ledger transaction is a *sql.Tx (txn.Tx), so River's riverdatabasesql
// driver can insert a job inside it (InsertTx) and the job commits, or
// vanishes, with the run it is for; the pool beneath serves what
// database/sql cannot, such as River's LISTEN/NOTIFY listener (riverpgxv5).
//
// Invariants, enforced by the schema and not only by the code: at most one
// queued and one running run per workspace; a run's record is written in
// one transaction, so a half-written record cannot exist.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/run"
)

// Status of a run.
type Status string

const (
	Queued      Status = "queued"
	Running     Status = "running"
	Finished    Status = "finished"
	Interrupted Status = "interrupted" // the process died or stopped during the run
)

// Request asks for a run of one workspace.
type Request struct {
	run.Workspace
	Commit  string // empty: the branch head when the run starts
	Trigger string // schedule, commit, webhook, manual, merge, approve, retry
	RetryOf int64
	// Approval is the plan hash of a plan a person approved (of run
	// ApprovedRun, or of a merged remediation branch): the run plans at
	// Commit and applies only a plan with exactly those changes.
	Approval    string
	ApprovedRun int64
	ApprovedBy  string
}

// WorkspaceKey joins the three names that identify a workspace
// (run.Workspace.Key).
func WorkspaceKey(repository, stack, workspace string) string {
	return run.Workspace{Repository: repository, Stack: stack, Name: workspace}.Key()
}

// Run is one run as the ledger knows it.
type Run struct {
	ID int64 `json:"id"`
	// Workspace is whose run it is: in JSON "repository", "stack" and
	// "workspace" beside the rest.
	run.Workspace
	Commit     string    `json:"commit"`
	Trigger    string    `json:"trigger"`
	Triggers   []string  `json:"triggers"` // every trigger that joined this run
	Status     Status    `json:"status"`
	QueuedAt   time.Time `json:"queued_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	RetryOf    int64     `json:"retry_of,omitempty"`
	// Applying is set once an apply has started: such a run is never applied again.
	Applying bool `json:"applying"`
	// Approval is the plan hash this run may apply (see Request).
	Approval    string `json:"approval,omitempty"`
	ApprovedRun int64  `json:"approved_run,omitempty"`
	ApprovedBy  string `json:"approved_by,omitempty"`
	Result
}

// Result is what a finished run found and did.
type Result struct {
	Verdict drift.Verdict `json:"verdict,omitempty"`
	// Findings are what the plan held, masked: drift, pending and noise,
	// and the plan's mode (Mode), stored with them; in JSON "findings", and
	// the mode also as "mode".
	Findings drift.Result `json:"-"`
	// Action is what the policy decided and what came of it; in JSON
	// "action", "action_reason", "action_result" and "escalated".
	Action run.Action `json:"-"`
	// Failure says why and at which stage the run failed; in JSON "error"
	// and "stage".
	Failure    *run.Failure `json:"-"`
	Log        string       `json:"-"`
	DurationMS int64        `json:"duration_ms,omitempty"`
	// Record is where the run's record lives beside the state: an s3://
	// URL, a directory, or "ledger" for backends records are not written beside.
	Record string `json:"record,omitempty"`
	// RecordError says why the record beside the state could not be written.
	RecordError string `json:"record_error,omitempty"`
	// Plan identifies exactly what the run's plan would do; approvals bind
	// to it. Its hashes show nothing of the values.
	Plan drift.PlanHash `json:"-"`
}

// Approvable is the one rule for which runs a person may approve: a
// finished run with drift or pending changes that its policy did not apply
// (it escalated, reported or proposed them), with a recorded plan to bind
// to, that is the latest finished run of its workspace (latest is that
// run's id) and finished no longer than within ago. It says why not, or nil.
func (r Run) Approvable(latest int64, within time.Duration, now time.Time) error {
	switch {
	case r.Status != Finished:
		return fmt.Errorf("run %d is %s, not finished", r.ID, r.Status)
	case r.Verdict != drift.Drifted && r.Verdict != drift.Pending && r.Verdict != drift.DriftedAndPending:
		return fmt.Errorf("run %d has no changes to approve (verdict %q)", r.ID, r.Verdict)
	case r.Plan.Plan == "":
		return fmt.Errorf("run %d has no recorded plan to bind an approval to", r.ID)
	case r.Action.Kind == policies.Apply || r.Applying:
		return fmt.Errorf("run %d was applied by its policy; there is nothing to approve", r.ID)
	case latest != r.ID:
		return fmt.Errorf("run %d is not the latest finished run of %s (%s); approve the latest", r.ID, r.Stack, r.Workspace.Name)
	}
	if age := now.Sub(r.FinishedAt); age > within {
		return fmt.Errorf("run %d finished %s ago, longer than approve_within = %s; plan again and approve the new run",
			r.ID, age.Round(time.Minute), within)
	}
	return nil
}

// Converged reports whether the run applied its plan and the workspace was
// in sync afterwards: whatever it found, it left the workspace remediated.
func (r Result) Converged() bool { return r.Action.Converged() }

// Mode is how the plan behind the verdict was made: drift.RefreshOnly
// (drift alone: an in_sync verdict means no drift, the code not compared)
// or drift.Full; empty for a run that failed before planning, and for runs
// recorded before modes existed, which were full.
func (r Result) Mode() drift.Mode { return r.Findings.Mode }

// runWire is a run's JSON form (the API's, and what `trueline plan` and
// `trueline runs` read): the action and the failure as flat fields beside
// the rest, the findings as they are stored, and the log when it was read.
type runWire struct {
	Action       string        `json:"action,omitempty"`
	ActionReason string        `json:"action_reason,omitempty"`
	ActionResult run.Result    `json:"action_result,omitempty"`
	Escalated    bool          `json:"escalated,omitempty"`
	Mode         drift.Mode    `json:"mode,omitempty"`
	Error        string        `json:"error,omitempty"`
	Stage        run.Stage     `json:"stage,omitempty"`
	Findings     *drift.Result `json:"findings,omitempty"`
	Log          string        `json:"log,omitempty"`
}

// MarshalJSON writes the run's wire form.
func (r Run) MarshalJSON() ([]byte, error) {
	type plain Run
	w := runWire{Action: string(r.Action.Kind), ActionReason: r.Action.Reason, ActionResult: r.Action.Result,
		Escalated: r.Action.Escalated, Mode: r.Mode(), Log: r.Log}
	if r.Findings.Verdict != "" {
		w.Findings = &r.Findings
	}
	if r.Failure != nil {
		w.Error, w.Stage = r.Failure.Message, r.Failure.Stage
	}
	return json.Marshal(struct {
		plain
		runWire
	}{plain(r), w})
}

// UnmarshalJSON reads the run's wire form back.
func (r *Run) UnmarshalJSON(b []byte) error {
	type plain Run
	var v struct {
		plain
		runWire
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Run(v.plain)
	r.Action = run.Action{Kind: policies.Action(v.Action), Reason: v.ActionReason, Result: v.ActionResult, Escalated: v.Escalated}
	if v.Error != "" || v.Stage != "" {
		r.Failure = &run.Failure{Stage: v.Stage, Message: v.Error, Interrupted: r.Status == Interrupted}
	}
	if v.Findings != nil {
		r.Findings = *v.Findings
	}
	if v.Mode != "" {
		r.Findings.Mode = v.Mode
	}
	r.Log = v.Log
	return nil
}

// Branch is a remediation branch trueline pushed: merging it approves the
// plan it was made from, if the merged history contains Head.
type Branch struct {
	Name  string
	Head  string // the commit trueline pushed
	RunID int64  // the run whose plan the branch proposes
	Plan  drift.PlanHash
}

// Summary is one workspace as every overview shows it (the dashboard, the
// report, the metrics): who it is, its schedule, its latest finished run,
// its state now, since when it is drifted, and its open pull request.
type Summary struct {
	Workspace          run.Workspace
	Schedule, Timezone string
	Registered         bool      // declared by a stack at the repository's head
	RegisteredAt       time.Time // when it was first seen declared
	Latest             *Run      // nil: never checked; its log is not read
	DriftedSince       time.Time
	PullRequest        string
}

// State is the workspace's verdict now: its latest run's, except that a run
// that applied and converged left it in sync; "" when it was never checked.
func (s Summary) State() drift.Verdict {
	switch {
	case s.Latest == nil:
		return ""
	case s.Latest.Converged():
		return drift.InSync
	}
	return s.Latest.Verdict
}

// Workspace is a registered workspace and its schedule.
type Workspace struct {
	run.Workspace
	Schedule, Timezone string // empty schedule: not scheduled
	RegisteredAt       time.Time
}

// Limits bound what Claim may start.
type Limits struct {
	PerRepository int // 0: no limit
}

// Filter selects runs for List. Zero fields match everything.
type Filter struct {
	Repository, Stack, Workspace string
	Status                       Status
	Before                       int64 // only runs with a smaller id (paging)
	Limit                        int   // default 50
}

// ErrNotFound is returned for a run id that does not exist.
var ErrNotFound = errors.New("run not found")

// Ledger stores runs and the queue.
type Ledger interface {
	// Enqueue queues a run, or joins the workspace's queued run: then joined
	// is true and the returned run is the existing one.
	Enqueue(ctx context.Context, req Request) (run Run, joined bool, err error)
	// EnqueueAll queues every request and records head as the repository's
	// last queued commit, in one transaction: either all of a commit's runs
	// are queued and the head moves, or nothing changes. Empty head: no move.
	EnqueueAll(ctx context.Context, repository, head string, reqs []Request) ([]Run, error)
	// Claim marks the oldest startable queued run running and returns it;
	// nil when nothing can start (none queued, or every candidate's
	// workspace or repository is busy).
	Claim(ctx context.Context, lim Limits) (*Run, error)
	// SetCommit records the commit a claimed run resolved.
	SetCommit(ctx context.Context, id int64, commit string) error
	// MarkApplying records, before apply starts, that this run applies.
	MarkApplying(ctx context.Context, id int64) error
	// Finish records a running run's result.
	Finish(ctx context.Context, id int64, res Result) (Run, error)
	// Recover marks runs left running by a dead process interrupted and
	// queues each again once (not a retry of a retry).
	Recover(ctx context.Context) (interrupted []Run, err error)
	// Release marks runs this process is stopping interrupted, and queues
	// each again once, as Recover does.
	Release(ctx context.Context, ids []int64) error
	Get(ctx context.Context, id int64) (Run, error)
	List(ctx context.Context, f Filter) ([]Run, error)
	// Head is the last commit of a repository whose runs were queued ("" if
	// none); EnqueueAll moves it.
	Head(ctx context.Context, repository string) (string, error)
	// Thread, SetThread and DeleteThread keep the notification thread of
	// each open incident (notify.Threads).
	Thread(ctx context.Context, key string) (channel, ts string, err error)
	SetThread(ctx context.Context, key, channel, ts string) error
	DeleteThread(ctx context.Context, key string) error
	// PullRequest, SetPullRequest and DeletePullRequest keep the open
	// remediation pull request of each workspace (number 0: none).
	PullRequest(ctx context.Context, key string) (number int64, url string, err error)
	SetPullRequest(ctx context.Context, key string, number int64, url string) error
	DeletePullRequest(ctx context.Context, key string) error
	// Announce records mark (what a notification said: its kind and the
	// drift's fingerprint) as the workspace's last announcement, and says
	// whether it differs from the one before: only then is it sent. Kept in
	// the ledger, so a restart repeats nothing.
	Announce(ctx context.Context, key, mark string) (fresh bool, err error)
	// SetRecord notes where the run's record was written beside the state
	// ("ledger" for backends records are not written beside), or why it
	// could not be.
	SetRecord(ctx context.Context, id int64, where, errMsg string) error
	// Summaries describes every workspace, registered or with runs, in one
	// query, ordered by repository, stack and workspace.
	Summaries(ctx context.Context) ([]Summary, error)
	// Converged lists every run that applied and converged and finished at
	// or after since, newest first.
	Converged(ctx context.Context, since time.Time) ([]Run, error)
	// LastApplied is the commit of the workspace's last run that applied and converged.
	LastApplied(ctx context.Context, key string) (string, error)
	// DriftedSince is when the drift incident that run upTo belongs to began (zero if none).
	DriftedSince(ctx context.Context, key string, upTo int64) (time.Time, error)
	// SetWorkspaces records a repository's workspaces and their schedules
	// (replacing what it had); Workspaces lists every repository's.
	SetWorkspaces(ctx context.Context, repository string, ws []Workspace) error
	Workspaces(ctx context.Context) ([]Workspace, error)
	// SetBranch records the remediation branch trueline pushed for a
	// workspace; Branch returns it (ok false: none).
	SetBranch(ctx context.Context, key string, b Branch) error
	Branch(ctx context.Context, key string) (b Branch, ok bool, err error)
	// Prune deletes finished and interrupted runs that finished before
	// before (zero: none for age) or beyond the newest keepPerWorkspace of
	// their workspace (0: no cap), except the runs the ledger still needs:
	// each workspace's latest, the two that date its open drift, and any a
	// remediation branch or waiting approval refers to. It returns how many
	// it deleted.
	Prune(ctx context.Context, before time.Time, keepPerWorkspace int) (int, error)
	Close() error
}
