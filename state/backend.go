// Package state records each run beside the workspace's remote state: for
// the s3 backend an object beside the state key in the same bucket
// (<key>.trueline/latest.json and <key>.trueline/runs/<time>-<id>.json,
// written with aws-sdk-go-v2 and the backend's own settings), for the local
// backend the same two kinds of file beside the state file. Other backends
// keep their runs in the ledger only.
package state

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Backend is a stack's backend: its type and settings, from the
// terraform block merged with the stack's -backend-config values.
type Backend struct {
	Type   string         // "local" when the stack declares none
	Config map[string]any // string, bool, float64, map[string]any
}

// String reads a string setting.
func (b Backend) String(key string) string { s, _ := b.Config[key].(string); return s }

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
	b := Backend{Type: "local", Config: map[string]any{}}
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
				for k, a := range bb.Body.Attributes {
					if v, d := a.Expr.Value(nil); !d.HasErrors() {
						b.Config[k] = goValue(v)
					}
				}
			}
		}
	}
	for _, bc := range backendConfig {
		if k, v, ok := strings.Cut(bc, "="); ok && !strings.ContainsAny(k, " \t") {
			b.Config[strings.TrimSpace(k)] = strings.TrimSpace(v)
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
		attrs, diags := f.Body.JustAttributes()
		if diags.HasErrors() {
			return b, fmt.Errorf("backend config file %s: %s", name, diags.Error())
		}
		for k, a := range attrs {
			if v, d := a.Expr.Value(nil); !d.HasErrors() {
				b.Config[k] = goValue(v)
			}
		}
	}
	return b, nil
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
