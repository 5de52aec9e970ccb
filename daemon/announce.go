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
	"github.com/trueline/trueline/report"
	"github.com/trueline/trueline/state"
)

// notice is what a run's record and announcement need beyond the finished
// run itself: the policy's targets and where the stack's state lives.
type notice struct {
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
	where := "ledger"
	w, err := state.WriterFor(ctx, n.backend, n.dir, run.Workspace.Name)
	if errors.Is(err, state.ErrLedgerOnly) {
		err = nil
	} else if err == nil {
		where = w.Where().Record
		var rec state.Record
		if rec, err = d.recordOf(ctx, run, n, w.Where()); err == nil {
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

// recordOf is the record of a finished run, as the ledger returned it.
func (d *Daemon) recordOf(ctx context.Context, job ledger.Run, n *notice, where state.Location) (state.Record, error) {
	key := job.Workspace.Key()
	rec := state.Record{Schema: state.SchemaID, Version: 1, RunID: job.ID, Repository: job.Repository, Commit: job.Commit,
		Stack: job.Stack, Workspace: job.Workspace.Name, Trigger: job.Trigger, Triggers: job.Triggers, QueuedAt: job.QueuedAt,
		StartedAt: job.StartedAt, FinishedAt: job.FinishedAt, Verdict: job.Verdict, Mode: job.Mode(),
		Drift: job.Findings.Drift, Pending: job.Findings.Pending, Noise: job.Findings.Noise, Action: job.Action, State: where}
	for _, l := range []*[]drift.Finding{&rec.Drift, &rec.Pending, &rec.Noise} {
		if *l == nil {
			*l = []drift.Finding{} // the schema wants lists, empty or not
		}
	}
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
func (d *Daemon) announce(ctx context.Context, run ledger.Run, n *notice) {
	res := run.Result
	if n == nil || len(n.targets) == 0 {
		return
	}
	var kind notify.Kind
	switch {
	case run.Verdict == drift.Error:
		kind = notify.Failed
	case run.Action.Converged():
		kind = notify.Applied
	case run.Action.Escalated:
		kind = notify.Escalated
	case run.Action.Kind == policies.PullRequest:
		kind = notify.PullRequest
	case run.Verdict != drift.InSync:
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
	mark := string(kind) + " " + run.Findings.Fingerprint()
	fresh, err := d.ledger.Announce(ctx, key, mark)
	if err != nil {
		d.log.Warn("cannot tell whether this was announced; not announcing it again", "run", run.ID, "error", err)
		return
	}
	if !fresh {
		return
	}
	e := notify.Event{Kind: kind, Repository: run.Repository, Stack: run.Stack, Workspace: run.Workspace.Name,
		Commit: run.Commit, Verdict: string(run.Verdict), Result: run.Findings, Action: res.Action.String(), Reason: res.Action.Reason,
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
