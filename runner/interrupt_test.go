package runner

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// startErr is terraform-exec's error for a command whose context ended
// before it started: it is a context error whose Error method panics.
type startErr struct{}

func (startErr) Error() string {
	var missing error
	return missing.Error()
}

func (startErr) Is(target error) bool { return target == context.Canceled }

func TestCancelledBeforeStart(t *testing.T) {
	err := cleanErr(startErr{})
	if err == nil || !strings.Contains(err.Error(), "stopped before terraform started") || !errors.Is(err, context.Canceled) {
		t.Errorf("cleanErr = %v", err)
	}
}
