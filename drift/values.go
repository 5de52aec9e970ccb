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

// leaf is one changed value at a path, with what terraform's marks say
// about it.
type leaf struct {
	path          string
	before, after any
	// sensitive: the value, a part of it, or a value containing it is
	// marked sensitive before or after the change.
	sensitive bool
	// unknown: the value (or a value containing it) is known only after apply.
	unknown bool
}

// marks are terraform's trees that mirror a change's values: true at a
// marked path or above it (before_sensitive, after_sensitive, after_unknown).
type marks struct{ beforeSensitive, afterSensitive, afterUnknown any }

// child follows one key or index into each tree; a true stays true, since a
// mark on a value covers everything in it.
func (m marks) child(key string, index int) marks {
	step := func(t any) any {
		switch c := t.(type) {
		case bool:
			return c
		case map[string]any:
			return c[key]
		case []any:
			if index >= 0 && index < len(c) {
				return c[index]
			}
		}
		return nil
	}
	return marks{step(m.beforeSensitive), step(m.afterSensitive), step(m.afterUnknown)}
}

// anyTrue reports whether a mark tree has true anywhere: a value is
// sensitive when any part of it is.
func anyTrue(t any) bool {
	switch c := t.(type) {
	case bool:
		return c
	case map[string]any:
		for _, v := range c {
			if anyTrue(v) {
				return true
			}
		}
	case []any:
		for _, v := range c {
			if anyTrue(v) {
				return true
			}
		}
	}
	return false
}

// diffLeaves lists the paths where before and after differ, descending
// into objects, maps and equal-length lists; anything else is one leaf.
// Marks are followed during the walk, so a leaf knows whether any part of
// it is sensitive whatever its path looks like.
func diffLeaves(prefix string, before, after any, m marks) []leaf {
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
			out = append(out, diffLeaves(join(prefix, k), bm[k], am[k], m.child(k, -1))...)
		}
		return out
	}
	bl, bok := before.([]any)
	al, aok := after.([]any)
	if bok && aok && len(bl) == len(al) && prefix != "" {
		var out []leaf
		for i := range bl {
			out = append(out, diffLeaves(prefix+"["+strconv.Itoa(i)+"]", bl[i], al[i], m.child("", i))...)
		}
		return out
	}
	return []leaf{{path: prefix, before: before, after: after,
		sensitive: anyTrue(m.beforeSensitive) || anyTrue(m.afterSensitive),
		unknown:   isTrue(m.afterUnknown)}}
}

// join appends a key to a path. Keys that are not plain names (map keys
// such as "kubernetes.io/role") are quoted, so the path splits back.
func join(prefix, key string) string {
	if !plainKey(key) {
		return prefix + "[" + strconv.Quote(key) + "]"
	}
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// prefixOf reports whether a is b or an ancestor path of b.
func prefixOf(a, b string) bool {
	if a == b || a == "" {
		return true
	}
	return len(b) > len(a) && b[:len(a)] == a && (b[len(a)] == '.' || b[len(a)] == '[')
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
