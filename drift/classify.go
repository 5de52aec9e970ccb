// Package drift classifies a plan's JSON into findings and a verdict. It
// tells out-of-band drift (a planned change that reverts a change made
// outside Terraform) from pending code (a planned change that comes from the
// configuration in Git), and both from noise (drift that causes no planned
// change, or that a stack ignores). A refresh-only plan compares no code:
// ClassifyRefreshOnly reads its drift alone. Everything here is a pure
// function of the plan; sensitive values are masked before a finding leaves
// the package.
package drift

//go:generate go run ./internal/gen -out testdata

import (
	"encoding/json"
	"fmt"
	"sort"

	tfjson "github.com/hashicorp/terraform-json"
)

// Verdict is a run's classification.
type Verdict string

const (
	InSync            Verdict = "in_sync"
	Drifted           Verdict = "drifted"
	Pending           Verdict = "pending"
	DriftedAndPending Verdict = "drifted_and_pending"
	Error             Verdict = "error"
)

// Mode is how a plan was made, and so what its verdict covers.
type Mode string

const (
	// Full plans compare the code with the refreshed state: drift, pending
	// code and noise.
	Full Mode = "full"
	// RefreshOnly plans (-refresh-only) only refresh: they find drift and
	// never pending code, so their verdict is drifted or in_sync, the
	// latter meaning "no drift", with the code not compared.
	RefreshOnly Mode = "refresh-only"
)

// ParseMode reads a mode as stack.hcl and policies write it.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Full, RefreshOnly:
		return m, nil
	}
	return "", fmt.Errorf("mode = %q; use \"full\" (drift and pending code) or \"refresh-only\" (drift alone, the code not compared)", s)
}

// Finding is one resource's share of a plan.
type Finding struct {
	Address    string      `json:"address"`
	Action     string      `json:"action,omitempty"` // create, update, replace, delete; empty for noise
	Attributes []Attribute `json:"attributes"`
	// Reason says why noise is noise.
	Reason string `json:"reason,omitempty"`
	// Planned marks noise the plan would change anyway (ignored by the
	// stack, but an apply of this plan would touch it).
	Planned bool `json:"planned,omitempty"`
}

// Attribute is one attribute of a finding: what Git (the configuration or
// the last applied state) wants, and what is live.
type Attribute struct {
	Path string `json:"path"`
	Git  any    `json:"git"`
	Live any    `json:"live"`
}

// Result is the classification of one plan.
type Result struct {
	Verdict Verdict `json:"verdict"`
	// Mode is how the classified plan was made; empty in results from
	// before modes existed, which were full.
	Mode    Mode      `json:"mode,omitempty"`
	Drift   []Finding `json:"drift"`
	Pending []Finding `json:"pending"`
	Noise   []Finding `json:"noise"`
}

// Counts of planned resource actions, for guardrails.
func (r Result) Changes() int { return len(r.Drift) + len(r.Pending) }

// InSyncResult is the result of an empty plan.
func InSyncResult() Result {
	return Result{Verdict: InSync, Drift: []Finding{}, Pending: []Finding{}, Noise: []Finding{}}
}

