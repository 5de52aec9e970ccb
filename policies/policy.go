// Package policies reads the policies of an infrastructure repository
// (policies/*.hcl) and decides, per run, what to do with a verdict:
//
//	policy "guarded" {
//	  on_drift    = "apply"          # apply | pull_request | report
//	  on_pending  = "pull_request"
//	  allow       = ["update"]       # planned actions auto-apply may take
//	  max_changes = 5                # resources one auto-apply may change
//	  protect     = ["sandbox_database.*"]   # never deleted or replaced by auto-apply
//	  escalate    = "pull_request"   # what a guardrail's "no" turns into
//	  pull_request_kind = "revert"   # revert (Git wins) | adopt (the cloud wins)
//	  apply_window {
//	    cron     = "0 9-17 * * 1-5"
//	    duration = "1h"
//	    timezone = "Europe/Berlin"
//	  }
//	  notify = ["slack.infra"]
//	  mode   = "refresh-only"        # full (default) | refresh-only
//	}
//
// A policy's mode is the one its stacks plan with unless stack.hcl says
// (the stack's, or its workspace block's, wins; see ModeFor). A refresh-only
// plan is never applied: an apply decision on its drift makes reconcile plan
// in full, and this policy judges that plan as usual.
//
// A stack without a policy is reported only. Every decision carries its
// reason, e.g. "escalated to pull_request: plan replaces
// sandbox_database.main, protected".
package policies

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/robfig/cron/v3"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/hcldiag"
	"github.com/trueline/trueline/stacks"
)

// Action is what trueline does about a verdict.
type Action string

const (
	None        Action = ""             // in sync: nothing to do
	Apply       Action = "apply"        // apply the saved plan
	PullRequest Action = "pull_request" // open or update a remediation pull request
	Report      Action = "report"       // record and notify only
)

// Dir is where policies live in a repository.
const Dir = "policies"

// Policy is one policy block.
type Policy struct {
	Name       string
	OnDrift    Action
	OnPending  Action
	Allow      []string // planned actions auto-apply may take
	MaxChanges int      // 0: no limit
	Protect    []drift.Ignore
	Escalate   Action
	PRKind     string // revert | adopt
	Window     *Window
	Notify     []string
	// ApproveWithin bounds how old a run's plan may be when a person
	// approves it on the dashboard or the API (default 24h).
	ApproveWithin time.Duration
	// Mode is how the policy's stacks plan when stack.hcl does not say;
	// empty: full.
	Mode drift.Mode
}

// ModeFor is the mode a workspace plans with: stack.hcl's (the workspace
// block's, else the stack block's) when it says, else the policy's, else
// full. The stack wins because it knows its own code; a policy shared by
// many stacks only sets their default. A nil policy is report only.
func (p *Policy) ModeFor(stack drift.Mode) drift.Mode {
	switch {
	case stack != "":
		return stack
	case p != nil && p.Mode != "":
		return p.Mode
	}
	return drift.Full
}

// DefaultApproveWithin is how long a plan stays approvable by default.
const DefaultApproveWithin = 24 * time.Hour

// Window is when auto-apply may run: from each cron time, for duration.
type Window struct {
	Spec     string
	Schedule cron.Schedule
	Duration time.Duration
	Location *time.Location
}

// Contains reports whether t falls in the window. A schedule with no next
// start (robfig/cron's zero time) never opens it.
func (w *Window) Contains(t time.Time) bool {
	if w.Schedule == nil {
		return false
	}
	start := w.Schedule.Next(t.Add(-w.Duration).In(w.Location))
	return !start.IsZero() && !start.After(t)
}

// ReportOnly is the policy of a stack that names none.
var ReportOnly = &Policy{Name: "(none)", OnDrift: Report, OnPending: Report, Allow: []string{"update"}, Escalate: Report, PRKind: "revert",
	ApproveWithin: DefaultApproveWithin}

type fileSchema struct {
	Policies []policyBlock `hcl:"policy,block"`
}

