// Package redact keeps credentials out of errors that leave a package:
// SDK errors quote request URLs (a Slack webhook URL is itself the secret)
// and sometimes what the server answered.
package redact

import (
	"errors"
	"net/url"

	"github.com/trueline/trueline/drift"
)

// Error returns err with every secret in its message replaced by "***", or
// err itself when none occurs. The result still answers errors.Is for err's
// chain (a deadline stays a deadline), but errors.As cannot reach the
// unredacted errors inside.
func Error(err error, secrets drift.Secrets) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := secrets.Scrub(msg)
	if clean == msg {
		return err
	}
	return &redacted{msg: clean, err: err}
}

// URL returns the forms in which a secret URL shows up in error messages:
// as written, as net/http quotes it, and its path and query, which hold the
// secret in webhook URLs (https://hooks.slack.com/services/T…/B…/…) when
// the host alone is harmless.
func URL(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	out = append(out, u.String(), u.Redacted())
	if p := u.EscapedPath(); len(p) > 1 {
		out = append(out, p, u.Path)
	}
	if u.RawQuery != "" {
		out = append(out, u.RawQuery)
	}
	if pw, ok := u.User.Password(); ok {
		out = append(out, pw)
	}
	return out
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }

func (e *redacted) Is(target error) bool { return errors.Is(e.err, target) }

// Timeout lets net.Error-style checks see a timeout through the redaction.
func (e *redacted) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.err, &t) && t.Timeout()
}
