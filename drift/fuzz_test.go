package drift_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/trueline/trueline/drift"
)

// FuzzClassify feeds plan JSON to Classify and ClassifyRefreshOnly (and
// HashPlan and HashDrift), as trueline reads `show -json`. It must not panic, and every value a finding shows
// must be masked or come from the plan: Classify never invents a value, and
// never shows one the plan marks sensitive.
func FuzzClassify(f *testing.F) {
	fixtures, err := filepath.Glob("testdata/*.json")
	if err != nil || len(fixtures) == 0 {
		f.Fatalf("no plan fixtures to seed from: %v", err)
	}
	for _, name := range fixtures {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// A small plan with every shape Classify reads: mutations of it reach
	// further than those of a 10 kB fixture, most of which break the JSON.
	f.Add([]byte(`{"format_version":"1.2",
"variables":{"pw":{"value":"hunter22"}},
"configuration":{"root_module":{"variables":{"pw":{"sensitive":true}}}},
"resource_drift":[{"address":"a.b","mode":"managed","type":"a","name":"b","change":{"actions":["update"],
  "before":{"n":1,"tags":{"k":"v"},"pw":"hunter22"},"after":{"n":2,"tags":{"k":"w"},"pw":"x"}}}],
"resource_changes":[
 {"address":"a.b","mode":"managed","type":"a","name":"b","change":{"actions":["update"],
  "before":{"n":2,"l":[1,2],"s":"p","m":{"x":{"y":true}}},"after":{"n":1,"l":[1,3],"s":"q","m":{"x":{"y":false}}},
  "after_unknown":{"l":[false,true]},"before_sensitive":{"s":true},"after_sensitive":{"s":true,"m":{"x":{"y":true}}}}},
 {"address":"a.c","mode":"managed","type":"a","name":"c","change":{"actions":["delete","create"],"before":{"x":"1"},"after":{"x":"2"}}},
 {"address":"data.a.d","mode":"data","type":"a","name":"d","change":{"actions":["read"],"before":null,"after":{"x":"3"}}}],
"output_changes":{"o":{"actions":["update"],"before":"a","after":"b","after_sensitive":true}}}`))
	var ignores []drift.Ignore
	for _, rule := range []string{"sandbox_autoscaling_group.*.desired_capacity", "*.*.tags", "module.*.sandbox_*.*"} {
		ig, err := drift.ParseIgnore(rule)
		if err != nil {
			f.Fatal(err)
		}
		ignores = append(ignores, ig)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var plan tfjson.Plan
		if err := json.Unmarshal(data, &plan); err != nil {
			return
		}
		// The same document, generically: every value and key it holds.
		var doc any
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
			t.Fatalf("tfjson read a plan encoding/json cannot: %v", err)
		}
		in := map[string]bool{}
		collect(doc, in)
		secrets := drift.SecretsOf(&plan)
		// Approvals bind to this hash: it must not panic, and must not vary.
		if a, b := drift.HashPlan(&plan), drift.HashPlan(&plan); a.Plan != b.Plan {
			t.Errorf("the same plan hashes to %s and %s", a.Plan, b.Plan)
		}
		if a, b := drift.HashDrift(&plan), drift.HashDrift(&plan); a.Plan != b.Plan {
			t.Errorf("the same plan's drift hashes to %s and %s", a.Plan, b.Plan)
		}

		for _, run := range []struct {
			classify func(*tfjson.Plan, []drift.Ignore) drift.Result
			ig       []drift.Ignore
		}{{drift.Classify, nil}, {drift.Classify, ignores}, {drift.ClassifyRefreshOnly, nil}, {drift.ClassifyRefreshOnly, ignores}} {
			res := run.classify(&plan, run.ig)
			for _, group := range [][]drift.Finding{res.Drift, res.Pending, res.Noise} {
				for _, fd := range group {
					for _, a := range fd.Attributes {
						for _, v := range []any{a.Git, a.Live} {
							checkValue(t, fd.Address+"."+a.Path, v, in, secrets)
						}
					}
				}
			}
		}
	})
}

// collect records every scalar and map key of a JSON value, keyed by its
// JSON encoding so that strings and numbers stay apart.
func collect(v any, into map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			into[key(k)] = true
			collect(e, into)
		}
	case []any:
		for _, e := range x {
			collect(e, into)
		}
	default:
		into[key(x)] = true
	}
}

func key(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// checkValue fails unless every part of v is masked or present in the plan,
// and no string in it holds a value the plan marks sensitive.
func checkValue(t *testing.T, where string, v any, in map[string]bool, secrets drift.Secrets) {
	t.Helper()
	switch x := v.(type) {
	case nil:
		// An absent value: the attribute is not set on one side.
	case map[string]any:
		for k, e := range x {
			if !in[key(k)] {
				t.Errorf("%s: key %q is not in the plan", where, k)
			}
			checkValue(t, where+"."+k, e, in, secrets)
		}
	case []any:
		for _, e := range x {
			checkValue(t, where+"[]", e, in, secrets)
		}
	case string:
		if x == drift.Masked {
			return
		}
		if !in[key(x)] {
			t.Errorf("%s: %q is neither masked nor in the plan", where, x)
		}
		if secrets.Scrub(x) != x {
			t.Errorf("%s: %q shows a value the plan marks sensitive", where, x)
		}
	default:
		if !in[key(x)] {
			t.Errorf("%s: %v (%T) is neither masked nor in the plan", where, x, x)
		}
	}
}
