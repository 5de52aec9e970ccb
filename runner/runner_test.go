package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/sandbox"
)

const asgStack = `
terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {
  root = %q
}

resource "sandbox_autoscaling_group" "web" {
  name     = "web"
  min_size = 3
  max_size = 9
}
`

// setup writes the ASG stack, applies it and returns what a test needs.
func setup(t *testing.T, bin runner.Binary) (*runner.Runner, runner.Job, sandbox.Store) {
	t.Helper()
	cloud := sandbox.Store{Root: t.TempDir()}
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"main.tf": fmt.Sprintf(asgStack, cloud.Root)})
	r := testenv.Runner(t, bin)
	job := runner.Job{Key: "test/web/default", Dir: dir}
	apply(t, r, job)
	return r, job, cloud
}

func apply(t *testing.T, r *runner.Runner, job runner.Job) {
	t.Helper()
	ctx := context.Background()
	p, err := r.Plan(ctx, job)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, p.Log)
	}
	defer p.Discard()
	if !p.Changes {
		t.Fatal("first plan has no changes")
	}
	if log, err := r.Apply(ctx, p); err != nil {
		t.Fatalf("apply: %v\n%s", err, log)
	}
}

// TestConsoleChangeIsDrift plans and applies, changes the live object and
// plans again, with each default binary and with Terraform 1.5.7: the one
// place the runner proves it still works with that older release.
func TestConsoleChangeIsDrift(t *testing.T) {
	for _, bin := range append(testenv.Binaries(t), testenv.Binary(t, testenv.TerraformCompat)) {
		t.Run(testenv.Label(bin), func(t *testing.T) {
			r, job, cloud := setup(t, bin)
			if err := cloud.Update("sandbox_autoscaling_group", "web", func(o map[string]any) {
				o["min_size"] = 4
				o["max_size"] = 12
			}); err != nil {
				t.Fatal(err)
			}
			p, err := r.Plan(context.Background(), job)
			if err != nil {
				t.Fatalf("plan: %v\n%s", err, p.Log)
			}
			defer p.Discard()
			if !p.Changes || p.JSON == nil {
				t.Fatal("plan after the console change has no changes")
			}
			drift := find(p.JSON.ResourceDrift, "sandbox_autoscaling_group.web")
			if drift == nil {
				t.Fatalf("no resource_drift entry for the group; drift: %d entries", len(p.JSON.ResourceDrift))
			}
			if got, want := changedKeys(drift.Change), []string{"max_size", "min_size"}; !reflect.DeepEqual(got, want) {
				t.Errorf("drifted attributes = %v, want %v", got, want)
			}
			after := drift.Change.After.(map[string]any)
			if after["min_size"] != 4.0 || after["max_size"] != 12.0 {
				t.Errorf("live values = %v/%v, want 4/12", after["min_size"], after["max_size"])
			}
			rc := find(p.JSON.ResourceChanges, "sandbox_autoscaling_group.web")
			if rc == nil || !rc.Change.Actions.Update() {
				t.Fatalf("want a planned update of the group, got %+v", rc)
			}
			planned := rc.Change.After.(map[string]any)
			if planned["min_size"] != 3.0 || planned["max_size"] != 9.0 {
				t.Errorf("planned values = %v/%v, want 3/9", planned["min_size"], planned["max_size"])
			}
		})
	}
}

func TestOutOfBandDeletePlansCreate(t *testing.T) {
	for _, bin := range testenv.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			r, job, cloud := setup(t, bin)
			if err := cloud.Delete("sandbox_autoscaling_group", "web"); err != nil {
				t.Fatal(err)
			}
			p, err := r.Plan(context.Background(), job)
			if err != nil {
				t.Fatalf("plan: %v\n%s", err, p.Log)
			}
			defer p.Discard()
			drift := find(p.JSON.ResourceDrift, "sandbox_autoscaling_group.web")
			if drift == nil || !drift.Change.Actions.Delete() {
				t.Errorf("want a deleted group in resource_drift, got %+v", drift)
			}
			rc := find(p.JSON.ResourceChanges, "sandbox_autoscaling_group.web")
			if rc == nil || !rc.Change.Actions.Create() {
				t.Fatalf("want a planned create of the group, got %+v", rc)
			}
		})
	}
}

// TestWarmRunSkipsInit checks the persistent working directory: the second
// plan of an unchanged, in-sync stack runs plan alone.
func TestWarmRunSkipsInit(t *testing.T) {
	for _, bin := range testenv.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			r, job, _ := setup(t, bin)
			before := r.Processes()
			p, err := r.Plan(context.Background(), job)
			if err != nil {
				t.Fatalf("plan: %v\n%s", err, p.Log)
			}
			p.Discard()
			if p.Changes || p.Init.Ran {
				t.Errorf("warm in-sync plan: changes=%v init=%v (%s)", p.Changes, p.Init.Ran, p.Init.Reason)
			}
			if n := r.Processes() - before; n != 1 {
				t.Errorf("warm in-sync plan started %d terraform processes, want 1", n)
			}
			if p.JSON != nil {
				t.Error("an empty plan was shown; it need not be")
			}
			// A new provider requirement changes what init consumes.
			main := filepath.Join(job.Dir, "main.tf")
			src, _ := os.ReadFile(main)
			os.WriteFile(main, []byte(strings.Replace(string(src),
				`sandbox = { source = "trueline/sandbox" }`,
				`sandbox = { source = "trueline/sandbox" }
    time    = { source = "hashicorp/time" }`, 1)), 0o644)
			p, err = r.Plan(context.Background(), job)
			if err != nil {
				t.Fatalf("plan: %v\n%s", err, p.Log)
			}
			p.Discard()
			if !p.Init.Ran {
				t.Error("init did not run after a provider requirement was added")
			}
		})
	}
}

func TestPlanFileIsPrivateAndDiscarded(t *testing.T) {
	bin := testenv.Binary(t, "tofu")
	r, job, cloud := setup(t, bin)
	cloud.Update("sandbox_autoscaling_group", "web", func(o map[string]any) { o["min_size"] = 4 })
	p, err := r.Plan(context.Background(), job)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, p.Log)
	}
	fi, err := os.Stat(p.File)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("plan file mode = %o, want 600", perm)
	}
	file := p.File
	p.Discard()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("plan file still exists after Discard: %v", err)
	}
	if _, err := r.Apply(context.Background(), p); err == nil {
		t.Error("apply of a discarded plan succeeded")
	}
}

func TestBrokenConfigurationNamesFileAndLine(t *testing.T) {
	for _, bin := range testenv.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			dir := t.TempDir()
			testenv.WriteFiles(t, dir, map[string]string{"main.tf": "resource \"sandbox_autoscaling_group\" \"x\" {\n  min_size = \n}\n"})
			r := testenv.Runner(t, bin)
			p, err := r.Plan(context.Background(), runner.Job{Key: "broken", Dir: dir})
			if err == nil {
				p.Discard()
				t.Fatal("plan of broken HCL succeeded")
			}
			if !strings.Contains(err.Error(), "main.tf line 2") {
				t.Errorf("error does not name main.tf line 2: %v", err)
			}
		})
	}
}

func find(list []*tfjson.ResourceChange, addr string) *tfjson.ResourceChange {
	for _, rc := range list {
		if rc.Address == addr {
			return rc
		}
	}
	return nil
}

// changedKeys lists the top-level attributes whose values differ.
func changedKeys(c *tfjson.Change) []string {
	before, _ := c.Before.(map[string]any)
	after, _ := c.After.(map[string]any)
	var keys []string
	for k := range after {
		if !reflect.DeepEqual(before[k], after[k]) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
