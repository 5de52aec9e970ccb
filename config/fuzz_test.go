package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/trueline/trueline/internal/hcldiag"
	"github.com/trueline/trueline/stacks"
)

// FuzzParse feeds trueline.hcl sources to Parse. It must not panic, every
// error must name the file and a line, a secret from the environment must
// never show in the result or the errors, and what it accepts must be
// usable: positive poll intervals and limits, a report schedule that fires.
func FuzzParse(f *testing.F) {
	examples, err := filepath.Glob("../examples/*/trueline.hcl")
	if err != nil || len(examples) == 0 {
		f.Fatalf("no example configurations to seed from: %v", err)
	}
	for _, name := range examples {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(src))
	}
	f.Add("listen = \":8080\"\nrepository \"infra\" {\n  url = \"https://example.com/infra.git\"\n  poll = \"0s\"\n  forge = \"gitea\"\n  token_env = \"T\"\n  webhook_secret_env = \"W\"\n}\n")
	f.Add("report {\n  schedule = \"0 7 30 2 *\"\n  timezone = \"Europe/Berlin\"\n  since = \"24h\"\n  notify = [\"slack.infra\"]\n}\nnotify \"slack\" \"infra\" {\n  token_env = \"S\"\n  channel = \"#infra\"\n}\n")
	f.Add("limits {\n  global = 4\n  per_repository = -1\n}\nbinary {\n  name = \"tofu\"\n  version = \"~> 1.10\"\n}\nrun_timeout = \"-1h\"\nenv = { TF_LOG = \"debug\" }\n")

	const secret = "fuzz-secret-value-0123"
	getenv := func(string) string { return secret }
	f.Fuzz(func(t *testing.T, src string) {
		// token_file and friends are read from disk: keep the fuzzer away
		// from devices and proc files that never end or block.
		if strings.Contains(src, "_file") {
			for _, dev := range []string{"dev", "proc", "sys", "fd"} {
				if strings.Contains(src, dev) {
					return
				}
			}
		}
		const filename = "trueline.hcl"
		cfg, diags := Parse(filename, []byte(src), getenv)
		if diags.HasErrors() {
			for _, d := range diags {
				if d.Severity == hcl.DiagError && (d.Subject == nil || d.Subject.Filename != filename || d.Subject.Start.Line < 1) {
					t.Errorf("error without file and line: %s: %s", d.Summary, d.Detail)
				}
			}
			if text := (&hcldiag.Error{Diags: diags}).Error(); strings.Contains(text, secret) {
				t.Errorf("an error shows a secret: %s", text)
			}
			return
		}
		if out := fmt.Sprintf("%v %+v", cfg, cfg); strings.Contains(out, secret) {
			t.Errorf("the configuration prints a secret: %s", out)
		}
		if cfg.Global < 1 || cfg.PerRepository < 1 || cfg.RunTimeout < 0 || cfg.GracePeriod < 0 || cfg.ScheduleJitter < 0 {
			t.Errorf("accepted limits or durations: %+v", cfg)
		}
		for _, r := range cfg.Repositories {
			if r.Poll <= 0 {
				t.Errorf("repository %q accepted with poll %v", r.Name, r.Poll)
			}
		}
		if rep := cfg.Report; rep != nil {
			sched, err := stacks.CronParser.Parse(rep.Schedule)
			if err != nil {
				t.Fatalf("report schedule %q accepted: %v", rep.Schedule, err)
			}
			if next := sched.Next(time.Now()); next.IsZero() {
				t.Errorf("report schedule %q accepted but never fires", rep.Schedule)
			}
		}
	})
}
