package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/run"
	"golang.org/x/term"
)

// checkReport is the JSON document of `trueline check --format json`.
type checkReport struct {
	Version    int                 `json:"version"`
	Workspaces []reconcile.Outcome `json:"workspaces"`
	Stats      runStats            `json:"stats"`
}

// runStats describes the cost of the whole check.
type runStats struct {
	WallMS int64 `json:"wall_ms"`
	// CPU of trueline itself, and of the terraform processes it started.
	CPUSelfMS     int64 `json:"cpu_self_ms"`
	CPUChildrenMS int64 `json:"cpu_children_ms"`
	// Terraform commands trueline started.
	Processes int64 `json:"processes"`
}

func writeJSON(w io.Writer, outcomes []reconcile.Outcome, stats runStats) error {
	if outcomes == nil {
		outcomes = []reconcile.Outcome{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(checkReport{Version: 1, Workspaces: outcomes, Stats: stats})
}

type palette struct{ on bool }

func (p palette) paint(code, s string) string {
	if !p.on {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p palette) verdict(v drift.Verdict) string {
	code := map[drift.Verdict]string{
		drift.InSync: "32", drift.Pending: "33", drift.Drifted: "31", drift.DriftedAndPending: "31", drift.Error: "35;1",
	}[v]
	return p.paint(code, string(v))
}

// useColor: only on a terminal, and never when NO_COLOR is set.
func useColor(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// errWriter wraps an io.Writer and remembers its first write error; every
// later write is a no-op. A printing function writes without checking each
// call and returns err at the end.
type errWriter struct {
	w   io.Writer
	err error
}

func (ew *errWriter) printf(format string, args ...any) {
	if ew.err != nil {
		return
	}
	_, ew.err = fmt.Fprintf(ew.w, format, args...)
}

// modeNote says what a refresh-only verdict leaves out; "" for a full plan.
func modeNote(o reconcile.Outcome) string {
	if o.Mode == drift.RefreshOnly {
		return "refresh-only: the code was not compared"
	}
	return ""
}

// writeText prints one line per workspace, then the attribute diffs. A
// refresh-only run's pending count is "-": its plan does not compare the
// code, so it cannot say.
func writeText(out io.Writer, outcomes []reconcile.Outcome, color bool) error {
	w := &errWriter{w: out}
	p := palette{on: color}
	width := 0
	for _, o := range outcomes {
		width = max(width, len(name(o)))
	}
	counts := map[drift.Verdict]int{}
	for _, o := range outcomes {
		counts[o.Verdict]++
		pending, note := fmt.Sprint(len(o.Pending)), ""
		if n := modeNote(o); n != "" {
			pending, note = "-", "  ("+n+")"
		}
		w.printf("%-*s  %-19s drift %d  pending %s  noise %d  %s%s\n", width, name(o),
			p.verdict(o.Verdict), len(o.Drift), pending, len(o.Noise),
			(time.Duration(o.DurationMS) * time.Millisecond).Round(10*time.Millisecond), note)
	}
	for _, o := range outcomes {
		if o.Verdict == drift.InSync && len(o.Noise) == 0 {
			continue
		}
		head := p.verdict(o.Verdict)
		if n := modeNote(o); n != "" {
			head += " (" + n + ")"
		}
		w.printf("\n%s  %s\n", p.paint("1", name(o)), head)
		if o.Failure != nil {
			if o.Failure.Stage != "" {
				w.printf("    failed at %s:\n", o.Failure.Stage)
			}
			for _, line := range strings.Split(strings.TrimSpace(o.Failure.Message), "\n") {
				w.printf("    %s\n", line)
			}
		}
		section := func(kind string, findings []drift.Finding, code string) {
			for _, f := range findings {
				head := f.Address
				if f.Action != "" {
					head += " (" + f.Action + ")"
				}
				if f.Reason != "" {
					head += " — " + f.Reason
				}
				w.printf("  %s %s\n", p.paint(code, kind), head)
				for _, a := range f.Attributes {
					w.printf("      %s: git %s, live %s\n", a.Path, drift.FormatValue(a.Git), drift.FormatValue(a.Live))
				}
			}
		}
		section("drift  ", o.Drift, "31")
		section("pending", o.Pending, "33")
		section("noise  ", o.Noise, "2")
		if a := o.Action; a.Kind != "" && o.Verdict != drift.Error {
			what := string(a.Kind)
			if a.Result == run.DryRun {
				what += " (not carried out by check; trueline serve would)"
			} else if a.Result != "" {
				what += ": " + string(a.Result)
			}
			w.printf("  %s %s — %s\n", p.paint("1", "action "), what, a.Reason)
		}
	}
	var parts []string
	for _, v := range []drift.Verdict{drift.InSync, drift.Drifted, drift.Pending, drift.DriftedAndPending, drift.Error} {
		if counts[v] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[v], v))
		}
	}
	w.printf("\n%d workspaces: %s\n", len(outcomes), strings.Join(parts, ", "))
	return w.err
}

func name(o reconcile.Outcome) string {
	if o.Workspace == "" {
		return o.Stack
	}
	return o.Stack + "/" + o.Workspace
}

// progress prints a line per finished run on stderr, or a live counter
// when stderr is a terminal. It is best effort: once a write fails it stops
// printing, and the failure changes neither the report nor the exit status.
type progress struct {
	mu    sync.Mutex
	w     *errWriter
	quiet bool
	tty   bool
}

func newProgress(w io.Writer, quiet bool) *progress {
	f, ok := w.(*os.File)
	return &progress{w: &errWriter{w: w}, quiet: quiet, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (p *progress) event(e reconcile.Event) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Waiting != nil {
		// Said even without a terminal: a run that seems stuck is waiting.
		if *e.Waiting {
			prefix := ""
			if p.tty {
				prefix = "\r\x1b[K"
			}
			p.w.printf("%s%s/%s: waiting for the state lock someone else holds\n", prefix, e.Target.Stack.Path, e.Target.Workspace.Name)
		}
		return
	}
	if e.Started {
		if p.tty {
			p.w.printf("\r\x1b[K[%d/%d] planning %s/%s", e.Done, e.Total, e.Target.Stack.Path, e.Target.Workspace.Name)
		}
		return
	}
	o := e.Outcome
	prefix := ""
	if p.tty {
		prefix = "\r\x1b[K"
	}
	verdict := string(o.Verdict)
	if o.Mode == drift.RefreshOnly {
		verdict += ", refresh-only"
	}
	p.w.printf("%s[%d/%d] %s: %s (%s)\n", prefix, e.Done, e.Total, name(o), verdict,
		(time.Duration(o.DurationMS) * time.Millisecond).Round(10*time.Millisecond))
}

func (p *progress) done() {
	if p.tty && !p.quiet {
		p.w.printf("\r\x1b[K")
	}
}
