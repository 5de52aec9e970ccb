package stacks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseFull(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"staging.tfvars": "x = 1\n"})
	src := `
stack {
  workspaces = ["default", "prod"]
  schedule   = "0 2 * * *"
  timezone   = "Europe/Berlin"
  policy     = "guarded"
  binary     = "tofu"
  version    = "~> 1.10"
  backend_config = ["bucket=state"]
  ignore {
    attributes = ["sandbox_autoscaling_group.*.desired_capacity"]
  }
  workspace "staging" {
    var_files = ["staging.tfvars"]
    env       = { TF_VAR_size = "small" }
  }
}
`
	cfg, diags := Parse("stack.hcl", []byte(src), os.DirFS(dir), ".")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var names []string
	for _, w := range cfg.Workspaces {
		names = append(names, w.Name)
	}
	if strings.Join(names, ",") != "default,prod,staging" {
		t.Errorf("workspaces = %v", names)
	}
	if ws := cfg.Workspaces[2]; ws.VarFiles[0] != "staging.tfvars" || ws.Env["TF_VAR_size"] != "small" {
		t.Errorf("staging workspace = %+v", ws)
	}
	if cfg.Timezone.String() != "Europe/Berlin" || cfg.Cron == nil || cfg.Policy != "guarded" || cfg.Binary != "tofu" || cfg.Version != "~> 1.10" {
		t.Errorf("config = %+v", cfg)
	}
	next := cfg.Cron.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, cfg.Timezone))
	if next.Hour() != 2 {
		t.Errorf("next run at %v", next)
	}
	if len(cfg.Ignore) != 1 || !cfg.Ignore[0].Matches("sandbox_autoscaling_group.web", "desired_capacity") {
		t.Errorf("ignore = %+v", cfg.Ignore)
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, diags := Parse("stack.hcl", []byte("stack {}\n"), nil, ".")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(cfg.Workspaces) != 1 || cfg.Workspaces[0].Name != "default" || cfg.Timezone != time.UTC || cfg.Cron != nil {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"syntax", "stack {\n  schedule = \n}\n", "stack.hcl:2"},
		{"unknown attribute", "stack {\n  schedul = \"@daily\"\n}\n", `stack.hcl:2,3: Unsupported argument: An argument named "schedul" is not expected here. Did you mean "schedule"?`},
		{"bad cron", "stack {\n  schedule = \"61 * * * *\"\n}\n", "stack.hcl:2,14: Invalid schedule"},
		{"bad timezone", "stack {\n\n  timezone = \"Mars/Olympus\"\n}\n", "stack.hcl:3,14: Unknown timezone"},
		{"bad binary", "stack {\n  binary = \"pulumi\"\n}\n", `use "terraform" or "tofu"`},
		{"bad version", "stack {\n  version = \"about 1\"\n}\n", "Invalid version constraint"},
		{"bad ignore", "stack {\n  ignore {\n    attributes = [\"desired_capacity\"]\n  }\n}\n", "stack.hcl:3,18: Invalid ignore rule"},
		{"missing var file", "stack {\n  workspace \"x\" {\n    var_files = [\"nope.tfvars\"]\n  }\n}\n", `stack.hcl:3,17: Missing var file: Var file "nope.tfvars" does not exist`},
		{"no stack block", "# nothing\n", "stack.hcl:1,1: Missing stack block"},
		{"two stack blocks", "stack {}\nstack {}\n", "stack.hcl:2,1: Duplicate stack block"},
		{"duplicate workspace", "stack {\n  workspaces = [\"a\"]\n  workspace \"a\" {}\n}\n", "stack.hcl:3,3: Duplicate workspace"},
		{"unknown block", "stack {}\nstacks {}\n", "stack.hcl:2,1: Unsupported block type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Parse("stack.hcl", []byte(tc.src), os.DirFS(t.TempDir()), ".")
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			got := (&DiagnosticsError{Diags: diags}).Error()
			if !strings.Contains(got, tc.want) {
				t.Errorf("error %q does not contain %q", got, tc.want)
			}
		})
	}
}

func TestDiscover(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"stacks/web/stack.hcl":                    "stack {}\n",
		"stacks/web/main.tf":                      "",
		"stacks/db/stack.hcl":                     "stack {\n  schedul = 1\n}\n",
		"stacks/web/.terraform/modules/stack.hcl": "stack {}\n",
		".git/stack.hcl":                          "stack {}\n",
		"vendor/x/stack.hcl":                      "stack {}\n",
		"modules/net/main.tf":                     "",
	})
	got, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Path != "stacks/db" || got[1].Path != "stacks/web" {
		t.Fatalf("stacks = %+v", got)
	}
	if got[0].Err == nil || !strings.Contains(got[0].Err.Error(), "stacks/db/stack.hcl:2,3") {
		t.Errorf("broken stack error = %v", got[0].Err)
	}
	if got[1].Err != nil || got[1].Config == nil {
		t.Errorf("good stack = %+v", got[1])
	}
	if _, err := Discover(filepath.Join(root, "missing")); err == nil {
		t.Error("Discover of a missing directory succeeded")
	}
}
