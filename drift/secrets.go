package drift

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"
)

// minScrubLength is the shortest secret scrubbed out of free text. Shorter
// sensitive values (a port, "true") would turn every log line into noise;
// in findings they are still masked by their marks.
const minScrubLength = 4

// Secrets is the set of values a plan marks sensitive, for scrubbing text
// that comes from terraform (logs, errors) before it leaves the process.
// The zero value scrubs nothing.
type Secrets struct {
	exact    map[string]bool
	replacer *strings.Replacer
}

// SecretsOf collects every value the plan marks sensitive: variables
// declared sensitive, marked parts of resource changes and drift (before
// and after), sensitive outputs, and marked values of the prior and
// planned state, data sources included. A nil plan has none.
func SecretsOf(plan *tfjson.Plan) Secrets {
	set := map[string]bool{}
	if plan == nil {
		return Secrets{}
	}
	if plan.Config != nil && plan.Config.RootModule != nil {
		for name, v := range plan.Config.RootModule.Variables {
			if v != nil && v.Sensitive {
				if pv, ok := plan.Variables[name]; ok && pv != nil {
					collect(pv.Value, true, set)
				}
			}
		}
	}
	changes := func(rcs []*tfjson.ResourceChange) {
		for _, rc := range rcs {
			if rc == nil || rc.Change == nil {
				continue
			}
			collect(rc.Change.Before, rc.Change.BeforeSensitive, set)
			collect(rc.Change.After, rc.Change.AfterSensitive, set)
		}
	}
	changes(plan.ResourceChanges)
	changes(plan.ResourceDrift)
	for _, dc := range plan.DeferredChanges {
		if dc != nil && dc.ResourceChange != nil {
			changes([]*tfjson.ResourceChange{dc.ResourceChange})
		}
	}
	for _, oc := range plan.OutputChanges {
		if oc == nil {
			continue
		}
		collect(oc.Before, oc.BeforeSensitive, set)
		collect(oc.After, oc.AfterSensitive, set)
	}
	for _, sv := range []*tfjson.StateValues{plan.PlannedValues, priorValues(plan)} {
		if sv == nil {
			continue
		}
		for _, o := range sv.Outputs {
			if o != nil && o.Sensitive {
				collect(o.Value, true, set)
			}
		}
		stateModule(sv.RootModule, set)
	}
	return newSecrets(set)
}

func priorValues(plan *tfjson.Plan) *tfjson.StateValues {
	if plan.PriorState == nil {
		return nil
	}
	return plan.PriorState.Values
}

func stateModule(m *tfjson.StateModule, set map[string]bool) {
	if m == nil {
		return
	}
	for _, r := range m.Resources {
		if r == nil || len(r.SensitiveValues) == 0 {
			continue
		}
		var marks any
		if json.Unmarshal(r.SensitiveValues, &marks) == nil {
			collect(r.AttributeValues, marks, set)
		}
	}
	for _, c := range m.ChildModules {
		stateModule(c, set)
	}
}

// collect adds the values under every true of a mark tree.
func collect(v any, mark any, set map[string]bool) {
	switch mk := mark.(type) {
	case bool:
		if mk {
			leaves(v, set)
		}
	case map[string]any:
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				collect(e, mk[k], set)
			}
		default:
			// Marks of another shape than the value: be safe.
			if anyTrue(mk) {
				leaves(v, set)
			}
		}
	case []any:
		switch x := v.(type) {
		case []any:
			for i, e := range x {
				if i < len(mk) {
					collect(e, mk[i], set)
				} else if anyTrue(mk) {
					leaves(e, set)
				}
			}
		default:
			if anyTrue(mk) {
				leaves(v, set)
			}
		}
	}
}

// leaves adds every scalar inside v.
func leaves(v any, set map[string]bool) {
	switch x := v.(type) {
	case nil:
	case string:
		if x != "" {
			set[x] = true
		}
	case bool:
		set[fmt.Sprint(x)] = true
	case map[string]any:
		for _, e := range x {
			leaves(e, set)
		}
	case []any:
		for _, e := range x {
			leaves(e, set)
		}
	case map[string]string:
		for _, e := range x {
			leaves(e, set)
		}
	default:
		set[fmt.Sprint(x)] = true
	}
}

func newSecrets(set map[string]bool) Secrets {
	if len(set) == 0 {
		return Secrets{}
	}
	var long []string
	for v := range set {
		if len(v) >= minScrubLength {
			long = append(long, v)
		}
	}
	// Longest first, so a secret that contains another is replaced whole.
	sort.Slice(long, func(i, j int) bool {
		if len(long[i]) != len(long[j]) {
			return len(long[i]) > len(long[j])
		}
		return long[i] < long[j]
	})
	var pairs []string
	for _, v := range long {
		pairs = append(pairs, v, Masked)
		// The same secret as it appears inside JSON or a quoted HCL string.
		if q, err := json.Marshal(v); err == nil {
			if inner := string(q[1 : len(q)-1]); inner != v {
				pairs = append(pairs, inner, Masked)
			}
		}
	}
	s := Secrets{exact: set}
	if len(pairs) > 0 {
		s.replacer = strings.NewReplacer(pairs...)
	}
	return s
}

// Merge returns the union of two sets of secrets.
func (s Secrets) Merge(o Secrets) Secrets {
	if len(o.exact) == 0 {
		return s
	}
	if len(s.exact) == 0 {
		return o
	}
	set := make(map[string]bool, len(s.exact)+len(o.exact))
	for v := range s.exact {
		set[v] = true
	}
	for v := range o.exact {
		set[v] = true
	}
	return newSecrets(set)
}

// SecretsFrom makes a set of secrets from known values, such as secrets
// trueline itself passes to terraform.
func SecretsFrom(values ...string) Secrets {
	set := map[string]bool{}
	for _, v := range values {
		if v != "" {
			set[v] = true
		}
	}
	return newSecrets(set)
}

// Len reports how many distinct secret values the set holds.
func (s Secrets) Len() int { return len(s.exact) }

// Scrub replaces every secret in text with the mask.
func (s Secrets) Scrub(text string) string {
	if s.replacer == nil {
		return text
	}
	return s.replacer.Replace(text)
}

// scrubValue masks a value that is, or contains, a secret: a backstop for a
// value that lost its mark on the way (e.g. through a provider that does
// not declare the attribute sensitive).
func (s Secrets) scrubValue(v any) any {
	if len(s.exact) == 0 {
		return v
	}
	switch x := v.(type) {
	case string:
		if s.exact[x] {
			return Masked
		}
		if r := s.Scrub(x); r != x {
			return Masked
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = s.scrubValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = s.scrubValue(e)
		}
		return out
	}
	// Numbers and booleans are masked by their marks only: a sensitive 3
	// must not hide every other 3.
	return v
}
