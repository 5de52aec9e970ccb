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

// fixtureSets are the binaries whose plans are in testdata: each
// scenario's file is <scenario>.<set>.json (drift/internal/gen). Terraform
// 1.5.7's prove trueline still reads that older release.
var fixtureSets = []string{"tofu-1.10.10", "terraform-1.13.3", "terraform-1.5.7"}

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
	for _, bin := range fixtureSets {
		for _, tc := range tests {
			name := tc.fixture + "." + bin
			if tc.ignore != nil {
				name += ".ignored"
			}
			t.Run(name, func(t *testing.T) {
				wantResult(t, Classify(load(t, tc.fixture+"."+bin+".json"), tc.ignore), tc.want, Full)
			})
		}
	}
}

// A refresh-only plan (drift/internal/gen's refresh_only_ scenarios) holds
// no planned change, only resource_drift: every managed resource changed
// outside Terraform is drift, pending code is never found (the code change
// of refresh_only_both and refresh_only_unmanaged_and_code is not seen), and
// an attribute the code leaves to the cloud is drift too, as the docs say.
// Read as a full plan, the same file would be in sync: the mode decides.
func TestClassifyRefreshOnly(t *testing.T) {
	asg := "sandbox_autoscaling_group.web"
	desiredIgnore, err := ParseIgnore("sandbox_autoscaling_group.*.desired_capacity")
	if err != nil {
		t.Fatal(err)
	}
	asgIgnore, err := ParseIgnore("sandbox_autoscaling_group.web")
	if err != nil {
		t.Fatal(err)
	}
	minSizeOutput := Finding{Address: "output.web_min_size", Attributes: attrs("value", 3.0, 4.0), Reason: "output values follow the resources"}
	tests := []struct {
		fixture string
		ignore  []Ignore
		want    Result
	}{
		{"refresh_only_both", nil, Result{Verdict: Drifted,
			Drift: []Finding{{Address: asg, Action: "update", Attributes: attrs("max_size", 9.0, 12.0, "min_size", 3.0, 4.0)}},
			Noise: []Finding{minSizeOutput}}},
		{"refresh_only_deleted", nil, Result{Verdict: Drifted,
			Drift: []Finding{{Address: asg, Action: "create", Attributes: []Attribute{}}},
			Noise: []Finding{{Address: "output.web_min_size", Attributes: attrs("value", 3.0, nil), Reason: "output values follow the resources"}}}},
		{"refresh_only_deleted", []Ignore{asgIgnore}, Result{Verdict: InSync,
			Noise: []Finding{{Address: asg, Attributes: []Attribute{}, Reason: "deleted outside Terraform; ignored by the stack"},
				{Address: "output.web_min_size", Attributes: attrs("value", 3.0, nil), Reason: "output values follow the resources"}}}},
		{"refresh_only_desired_capacity", nil, Result{Verdict: Drifted,
			Drift: []Finding{{Address: asg, Action: "update", Attributes: attrs("desired_capacity", 3.0, 5.0)}}}},
		{"refresh_only_desired_capacity", []Ignore{desiredIgnore}, Result{Verdict: InSync,
			Noise: []Finding{{Address: asg, Attributes: attrs("desired_capacity", 3.0, 5.0), Reason: "changed outside Terraform; ignored by the stack"}}}},
		{"refresh_only_unmanaged_and_code", nil, Result{Verdict: Drifted,
			Drift: []Finding{{Address: "sandbox_autoscaling_group.worker", Action: "update", Attributes: attrs("desired_capacity", 1.0, 2.0)}}}},
		{"refresh_only_password", nil, Result{Verdict: Drifted,
			Drift: []Finding{{Address: "sandbox_database.main", Action: "update", Attributes: attrs("password", Masked, Masked)}}}},
	}
	for _, bin := range fixtureSets {
		for _, tc := range tests {
			name := tc.fixture + "." + bin
			if tc.ignore != nil {
				name += ".ignored"
			}
			t.Run(name, func(t *testing.T) {
				plan := load(t, tc.fixture+"."+bin+".json")
				wantResult(t, ClassifyRefreshOnly(plan, tc.ignore), tc.want, RefreshOnly)
				if full := Classify(plan, tc.ignore); full.Verdict != InSync || len(full.Drift) != 0 {
					t.Errorf("read as a full plan: %s with %d drift findings; the fixture is no refresh-only plan", full.Verdict, len(full.Drift))
				}
			})
		}
	}
	if got := ClassifyRefreshOnly(nil, nil); got.Verdict != InSync || got.Mode != RefreshOnly || got.Drift == nil {
		t.Errorf("ClassifyRefreshOnly(nil) = %+v", got)
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		ok   bool
	}{{"full", Full, true}, {"refresh-only", RefreshOnly, true}, {"refresh_only", "", false}, {"", "", false}, {"Full", "", false}} {
		got, err := ParseMode(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseMode(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), `use "full" (drift and pending code) or "refresh-only"`) {
			t.Errorf("ParseMode(%q): the error %q does not say what to write", tc.in, err)
		}
	}
}

