package sandbox

import (
	"encoding/json"
	"fmt"
	"math/big"
	"sort"

	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// unknown marks a value Terraform has not decided yet (a computed attribute
// during create); resources replace it before writing state.
type unknown struct{}

// toGo turns a Terraform value into plain Go values that encode as JSON:
// string, bool, json.Number, []any, map[string]any, nil.
func toGo(v tftypes.Value) (any, error) {
	if !v.IsKnown() {
		return unknown{}, nil
	}
	if v.IsNull() {
		return nil, nil
	}
	t := v.Type()
	switch {
	case t.Is(tftypes.String):
		var s string
		err := v.As(&s)
		return s, err
	case t.Is(tftypes.Bool):
		var b bool
		err := v.As(&b)
		return b, err
	case t.Is(tftypes.Number):
		f := new(big.Float)
		if err := v.As(&f); err != nil {
			return nil, err
		}
		return json.Number(f.Text('g', -1)), nil
	case t.Is(tftypes.List{}), t.Is(tftypes.Set{}), t.Is(tftypes.Tuple{}):
		var elems []tftypes.Value
		if err := v.As(&elems); err != nil {
			return nil, err
		}
		out := make([]any, 0, len(elems))
		for _, e := range elems {
			g, err := toGo(e)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	case t.Is(tftypes.Map{}), t.Is(tftypes.Object{}):
		var elems map[string]tftypes.Value
		if err := v.As(&elems); err != nil {
			return nil, err
		}
		out := make(map[string]any, len(elems))
		for k, e := range elems {
			g, err := toGo(e)
			if err != nil {
				return nil, err
			}
			out[k] = g
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported type %s", t)
}

// fromGo builds a Terraform value of type t from plain Go values, as read
// from a JSON file. A value of the wrong shape is an error naming the path,
// since a hand-edited file is a normal way to make one.
func fromGo(t tftypes.Type, x any, at string) (tftypes.Value, error) {
	if x == nil {
		return tftypes.NewValue(t, nil), nil
	}
	if _, ok := x.(unknown); ok {
		return tftypes.NewValue(t, tftypes.UnknownValue), nil
	}
	bad := func() (tftypes.Value, error) {
		return tftypes.Value{}, fmt.Errorf("%s: want %s, found %T %v", at, t, x, x)
	}
	switch {
	case t.Is(tftypes.String):
		s, ok := x.(string)
		if !ok {
			return bad()
		}
		return tftypes.NewValue(t, s), nil
	case t.Is(tftypes.Bool):
		b, ok := x.(bool)
		if !ok {
			return bad()
		}
		return tftypes.NewValue(t, b), nil
	case t.Is(tftypes.Number):
		var text string
		switch n := x.(type) {
		case json.Number:
			text = n.String()
		case float64:
			text = fmt.Sprint(n)
		case int:
			text = fmt.Sprint(n)
		case int64:
			text = fmt.Sprint(n)
		default:
			return bad()
		}
		f, _, err := big.ParseFloat(text, 10, 512, big.ToNearestEven)
		if err != nil {
			return bad()
		}
		return tftypes.NewValue(t, f), nil
	case t.Is(tftypes.List{}), t.Is(tftypes.Set{}):
		items, ok := x.([]any)
		if !ok {
			return bad()
		}
		var et tftypes.Type
		if l, ok := t.(tftypes.List); ok {
			et = l.ElementType
		} else {
			et = t.(tftypes.Set).ElementType
		}
		vals := make([]tftypes.Value, 0, len(items))
		for i, it := range items {
			v, err := fromGo(et, it, fmt.Sprintf("%s[%d]", at, i))
			if err != nil {
				return tftypes.Value{}, err
			}
			vals = append(vals, v)
		}
		return tftypes.NewValue(t, vals), nil
	case t.Is(tftypes.Map{}):
		m, ok := x.(map[string]any)
		if !ok {
			return bad()
		}
		et := t.(tftypes.Map).ElementType
		vals := make(map[string]tftypes.Value, len(m))
		for _, k := range sortedKeys(m) {
			v, err := fromGo(et, m[k], at+"."+k)
			if err != nil {
				return tftypes.Value{}, err
			}
			vals[k] = v
		}
		return tftypes.NewValue(t, vals), nil
	case t.Is(tftypes.Object{}):
		m, ok := x.(map[string]any)
		if !ok {
			return bad()
		}
		ot := t.(tftypes.Object)
		vals := make(map[string]tftypes.Value, len(ot.AttributeTypes))
		for name, at2 := range ot.AttributeTypes {
			p := name
			if at != "" {
				p = at + "." + name
			}
			v, err := fromGo(at2, m[name], p)
			if err != nil {
				return tftypes.Value{}, err
			}
			vals[name] = v
		}
		return tftypes.NewValue(t, vals), nil
	}
	return tftypes.Value{}, fmt.Errorf("%s: unsupported type %s", at, t)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
