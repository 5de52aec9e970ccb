package ledger

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/run"
)

// A run's mode is stored with its findings and read back, and its JSON (the
// API's and `trueline runs`') carries it as "mode"; runs from before modes
// existed have none.
func TestRunMode(t *testing.T) {
	ctx := context.Background()
	l, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "trueline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	for _, tc := range []struct {
		name string
		mode drift.Mode
		json string
	}{
		{"refresh-only", drift.RefreshOnly, `"mode":"refresh-only"`},
		{"full", drift.Full, `"mode":"full"`},
		{"before modes", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			queued, _, err := l.Enqueue(ctx, Request{Workspace: run.Workspace{Repository: "infra", Stack: "stacks/" + tc.name, Name: "default"}, Trigger: "manual"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Claim(ctx, Limits{}); err != nil {
				t.Fatal(err)
			}
			res := Result{Verdict: drift.InSync, Findings: drift.Result{Verdict: drift.InSync, Mode: tc.mode, Drift: []drift.Finding{}, Pending: []drift.Finding{}, Noise: []drift.Finding{}}}
			if _, err := l.Finish(ctx, queued.ID, res); err != nil {
				t.Fatal(err)
			}
			got, err := l.Get(ctx, queued.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Mode() != tc.mode {
				t.Errorf("stored mode = %q, want %q", got.Mode(), tc.mode)
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if tc.json == "" && strings.Contains(string(b), `"mode"`) {
				t.Errorf("a run without a mode says one: %s", b)
			}
			if tc.json != "" && !strings.Contains(string(b), tc.json) {
				t.Errorf("JSON %s does not hold %s", b, tc.json)
			}
			var back Run
			if err := json.Unmarshal(b, &back); err != nil || back.Mode() != tc.mode {
				t.Errorf("read back from JSON: mode %q, %v", back.Mode(), err)
			}
		})
	}
	// A reader of the wire form without findings (a list) still has the mode.
	var listed Run
	if err := json.Unmarshal([]byte(`{"id":3,"verdict":"in_sync","mode":"refresh-only"}`), &listed); err != nil || listed.Mode() != drift.RefreshOnly {
		t.Errorf("mode without findings: %q, %v", listed.Mode(), err)
	}
}