type policyBlock struct {
	Name       string       `hcl:"name,label"`
	OnDrift    *string      `hcl:"on_drift,optional"`
	OnPending  *string      `hcl:"on_pending,optional"`
	Allow      []string     `hcl:"allow,optional"`
	MaxChanges *int         `hcl:"max_changes,optional"`
	Protect    []string     `hcl:"protect,optional"`
	Escalate   *string      `hcl:"escalate,optional"`
	PRKind     *string      `hcl:"pull_request_kind,optional"`
	Notify     []string     `hcl:"notify,optional"`
	Window     *windowBlock `hcl:"apply_window,block"`
	Approve    *string      `hcl:"approve_within,optional"`
	Mode       *string      `hcl:"mode,optional"`
	Body       hcl.Body     `hcl:",body"`
	DefRange   hcl.Range    `hcl:",def_range"`
}

type windowBlock struct {
	Cron     string   `hcl:"cron"`
	Duration string   `hcl:"duration"`
	Timezone *string  `hcl:"timezone,optional"`
	Body     hcl.Body `hcl:",body"`
}

// Load reads every policies/*.hcl of a repository. A repository without a
// policies directory has no policies. Errors name file, line and column.
func Load(fsys fs.FS) (map[string]*Policy, error) {
	out := map[string]*Policy{}
	entries, err := fs.ReadDir(fsys, Dir)
	if err != nil {
		return out, nil
	}
	var diags hcl.Diagnostics
	where := map[string]hcl.Range{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".hcl") {
			continue
		}
		name := path.Join(Dir, e.Name())
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ps, d := Parse(name, src)
		diags = append(diags, d...)
		for _, p := range ps {
			if prev, dup := where[p.Name]; dup {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate policy",
					Detail: fmt.Sprintf("Policy %q is also declared at %s; policy names are unique across policies/.", p.Name, prev), Subject: nil})
				continue
			}
			out[p.Name] = p.Policy
			where[p.Name] = p.at
		}
	}
	if diags.HasErrors() {
		return nil, &hcldiag.Error{Diags: diags}
	}
	return out, nil
}

// LoadNamed reads policies/*.hcl for the one policy a stack names. A
// broken file fails only the stacks whose policy it may hold: when the
// policy is found, whole, in a file that parses, it is returned whatever
// other files say; otherwise the errors of the broken files are (each with
// file, line and column), or, when there are none, the known names.
func LoadNamed(fsys fs.FS, name string) (map[string]*Policy, error) {
	out := map[string]*Policy{}
	entries, err := fs.ReadDir(fsys, Dir)
	if err != nil {
		return out, nil
	}
	var broken hcl.Diagnostics
	var found []parsed
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".hcl") {
			continue
		}
		file := path.Join(Dir, e.Name())
		src, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		ps, d := Parse(file, src)
		if d.HasErrors() {
			broken = append(broken, d...)
			continue
		}
		for _, p := range ps {
			out[p.Name] = p.Policy // the known names, for PolicyFor's message
			if p.Name == name {
				found = append(found, p)
			}
		}
	}
	switch {
	case len(found) > 1:
		return nil, &hcldiag.Error{Diags: hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Duplicate policy",
			Detail:  fmt.Sprintf("Policy %q is declared at %s and at %s; policy names are unique across policies/.", name, found[0].at, found[1].at),
			Subject: found[1].at.Ptr()}}}
	case len(found) == 1:
		return map[string]*Policy{name: found[0].Policy}, nil
	case broken.HasErrors():
		return nil, &hcldiag.Error{Diags: broken}
	}
	return out, nil
}

type parsed struct {
	*Policy
	at hcl.Range
}

func action(body hcl.Body, name string, v *string, def Action, diags *hcl.Diagnostics, allowed ...Action) Action {
	if v == nil {
		return def
	}
	for _, a := range allowed {
		if string(a) == *v {
			return a
		}
	}
	var names []string
	for _, a := range allowed {
		names = append(names, string(a))
	}
	*diags = append(*diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown action",
		Detail: fmt.Sprintf("%s = %q; use one of %s.", name, *v, strings.Join(names, ", ")), Subject: hcldiag.AttrRange(body, name)})
	return def
}