// Classify turns a full plan into a result. A nil plan is an empty plan.
func Classify(plan *tfjson.Plan, ignores []Ignore) Result {
	res := InSyncResult()
	res.Mode = Full
	if plan == nil {
		return res
	}
	mask, ignored, drifted := prepare(plan, ignores)

	relevant := relevantAttributes(plan)
	explained := map[string]map[string]bool{} // address -> drifted paths a planned change reverts

	for _, rc := range plan.ResourceChanges {
		// Data sources are read, never drift; their reads are consequences.
		if rc == nil || rc.Mode != tfjson.ManagedResourceMode || rc.Change == nil {
			continue
		}
		action := actionOf(rc.Change.Actions)
		if action == "" {
			continue
		}
		d := drifted[rc.Address]
		c := rc.Change
		switch action {
		case "create":
			if d != nil && d.Change.Actions.Delete() {
				// In state before, gone now: deleted outside Terraform.
				explained[rc.Address] = map[string]bool{"": true}
				if ignored(rc.Address, "") {
					res.Noise = append(res.Noise, Finding{Address: rc.Address, Attributes: []Attribute{},
						Reason: "deleted outside Terraform; ignored by the stack"})
					continue
				}
				res.Drift = append(res.Drift, Finding{Address: rc.Address, Action: action, Attributes: []Attribute{}})
			} else {
				res.Pending = append(res.Pending, Finding{Address: rc.Address, Action: action, Attributes: []Attribute{}})
			}
			continue
		case "delete":
			// Removed from the configuration: only Git can ask for that.
			res.Pending = append(res.Pending, Finding{Address: rc.Address, Action: action, Attributes: []Attribute{}})
			continue
		}

		// update or replace: attribute by attribute.
		var driftLeaves []leaf
		if d != nil {
			driftLeaves = diffLeaves("", d.Change.Before, d.Change.After, marksOf(d.Change))
		}
		var drift, pending, noise []Attribute
		for _, l := range diffLeaves("", c.Before, c.After, marksOf(c)) {
			if l.unknown {
				continue // known after apply: a consequence, not a cause
			}
			a := Attribute{Path: l.path, Git: mask(l.after, l.sensitive), Live: mask(l.before, l.sensitive)}
			if ignored(rc.Address, l.path) {
				noise = append(noise, a)
				continue
			}
			if wasDrifted(driftLeaves, l.path) {
				drift = append(drift, a)
				if explained[rc.Address] == nil {
					explained[rc.Address] = map[string]bool{}
				}
				explained[rc.Address][l.path] = true
			} else {
				pending = append(pending, a)
			}
		}
		if action == "replace" && len(drift) == 0 && len(pending) == 0 && len(noise) == 0 {
			// Replaced for a reason the values do not show (e.g. -replace): code.
			pending = []Attribute{}
		}
		if len(drift) > 0 {
			res.Drift = append(res.Drift, Finding{Address: rc.Address, Action: action, Attributes: drift})
		}
		if pending != nil {
			res.Pending = append(res.Pending, Finding{Address: rc.Address, Action: action, Attributes: pending})
		}
		if len(noise) > 0 {
			res.Noise = append(res.Noise, Finding{Address: rc.Address, Attributes: noise, Reason: "ignored by the stack", Planned: true})
		}
	}

	// Drift no planned change reverts is noise: the configuration does not
	// manage it, or a lifecycle rule ignores it.
	for _, addr := range sortedAddrs(drifted) {
		d := drifted[addr]
		if explained[addr][""] {
			continue
		}
		if d.Change.Actions.Delete() {
			// Deleted and not recreated (e.g. removed from the configuration too).
			continue
		}
		var attrs []Attribute
		for _, l := range diffLeaves("", d.Change.Before, d.Change.After, marksOf(d.Change)) {
			if explained[addr][l.path] || alreadyNoise(res.Noise, addr, l.path) {
				continue
			}
			attrs = append(attrs, Attribute{Path: l.path, Git: mask(l.before, l.sensitive), Live: mask(l.after, l.sensitive)})
		}
		if len(attrs) == 0 {
			continue
		}
		reason := "changed outside Terraform; no planned change reverts it"
		if relevant[addr] {
			reason += " (other resources or outputs refer to it)"
		}
		res.Noise = append(res.Noise, Finding{Address: addr, Attributes: attrs, Reason: reason})
	}

	res.Noise = append(res.Noise, outputNoise(plan, mask, false)...)
	switch {
	case len(res.Drift) > 0 && len(res.Pending) > 0:
		res.Verdict = DriftedAndPending
	case len(res.Drift) > 0:
		res.Verdict = Drifted
	case len(res.Pending) > 0:
		res.Verdict = Pending
	}
	return res
}

// prepare is what both classifications read of a plan first: how to mask
// a value (sensitive marks, and any value the plan marks sensitive
// elsewhere), whether the stack ignores an attribute, and the managed
// resources that changed outside Terraform by address. A null drift entry
// (JSON terraform never writes, but a file can hold) is skipped, not a panic.
func prepare(plan *tfjson.Plan, ignores []Ignore) (mask func(v any, sensitive bool) any, ignored func(addr, attr string) bool, drifted map[string]*tfjson.ResourceChange) {
	secrets := SecretsOf(plan)
	mask = func(v any, sensitive bool) any {
		if sensitive {
			return Masked
		}
		return secrets.scrubValue(v)
	}
	ignored = func(addr, attr string) bool {
		for _, ig := range ignores {
			if ig.Matches(addr, attr) {
				return true
			}
		}
		return false
	}
	drifted = map[string]*tfjson.ResourceChange{}
	for _, d := range plan.ResourceDrift {
		if d != nil && d.Mode == tfjson.ManagedResourceMode && d.Change != nil {
			drifted[d.Address] = d
		}
	}
	return mask, ignored, drifted
}

