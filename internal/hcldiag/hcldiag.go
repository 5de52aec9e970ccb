// Package hcldiag turns hcl diagnostics into errors whose text names file,
// line and column of each problem and says how to fix it.
package hcldiag

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Error carries hcl diagnostics as an error.
type Error struct{ Diags hcl.Diagnostics }

func (e *Error) Error() string {
	var parts []string
	for _, d := range e.Diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		loc := ""
		if d.Subject != nil {
			loc = fmt.Sprintf("%s:%d,%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		msg := loc + d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		parts = append(parts, msg)
	}
	return strings.Join(parts, "\n")
}

// AttrRange finds where an attribute is written in a body, or nil.
func AttrRange(body hcl.Body, name string) *hcl.Range {
	content, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
	if content != nil {
		if a, ok := content.Attributes[name]; ok {
			return a.Expr.Range().Ptr()
		}
	}
	return nil
}