// plantedSecrets are the secret values of the fixtures (drift/internal/gen):
// in the cloud, in a sensitive variable, in a data source, in a literal of
// a sensitive attribute.
var plantedSecrets = []string{"initial-password-1", "changed-in-console",
	"tok-PLANTED-team-4f1c9a", "rule-PLANTED-literal-51d2", "db-PLANTED-from-data-8e3b", "console-PLANTED-value-0c7d"}

// No secret of the fixtures may survive classification, in any scenario,
// nor the runner's log of the plan; and the fixtures do hold them, so the
// test can fail.
func TestClassifyNeverLeaksSecrets(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	planted := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p := load(t, filepath.Base(f))
		full, _ := json.Marshal(Classify(p, nil))
		refreshOnly, _ := json.Marshal(ClassifyRefreshOnly(p, nil))
		out := string(full) + string(refreshOnly)
		secrets := SecretsOf(p)
		for _, secret := range plantedSecrets {
			if !strings.Contains(string(raw), secret) {
				continue
			}
			planted[secret] = true
			if strings.Contains(out, secret) {
				t.Errorf("%s: classification contains the secret %q", f, secret)
			}
			if got := secrets.Scrub("error: " + secret); strings.Contains(got, secret) {
				t.Errorf("%s: the plan's secrets do not scrub %q", f, secret)
			}
		}
		log, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".log")
		if err != nil {
			t.Fatalf("%v (regenerate with `make testdata`)", err)
		}
		for _, secret := range plantedSecrets {
			if strings.Contains(string(log), secret) {
				t.Errorf("%s: the runner's log of the plan contains the secret %q", f, secret)
			}
		}
	}
	for _, secret := range plantedSecrets {
		if !planted[secret] {
			t.Errorf("no fixture holds %q: the test proves nothing for it", secret)
		}
	}
}

