// Package remediate writes remediation pull requests: their title and body,
// the drift record a revert pull request commits, and the HCL edits an adopt
// pull request makes (hclwrite) so that Git matches the live values.
package remediate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/trueline/trueline/drift"
	"github.com/zclconf/go-cty/cty"
)

// Kinds of remediation pull request.
const (
	Revert = "revert" // merging approves applying Git's configuration
	Adopt  = "adopt"  // merging makes Git hold the live values
)

// Input is what a pull request describes.
type Input struct {
	Kind       string
	Repository string
	Stack      string
	Workspace  string
	Commit     string
	RunID      int64
	RunURL     string
	Result     drift.Result // masked findings
	Notes      []string     // what an adopt could not change, and why
	// PlanLog is the run's terraform output; its plan section goes into the
	// body (terraform masks sensitive values there itself).
	PlanLog string
	// PlanHash identifies the plan the pull request proposes; merging
	// approves exactly that plan (drift.HashPlan).
	PlanHash string
	// MaxBody is the forge's limit on a body, in characters
	// (forge.MaxBody); zero means DefaultMaxBody.
	MaxBody int
}

// PlanExcerpt cuts the human-readable plan out of a run log: from the line
// that says what will be performed to the "Plan:" summary, at most max bytes.
func PlanExcerpt(log string, max int) string {
	start := -1
	for _, marker := range []string{"will perform the following actions", "Objects have changed outside of"} {
		if i := strings.Index(log, marker); i >= 0 && (start < 0 || i < start) {
			start = i
		}
	}
	if start < 0 {
		return ""
	}
	if nl := strings.LastIndex(log[:start], "\n"); nl >= 0 {
		start = nl + 1
	}
	rest := log[start:]
	if end := strings.Index(rest, "\nPlan: "); end >= 0 {
		if eol := strings.Index(rest[end+1:], "\n"); eol >= 0 {
			rest = rest[:end+1+eol]
		}
	}
	if len(rest) > max {
		rest = rest[:max] + "\n... (cut)"
	}
	return strings.TrimSpace(rest)
}

// RecordPath is where a revert pull request records the drift.
func RecordPath(stack, workspace string) string {
	return path.Join(".trueline", "drift", stack, workspace+".md")
}

