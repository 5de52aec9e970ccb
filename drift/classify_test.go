package drift

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
)

func load(t *testing.T, name string) *tfjson.Plan {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("%v (regenerate with `make testdata`)", err)
	}
	var p tfjson.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func attrs(kv ...any) []Attribute {
	out := []Attribute{}
	for i := 0; i < len(kv); i += 3 {
		out = append(out, Attribute{Path: kv[i].(string), Git: kv[i+1], Live: kv[i+2]})
	}
	return out
}

// The fixtures are plans of real tofu and terraform runs (drift/internal/gen).
func TestClassify(t *testing.T) {
	asg := "sandbox_autoscaling_group.web"
	lbCode := []Finding{{Address: "sandbox_load_balancer.web", Action: "update", Attributes: attrs("idle_timeout", 120.0, 60.0)}}
	consoleDrift := []Finding{{Address: asg, Action: "update", Attributes: attrs("max_size", 9.0, 12.0, "min_size", 3.0, 4.0)}}
	desiredIgnore, err := ParseIgnore("sandbox_autoscaling_group.*.desired_capacity")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		fixture string
		ignore  []Ignore
		want    Result
	}{
		{"console_change", nil, Result{Verdict: Drifted, Drift: consoleDrift}},
		{"code_change", nil, Result{Verdict: Pending, Pending: lbCode}},
		{"both", nil, Result{Verdict: DriftedAndPending, Drift: consoleDrift, Pending: lbCode}},
		{"deleted", nil, Result{Verdict: Drifted, Drift: []Finding{{Address: asg, Action: "create", Attributes: []Attribute{}}}}},
		{"desired_capacity", []Ignore{desiredIgnore}, Result{Verdict: InSync,
			Noise: []Finding{{Address: asg, Attributes: attrs("desired_capacity", 3.0, 5.0), Reason: "ignored by the stack", Planned: true}}}},
		{"desired_capacity", nil, Result{Verdict: Drifted,
			Drift: []Finding{{Address: asg, Action: "update", Attributes: attrs("desired_capacity", 3.0, 5.0)}}}},
		{"unmanaged_and_code", nil, Result{Verdict: Pending, Pending: lbCode,
			Noise: []Finding{{Address: "sandbox_autoscaling_group.worker", Attributes: attrs("desired_capacity", 1.0, 2.0),
				Reason: "changed outside Terraform; no planned change reverts it"}}}},
		{"password", nil, Result{Verdict: Drifted,
			Drift: []Finding{{Address: "sandbox_database.main", Action: "update", Attributes: attrs("password", Masked, Masked)}}}},
		{"listener_port", nil, Result{Verdict: Drifted,
			Drift: []Finding{{Address: "sandbox_lb_listener.http", Action: "replace", Attributes: attrs("port", 80.0, 8080.0)}}}},
		{"removed", nil, Result{Verdict: Pending,
			Pending: []Finding{{Address: "sandbox_autoscaling_group.worker", Action: "delete", Attributes: []Attribute{}}}}},
	}
	for _, bin := range []string{"tofu", "terraform"} {
		for _, tc := range tests {
			name := tc.fixture + "." + bin
			if tc.ignore != nil {
				name += ".ignored"
			}
			t.Run(name, func(t *testing.T) {
				got := Classify(load(t, tc.fixture+"."+bin+".json"), tc.ignore)
				want := tc.want
				for _, l := range []*[]Finding{&want.Drift, &want.Pending, &want.Noise} {
					if *l == nil {
						*l = []Finding{}
					}
				}
				if !reflect.DeepEqual(got, want) {
					g, _ := json.MarshalIndent(got, "", "  ")
					w, _ := json.MarshalIndent(want, "", "  ")
					t.Errorf("got\n%s\nwant\n%s", g, w)
				}
			})
		}
	}
}

// No secret of the fixtures may survive classification, in any scenario.
func TestClassifyNeverLeaksSecrets(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		p := load(t, filepath.Base(f))
		out, _ := json.Marshal(Classify(p, nil))
		for _, secret := range []string{"initial-password-1", "changed-in-console"} {
			if strings.Contains(string(out), secret) {
				t.Errorf("%s: classification contains the secret %q", f, secret)
			}
		}
	}
}

