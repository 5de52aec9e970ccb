package stacks

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// FuzzParse feeds stack.hcl sources to Parse. It must not panic, every
// error must name the file and a line, and what it accepts must keep the
// rules: a schedule that fires, var files inside the stack, no reserved
// environment variable.
func FuzzParse(f *testing.F) {
	examples, err := filepath.Glob("../examples/*/stacks/*/" + FileName)
	if err != nil || len(examples) == 0 {
		f.Fatalf("no example stacks to seed from: %v", err)
	}
	for _, name := range examples {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(src))
	}
	for _, src := range []string{
		"stack {}\n",
		"stack {\n  schedule = \"0 0 30 2 *\"\n}\n",
		"stack {\n  schedule = \"CRON_TZ=Europe/Berlin @every 90m\"\n  timezone = \"Europe/Berlin\"\n}\n",
		"stack {\n  workspaces = [\"a\", \"b\"]\n  workspace \"c\" {\n    var_files = [\"prod.tfvars\", \"../x.tfvars\"]\n    env = { TF_VAR_a = \"1\", LD_PRELOAD = \"x\" }\n  }\n}\n",
		"stack {\n  ignore {\n    attributes = [\"module.m.sandbox_*.web[\\\"a\\\"].tags\", \"*.*\"]\n  }\n  backend_config = [\"backend.hcl\", \"key=x\"]\n  binary = \"tofu\"\n  version = \">= 1.5, < 2\"\n}\n",
	} {
		f.Add(src)
	}
	fsys := fstest.MapFS{
		"stacks/web/prod.tfvars":      {Data: []byte("x = 1\n")},
		"stacks/web/vars/dev.tfvars":  {Data: []byte("x = 2\n")},
		"stacks/shared/other.tfvars":  {Data: []byte("x = 3\n")},
		"stacks/web/staging.tfvars":   {Data: []byte("")},
		"stacks/web/backend.hcl":      {Data: []byte("")},
		"stacks/web/.terraform/x.hcl": {Data: []byte("")},
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, src string) {
		const filename = "stacks/web/stack.hcl"
		cfg, diags := Parse(filename, []byte(src), fsys, "stacks/web")
		if diags.HasErrors() {
			if cfg != nil {
				t.Errorf("a config with errors: %v", diags)
			}
			for _, d := range diags {
				if d.Severity == hcl.DiagError && (d.Subject == nil || d.Subject.Filename != filename || d.Subject.Start.Line < 1) {
					t.Errorf("error without file and line: %s: %s", d.Summary, d.Detail)
				}
			}
			return
		}
		if cfg == nil || len(cfg.Workspaces) == 0 || cfg.Timezone == nil {
			t.Fatalf("accepted without workspaces or timezone: %+v", cfg)
		}
		if (cfg.Cron == nil) != (cfg.Schedule == "") {
			t.Errorf("schedule %q parsed to %v", cfg.Schedule, cfg.Cron)
		}
		if cfg.Cron != nil {
			if next := cfg.Cron.Next(now.In(cfg.Timezone)); next.IsZero() || next.After(now.AddDate(1, 0, 1)) {
				t.Errorf("schedule %q accepted; next time %v", cfg.Schedule, next)
			}
		}
		for _, ws := range cfg.Workspaces {
			for _, vf := range ws.VarFiles {
				// Shared var files elsewhere in the repository are fine.
				if p := path.Join("stacks/web", vf); path.IsAbs(vf) || p == ".." || strings.HasPrefix(p, "../") {
					t.Errorf("var file %q outside the repository accepted", vf)
				}
			}
			for k := range ws.Env {
				if reservedEnv(k) != "" {
					t.Errorf("reserved env %q accepted", k)
				}
			}
		}
	})
}