// ParseRecordPath reverses RecordPath: ok is false for other paths.
func ParseRecordPath(p string) (stack, workspace string, ok bool) {
	rest, found := strings.CutPrefix(p, ".trueline/drift/")
	if !found || !strings.HasSuffix(rest, ".md") {
		return "", "", false
	}
	rest = strings.TrimSuffix(rest, ".md")
	i := strings.LastIndex(rest, "/")
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// Title of the pull request.
func Title(in Input) string {
	if in.Kind == Adopt {
		return fmt.Sprintf("trueline: adopt live values of %s (%s)", in.Stack, in.Workspace)
	}
	return fmt.Sprintf("trueline: revert drift in %s (%s)", in.Stack, in.Workspace)
}

// DefaultMaxBody is the longest body Body writes when Input.MaxBody is
// zero, in characters: GitHub's limit for a pull request body, which Gitea
// is given too. GitLab takes 1,000,000 (forge.MaxBody).
const DefaultMaxBody = 65536

// Body of the pull request, in Markdown, at most Input.MaxBody characters.
// When the whole would be longer, the JSON of the planned changes goes
// first, then the attribute table, the notes and the plan excerpt fold: each
// cut says how much is left out and links to the run page (Input.RunURL).
func Body(in Input) string {
	limit := in.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if b := bodyParts(in, 0).render(); utf8.RuneCountInString(b) <= limit {
		return b
	}
	// Fold. What is always there: the header, the footer, each section's
	// frame and its "more on the run page" line. Long values are cut.
	p := bodyParts(in, 200)
	p.json = ""
	budget := limit - utf8.RuneCountInString(p.head) - utf8.RuneCountInString(p.foot) - 1024
	// The table gets what the notes (up to an eighth) and the plan excerpt
	// (up to a quarter) leave: it is the point of the pull request.
	excerptWant := min(utf8.RuneCountInString(p.excerpt)+100, budget/4)
	notesWant := min(utf8.RuneCountInString(strings.Join(p.notes, "")), budget/8)
	rows, used := fit(p.rows, budget-excerptWant-notesWant, 500)
	budget -= used
	if n := len(p.rows) - len(rows); n > 0 {
		rows = append(rows, fmt.Sprintf("| … | %d more rows: %s | | | |\n", n, seeRun(in)))
	}
	p.rows = rows
	notes, used := fit(p.notes, budget-excerptWant, 500)
	budget -= used
	if n := len(p.notes) - len(notes); n > 0 {
		notes = append(notes, fmt.Sprintf("- … %d more: %s\n", n, seeRun(in)))
	}
	p.notes = notes
	if max := budget - 100; utf8.RuneCountInString(p.excerpt) > max {
		lines, _ := fit(strings.SplitAfter(p.excerpt, "\n"), max, 2000)
		p.excerpt = strings.Join(lines, "") + "... (cut: the whole plan is in the run's log)"
	}
	p.jsonNote = "The planned changes in JSON are left out here: " + seeRun(in) + ".\n\n"
	b := p.render()
	if utf8.RuneCountInString(b) > limit {
		// Only a header or footer of absurd length gets here.
		b = string([]rune(b)[:limit-20]) + "\n\n… (cut)\n"
	}
	return b
}

// fit takes items from the front while their total stays within budget
// characters, cutting any single item longer than maxItem. It returns the
// items taken and the characters they use.
func fit(items []string, budget, maxItem int) ([]string, int) {
	var out []string
	used := 0
	for _, it := range items {
		if r := []rune(it); len(r) > maxItem {
			nl := strings.HasSuffix(it, "\n")
			it = string(r[:maxItem]) + "…"
			if nl {
				it += "\n"
			}
		}
		n := utf8.RuneCountInString(it)
		if used+n > budget {
			break
		}
		out = append(out, it)
		used += n
	}
	return out, used
}

func seeRun(in Input) string {
	switch {
	case in.RunURL != "":
		return fmt.Sprintf("see [run %d](%s)", in.RunID, in.RunURL)
	case in.RunID != 0:
		return fmt.Sprintf("see run %d in trueline", in.RunID)
	}
	return "see the run in trueline"
}

// parts are the sections of a body, each rendered.
type parts struct {
	head     string
	rows     []string // table rows
	notes    []string // list items
	excerpt  string   // the plan, as terraform printed it
	json     string   // the planned changes
	jsonNote string   // instead of json, when it was left out
	foot     string
}

// bodyParts renders the sections; table cells are cut at cellMax
// characters (0: no cut).
func bodyParts(in Input, cellMax int) parts {
	var p parts
	var b strings.Builder
	commit := in.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	fmt.Fprintf(&b, "trueline found drift in **%s** (workspace `%s`) of `%s` at `%s`.\n\n", in.Stack, in.Workspace, in.Repository, commit)
	if in.Kind == Adopt {
		b.WriteString("This pull request **adopts the live values**: it changes the code so that Git matches what runs. After the merge, the plan is empty.\n\n")
	} else {
		b.WriteString("Merging this pull request **approves reverting the drift**: trueline then plans again and applies Git's configuration, " +
			"if the planned changes still match the ones below. Otherwise it updates this pull request and says why.\n\n")
	}
	p.head = b.String()
	for _, l := range []struct {
		kind string
		fs   []drift.Finding
	}{{"drift", in.Result.Drift}, {"pending", in.Result.Pending}} {
		for _, f := range l.fs {
			if len(f.Attributes) == 0 {
				p.rows = append(p.rows, fmt.Sprintf("| `%s` | %s (%s) | | | |\n", f.Address, f.Action, l.kind))
			}
			for _, a := range f.Attributes {
				p.rows = append(p.rows, fmt.Sprintf("| `%s` | %s (%s) | `%s` | %s | %s |\n", f.Address, f.Action, l.kind, a.Path, cell(a.Git, cellMax), cell(a.Live, cellMax)))
			}
		}
	}
	for _, n := range in.Notes {
		p.notes = append(p.notes, fmt.Sprintf("- %s\n", n))
	}
	p.excerpt = PlanExcerpt(in.PlanLog, 20000)
	plan, _ := json.MarshalIndent(struct {
		Drift   []drift.Finding `json:"drift"`
		Pending []drift.Finding `json:"pending"`
	}{in.Result.Drift, in.Result.Pending}, "", "  ")
	p.json = string(plan)
	b.Reset()
	if in.RunURL != "" {
		fmt.Fprintf(&b, "Run [%d](%s). ", in.RunID, in.RunURL)
	} else if in.RunID != 0 {
		fmt.Fprintf(&b, "Run %d. ", in.RunID)
	}
	b.WriteString("Sensitive values are shown as `(sensitive)`.\n\n")
	if in.PlanHash != "" {
		// For people comparing plans; approval itself is read from trueline's ledger, never from here.
		fmt.Fprintf(&b, "<!-- trueline:plan %s -->\n", in.PlanHash)
	}
	p.foot = b.String()
	return p
}

func (p parts) render() string {
	var b strings.Builder
	b.WriteString(p.head)
	b.WriteString("| resource | action | attribute | Git | live |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range p.rows {
		b.WriteString(r)
	}
	if len(p.rows) == 0 {
		b.WriteString("| | | | | |\n")
	}
	if len(p.notes) > 0 {
		b.WriteString("\n**Not changed in code**\n\n")
		for _, n := range p.notes {
			b.WriteString(n)
		}
	}
	if p.excerpt != "" {
		fmt.Fprintf(&b, "\n<details><summary>Plan</summary>\n\n```\n%s\n```\n</details>\n", strings.ReplaceAll(p.excerpt, "```", "'''"))
	}
	if p.json != "" {
		fmt.Fprintf(&b, "\n<details><summary>Planned changes (JSON)</summary>\n\n```json\n%s\n```\n</details>\n\n", p.json)
	} else {
		b.WriteString("\n" + p.jsonNote)
	}
	b.WriteString(p.foot)
	return b.String()
}

// cell formats a value for the table, cut at max characters (0: no cut).
func cell(v any, max int) string {
	s := drift.FormatValue(v)
	if r := []rune(s); max > 0 && len(r) > max {
		s = string(r[:max]) + "…"
	}
	return "`" + strings.ReplaceAll(s, "|", "\\|") + "`"
}

// Record is the file a revert pull request commits.
func Record(in Input) []byte {
	return []byte(fmt.Sprintf("# Drift in %s (%s)\n\n%s", in.Stack, in.Workspace, Body(in)))
}

// AdoptEdits changes the stack's .tf files (in fsys, the repository at the
// run's commit) so that every drifted attribute set by a literal takes its
// live value. It returns the changed files by repository path, and a note
// for each attribute it left alone.
func AdoptEdits(fsys fs.FS, stack string, findings []drift.Finding) (map[string][]byte, []string) {
	files := map[string]*hclwrite.File{}
	var order []string
	var notes []string
	entries, _ := fs.ReadDir(fsys, stack)
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".tf") {
			continue
		}
		p := path.Join(stack, e.Name())
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			continue
		}
		f, diags := hclwrite.ParseConfig(src, p, hcl.InitialPos)
		if diags.HasErrors() {
			continue
		}
		files[p] = f
		order = append(order, p)
	}
	sort.Strings(order)
	changed := map[string]bool{}
	for _, fd := range findings {
		if fd.Action != "update" {
			notes = append(notes, fmt.Sprintf("`%s` would be %sd, not updated: adopting it means editing the code by hand.", fd.Address, fd.Action))
			continue
		}
		typ, name, ok := rootResource(fd.Address)
		if !ok {
			notes = append(notes, fmt.Sprintf("`%s` is inside a module or has an instance key: change its inputs by hand.", fd.Address))
			continue
		}
		var block *hclwrite.Block
		var file string
		for _, p := range order {
			if b := files[p].Body().FirstMatchingBlock("resource", []string{typ, name}); b != nil {
				block, file = b, p
				break
			}
		}
		if block == nil {
			notes = append(notes, fmt.Sprintf("`%s` is not declared in %s.", fd.Address, stack))
			continue
		}
		for _, a := range fd.Attributes {
			ref := fmt.Sprintf("`%s.%s`", fd.Address, a.Path)
			if strings.ContainsAny(a.Path, ".[") {
				notes = append(notes, ref+" is nested: change it by hand.")
				continue
			}
			if a.Live == drift.Masked {
				notes = append(notes, ref+" is sensitive: its live value is not written into code.")
				continue
			}
			attr := block.Body().GetAttribute(a.Path)
			if attr == nil {
				notes = append(notes, ref+" is not set in the code (a default or computed value).")
				continue
			}
			expr := bytes.TrimSpace(attr.Expr().BuildTokens(nil).Bytes())
			if !isLiteral(expr) {
				notes = append(notes, fmt.Sprintf("%s comes from `%s`, not a literal: change it where that value is set.", ref, expr))
				continue
			}
			v, ok := ctyOf(a.Live)
			if !ok {
				notes = append(notes, ref+" has a live value trueline cannot write as HCL.")
				continue
			}
			block.Body().SetAttributeValue(a.Path, v)
			changed[file] = true
		}
	}
	out := map[string][]byte{}
	for p := range changed {
		out[p] = hclwrite.Format(files[p].Bytes())
	}
	return out, notes
}

// rootResource splits TYPE.NAME; module resources and instances are not
// edited (their values come from elsewhere).
func rootResource(addr string) (typ, name string, ok bool) {
	if strings.HasPrefix(addr, "module.") || strings.HasPrefix(addr, "data.") || strings.Contains(addr, "[") {
		return "", "", false
	}
	typ, name, ok = strings.Cut(addr, ".")
	return typ, name, ok && !strings.Contains(name, ".")
}

func isLiteral(src []byte) bool {
	expr, diags := hclsyntax.ParseExpression(src, "", hcl.InitialPos)
	if diags.HasErrors() {
		return false
	}
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		return true
	case *hclsyntax.TemplateExpr:
		return e.IsStringLiteral()
	}
	return false
}

func ctyOf(v any) (cty.Value, bool) {
	switch x := v.(type) {
	case string:
		return cty.StringVal(x), true
	case bool:
		return cty.BoolVal(x), true
	case float64:
		return cty.NumberFloatVal(x), true
	case json.Number:
		f, err := x.Float64()
		return cty.NumberFloatVal(f), err == nil
	}
	return cty.NilVal, false
}
