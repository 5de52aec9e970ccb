// Package report builds the drift report across all stacks from the ledger:
// what is drifted and for how long, what was auto-applied, open remediation
// pull requests, pending code, errors, and the workspaces that have not been
// checked within their schedule. It renders Markdown, a self-contained HTML
// page that reads well printed, and JSON.
package report

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	htmltemplate "html/template"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/stacks"
)

// Report is the drift report.
type Report struct {
	GeneratedAt  time.Time `json:"generated_at"`
	Since        string    `json:"since"`
	Workspaces   int       `json:"workspaces"`
	Counts       Counts    `json:"counts"`
	Drifted      []Row     `json:"drifted"`
	Applied      []Row     `json:"applied"`
	PullRequests []Row     `json:"pull_requests"`
	Pending      []Row     `json:"pending"`
	Errors       []Row     `json:"errors"`
	Overdue      []Row     `json:"overdue"`
}

// Counts of workspaces by their latest verdict.
type Counts struct {
	InSync, Drifted, Pending, Error, Unchecked int
}

// Row is one workspace in one section.
type Row struct {
	Repository string    `json:"repository"`
	Stack      string    `json:"stack"`
	Workspace  string    `json:"workspace"`
	RunID      int64     `json:"run_id,omitempty"`
	Commit     string    `json:"commit,omitempty"`
	When       time.Time `json:"when,omitzero"`
	Age        string    `json:"age,omitempty"`
	Verdict    string    `json:"verdict,omitempty"`
	Detail     string    `json:"detail,omitempty"`
	Changes    []string  `json:"changes,omitempty"`
	URL        string    `json:"url,omitempty"`
}

// Name is stack/workspace.
func (r Row) Name() string { return r.Stack + " (" + r.Workspace + ")" }

// Source is what the report reads: every workspace's summary, and the
// runs that applied and converged.
type Source interface {
	Summaries(ctx context.Context) ([]ledger.Summary, error)
	Converged(ctx context.Context, since time.Time) ([]ledger.Run, error)
}

