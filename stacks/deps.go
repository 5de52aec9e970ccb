package stacks

import (
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

var moduleSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "module", LabelNames: []string{"name"}}}}

// Dependencies lists what a run of the stack reads from the repository:
// the stack's directory, every local module it calls (followed
// transitively), and var files and backend config files that live outside
// the stack directory. All paths are slash-separated and relative to the
// root of fsys.
func Dependencies(fsys fs.FS, s Stack) []string {
	seen := map[string]bool{}
	var visit func(dir string)
	visit = func(dir string) {
		if seen[dir] {
			return
		}
		seen[dir] = true
		for _, m := range LocalModules(fsys, dir) {
			visit(m)
		}
	}
	visit(s.Path)
	if s.Config != nil {
		for _, ws := range s.Config.Workspaces {
			for _, vf := range ws.VarFiles {
				if p := path.Join(s.Path, vf); !under(p, s.Path) {
					seen[p] = true
				}
			}
		}
		for _, bc := range s.Config.BackendConfig {
			if !strings.Contains(bc, "=") {
				if p := path.Join(s.Path, bc); !under(p, s.Path) {
					seen[p] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// LocalModules lists the directories of the local modules (source "./..."
// or "../...") that the module in dir calls directly.
func LocalModules(fsys fs.FS, dir string) []string {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil
	}
	p := hclparse.NewParser()
	var out []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".tf") || strings.HasSuffix(name, ".tf.json") || strings.HasSuffix(name, ".tofu")) {
			continue
		}
		src, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			continue
		}
		var f *hcl.File
		if strings.HasSuffix(name, ".json") {
			f, _ = p.ParseJSON(src, name)
		} else {
			f, _ = p.ParseHCL(src, name)
		}
		if f == nil {
			continue
		}
		content, _, _ := f.Body.PartialContent(moduleSchema)
		for _, b := range content.Blocks {
			attrs, _ := b.Body.JustAttributes()
			a, ok := attrs["source"]
			if !ok {
				continue
			}
			v, diags := a.Expr.Value(nil)
			if diags.HasErrors() || v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
				continue
			}
			src := v.AsString()
			if strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") {
				m := path.Join(dir, src)
				if !strings.HasPrefix(m, "../") && m != ".." {
					out = append(out, m)
				}
			}
		}
	}
	return out
}

// under reports whether p is dir or inside it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/") || dir == "."
}

// Affected returns the stacks (by path) whose dependencies include any of
// the changed paths.
func Affected(fsys fs.FS, all []Stack, changed []string) []string {
	var out []string
	for _, s := range all {
		deps := Dependencies(fsys, s)
	stack:
		for _, c := range changed {
			for _, d := range deps {
				if under(c, d) {
					out = append(out, s.Path)
					break stack
				}
			}
		}
	}
	return out
}