// Parse reads one policy file.
func Parse(filename string, src []byte) ([]parsed, hcl.Diagnostics) {
	f, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	var fs fileSchema
	diags = append(diags, gohcl.DecodeBody(f.Body, nil, &fs)...)
	if diags.HasErrors() {
		return nil, diags
	}
	var out []parsed
	for _, b := range fs.Policies {
		p := &Policy{Name: b.Name, Allow: []string{"update"}, PRKind: "revert", Notify: b.Notify, ApproveWithin: DefaultApproveWithin}
		if b.Approve != nil {
			d, err := time.ParseDuration(*b.Approve)
			if err != nil || d <= 0 {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid approve_within",
					Detail: fmt.Sprintf("approve_within = %q; write a positive duration like \"24h\" or \"30m\".", *b.Approve), Subject: hcldiag.AttrRange(b.Body, "approve_within")})
			} else {
				p.ApproveWithin = d
			}
		}
		if b.Mode != nil {
			m, err := drift.ParseMode(*b.Mode)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid mode",
					Detail: err.Error() + ".", Subject: hcldiag.AttrRange(b.Body, "mode")})
			}
			p.Mode = m
		}
		p.OnDrift = action(b.Body, "on_drift", b.OnDrift, Report, &diags, Apply, PullRequest, Report)
		p.OnPending = action(b.Body, "on_pending", b.OnPending, Report, &diags, Apply, PullRequest, Report)
		p.Escalate = action(b.Body, "escalate", b.Escalate, Report, &diags, PullRequest, Report)
		if b.Allow != nil {
			p.Allow = b.Allow
			for _, a := range b.Allow {
				switch a {
				case "create", "update", "replace", "delete":
				default:
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown planned action",
						Detail: fmt.Sprintf("allow lists %q; use create, update, replace or delete.", a), Subject: hcldiag.AttrRange(b.Body, "allow")})
				}
			}
		}
		if b.MaxChanges != nil {
			if *b.MaxChanges < 0 {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid max_changes",
					Detail: "max_changes must be 0 (no limit) or more.", Subject: hcldiag.AttrRange(b.Body, "max_changes")})
			}
			p.MaxChanges = *b.MaxChanges
		}
		for _, g := range b.Protect {
			ig, err := drift.ParseIgnore(g)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid protect glob",
					Detail: strings.Replace(err.Error(), "ignore rule", "protect glob", 1), Subject: hcldiag.AttrRange(b.Body, "protect")})
				continue
			}
			p.Protect = append(p.Protect, ig)
		}
		if b.PRKind != nil {
			if *b.PRKind != "revert" && *b.PRKind != "adopt" {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown pull request kind",
					Detail:  fmt.Sprintf("pull_request_kind = %q; use \"revert\" (Git wins) or \"adopt\" (Git takes the live values).", *b.PRKind),
					Subject: hcldiag.AttrRange(b.Body, "pull_request_kind")})
			}
			p.PRKind = *b.PRKind
		}
		if w := b.Window; w != nil {
			win := &Window{Spec: w.Cron, Location: time.UTC}
			var err error
			if win.Schedule, err = stacks.ParseCron(w.Cron); err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid apply_window cron",
					Detail: stacks.CronDetail(err, "0 9-17 * * 1-5"), Subject: hcldiag.AttrRange(w.Body, "cron")})
			}
			if win.Duration, err = time.ParseDuration(w.Duration); err != nil || win.Duration <= 0 {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid apply_window duration",
					Detail: fmt.Sprintf("duration = %q; write it like \"1h\" or \"30m\".", w.Duration), Subject: hcldiag.AttrRange(w.Body, "duration")})
			}
			if w.Timezone != nil {
				if win.Location, err = time.LoadLocation(*w.Timezone); err != nil {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown timezone",
						Detail: fmt.Sprintf("%q is not a known IANA timezone.", *w.Timezone), Subject: hcldiag.AttrRange(w.Body, "timezone")})
					win.Location = time.UTC
				}
			}
			p.Window = win
		}
		out = append(out, parsed{Policy: p, at: b.DefRange})
	}
	return out, diags
}

