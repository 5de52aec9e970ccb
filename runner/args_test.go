package runner

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
)

// terraform-exec's options are opaque, but they are pointers to plain
// structs: reflect.DeepEqual against the options its own constructors make
// checks which flags trueline passes, with which values, in which order.
// How terraform-exec turns them into a command line is its own business;
// the tests with real binaries run the result.

func TestInitOptions(t *testing.T) {
	for _, tc := range []struct {
		name          string
		backendConfig []string
		want          []tfexec.InitOption
	}{
		{"no backend config", nil,
			[]tfexec.InitOption{tfexec.Upgrade(false), tfexec.Reconfigure(true)}},
		{"files and values, in stack.hcl's order", []string{"backend.hcl", "key=web/terraform.tfstate", "../shared/backend.hcl"},
			[]tfexec.InitOption{tfexec.Upgrade(false), tfexec.Reconfigure(true),
				tfexec.BackendConfig("backend.hcl"), tfexec.BackendConfig("key=web/terraform.tfstate"), tfexec.BackendConfig("../shared/backend.hcl")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := initOptions(tc.backendConfig); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("init options = %s, want %s", describe(got), describe(tc.want))
			}
		})
	}
}

func TestPlanOptions(t *testing.T) {
	for _, tc := range []struct {
		name        string
		refreshOnly bool
		varFiles    []string
		lock        time.Duration
		parallelism int
		want        []tfexec.PlanOption
	}{
		{"the saved plan alone", false, nil, 0, 0,
			[]tfexec.PlanOption{tfexec.Out("/work/run-1.tfplan")}},
		{"a lock timeout", false, nil, 5 * time.Minute, 0,
			[]tfexec.PlanOption{tfexec.Out("/work/run-1.tfplan"), tfexec.LockTimeout("5m0s")}},
		{"var files in stack.hcl's order", false, []string{"prod.tfvars", "../../vars/prod.tfvars"}, 0, 0,
			[]tfexec.PlanOption{tfexec.Out("/work/run-1.tfplan"), tfexec.VarFile("prod.tfvars"), tfexec.VarFile("../../vars/prod.tfvars")}},
		{"refresh-only", true, nil, 0, 0,
			[]tfexec.PlanOption{tfexec.Out("/work/run-1.tfplan"), tfexec.RefreshOnly(true)}},
		{"refresh-only with var files and a lock timeout", true, []string{"prod.tfvars"}, time.Minute, 0,
			[]tfexec.PlanOption{tfexec.Out("/work/run-1.tfplan"), tfexec.RefreshOnly(true), tfexec.VarFile("prod.tfvars"), tfexec.LockTimeout("1m0s")}},
		{"a parallelism from the account's budget", false, nil, time.Minute, 4,
			[]tfexec.PlanOption{tfexec.Out("/work/run-1.tfplan"), tfexec.LockTimeout("1m0s"), tfexec.Parallelism(4)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := planOptions("/work/run-1.tfplan", tc.refreshOnly, tc.varFiles, tc.lock, tc.parallelism); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan options = %s, want %s", describe(got), describe(tc.want))
			}
		})
	}
}

// Apply gets the saved plan and nothing else: no var file, variable,
// target or replacement that could make it apply something not planned.
func TestApplyOptions(t *testing.T) {
	got := applyOptions("/work/run-1.tfplan", 0, 0)
	if want := []tfexec.ApplyOption{tfexec.DirOrPlan("/work/run-1.tfplan")}; !reflect.DeepEqual(got, want) {
		t.Errorf("apply options = %s, want %s", describe(got), describe(want))
	}
	got = applyOptions("/work/run-1.tfplan", time.Minute, 0)
	if want := []tfexec.ApplyOption{tfexec.DirOrPlan("/work/run-1.tfplan"), tfexec.LockTimeout("1m0s")}; !reflect.DeepEqual(got, want) {
		t.Errorf("apply options with a lock timeout = %s, want %s", describe(got), describe(want))
	}
	got = applyOptions("/work/run-1.tfplan", 0, 3)
	if want := []tfexec.ApplyOption{tfexec.DirOrPlan("/work/run-1.tfplan"), tfexec.Parallelism(3)}; !reflect.DeepEqual(got, want) {
		t.Errorf("apply options with a parallelism = %s, want %s", describe(got), describe(want))
	}
}

// A refresh-only plan would only write the refreshed values into the
// state: Apply refuses it before running anything.
func TestApplyRefusesRefreshOnlyPlans(t *testing.T) {
	r := &Runner{WorkDir: t.TempDir()}
	log, err := r.Apply(t.Context(), &Plan{Job: Job{Key: "k", Dir: t.TempDir(), RefreshOnly: true}, File: "/work/run-1.tfplan"})
	if err == nil || !strings.Contains(err.Error(), "a refresh-only plan is never applied") || log != "" {
		t.Errorf("Apply of a refresh-only plan = %q, %v", log, err)
	}
	if r.Processes() != 0 {
		t.Errorf("Apply started %d terraform processes", r.Processes())
	}
}

// describe prints options with their type and fields, which %v does not
// (it prints the pointers).
func describe[O any](opts []O) string {
	s := "["
	for i, o := range opts {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%T%+v", o, reflect.ValueOf(o).Elem())
	}
	return s + "]"
}
