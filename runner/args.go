package runner

import (
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
)

// The arguments trueline gives terraform, apart from running it, so that
// they can be checked without a binary. terraform-exec adds its own
// defaults (-input=false, -lock=true, ...) when it builds the command.

// initOptions are the arguments of every init. -upgrade=false installs the
// provider versions the lock file names: an upgrade is a commit, never a
// side effect of a run. -reconfigure takes the backend configuration as it
// is now and never offers to migrate state from the backend the data
// directory knew, which would wait for an answer. The -backend-config
// values keep stack.hcl's order: later ones win.
func initOptions(backendConfig []string) []tfexec.InitOption {
	opts := []tfexec.InitOption{tfexec.Upgrade(false), tfexec.Reconfigure(true)}
	for _, bc := range backendConfig {
		opts = append(opts, tfexec.BackendConfig(bc))
	}
	return opts
}

// planOptions are the arguments of a plan: the saved plan file, so that
// apply runs what was planned, -refresh-only when the job asks for drift
// alone, the workspace's var files in stack.hcl's order (terraform lets
// later files win), how long to wait for a state lock someone else
// holds (zero: terraform's default, not at all), and how many API calls
// terraform makes at once (zero: terraform's default, 10).
func planOptions(planFile string, refreshOnly bool, varFiles []string, lockTimeout time.Duration, parallelism int) []tfexec.PlanOption {
	opts := []tfexec.PlanOption{tfexec.Out(planFile)}
	if refreshOnly {
		opts = append(opts, tfexec.RefreshOnly(true))
	}
	for _, vf := range varFiles {
		opts = append(opts, tfexec.VarFile(vf))
	}
	if lockTimeout > 0 {
		opts = append(opts, tfexec.LockTimeout(lockTimeout.String()))
	}
	if parallelism > 0 {
		opts = append(opts, tfexec.Parallelism(parallelism))
	}
	return opts
}

// applyOptions are the arguments of an apply: the saved plan alone. No
// variables, targets or replacements: what was planned, and perhaps
// reviewed, is exactly what is applied.
// The lock timeout is how long to wait for the state lock, and the
// parallelism how many API calls go at once: neither changes what is applied.
func applyOptions(planFile string, lockTimeout time.Duration, parallelism int) []tfexec.ApplyOption {
	opts := []tfexec.ApplyOption{tfexec.DirOrPlan(planFile)}
	if lockTimeout > 0 {
		opts = append(opts, tfexec.LockTimeout(lockTimeout.String()))
	}
	if parallelism > 0 {
		opts = append(opts, tfexec.Parallelism(parallelism))
	}
	return opts
}
