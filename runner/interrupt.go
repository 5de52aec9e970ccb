package runner

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
)

// errorText is err's message. terraform-exec's error for a command whose
// context ended as it started holds no error of its own, and its Error
// method then panics (terraform-exec v0.26): say what happened instead.
// (The process got the interrupt all the same, from os/exec.)
func errorText(err error) (msg string) {
	defer func() {
		if recover() != nil {
			msg = "stopped before terraform started"
		}
	}()
	return err.Error()
}

// interruptedErr describes a terraform command that ended because its
// context did: terraform-exec sent terraform SIGINT and, when it had not
// stopped within the grace period (Runner.Grace), killed it. It returns nil
// when err is not such an error. The error still answers errors.Is with
// the context's error.
func interruptedErr(err error) error {
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	msg := "interrupted (" + errorText(err) + ")"
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			// A killed terraform leaves its state lock behind: say so,
			// the next run will meet it.
			msg = "interrupted, then killed: terraform did not stop within the grace period after SIGINT; its state may still be locked"
		} else {
			msg = "interrupted: terraform stopped after SIGINT (" + exit.Error() + ")"
		}
	}
	return &terraformError{msg: msg, err: err}
}
