package run

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/trueline/trueline/policies"
)

func TestFailKeepsTheInnermostStage(t *testing.T) {
	inner := Fail(Init, errors.New("init: no provider"))
	outer := Fail(Plan, fmt.Errorf("stacks/web (workspace default): %w", inner))
	if outer.Stage != Init || outer.Message != "stacks/web (workspace default): init: no provider" {
		t.Errorf("outer = %+v", outer)
	}
	if StageOf(fmt.Errorf("x: %w", outer)) != Init {
		t.Error("StageOf lost the stage")
	}
	to := Fail(Plan, fmt.Errorf("timed out: %w", context.DeadlineExceeded))
	if !to.TimedOut || to.Interrupted || !errors.Is(to, context.DeadlineExceeded) {
		t.Errorf("timeout = %+v", to)
	}
	if Fail(Plan, nil) != nil {
		t.Error("Fail(nil) is a failure")
	}
}

func TestActionRules(t *testing.T) {
	tests := []struct {
		a                  Action
		converged, applied bool
	}{
		{Action{Kind: policies.Apply, Result: Converged}, true, true},
		{Action{Kind: policies.Apply, Result: NotConverged}, false, true},
		{Action{Kind: policies.Apply, Result: Failed}, false, true},
		{Action{Kind: policies.Apply, Result: DryRun}, false, false},
		{Action{Kind: policies.Apply}, false, false},
		{Action{Kind: policies.PullRequest, Result: Failed}, false, false},
	}
	for _, tc := range tests {
		if tc.a.Converged() != tc.converged || tc.a.Applied() != tc.applied {
			t.Errorf("%+v: converged %v applied %v", tc.a, tc.a.Converged(), tc.a.Applied())
		}
	}
}
