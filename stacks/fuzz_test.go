package stacks

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/bmatcuk/doublestar/v4"
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
		"stack {\n  watch = [\"../../shared/**\", \"{a,..}/x\", \"../../../x\", \"[\"]\n}\n",
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
		for _, w := range cfg.Watch {
			if g := path.Join("stacks/web", w); escapes(g) || dotdot(g) || !doublestar.ValidatePattern(g) {
				t.Errorf("watch glob %q accepted", w)
			}
		}
	})
}

// FuzzAnalyze feeds Terraform sources to Analyze. It must not panic or
// hang, and what it finds stays inside the repository.
func FuzzAnalyze(f *testing.F) {
	for _, name := range []string{"testdata/deps/stacks/template/main.tf", "testdata/deps/stacks/fileset/main.tf",
		"testdata/deps/stacks/escape/main.tf", "testdata/deps/modules/svc/main.tf", "testdata/deps/stacks/json/main.tf.json"} {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(src), strings.HasSuffix(name, ".json"))
	}
	f.Add(`locals { a = file("${path.module}/../../../../x") }`, false)
	f.Add(`locals { a = fileset("${path.root}/a", "{b,..}/**") }`, false)
	f.Add(`{"locals": {"a": "${file(\"../x\")}", "b": ["${templatefile(path.module, {})}"]}}`, true)
	f.Fuzz(func(t *testing.T, src string, isJSON bool) {
		name := "stacks/web/main.tf"
		if isJSON {
			name += ".json"
		}
		fsys := fstest.MapFS{
			"stacks/web/stack.hcl": {Data: []byte("stack {}\n")},
			name:                   {Data: []byte(src)},
			"stacks/web/link":      {Data: []byte("../../shared"), Mode: fs.ModeSymlink},
			"shared/x.json":        {Data: []byte("{}")},
			"modules/m/main.tf":    {Data: []byte(`locals { a = file("${path.module}/x") }`)},
		}
		d := Analyze(fsys, LoadFS(fsys, "stacks/web"))
		if !slices.ContainsFunc(d.Paths, func(p string) bool { return under("stacks/web", p) }) {
			t.Errorf("paths %q lack the stack", d.Paths)
		}
		for _, p := range d.Paths {
			if escapes(p) || p != path.Clean(p) {
				t.Errorf("path %q accepted", p)
			}
		}
		for _, g := range d.Globs {
			if escapes(g) || !doublestar.ValidatePattern(g) {
				t.Errorf("glob %q accepted", g)
			}
		}
		for _, w := range d.Warnings {
			if !strings.HasPrefix(w, "stacks/web/") {
				t.Errorf("warning %q does not name the file", w)
			}
		}
	})
}
