package drift

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
)

// Masked replaces every sensitive value that leaves this package.
const Masked = "(sensitive)"

// leaf is one changed value at a path.
type leaf struct {
	path          string
	before, after any
}

// diffLeaves lists the paths where before and after differ, descending
// into objects, maps and equal-length lists; anything else is one leaf.
func diffLeaves(prefix string, before, after any) []leaf {
	if reflect.DeepEqual(before, after) {
		return nil
	}
	bm, bok := before.(map[string]any)
	am, aok := after.(map[string]any)
	if bok && aok {
		keys := map[string]bool{}
		for k := range bm {
			keys[k] = true
		}
		for k := range am {
			keys[k] = true
		}
		var out []leaf
		for _, k := range sortedKeys(keys) {
			out = append(out, diffLeaves(join(prefix, k), bm[k], am[k])...)
		}
		return out
	}
	bl, bok := before.([]any)
	al, aok := after.([]any)
	if bok && aok && len(bl) == len(al) && prefix != "" {
		var out []leaf
		for i := range bl {
			out = append(out, diffLeaves(prefix+"["+strconv.Itoa(i)+"]", bl[i], al[i])...)
		}
		return out
	}
	return []leaf{{path: prefix, before: before, after: after}}
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lookup follows a dotted path (as built by diffLeaves) into a value.
// Terraform's *_sensitive and after_unknown structures mirror the values,
// with true at a marked path or above it.
func marked(tree any, p string) bool {
	cur := tree
	for _, seg := range splitAttr(p) {
		if b, ok := cur.(bool); ok {
			return b
		}
		switch c := cur.(type) {
		case map[string]any:
			cur = c[seg.key]
		case []any:
			if seg.index < 0 || seg.index >= len(c) {
				return false
			}
			cur = c[seg.index]
		default:
			return false
		}
	}
	b, ok := cur.(bool)
	return ok && b
}

type attrSeg struct {
	key   string
	index int
}

// splitAttr splits "a.b[2].c" into a, b, [2], c.
func splitAttr(p string) []attrSeg {
	var out []attrSeg
	for _, part := range splitPath(p) {
		name := part
		var idx []int
		for {
			open := lastIndexByte(name, '[')
			if open < 0 || name[len(name)-1] != ']' {
				break
			}
			n, err := strconv.Atoi(name[open+1 : len(name)-1])
			if err != nil {
				break
			}
			idx = append([]int{n}, idx...)
			name = name[:open]
		}
		if name != "" {
			out = append(out, attrSeg{key: name, index: -1})
		}
		for _, i := range idx {
			out = append(out, attrSeg{index: i})
		}
	}
	return out
}

func lastIndexByte(s string, c byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// prefixOf reports whether a is b or an ancestor path of b.
func prefixOf(a, b string) bool {
	if a == b || a == "" {
		return true
	}
	return len(b) > len(a) && b[:len(a)] == a && (b[len(a)] == '.' || b[len(a)] == '[')
}

// scrub replaces any string equal to a known secret, wherever it sits.
func scrub(v any, secrets map[string]bool) any {
	if len(secrets) == 0 {
		return v
	}
	switch x := v.(type) {
	case string:
		if secrets[x] {
			return Masked
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = scrub(e, secrets)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = scrub(e, secrets)
		}
		return out
	}
	return v
}

func secretStrings(v any, into map[string]bool) {
	switch x := v.(type) {
	case string:
		if x != "" {
			into[x] = true
		}
	case map[string]any:
		for _, e := range x {
			secretStrings(e, into)
		}
	case []any:
		for _, e := range x {
			secretStrings(e, into)
		}
	case nil, bool:
	default:
		into[fmt.Sprint(x)] = true
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// FormatValue writes an attribute value the way reports show it: as JSON
// (null, 3, "web", ["a"]), so that strings and numbers stay apart.
func FormatValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
