package runner_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trueline/trueline/run"
	"github.com/trueline/trueline/runner"
)

// How the runner stops a terraform process when the run's context ends:
// SIGINT first, so that terraform can stop cleanly and release its state
// lock, and a kill when it has not stopped after Runner.Grace. A stand-in
// terraform (testdata/terraform, a shell script) makes this fast and
// exact; it is the only place trueline fakes terraform's commands. The
// real terraform and tofu binaries are tested everywhere else, and
// reconcile's TestRunTimeout stops a real plan at its deadline.
func TestInterruptedProcess(t *testing.T) {
	bin, err := runner.Find(context.Background(), runner.FindOptions{Path: filepath.Join("testdata", "terraform")})
	if err != nil {
		t.Fatal(err)
	}
	if bin.Version.String() != "1.5.7" {
		t.Fatalf("the stand-in answers version %s, want 1.5.7", bin.Version)
	}
	for _, tc := range []struct {
		name     string
		command  string // plan or apply
		onSIGINT string // what the stand-in does on SIGINT: stop or ignore
		deadline bool   // the context's deadline passes, rather than a cancel
	}{
		{"plan cancelled", "plan", "stop", false},
		{"apply cancelled", "apply", "stop", false},
		{"plan past its deadline", "plan", "stop", true},
		{"plan ignoring SIGINT", "plan", "ignore", false},
		{"apply ignoring SIGINT", "apply", "ignore", false},
		{"apply past its deadline ignoring SIGINT", "apply", "ignore", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			killed := tc.onSIGINT == "ignore"
			// A process that stops takes 0.2s and must not meet the grace
			// period; one that ignores SIGINT must be killed right after it.
			grace := 10 * time.Second
			if killed {
				grace = 500 * time.Millisecond
			}
			dir := t.TempDir()
			ready := filepath.Join(dir, "ready")
			r := &runner.Runner{Binary: bin, WorkDir: filepath.Join(dir, "work"), Grace: grace,
				Env: map[string]string{"FAKE_TERRAFORM_SIGINT": tc.onSIGINT, "FAKE_TERRAFORM_READY": ready}}
			job := runner.Job{Key: "infra/stacks/web/default", Dir: t.TempDir()}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			interrupted := make(chan time.Time, 1)
			if tc.deadline {
				// The stand-in sets its trap within milliseconds; a
				// deadline cannot wait for it, so it leaves a wide margin.
				at := time.Now().Add(1500 * time.Millisecond)
				ctx, cancel = context.WithDeadline(ctx, at)
				defer cancel()
				interrupted <- at
			} else {
				go func() {
					for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
						if _, err := os.Stat(ready); err == nil {
							break
						}
					}
					// terraform-exec checks the context once right after it
					// starts a process and returns at once if it is done,
					// without waiting for it (TestCancelledBeforeStart); on a
					// loaded machine the stand-in can get here first. This
					// test is about a process that runs, so let that pass.
					time.Sleep(100 * time.Millisecond)
					interrupted <- time.Now()
					cancel()
				}()
			}

			var (
				log   string
				err   error
				stage run.Stage
			)
			if tc.command == "plan" {
				p, perr := r.Plan(ctx, job)
				err, stage = perr, run.Plan
				if p != nil {
					log = p.Log
				}
			} else {
				log, err = r.Apply(ctx, &runner.Plan{Job: job, File: filepath.Join(dir, "saved.tfplan")})
				stage = run.Apply
			}
			stopped := time.Since(<-interrupted)

			if err == nil {
				t.Fatalf("%s succeeded\n%s", tc.command, log)
			}
			if _, statErr := os.Stat(ready); statErr != nil {
				t.Fatalf("the stand-in never reached %s before the interrupt: %v\n%s", tc.command, err, log)
			}
			want := "interrupted: terraform stopped after SIGINT (exit status 1)"
			if killed {
				want = "interrupted, then killed: terraform did not stop within the grace period"
			}
			if !strings.Contains(err.Error(), tc.command+": "+want) {
				t.Errorf("error = %q, want it to say %q", err, tc.command+": "+want)
			}
			ctxErr := context.Canceled
			if tc.deadline {
				ctxErr = context.DeadlineExceeded
			}
			if !errors.Is(err, ctxErr) {
				t.Errorf("error %q is not %v", err, ctxErr)
			}
			if got := run.StageOf(err); got != stage {
				t.Errorf("failure stage = %q, want %q", got, stage)
			}
			// SIGINT came first, in both cases.
			if !strings.Contains(log, "Interrupt received") {
				t.Errorf("terraform got no SIGINT; log:\n%s", log)
			}
			if killed {
				if stopped < grace || stopped > grace+5*time.Second {
					t.Errorf("killed %v after the interrupt, want just after the grace period of %v", stopped, grace)
				}
			} else {
				if !strings.Contains(log, "Error: operation canceled") {
					t.Errorf("terraform did not get to stop by itself; log:\n%s", log)
				}
				if stopped < 200*time.Millisecond || stopped > 5*time.Second {
					t.Errorf("stopped %v after the interrupt, want terraform's own 0.2s (grace %v)", stopped, grace)
				}
			}
		})
	}
}
