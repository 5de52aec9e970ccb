package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/notify"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/report"
	"github.com/trueline/trueline/state"
)

// notice is what a run's notification and state record need beyond the
// ledger record.
type notice struct {
	outcome reconcile.Outcome
	targets []string
	backend state.Backend
	dir     string // the stack's directory in its checkout
}

// record writes the run's record beside the workspace's state. A failure
// never loses the run: it is in the ledger already, and gets the error.
func (d *Daemon) record(ctx context.Context, run ledger.Run, n *notice) {
	if n == nil {
		return
	}
	key := run.Workspace.Key()
	where := "ledger"
	w, err := state.WriterFor(ctx, n.backend, n.dir, run.Workspace.Name)
	if errors.Is(err, state.ErrLedgerOnly) {
		err = nil
	} else if err == nil {
		where = w.Where().Record
		var rec state.Record
		if rec, err = d.recordOf(ctx, run.ID, key, n, w.Where()); err == nil {
			err = w.Write(ctx, rec)
		}
		if p, ok := w.(state.Pruner); ok && err == nil {
			d.pruneRecords(ctx, p, where)
		}
	}
	msg := ""
	if err != nil {
		msg = err.Error()
		d.log.Warn("cannot write the record beside the state", "run", run.ID, "error", err)
	}
	if err := d.ledger.SetRecord(ctx, run.ID, where, msg); err != nil {
		d.log.Error("ledger", "error", err)
	}
}

func (d *Daemon) recordOf(ctx context.Context, id int64, key string, n *notice, where state.Location) (state.Record, error) {
	job, err := d.ledger.Get(ctx, id)
	if err != nil {
		return state.Record{}, err
	}
	o := n.outcome
	rec := state.Record{Schema: state.SchemaID, Version: 1, RunID: job.ID, Repository: job.Repository, Commit: job.Commit,
		Stack: job.Stack, Workspace: job.Workspace.Name, Trigger: job.Trigger, Triggers: job.Triggers, QueuedAt: job.QueuedAt,
		StartedAt: job.StartedAt, FinishedAt: job.FinishedAt, Verdict: job.Verdict, Drift: o.Drift, Pending: o.Pending, Noise: o.Noise,
		Action: job.Action, State: where}
	if f := job.Failure; f != nil {
		rec.Error, rec.Stage = &f.Message, f.Stage
	}
	c, err := d.ledger.LastApplied(ctx, key)
	if err != nil {
		return rec, err
	}
	if c != "" {
		rec.LastAppliedCommit = &c
	}
	t, err := d.ledger.DriftedSince(ctx, key, job.ID)
	if err != nil {
		return rec, err
	}
	if !t.IsZero() {
		rec.DriftedSince = &t
	}
	return rec, nil
}

// announce notifies the policy's targets of a finished run, once per
// change: the same drift found again on every schedule is not repeated.
func (d *Daemon) announce(ctx context.Context, run ledger.Run, res ledger.Result, n *notice) {
	if n == nil || len(n.targets) == 0 {
		return
	}
	o := n.outcome
	var kind notify.Kind
	switch {
	case o.Verdict == drift.Error:
		kind = notify.Failed
	case o.Action.Converged():
		kind = notify.Applied
	case o.Action.Escalated:
		kind = notify.Escalated
	case o.Action.Kind == policies.PullRequest:
		kind = notify.PullRequest
	case o.Verdict != drift.InSync:
		kind = notify.DriftFound
	default:
		prev, err := d.ledger.List(ctx, ledger.Filter{Repository: run.Repository, Stack: run.Stack, Workspace: run.Workspace.Name, Status: ledger.Finished, Before: run.ID, Limit: 1})
		if err != nil {
			d.log.Warn("cannot read the previous run; not announcing", "run", run.ID, "error", err)
			return
		}
		if len(prev) == 0 || prev[0].Verdict == drift.InSync || prev[0].Verdict == "" || prev[0].Converged() {
			return
		}
		kind = notify.Cleared
	}
	key := run.Workspace.Key()
	mark := string(kind) + " " + o.Result.Fingerprint()
	fresh, err := d.ledger.Announce(ctx, key, mark)
	if err != nil {
		d.log.Warn("cannot tell whether this was announced; not announcing it again", "run", run.ID, "error", err)
		return
	}
	if !fresh {
		return
	}
	e := notify.Event{Kind: kind, Repository: run.Repository, Stack: run.Stack, Workspace: run.Workspace.Name,
		Commit: run.Commit, Verdict: string(o.Verdict), Result: o.Result, Action: res.Action.String(), Reason: res.Action.Reason,
		URL: d.runURL(run.ID)}
	if res.Failure != nil {
		e.Error = res.Failure.Message
	}
	d.notifier.Notify(n.targets, e)
}

// postReport sends the drift report's summary, with a link to the full
// report, to the report's notify targets.
func (d *Daemon) postReport(ctx context.Context) {
	rep, err := report.Build(ctx, d.ledger, time.Now(), d.cfg.Report.Since)
	if err != nil {
		d.log.Error("drift report", "error", err)
		return
	}
	url := ""
	if d.cfg.ExternalURL != "" {
		url = strings.TrimRight(d.cfg.ExternalURL, "/") + "/report?since=" + d.cfg.Report.Since.String()
	}
	d.notifier.Notify(d.cfg.Report.Notify, notify.Event{Kind: notify.Report, Reason: rep.Summary(), URL: url})
	d.log.Info("drift report sent", "summary", rep.Summary())
}

// runURL links to a run for people: the server's external URL, if known.
func (d *Daemon) runURL(id int64) string {
	if d.cfg.ExternalURL == "" {
		return ""
	}
	return fmt.Sprintf("%s/runs/%d", strings.TrimRight(d.cfg.ExternalURL, "/"), id)
}