// Decision is what to do with one run, and why.
type Decision struct {
	Action    Action `json:"action"`
	Reason    string `json:"reason"`
	Escalated bool   `json:"escalated,omitempty"`
}

// Decide chooses the action for a classified plan at time now.
func (p *Policy) Decide(res drift.Result, now time.Time) Decision {
	var want Action
	var why string
	switch res.Verdict {
	case drift.InSync:
		if res.Mode == drift.RefreshOnly {
			return Decision{Action: None, Reason: "no drift (refresh-only: the code was not compared)"}
		}
		return Decision{Action: None, Reason: "in sync"}
	case drift.Error:
		return Decision{Action: Report, Reason: "the run failed"}
	case drift.Drifted:
		want, why = p.OnDrift, "drift: on_drift = "+string(p.OnDrift)
	case drift.Pending:
		want, why = p.OnPending, "pending code: on_pending = "+string(p.OnPending)
	case drift.DriftedAndPending:
		// One plan holds both: apply only if both may be applied.
		switch {
		case p.OnDrift == Apply && p.OnPending == Apply:
			want = Apply
		case p.OnDrift == PullRequest || p.OnPending == PullRequest:
			want = PullRequest
		default:
			want = Report
		}
		why = fmt.Sprintf("drift and pending code: on_drift = %s, on_pending = %s", p.OnDrift, p.OnPending)
	}
	if want != Apply {
		return Decision{Action: want, Reason: why + " (policy " + p.Name + ")"}
	}
	if no := p.guardrail(res, now); no != "" {
		return Decision{Action: p.Escalate, Reason: fmt.Sprintf("escalated to %s: %s", p.Escalate, no), Escalated: true}
	}
	return Decision{Action: Apply, Reason: why + " (policy " + p.Name + "), within guardrails"}
}

// guardrail returns why auto-apply may not run, or "".
func (p *Policy) guardrail(res drift.Result, now time.Time) string {
	changes := append(append([]drift.Finding{}, res.Drift...), res.Pending...)
	seen := map[string]bool{}
	var addrs []string
	for _, f := range changes {
		if !seen[f.Address] {
			seen[f.Address] = true
			addrs = append(addrs, f.Address)
		}
	}
	sort.Strings(addrs)
	for _, f := range changes {
		if (f.Action == "delete" || f.Action == "replace") && protected(p.Protect, f.Address) {
			return fmt.Sprintf("plan %s %s, protected", verbs[f.Action], f.Address)
		}
	}
	for _, f := range changes {
		if !contains(p.Allow, f.Action) {
			return fmt.Sprintf("plan %s %s; auto-apply may only %s", verbs[f.Action], f.Address, strings.Join(p.Allow, ", "))
		}
	}
	if p.MaxChanges > 0 && len(addrs) > p.MaxChanges {
		return fmt.Sprintf("plan changes %d resources, more than max_changes = %d", len(addrs), p.MaxChanges)
	}
	for _, f := range res.Noise {
		if f.Planned {
			return fmt.Sprintf("plan would also change %s.%s, which the stack ignores", f.Address, f.Attributes[0].Path)
		}
	}
	if p.Window != nil && !p.Window.Contains(now) {
		return fmt.Sprintf("outside the apply window (%q for %s, %s)", p.Window.Spec, p.Window.Duration, p.Window.Location)
	}
	return ""
}

var verbs = map[string]string{"create": "creates", "update": "updates", "replace": "replaces", "delete": "deletes"}

func protected(globs []drift.Ignore, addr string) bool {
	for _, g := range globs {
		if g.Matches(addr, "") {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
