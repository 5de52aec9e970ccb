package drift

import (
	"fmt"
	"path"
	"strings"
)

// Ignore is one stack ignore rule: a resource address glob and an attribute
// path, e.g. "sandbox_autoscaling_group.*.desired_capacity". A change it
// matches is noise, whatever caused it.
type Ignore struct {
	Rule      string   // as written
	address   []string // address segments, globs allowed
	attribute []string // attribute path segments; empty matches the whole resource
}

// ParseIgnore parses an ignore rule. The address is [module.NAME.]... TYPE.NAME
// (each part may be a glob such as *), and the rest is the attribute path.
func ParseIgnore(rule string) (Ignore, error) {
	segs := splitPath(rule)
	hint := `write it as TYPE.NAME.ATTRIBUTE, e.g. "sandbox_autoscaling_group.*.desired_capacity"`
	for _, s := range segs {
		if s == "" {
			return Ignore{}, fmt.Errorf("ignore rule %q has an empty part; %s", rule, hint)
		}
		if _, err := path.Match(s, ""); err != nil {
			return Ignore{}, fmt.Errorf("ignore rule %q: bad glob %q; %s", rule, s, hint)
		}
	}
	i := 0
	for i+1 < len(segs) && segs[i] == "module" {
		i += 2
	}
	if len(segs)-i < 2 {
		return Ignore{}, fmt.Errorf("ignore rule %q names no resource; %s", rule, hint)
	}
	return Ignore{Rule: rule, address: segs[:i+2], attribute: segs[i+2:]}, nil
}

// Matches reports whether the rule covers attribute attr (dotted path as in
// findings) of the resource at addr.
func (ig Ignore) Matches(addr, attr string) bool {
	as := splitPath(addr)
	if len(as) != len(ig.address) {
		return false
	}
	for i, pat := range ig.address {
		seg := as[i]
		if !strings.Contains(pat, "[") {
			seg, _, _ = strings.Cut(seg, "[") // "web" covers every instance of web
		}
		if ok, _ := path.Match(pat, seg); !ok {
			return false
		}
	}
	ps := splitPath(attr)
	if len(ps) < len(ig.attribute) {
		return false
	}
	// A rule on "tags" covers "tags.owner".
	for i, pat := range ig.attribute {
		if ok, _ := path.Match(pat, ps[i]); !ok {
			return false
		}
	}
	return true
}

// splitPath splits at dots outside brackets: module.a["x.y"].b -> module, a["x.y"], b.
func splitPath(s string) []string {
	var out []string
	depth, start := 0, 0
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '[':
			depth++
		case c == ']':
			depth--
		case c == '.' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
