package state

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/run"
)

// SchemaID names the record format; docs/schema/run-record.v1.json describes it.
const SchemaID = "https://trueline.dev/schema/run-record.v1.json"

// Record is what trueline writes beside the state for one run.
type Record struct {
	Schema     string        `json:"$schema"`
	Version    int           `json:"version"`
	RunID      int64         `json:"run_id"`
	Repository string        `json:"repository"`
	Commit     string        `json:"commit"`
	Stack      string        `json:"stack"`
	Workspace  string        `json:"workspace"`
	Trigger    string        `json:"trigger"`
	Triggers   []string      `json:"triggers"`
	QueuedAt   time.Time     `json:"queued_at"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt time.Time     `json:"finished_at"`
	Verdict    drift.Verdict `json:"verdict"`
	// Mode is how the plan behind the verdict was made: "refresh-only"
	// (drift alone; in_sync means no drift, the code not compared) or
	// "full". Absent for a run that failed before planning; records from
	// before modes existed were full.
	Mode    drift.Mode      `json:"mode,omitempty"`
	Drift   []drift.Finding `json:"drift"`
	Pending []drift.Finding `json:"pending"`
	Noise   []drift.Finding `json:"noise"`
	Action  run.Action      `json:"action"`
	Error   *string         `json:"error"`
	Stage   run.Stage       `json:"stage,omitempty"`
	// LastAppliedCommit is the commit of the last run that applied and converged.
	LastAppliedCommit *string `json:"last_applied_commit"`
	// DriftedSince is when the first run of the current drift incident started.
	DriftedSince *time.Time `json:"drifted_since"`
	State        Location   `json:"state"`
}

// Location says where the state and this record live.
type Location struct {
	Backend string `json:"backend"`
	// Record is where the record was written: s3://bucket/key, a file path,
	// or "ledger" for backends trueline does not write beside.
	Record string `json:"record"`
}

// Writer writes records beside one workspace's state.
type Writer interface {
	// Where names the record location, for the record itself.
	Where() Location
	Write(ctx context.Context, rec Record) error
}

// ErrLedgerOnly is returned for backends records are not written beside.
var ErrLedgerOnly = errors.New("records of this backend live in the ledger only")

// WriterFor returns the writer for a workspace's backend. stackDir is the
// directory terraform runs in (local paths are relative to it).
func WriterFor(ctx context.Context, b Backend, stackDir, workspace string) (Writer, error) {
	switch b.Type {
	case "s3":
		return newS3(ctx, b, workspace)
	case "local":
		return newLocal(b, stackDir, workspace), nil
	}
	return nil, ErrLedgerOnly
}

// Newer reports whether a record finished after another, by time then run id.
func newer(a, b Record) bool {
	if !a.FinishedAt.Equal(b.FinishedAt) {
		return a.FinishedAt.After(b.FinishedAt)
	}
	return a.RunID >= b.RunID
}

func runName(rec Record) string {
	return rec.FinishedAt.UTC().Format("2006-01-02T15:04:05Z") + "-" + strconv.FormatInt(rec.RunID, 10) + ".json"
}