// Build reads the ledger: every workspace's summary (the one the dashboard
// and the metrics read), and the runs of the period that applied and
// converged, whatever their number.
func Build(ctx context.Context, src Source, now time.Time, since time.Duration) (Report, error) {
	rep := Report{GeneratedAt: now.UTC(), Since: strings.TrimSuffix(strings.TrimSuffix(since.String(), "0s"), "0m")}
	all, err := src.Summaries(ctx)
	if err != nil {
		return rep, err
	}
	rep.Workspaces = len(all)
	for _, sm := range all {
		r := sm.Latest
		if r == nil {
			rep.Counts.Unchecked++
			continue
		}
		row := Row{Repository: r.Repository, Stack: r.Stack, Workspace: r.Workspace.Name, RunID: r.ID, Commit: short(r.Commit), When: r.FinishedAt, Verdict: string(r.Verdict)}
		res := r.Findings
		switch state := sm.State(); state {
		case drift.Drifted, drift.DriftedAndPending:
			rep.Counts.Drifted++
			if !sm.DriftedSince.IsZero() {
				row.When, row.Age = sm.DriftedSince, age(now.Sub(sm.DriftedSince))
			}
			row.Changes = changes(res.Drift)
			row.Detail = r.Action.Reason
			rep.Drifted = append(rep.Drifted, row)
			if state == drift.DriftedAndPending {
				p := row
				p.Changes = changes(res.Pending)
				rep.Pending = append(rep.Pending, p)
			}
		case drift.Pending:
			rep.Counts.Pending++
			row.Changes = changes(res.Pending)
			row.Detail = r.Action.Reason
			rep.Pending = append(rep.Pending, row)
		case drift.Error:
			rep.Counts.Error++
			if r.Failure != nil {
				row.Detail = firstLine(r.Failure.Message)
			}
			rep.Errors = append(rep.Errors, row)
		default:
			rep.Counts.InSync++
		}
		if sm.PullRequest != "" {
			pr := row
			pr.URL, pr.Detail, pr.Changes = sm.PullRequest, "", nil
			rep.PullRequests = append(rep.PullRequests, pr)
		}
	}

	// Every converged apply of the period, however many runs it holds.
	applied, err := src.Converged(ctx, now.Add(-since))
	if err != nil {
		return rep, err
	}
	for _, r := range applied {
		res := r.Findings
		rep.Applied = append(rep.Applied, Row{Repository: r.Repository, Stack: r.Stack, Workspace: r.Workspace.Name, RunID: r.ID,
			Commit: short(r.Commit), When: r.FinishedAt, Verdict: string(r.Verdict), Detail: r.Action.Reason,
			Changes: changes(append(res.Drift, res.Pending...))})
	}

	for _, sm := range all {
		if sm.Schedule == "" || !sm.Registered {
			continue
		}
		sched, err := stacks.CronParser.Parse(sm.Schedule)
		if err != nil {
			continue
		}
		loc, err := time.LoadLocation(sm.Timezone)
		if err != nil {
			loc = time.UTC
		}
		last := sm.RegisteredAt
		if sm.Latest != nil {
			last = sm.Latest.StartedAt
		}
		due := sched.Next(last.In(loc))
		if due.IsZero() {
			continue // never fires (refused when read; kept safe here)
		}
		// Allow for jitter and a queue: late by more than an hour, or by a
		// whole period for schedules more frequent than that.
		slack := time.Hour
		if period := sched.Next(due).Sub(due); period < slack {
			slack = period
		}
		if now.After(due.Add(slack)) {
			w := sm.Workspace
			row := Row{Repository: w.Repository, Stack: w.Stack, Workspace: w.Name, When: due, Age: age(now.Sub(due)),
				Detail: fmt.Sprintf("schedule %q (%s)", sm.Schedule, sm.Timezone)}
			if sm.Latest != nil {
				row.RunID, row.Verdict = sm.Latest.ID, string(sm.Latest.Verdict)
			}
			rep.Overdue = append(rep.Overdue, row)
		}
	}
	sort.SliceStable(rep.Drifted, func(i, j int) bool { return rep.Drifted[i].When.Before(rep.Drifted[j].When) })
	return rep, nil
}

func changes(fs []drift.Finding) []string {
	var out []string
	for _, f := range fs {
		if len(f.Attributes) == 0 {
			out = append(out, fmt.Sprintf("%s (%s)", f.Address, f.Action))
		}
		for _, a := range f.Attributes {
			out = append(out, fmt.Sprintf("%s.%s: %s → %s", f.Address, a.Path, drift.FormatValue(a.Live), drift.FormatValue(a.Git)))
		}
	}
	if len(out) > 8 {
		out = append(out[:8], fmt.Sprintf("… and %d more", len(out)-8))
	}
	return out
}

func short(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:199] + "…"
	}
	return s
}

// age says a duration the way a person would.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

//go:embed report.md.tmpl
var markdownTmpl string

//go:embed report.html.tmpl
var htmlTmpl string

var funcs = map[string]any{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"join": strings.Join,
}

// Markdown renders the report.
func (r Report) Markdown() (string, error) {
	t := template.Must(template.New("md").Funcs(funcs).Parse(markdownTmpl))
	var b bytes.Buffer
	err := t.Execute(&b, r)
	return b.String(), err
}

// HTML renders the report as one self-contained page.
func (r Report) HTML() (string, error) {
	t := htmltemplate.Must(htmltemplate.New("html").Funcs(funcs).Parse(htmlTmpl))
	var b bytes.Buffer
	err := t.Execute(&b, r)
	return b.String(), err
}

// Summary is one line for a chat message.
func (r Report) Summary() string {
	return fmt.Sprintf("%d workspaces: %d drifted, %d pending, %d errors, %d auto-applied in %s, %d open pull requests, %d overdue",
		r.Workspaces, r.Counts.Drifted, r.Counts.Pending, r.Counts.Error, len(r.Applied), r.Since, len(r.PullRequests), len(r.Overdue))
}
