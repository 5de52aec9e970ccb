// Package state records each run beside the workspace's remote state: for
// the s3 backend an object beside the state key in the same bucket
// (<key>.trueline/latest.json and <key>.trueline/runs/<time>-<id>.json,
// written with aws-sdk-go-v2 and the backend's own settings and identity:
// its keys, profile and shared files, and the role it assumes), for the local
// backend the same two kinds of file beside the state file. Other backends
// keep their runs in the ledger only.
package state

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Backend is a stack's backend: its type and settings, from the
// terraform block merged with the stack's -backend-config values.
type Backend struct {
	Type string // "local" when the stack declares none
	// Config holds string, bool, float64, []any and map[string]any values;
	// a nested block (assume_role { ... }) is a map like its attribute form.
	Config map[string]any
	// Origin says where each setting was written ("main.tf:7", or the
	// backend_config entry), for errors that send people to the line.
	Origin map[string]string
}

// String reads a string setting.
func (b Backend) String(key string) string { s, _ := b.Config[key].(string); return s }

// Strings reads a list of strings; a single string is a list of one.
func (b Backend) Strings(key string) []string { return stringsOf(b.Config[key]) }

// Map reads an object setting or nested block.
func (b Backend) Map(key string) map[string]any { m, _ := b.Config[key].(map[string]any); return m }

// where prefixes a message with where a setting was written, when known.
func (b Backend) where(key string) string {
	if o := b.Origin[key]; o != "" {
		return o + ": "
	}
	return ""
}

func stringsOf(v any) []string {
	switch v := v.(type) {
	case string:
		if v != "" {
			return []string{v}
		}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Bool reads a boolean setting ("true" strings included, as -backend-config gives them).
func (b Backend) Bool(key string) bool {
	switch v := b.Config[key].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

// Detect reads the backend of the stack at dir in fsys.
func Detect(fsys fs.FS, dir string, backendConfig []string) (Backend, error) {
	b := Backend{Type: "local", Config: map[string]any{}, Origin: map[string]string{}}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return b, err
	}
	p := hclparse.NewParser()
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".tf") || strings.HasSuffix(e.Name(), ".tofu")) {
			continue
		}
		name := path.Join(dir, e.Name())
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return b, err
		}
		f, diags := p.ParseHCL(src, name)
		if diags.HasErrors() {
			continue // terraform reports it better; the run fails anyway
		}
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			continue
		}
		for _, tb := range body.Blocks {
			if tb.Type != "terraform" {
				continue
			}
			for _, bb := range tb.Body.Blocks {
				if bb.Type != "backend" || len(bb.Labels) != 1 {
					continue
				}
				b.Type = bb.Labels[0]
				b.set(bb.Body)
			}
		}
	}
	for _, bc := range backendConfig {
		if k, v, ok := strings.Cut(bc, "="); ok && !strings.ContainsAny(k, " \t") {
			k = strings.TrimSpace(k)
			b.Config[k] = pairValue(strings.TrimSpace(v))
			b.Origin[k] = fmt.Sprintf("backend_config %q", k+"=...")
			continue
		}
		name := path.Join(dir, bc)
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return b, fmt.Errorf("backend config file %s: %w", name, err)
		}
		f, diags := p.ParseHCL(src, name)
		if diags.HasErrors() {
			return b, fmt.Errorf("backend config file %s: %s", name, diags.Error())
		}
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			return b, fmt.Errorf("backend config file %s: not HCL native syntax: write it as name = value lines", name)
		}
		b.set(body)
	}
	return b, nil
}

// set takes a backend block's (or backend config file's) attributes and
// nested blocks; a later file or entry replaces a whole setting, as
// terraform's -backend-config does.
func (b *Backend) set(body *hclsyntax.Body) {
	for k, a := range body.Attributes {
		if v, d := a.Expr.Value(nil); !d.HasErrors() {
			b.Config[k] = goValue(v)
			b.Origin[k] = at(a.SrcRange)
		}
	}
	for _, nb := range body.Blocks {
		if len(nb.Labels) == 0 {
			b.Config[nb.Type] = blockMap(nb.Body)
			b.Origin[nb.Type] = at(nb.DefRange())
		}
	}
}

// blockMap reads a nested block (assume_role { ... }) as the map its
// attribute form (assume_role = { ... }) gives.
func blockMap(body *hclsyntax.Body) map[string]any {
	out := map[string]any{}
	for k, a := range body.Attributes {
		if v, d := a.Expr.Value(nil); !d.HasErrors() {
			out[k] = goValue(v)
		}
	}
	for _, nb := range body.Blocks {
		if len(nb.Labels) == 0 {
			out[nb.Type] = blockMap(nb.Body)
		}
	}
	return out
}

func at(r hcl.Range) string { return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line) }

// pairValue reads a key=value backend_config entry: objects and lists in
// HCL syntax (assume_role={role_arn="..."}), as terraform reads them for
// settings of those types; anything else is the string itself.
func pairValue(v string) any {
	if strings.HasPrefix(v, "{") || strings.HasPrefix(v, "[") {
		if expr, d := hclsyntax.ParseExpression([]byte(v), "backend_config", hcl.InitialPos); !d.HasErrors() {
			if val, d := expr.Value(nil); !d.HasErrors() {
				return goValue(val)
			}
		}
	}
	return v
}

func goValue(v cty.Value) any {
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return v.AsString()
	case t == cty.Bool:
		return v.True()
	case t == cty.Number:
		f, _ := v.AsBigFloat().Float64()
		return f
	case t.IsObjectType() || t.IsMapType():
		out := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			out[k.AsString()] = goValue(e)
		}
		return out
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		var out []any
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, goValue(e))
		}
		return out
	}
	return nil
}
