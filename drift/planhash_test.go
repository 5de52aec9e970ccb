package drift

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
)

func change(addr string, actions tfjson.Actions, before, after, afterSensitive, afterUnknown any) *tfjson.ResourceChange {
	return &tfjson.ResourceChange{Address: addr, Mode: tfjson.ManagedResourceMode, Change: &tfjson.Change{
		Actions: actions, Before: before, After: after, AfterSensitive: afterSensitive, AfterUnknown: afterUnknown}}
}

// Everything a person approves is in the hash: created resources' contents,
// sensitive values, what is known only after apply; nothing of it shows.
func TestHashPlan(t *testing.T) {
	update := tfjson.Actions{tfjson.ActionUpdate}
	create := tfjson.Actions{tfjson.ActionCreate}
	base := func() *tfjson.Plan {
		return &tfjson.Plan{ResourceChanges: []*tfjson.ResourceChange{
			change("x.a", update, map[string]any{"size": 3.0, "password": "old-secret-1"}, map[string]any{"size": 4.0, "password": "new-secret-1"},
				map[string]any{"password": true}, map[string]any{}),
			change("x.b", create, nil, map[string]any{"name": "b", "id": nil}, map[string]any{}, map[string]any{"id": true}),
			change("x.c", tfjson.Actions{tfjson.ActionNoop}, map[string]any{"n": 1.0}, map[string]any{"n": 1.0}, nil, nil),
		}}
	}
	ref := HashPlan(base())
	if ref.Plan == "" || len(ref.Resources) != 2 {
		t.Fatalf("HashPlan = %+v, want a plan hash and the two changing resources", ref)
	}
	if again := HashPlan(base()); !reflect.DeepEqual(again, ref) {
		t.Error("the same plan hashes differently")
	}
	out, _ := json.Marshal(ref)
	for _, secret := range []string{"old-secret-1", "new-secret-1"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("the hash shows %q", secret)
		}
	}
	tests := []struct {
		name   string
		change func(p *tfjson.Plan)
		want   []string
	}{
		{"a sensitive value differs", func(p *tfjson.Plan) {
			p.ResourceChanges[0].Change.After.(map[string]any)["password"] = "other-secret"
		}, []string{"x.a changes differently"}},
		{"a created resource's contents differ", func(p *tfjson.Plan) {
			p.ResourceChanges[1].Change.After.(map[string]any)["name"] = "c"
		}, []string{"x.b changes differently"}},
		{"known after apply differs", func(p *tfjson.Plan) {
			p.ResourceChanges[1].Change.AfterUnknown = map[string]any{}
		}, []string{"x.b changes differently"}},
		{"another resource changes too", func(p *tfjson.Plan) {
			p.ResourceChanges[2].Change.Actions = update
			p.ResourceChanges[2].Change.After = map[string]any{"n": 2.0}
		}, []string{"x.c is changed too"}},
		{"a resource no longer changes", func(p *tfjson.Plan) {
			p.ResourceChanges = p.ResourceChanges[1:]
		}, []string{"x.a is no longer changed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.change(p)
			now := HashPlan(p)
			if now.Plan == ref.Plan {
				t.Fatal("the plan hash did not change")
			}
			if got := ref.Differences(now); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Differences = %q, want %q", got, tc.want)
			}
		})
	}
	if HashPlan(nil).Plan != "" {
		t.Error("an empty plan has a hash")
	}
}

// A refresh-only plan changes nothing, so its run's approvals bind to its
// drift: the same drift hashes the same whether a refresh-only or a full
// plan found it (pending code in the full plan changes nothing of it),
// other drift differs and says where, and the hashes are never a HashPlan's.
func TestHashDrift(t *testing.T) {
	for _, bin := range fixtureSets {
		t.Run(bin, func(t *testing.T) {
			hash := func(fixture string) PlanHash { return HashDrift(load(t, fixture+"."+bin+".json")) }
			refreshOnly := hash("refresh_only_both")
			if refreshOnly.Plan == "" || len(refreshOnly.Resources) != 1 {
				t.Fatalf("HashDrift of a refresh-only plan with drift = %+v", refreshOnly)
			}
			for _, same := range []string{"console_change", "both"} {
				if got := hash(same); !reflect.DeepEqual(got, refreshOnly) {
					t.Errorf("the full plan %s hashes its drift differently: %v", same, refreshOnly.Differences(got))
				}
			}
			if got := refreshOnly.Differences(hash("refresh_only_desired_capacity")); !reflect.DeepEqual(got, []string{"sandbox_autoscaling_group.web changes differently"}) {
				t.Errorf("other drift: Differences = %q", got)
			}
			if got := refreshOnly.Differences(hash("refresh_only_deleted")); !reflect.DeepEqual(got, []string{"sandbox_autoscaling_group.web changes differently"}) {
				t.Errorf("deleted instead of changed: Differences = %q", got)
			}
			if got := hash("code_change"); got.Plan != "" {
				t.Errorf("a plan without drift has the drift hash %q", got.Plan)
			}
			full := load(t, "console_change."+bin+".json")
			if HashPlan(full).Plan == HashDrift(full).Plan {
				t.Error("a plan's drift hash equals its plan hash")
			}
			out, _ := json.Marshal(hash("refresh_only_password"))
			for _, secret := range plantedSecrets {
				if strings.Contains(string(out), secret) {
					t.Errorf("the drift hash shows %q", secret)
				}
			}
		})
	}
	if HashDrift(nil).Plan != "" {
		t.Error("an empty plan has a drift hash")
	}
}
