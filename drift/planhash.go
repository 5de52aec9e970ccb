package drift

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"

	tfjson "github.com/hashicorp/terraform-json"
)

// PlanHash identifies exactly what a plan would do, for binding an
// approval to it. It covers every resource change that does something
// (create, update, delete, replace, read): address, actions, the complete
// before and after values, what is known only after apply, and which
// values are sensitive. Sensitive values enter it only as their own
// SHA-256, so the hash shows nothing and a person's approval still covers
// them. Output changes are left out: they follow the resources.
type PlanHash struct {
	// Plan is the hash of all changes together; empty for an empty plan.
	Plan string `json:"plan"`
	// Resources is each changed resource's hash, by address, so a plan
	// that differs can say where.
	Resources map[string]string `json:"resources"`
}

// HashPlan computes the PlanHash of a plan; a nil plan has none.
func HashPlan(plan *tfjson.Plan) PlanHash {
	h := PlanHash{Resources: map[string]string{}}
	if plan == nil {
		return h
	}
	for _, rc := range plan.ResourceChanges {
		if rc == nil || rc.Change == nil || rc.Change.Actions.NoOp() || len(rc.Change.Actions) == 0 {
			continue
		}
		c := rc.Change
		doc := map[string]any{
			"address":          rc.Address,
			"mode":             rc.Mode,
			"actions":          c.Actions,
			"before":           hashMarked(c.Before, c.BeforeSensitive),
			"after":            hashMarked(c.After, c.AfterSensitive),
			"after_unknown":    c.AfterUnknown,
			"before_sensitive": c.BeforeSensitive,
			"after_sensitive":  c.AfterSensitive,
			"replace_paths":    c.ReplacePaths,
		}
		// encoding/json sorts map keys: the same change hashes the same.
		b, err := json.Marshal(doc)
		if err != nil {
			b = []byte(rc.Address + ": " + err.Error())
		}
		sum := sha256.Sum256(b)
		h.Resources[rc.Address] = hex.EncodeToString(sum[:])
	}
	return h.summed()
}

// HashDrift identifies exactly what changed outside Terraform, as a plan's
// resource drift shows it: for each managed resource, its address, how it
// changed (updated or deleted), and the state's and the refreshed values,
// sensitive ones as their SHA-256 as in HashPlan. A refresh-only plan
// changes nothing, so this is what an approval of its run binds to; a full
// plan made for the same drift has the same drift, and so the same
// HashDrift. The hashes never equal a HashPlan's. A plan without drift has
// none.
func HashDrift(plan *tfjson.Plan) PlanHash {
	h := PlanHash{Resources: map[string]string{}}
	if plan == nil {
		return h
	}
	for _, d := range plan.ResourceDrift {
		if d == nil || d.Change == nil || d.Mode != tfjson.ManagedResourceMode {
			continue
		}
		c := d.Change
		doc := map[string]any{
			"drift":            true, // keeps these hashes apart from HashPlan's
			"address":          d.Address,
			"actions":          c.Actions,
			"before":           hashMarked(c.Before, c.BeforeSensitive),
			"after":            hashMarked(c.After, c.AfterSensitive),
			"before_sensitive": c.BeforeSensitive,
			"after_sensitive":  c.AfterSensitive,
		}
		b, err := json.Marshal(doc)
		if err != nil {
			b = []byte(d.Address + ": " + err.Error())
		}
		sum := sha256.Sum256(b)
		h.Resources[d.Address] = hex.EncodeToString(sum[:])
	}
	return h.summed()
}

// summed sets Plan to the hash of all resources' hashes; empty when there
// are none.
func (h PlanHash) summed() PlanHash {
	if len(h.Resources) == 0 {
		return h
	}
	addrs := make([]string, 0, len(h.Resources))
	for a := range h.Resources {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	all := sha256.New()
	for _, a := range addrs {
		all.Write([]byte(a + "\x00" + h.Resources[a] + "\n"))
	}
	h.Plan = hex.EncodeToString(all.Sum(nil))
	return h
}

// hashMarked replaces every value under a true mark with its SHA-256.
func hashMarked(v any, mark any) any {
	switch mk := mark.(type) {
	case bool:
		if !mk {
			return v
		}
		b, _ := json.Marshal(v)
		sum := sha256.Sum256(b)
		return "sha256:" + hex.EncodeToString(sum[:])
	case map[string]any:
		if m, ok := v.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for k, e := range m {
				out[k] = hashMarked(e, mk[k])
			}
			return out
		}
	case []any:
		if l, ok := v.([]any); ok {
			out := make([]any, len(l))
			for i, e := range l {
				var m any
				if i < len(mk) {
					m = mk[i]
				}
				out[i] = hashMarked(e, m)
			}
			return out
		}
	}
	if anyTrue(mark) {
		// Marks of another shape than the value: hash it whole.
		return hashMarked(v, true)
	}
	return v
}

// Differences names what differs between an approved plan and a new one:
// resources only in one of them, and resources whose changes differ.
func (h PlanHash) Differences(now PlanHash) []string {
	var out []string
	for a, sum := range h.Resources {
		switch got, ok := now.Resources[a]; {
		case !ok:
			out = append(out, a+" is no longer changed")
		case got != sum:
			out = append(out, a+" changes differently")
		}
	}
	for a := range now.Resources {
		if _, ok := h.Resources[a]; !ok {
			out = append(out, a+" is changed too")
		}
	}
	sort.Strings(out)
	return out
}