// Each shape a secret takes: the finding is there, and its value masked.
func TestClassifySecretShapes(t *testing.T) {
	app := "sandbox_app_config.app"
	tests := []struct {
		fixture string
		want    []Finding
	}{
		{"secret_map_emptied", []Finding{{Address: app, Action: "update", Attributes: attrs("tags.team", "payments", nil, "tags.token", Masked, Masked)}}},
		{"secret_map_value", []Finding{{Address: app, Action: "update", Attributes: attrs("tags.token", Masked, Masked)}}},
		{"secret_list_length", []Finding{{Address: app, Action: "update", Attributes: attrs("env", Masked, Masked)}}},
		{"secret_set", []Finding{{Address: app, Action: "update", Attributes: attrs("allowed_cidrs", Masked, Masked)}}},
		{"secret_object_null", []Finding{{Address: app, Action: "update", Attributes: attrs("settings", Masked, Masked)}}},
		{"secret_block_removed", []Finding{{Address: app, Action: "update", Attributes: attrs("rule", Masked, Masked)}}},
		{"secret_block_changed", []Finding{{Address: app, Action: "update", Attributes: attrs("rule[0].secret", Masked, Masked, "rule[1].name", "second", "renamed")}}},
		{"secret_attribute", []Finding{{Address: app, Action: "update", Attributes: attrs("api_key", Masked, Masked)}}},
		{"refresh_only_secret_block_changed", []Finding{{Address: app, Action: "update", Attributes: attrs("rule[0].secret", Masked, Masked, "rule[1].name", "second", "renamed")}}},
	}
	for _, bin := range fixtureSets {
		for _, tc := range tests {
			t.Run(tc.fixture+"."+bin, func(t *testing.T) {
				classify := Classify
				if strings.HasPrefix(tc.fixture, "refresh_only_") {
					classify = ClassifyRefreshOnly
				}
				got := classify(load(t, tc.fixture+"."+bin+".json"), nil)
				if !reflect.DeepEqual(got.Drift, tc.want) {
					g, _ := json.MarshalIndent(got, "", "  ")
					t.Errorf("got\n%s", g)
				}
			})
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
	before := map[string]any{"a": 1.0, "tags": map[string]any{"x": "1", "k8s.io/role": "a"}, "l": []any{1.0, 2.0}, "s": []any{"a"}}
	after := map[string]any{"a": 1.0, "tags": map[string]any{"x": "2", "y": "3", "k8s.io/role": "b"}, "l": []any{1.0, 5.0}, "s": []any{"a", "b"}}
	got := diffLeaves("", before, after, marks{})
	want := []leaf{{path: "l[1]", before: 2.0, after: 5.0}, {path: "s", before: []any{"a"}, after: []any{"a", "b"}},
		{path: `tags["k8s.io/role"]`, before: "a", after: "b"}, {path: "tags.x", before: "1", after: "2"}, {path: "tags.y", after: "3"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diffLeaves = %v, want %v", got, want)
	}
}

// Which leaves are sensitive: a mark at the leaf, above it, or anywhere
// inside it. Each case is a shape a secret takes in a real plan.
func TestDiffLeavesSensitive(t *testing.T) {
	tests := []struct {
		name          string
		before, after any
		m             marks
		want          map[string]bool // path -> sensitive
	}{
		{"marked leaf", map[string]any{"p": "a"}, map[string]any{"p": "b"},
			marks{afterSensitive: map[string]any{"p": true}}, map[string]bool{"p": true}},
		{"marked only before", map[string]any{"p": "a"}, map[string]any{"p": "b"},
			marks{beforeSensitive: map[string]any{"p": true}}, map[string]bool{"p": true}},
		{"marked parent", map[string]any{"tags": map[string]any{"x": "1"}}, map[string]any{"tags": map[string]any{"x": "2"}},
			marks{afterSensitive: map[string]any{"tags": true}}, map[string]bool{"tags.x": true}},
		{"map key with dots under a marked key", map[string]any{"tags": map[string]any{}}, map[string]any{"tags": map[string]any{"a.b": "s", "c": "ok"}},
			marks{afterSensitive: map[string]any{"tags": map[string]any{"a.b": true}}}, map[string]bool{`tags["a.b"]`: true, "tags.c": false}},
		{"list that changed length, one element marked", map[string]any{"env": []any{"A=1"}}, map[string]any{"env": []any{"A=1", "S"}},
			marks{afterSensitive: map[string]any{"env": []any{false, true}}}, map[string]bool{"env": true}},
		{"set with a marked element", map[string]any{"cidrs": []any{"x"}}, map[string]any{"cidrs": []any{"x", "S"}},
			marks{afterSensitive: map[string]any{"cidrs": []any{false, true}}}, map[string]bool{"cidrs": true}},
		{"null to object with a marked attribute", map[string]any{"settings": nil}, map[string]any{"settings": map[string]any{"level": "info", "token": "S"}},
			marks{afterSensitive: map[string]any{"settings": map[string]any{"token": true}}}, map[string]bool{"settings": true}},
		{"nested block, same length", map[string]any{"rule": []any{map[string]any{"name": "a", "secret": "S"}}},
			map[string]any{"rule": []any{map[string]any{"name": "b", "secret": "T"}}},
			marks{beforeSensitive: map[string]any{"rule": []any{map[string]any{"secret": true}}}, afterSensitive: map[string]any{"rule": []any{map[string]any{"secret": true}}}},
			map[string]bool{"rule[0].name": false, "rule[0].secret": true}},
		{"nested block removed", map[string]any{"rule": []any{map[string]any{"name": "a", "secret": "S"}, map[string]any{"name": "b", "secret": "T"}}},
			map[string]any{"rule": []any{map[string]any{"name": "a", "secret": "S"}}},
			marks{beforeSensitive: map[string]any{"rule": []any{map[string]any{"secret": true}, map[string]any{"secret": true}}}},
			map[string]bool{"rule": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]bool{}
			for _, l := range diffLeaves("", tc.before, tc.after, tc.m) {
				got[l.path] = l.sensitive
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("sensitive leaves = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSecretsScrub(t *testing.T) {
	p := &tfjson.Plan{
		Variables: map[string]*tfjson.PlanVariable{"token": {Value: "tok-123456"}, "port": {Value: "80"}},
		Config: &tfjson.Config{RootModule: &tfjson.ConfigModule{
			Variables: map[string]*tfjson.ConfigVariable{"token": {Sensitive: true}, "port": {}}}},
		ResourceChanges: []*tfjson.ResourceChange{{Address: "x.a", Mode: tfjson.ManagedResourceMode, Change: &tfjson.Change{
			Actions: tfjson.Actions{tfjson.ActionUpdate},
			Before:  map[string]any{"rule": []any{map[string]any{"secret": `with "quote"`}}},
			After:   map[string]any{"rule": []any{}}, BeforeSensitive: map[string]any{"rule": []any{map[string]any{"secret": true}}}}}},
	}
	s := SecretsOf(p)
	in := `Error: bad token tok-123456 on port 80; {"secret":"with \"quote\""}`
	got := s.Scrub(in)
	want := `Error: bad token (sensitive) on port 80; {"secret":"(sensitive)"}`
	if got != want {
		t.Errorf("Scrub = %q, want %q", got, want)
	}
	if (Secrets{}).Scrub(in) != in {
		t.Error("the zero Secrets changed text")
	}
}

// wantResult compares a classification with the expected one, made by mode;
// empty finding lists may be left out of want.
func wantResult(t *testing.T, got, want Result, mode Mode) {
	t.Helper()
	want.Mode = mode
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
}
