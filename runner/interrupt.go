package runner

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
)

// interruptedErr describes a terraform command that ended because its
// context did: terraform-exec sent terraform SIGINT and, when it had not
// stopped within the grace period (Runner.Grace), killed it. It returns nil
// when err is not such an error. The error still answers errors.Is with
// the context's error.
func interruptedErr(err error) error {
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	msg := "interrupted (" + err.Error() + ")"
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
