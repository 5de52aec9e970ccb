package reconcile_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/reconcile"
	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/stacks"
)

// TestStackVersionNarrowsServer: a stack's version narrows trueline.hcl's
// binary version; when the two leave no installed binary, the run fails
// before init, naming stack.hcl's line, both constraints and the versions
// installed.
func TestStackVersionNarrowsServer(t *testing.T) {
	for _, tc := range []struct {
		name, server, stack string
		wantErr             []string // empty: the run gets past choosing a binary
	}{
		{name: "they agree", server: ">= 1.5", stack: "~> 1.13"},
		{name: "they conflict", server: "~> 1.13", stack: "~> 1.5.0", wantErr: []string{
			"stacks/web/stack.hcl:3: no terraform satisfies both trueline.hcl's binary version \"~> 1.13\" and the stack's version \"~> 1.5.0\"",
			"installed: 1.13.3 (", "1.5.7 (",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "stack {\n  binary  = \"terraform\"\n  version = \"" + tc.stack + "\"\n}\n"
			cfg, diags := stacks.Parse("stacks/web/stack.hcl", []byte(src), fstest.MapFS{}, "stacks/web")
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			dir := t.TempDir()
			testenv.WriteFiles(t, dir, map[string]string{"main.tf": "terraform {}\n"})
			rec := reconcile.New(reconcile.Options{
				Toolchain: &runner.Toolchain{Default: "terraform", Constraint: tc.server, ToolsDir: testenv.VersionsDir(t)},
				WorkDir:   t.TempDir(), CLIConfig: testenv.CLIConfig(t),
			})
			st := stacks.Stack{Path: "stacks/web", Dir: dir, Config: cfg}
			o := rec.Run(context.Background(), "test/stacks/web/default", reconcile.Target{Stack: st, Workspace: cfg.Workspaces[0]})
			if len(tc.wantErr) == 0 {
				if o.Failure != nil {
					t.Fatalf("failed: %v", o.Failure)
				}
				return
			}
			if o.Failure == nil || o.Failure.Stage != run.Init {
				t.Fatalf("outcome = %+v, want a failure at init", o)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(o.Failure.Message, w) {
					t.Errorf("failure lacks %q:\n%s", w, o.Failure.Message)
				}
			}
		})
	}
}