func TestClassifyNilPlanIsInSync(t *testing.T) {
	if got := Classify(nil, nil); got.Verdict != InSync || got.Drift == nil {
		t.Errorf("Classify(nil) = %+v", got)
	}
}

// A sensitive variable's value is masked even where Terraform lost its mark.
func TestClassifyScrubsSensitiveVariables(t *testing.T) {
	p := &tfjson.Plan{
		Variables: map[string]*tfjson.PlanVariable{"token": {Value: "s3cr3t-token"}},
		Config: &tfjson.Config{RootModule: &tfjson.ConfigModule{
			Variables: map[string]*tfjson.ConfigVariable{"token": {Sensitive: true}}}},
		ResourceChanges: []*tfjson.ResourceChange{{
			Address: "x_thing.a", Mode: tfjson.ManagedResourceMode,
			Change: &tfjson.Change{Actions: tfjson.Actions{tfjson.ActionUpdate},
				Before: map[string]any{"header": "old"}, After: map[string]any{"header": "s3cr3t-token"}},
		}},
	}
	out, _ := json.Marshal(Classify(p, nil))
	if strings.Contains(string(out), "s3cr3t-token") {
		t.Errorf("secret leaked: %s", out)
	}
}

func TestIgnore(t *testing.T) {
	tests := []struct {
		rule, addr, attr string
		want             bool
	}{
		{"sandbox_autoscaling_group.*.desired_capacity", "sandbox_autoscaling_group.web", "desired_capacity", true},
		{"sandbox_autoscaling_group.*.desired_capacity", "sandbox_autoscaling_group.web", "min_size", false},
		{"sandbox_autoscaling_group.*.desired_capacity", "sandbox_load_balancer.web", "desired_capacity", false},
		{"sandbox_autoscaling_group.web.desired_capacity", `sandbox_autoscaling_group.web["a"]`, "desired_capacity", true},
		{"sandbox_autoscaling_group.*.tags", "sandbox_autoscaling_group.web", "tags.owner", true},
		{"*.*.tags", "sandbox_load_balancer.x", "tags", true},
		{"*.*.tags", "module.app.sandbox_load_balancer.x", "tags", false},
		{"module.*.sandbox_load_balancer.*.tags", "module.app.sandbox_load_balancer.x", "tags", true},
		{"sandbox_database.main", "sandbox_database.main", "password", true},
	}
	for _, tc := range tests {
		ig, err := ParseIgnore(tc.rule)
		if err != nil {
			t.Fatalf("%s: %v", tc.rule, err)
		}
		if got := ig.Matches(tc.addr, tc.attr); got != tc.want {
			t.Errorf("%s matches %s %s = %v, want %v", tc.rule, tc.addr, tc.attr, got, tc.want)
		}
	}
	for _, bad := range []string{"desired_capacity", "a..b", "module.x", "a.[.b"} {
		if _, err := ParseIgnore(bad); err == nil {
			t.Errorf("ParseIgnore(%q) succeeded", bad)
		}
	}
}

func TestDiffLeaves(t *testing.T) {
	before := map[string]any{"a": 1.0, "tags": map[string]any{"x": "1"}, "l": []any{1.0, 2.0}, "s": []any{"a"}}
	after := map[string]any{"a": 1.0, "tags": map[string]any{"x": "2", "y": "3"}, "l": []any{1.0, 5.0}, "s": []any{"a", "b"}}
	got := diffLeaves("", before, after)
	want := []leaf{{"l[1]", 2.0, 5.0}, {"s", []any{"a"}, []any{"a", "b"}}, {"tags.x", "1", "2"}, {"tags.y", nil, "3"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diffLeaves = %v, want %v", got, want)
	}
	if !marked(map[string]any{"l": []any{false, true}}, "l[1]") || marked(map[string]any{"l": []any{false, true}}, "l[0]") {
		t.Error("marked does not follow list indexes")
	}
	if !marked(map[string]any{"tags": true}, "tags.x") {
		t.Error("a marked parent does not cover its children")
	}
}