// ClassifyRefreshOnly turns a refresh-only plan into a result. Such a plan
// changes nothing and compares no code: every managed resource that changed
// outside Terraform since the last apply is drift (its attributes with the
// state's value as Git's and the refreshed one as live), unless the stack
// ignores it; pending code is never found, so the verdict is drifted or
// in_sync. Unlike a full plan, it cannot tell drift a plan would revert from
// a change the code leaves alone (an attribute the configuration does not
// set, ignore_changes): both are drift here. A finding's action is what
// reverting it takes at least: update, or create for a resource deleted
// outside Terraform; only a full plan knows whether an update is a replace.
// A nil plan is an empty plan.
func ClassifyRefreshOnly(plan *tfjson.Plan, ignores []Ignore) Result {
	res := InSyncResult()
	res.Mode = RefreshOnly
	if plan == nil {
		return res
	}
	mask, ignored, drifted := prepare(plan, ignores)
	for _, addr := range sortedAddrs(drifted) {
		c := drifted[addr].Change
		if c.Actions.Delete() {
			if ignored(addr, "") {
				res.Noise = append(res.Noise, Finding{Address: addr, Attributes: []Attribute{},
					Reason: "deleted outside Terraform; ignored by the stack"})
				continue
			}
			res.Drift = append(res.Drift, Finding{Address: addr, Action: "create", Attributes: []Attribute{}})
			continue
		}
		var drift, noise []Attribute
		for _, l := range diffLeaves("", c.Before, c.After, marksOf(c)) {
			if l.unknown {
				continue
			}
			a := Attribute{Path: l.path, Git: mask(l.before, l.sensitive), Live: mask(l.after, l.sensitive)}
			if ignored(addr, l.path) {
				noise = append(noise, a)
			} else {
				drift = append(drift, a)
			}
		}
		if len(drift) > 0 {
			res.Drift = append(res.Drift, Finding{Address: addr, Action: "update", Attributes: drift})
		}
		if len(noise) > 0 {
			res.Noise = append(res.Noise, Finding{Address: addr, Attributes: noise, Reason: "changed outside Terraform; ignored by the stack"})
		}
	}
	res.Noise = append(res.Noise, outputNoise(plan, mask, true)...)
	if len(res.Drift) > 0 {
		res.Verdict = Drifted
	}
	return res
}

// outputNoise lists a plan's output changes: never drift, they follow
// whatever else changed. A full plan's new value is what Git wants; a
// refresh-only plan's is what was refreshed, live.
func outputNoise(plan *tfjson.Plan, mask func(any, bool) any, refreshOnly bool) []Finding {
	var out []Finding
	for _, name := range sortedOutputs(plan.OutputChanges) {
		oc := plan.OutputChanges[name]
		if oc == nil || actionOf(oc.Actions) == "" {
			continue
		}
		sensitive := anyTrue(oc.BeforeSensitive) || anyTrue(oc.AfterSensitive)
		git, live := oc.After, oc.Before
		if refreshOnly {
			git, live = live, git
		}
		out = append(out, Finding{Address: "output." + name,
			Attributes: []Attribute{{Path: "value", Git: mask(git, sensitive), Live: mask(live, sensitive)}},
			Reason:     "output values follow the resources"})
	}
	return out
}

// actionOf names a planned action the way findings do; "" for no-op and read.
func actionOf(a tfjson.Actions) string {
	switch {
	case a.Replace():
		return "replace"
	case a.Create():
		return "create"
	case a.Update():
		return "update"
	case a.Delete():
		return "delete"
	}
	return ""
}

func wasDrifted(driftLeaves []leaf, p string) bool {
	for _, d := range driftLeaves {
		if prefixOf(d.path, p) || prefixOf(p, d.path) {
			return true
		}
	}
	return false
}

func alreadyNoise(noise []Finding, addr, p string) bool {
	for _, f := range noise {
		if f.Address != addr {
			continue
		}
		for _, a := range f.Attributes {
			if prefixOf(a.Path, p) || prefixOf(p, a.Path) {
				return true
			}
		}
	}
	return false
}

func relevantAttributes(plan *tfjson.Plan) map[string]bool {
	out := map[string]bool{}
	for _, ra := range plan.RelevantAttributes {
		out[ra.Resource] = true
	}
	return out
}

func marksOf(c *tfjson.Change) marks {
	return marks{beforeSensitive: c.BeforeSensitive, afterSensitive: c.AfterSensitive, afterUnknown: c.AfterUnknown}
}

func isTrue(v any) bool { b, ok := v.(bool); return ok && b }

func sortedAddrs(m map[string]*tfjson.ResourceChange) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedOutputs(m map[string]*tfjson.Change) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Fingerprint identifies the planned changes of a result: addresses,
// actions and attribute values. Two plans with the same fingerprint would
// do the same thing.
func (r Result) Fingerprint() string {
	b, err := json.Marshal(struct{ D, P []Finding }{r.Drift, r.Pending})
	if err != nil {
		return fmt.Sprintf("unfingerprintable: %v", err)
	}
	return fmt.Sprintf("%x", sha256Sum(b))
}
