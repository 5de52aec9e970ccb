// Package run owns what a run is, as every reader sees it: the workspace it
// belongs to, the action a policy chose and what came of it, and a failure
// with the stage it happened in. The runner's outcome, the ledger, the API,
// the dashboard, the report, the metrics, Slack and the record beside the
// state all speak these types, so no reader takes a string apart again.
package run

import (
	"context"
	"errors"

	"github.com/trueline/trueline/policies"
)

// Workspace identifies one workspace of one stack of one repository.
type Workspace struct {
	Repository string `json:"repository"`
	Stack      string `json:"stack"`
	Name       string `json:"workspace"`
}

// Key is the workspace's identity as one string, for maps and names of
// directories; it is never split back.
func (w Workspace) Key() string { return w.Repository + "/" + w.Stack + "/" + w.Name }

// Result is what came of an action.
type Result string

const (
	Converged    Result = "converged"     // applied, and the plan after it is empty
	NotConverged Result = "not_converged" // applied, but the plan after it still changes something
	Failed       Result = "failed"        // the apply or the pull request failed
	DryRun       Result = "dry_run"       // an apply decision the reconciler only reports
)

// Action is what a policy decided for a run and what came of it.
type Action struct {
	Kind      policies.Action `json:"action"`
	Reason    string          `json:"reason"`
	Escalated bool            `json:"escalated,omitempty"`
	Result    Result          `json:"result,omitempty"`
}

// String names the action and its result for people: "apply (converged)".
func (a Action) String() string {
	if a.Result == "" {
		return string(a.Kind)
	}
	return string(a.Kind) + " (" + string(a.Result) + ")"
}

// Converged reports whether the run applied its plan and the workspace is
// in sync afterwards: it was remediated.
func (a Action) Converged() bool { return a.Kind == policies.Apply && a.Result == Converged }

// Applied reports whether the run started applying (whatever came of it).
func (a Action) Applied() bool {
	return a.Kind == policies.Apply && a.Result != "" && a.Result != DryRun
}

// Stage is where in a run a failure happened.
type Stage string

const (
	Checkout Stage = "checkout" // reading the commit, the stack, materialising it
	Policy   Stage = "policy"   // reading or resolving the stack's policy, or an approval
	Init     Stage = "init"
	Plan     Stage = "plan" // selecting the workspace and planning
	Show     Stage = "show"
	Apply    Stage = "apply"
	Converge Stage = "converge" // the plan after an apply
	Record   Stage = "record"   // the record beside the state
	Propose  Stage = "propose"  // the remediation pull request
	Notify   Stage = "notify"
)

// Stages lists every stage, for metrics and documentation.
var Stages = []Stage{Checkout, Policy, Init, Plan, Show, Apply, Converge, Record, Propose, Notify}

// Failure is an error with the stage it happened in, and whether it was a
// timeout or an interruption.
type Failure struct {
	Stage       Stage  `json:"stage"`
	Message     string `json:"message"`
	TimedOut    bool   `json:"timed_out,omitempty"`
	Interrupted bool   `json:"interrupted,omitempty"`
	err         error
}

func (f *Failure) Error() string { return f.Message }
func (f *Failure) Unwrap() error { return f.err }

// Fail wraps err as a failure at stage. A failure already in err's chain
// keeps its stage (the innermost knows best); the message is err's whole.
func Fail(stage Stage, err error) *Failure {
	if err == nil {
		return nil
	}
	var inner *Failure
	if errors.As(err, &inner) {
		stage = inner.Stage
	}
	return &Failure{Stage: stage, Message: err.Error(), TimedOut: errors.Is(err, context.DeadlineExceeded),
		Interrupted: errors.Is(err, context.Canceled), err: err}
}

// StageOf is the stage of a failure in err's chain, or "".
func StageOf(err error) Stage {
	var f *Failure
	if errors.As(err, &f) {
		return f.Stage
	}
	return ""
}
