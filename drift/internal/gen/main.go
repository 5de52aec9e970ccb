// Command gen regenerates drift's testdata: for each scenario it applies a
// sandbox stack with real tofu and terraform, makes the scenario's change
// (in the sandbox cloud, in the code, or both), plans, and saves the plan's
// `show -json` output as testdata/<scenario>.<binary>-<version>.json.
// Each version of .tools/versions that trueline supports has its set:
// OpenTofu 1.10.10, Terraform 1.13.3, and Terraform 1.5.7 for compatibility.
//
// Run it with `make testdata` (go generate ./drift/...) after `make tools`;
// -binaries terraform@1.13.3 regenerates one set, and -scenarios
// refresh_only_deleted,password only those scenarios.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/sandbox"
)

// base is the stack every scenario starts from.
const base = `
terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {}

variable "db_password" {
  type      = string
  sensitive = true
  default   = "initial-password-1"
}

data "sandbox_image" "base" {
  name = "base"
}

resource "sandbox_autoscaling_group" "web" {
  name             = "web"
  min_size         = 3
  max_size         = 9
  desired_capacity = 3
  launch_template  = data.sandbox_image.base.id
}

resource "sandbox_autoscaling_group" "worker" {
  name     = "worker"
  min_size = 1
  max_size = 2
}

resource "sandbox_load_balancer" "web" {
  name = "web"
}

resource "sandbox_lb_listener" "http" {
  load_balancer_id = sandbox_load_balancer.web.id
  port             = 80
  protocol         = "HTTP"
}

resource "sandbox_database" "main" {
  name           = "main"
  engine         = "postgres"
  instance_class = "small"
  password       = var.db_password
}

output "web_min_size" {
  value = sandbox_autoscaling_group.web.min_size
}
`

// secretsBase holds a secret in every shape a plan can carry one: a map
// value, a list and a set element, a nested object, a nested block, a
// sensitive attribute, a value read from a data source, and an output.
const secretsBase = `
terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {}

variable "team_token" {
  type      = string
  sensitive = true
  default   = "tok-PLANTED-team-4f1c9a"
}

data "sandbox_secret" "db" {
  name = "db"
}

resource "sandbox_app_config" "app" {
  name          = "app"
  tags          = { team = "payments", token = var.team_token }
  env           = ["LEVEL=info", var.team_token]
  allowed_cidrs = ["10.0.0.0/8", var.team_token]
  api_key       = data.sandbox_secret.db.value
  settings      = { level = "info", token = var.team_token }

  rule {
    name   = "first"
    secret = "rule-PLANTED-literal-51d2"
  }
  rule {
    name   = "second"
    secret = data.sandbox_secret.db.value
  }
}

output "token" {
  value     = var.team_token
  sensitive = true
}
`

type scenario struct {
	name  string
	base  string                      // the stack; empty means base
	cloud func(s sandbox.Store) error // the console change
	code  func(src string) string     // the code change
	// refreshOnly plans with -refresh-only (stack.hcl mode = "refresh-only").
	refreshOnly bool
}

// idleTimeout is the code change of several scenarios: pending code.
func idleTimeout(src string) string {
	return strings.Replace(src, "  name = \"web\"\n}", "  name         = \"web\"\n  idle_timeout = 120\n}", 1)
}

func app(kv map[string]any) func(sandbox.Store) error { return set("sandbox_app_config", "app", kv) }

func set(typ, id string, kv map[string]any) func(sandbox.Store) error {
	return func(s sandbox.Store) error {
		return s.Update(typ, id, func(o map[string]any) {
			for k, v := range kv {
				o[k] = v
			}
		})
	}
}

var scenarios = []scenario{
	{name: "console_change", cloud: set("sandbox_autoscaling_group", "web", map[string]any{"min_size": 4, "max_size": 12})},
	{name: "code_change", code: idleTimeout},
	{name: "both", cloud: set("sandbox_autoscaling_group", "web", map[string]any{"min_size": 4, "max_size": 12}),
		code: idleTimeout},
	{name: "deleted", cloud: func(s sandbox.Store) error { return s.Delete("sandbox_autoscaling_group", "web") }},
	{name: "desired_capacity", cloud: set("sandbox_autoscaling_group", "web", map[string]any{"desired_capacity": 5})},
	{name: "unmanaged_and_code", cloud: set("sandbox_autoscaling_group", "worker", map[string]any{"desired_capacity": 2}),
		code: idleTimeout},
	{name: "password", cloud: set("sandbox_database", "main", map[string]any{"password": "changed-in-console"})},
	{name: "listener_port", cloud: set("sandbox_lb_listener", "web:80", map[string]any{"port": 8080})},
	// The shapes of secrets (secretsBase).
	{name: "secret_map_emptied", base: secretsBase, cloud: app(map[string]any{"tags": map[string]any{}})},
	{name: "secret_map_value", base: secretsBase, cloud: app(map[string]any{"tags": map[string]any{"team": "payments", "token": "console-PLANTED-value-0c7d"}})},
	{name: "secret_list_length", base: secretsBase, cloud: app(map[string]any{"env": []any{"LEVEL=info"}})},
	{name: "secret_set", base: secretsBase, cloud: app(map[string]any{"allowed_cidrs": []any{"10.0.0.0/8"}})},
	{name: "secret_object_null", base: secretsBase, cloud: app(map[string]any{"settings": nil})},
	{name: "secret_block_removed", base: secretsBase, cloud: app(map[string]any{"rule": []any{map[string]any{"name": "first", "secret": "rule-PLANTED-literal-51d2"}}})},
	{name: "secret_block_changed", base: secretsBase, cloud: app(map[string]any{"rule": []any{
		map[string]any{"name": "first", "secret": "console-PLANTED-value-0c7d"},
		map[string]any{"name": "renamed", "secret": "db-PLANTED-from-data-8e3b"}}})},
	{name: "secret_attribute", base: secretsBase, cloud: app(map[string]any{"api_key": "console-PLANTED-value-0c7d"})},
	{name: "secret_output", base: secretsBase, code: func(src string) string {
		return strings.Replace(src, "value     = var.team_token", "value     = \"${var.team_token}-v2\"", 1)
	}},
	{name: "removed", code: func(src string) string {
		i := strings.Index(src, "resource \"sandbox_autoscaling_group\" \"worker\"")
		j := strings.Index(src, "resource \"sandbox_load_balancer\"")
		return src[:i] + src[j:]
	}},
	// Refresh-only plans: what changed outside terraform, the code not
	// compared. The same console changes as above, and pending code that
	// such a plan does not see.
	{name: "refresh_only_both", refreshOnly: true, cloud: set("sandbox_autoscaling_group", "web", map[string]any{"min_size": 4, "max_size": 12}),
		code: idleTimeout},
	{name: "refresh_only_deleted", refreshOnly: true, cloud: func(s sandbox.Store) error { return s.Delete("sandbox_autoscaling_group", "web") }},
	{name: "refresh_only_desired_capacity", refreshOnly: true, cloud: set("sandbox_autoscaling_group", "web", map[string]any{"desired_capacity": 5})},
	{name: "refresh_only_unmanaged_and_code", refreshOnly: true, cloud: set("sandbox_autoscaling_group", "worker", map[string]any{"desired_capacity": 2}),
		code: idleTimeout},
	{name: "refresh_only_password", refreshOnly: true, cloud: set("sandbox_database", "main", map[string]any{"password": "changed-in-console"})},
	{name: "refresh_only_secret_block_changed", refreshOnly: true, base: secretsBase, cloud: app(map[string]any{"rule": []any{
		map[string]any{"name": "first", "secret": "console-PLANTED-value-0c7d"},
		map[string]any{"name": "renamed", "secret": "db-PLANTED-from-data-8e3b"}}})},
}

func main() {
	out := flag.String("out", "testdata", "directory for the plan JSON files")
	binaries := flag.String("binaries", "tofu@1.10.10,terraform@1.13.3,terraform@1.5.7", "the `name@version` list of binaries to make fixtures with")
	only := flag.String("scenarios", "", "the `names` of the scenarios to generate, comma-separated; empty: all")
	flag.Parse()
	chosen := scenarios
	if *only != "" {
		chosen = nil
		for _, name := range strings.Split(*only, ",") {
			found := false
			for _, sc := range scenarios {
				if sc.name == name {
					chosen, found = append(chosen, sc), true
				}
			}
			if !found {
				log.Fatalf("-scenarios: no scenario %q", name)
			}
		}
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		log.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	tools := filepath.Join(root, ".tools")
	ctx := context.Background()
	for _, spec := range strings.Split(*binaries, ",") {
		name, v, ok := strings.Cut(spec, "@")
		if !ok {
			log.Fatalf("-binaries: %q is not name@version", spec)
		}
		bin, err := runner.Find(ctx, runner.FindOptions{Name: name, Path: filepath.Join(tools, "versions", name, v, name), Constraint: "= " + v})
		if err != nil {
			log.Fatalf("%v (run `make tools`)", err)
		}
		for _, sc := range chosen {
			if err := generate(ctx, bin, filepath.Join(tools, "terraformrc"), sc, *out); err != nil {
				log.Fatalf("%s %s: %v", sc.name, spec, err)
			}
		}
	}
}

func generate(ctx context.Context, bin runner.Binary, cliConfig string, sc scenario, out string) error {
	tmp, err := os.MkdirTemp("", "drift-gen-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }() // a leftover temporary directory changes no fixture
	cloud := sandbox.Store{Root: filepath.Join(tmp, "cloud")}
	if err := cloud.Put("images", "base", map[string]any{"id": "img-1"}); err != nil {
		return err
	}
	if err := cloud.Put("secrets", "db", map[string]any{"value": "db-PLANTED-from-data-8e3b"}); err != nil {
		return err
	}
	src := base
	if sc.base != "" {
		src = sc.base
	}
	dir := filepath.Join(tmp, "stack")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(src), 0o644); err != nil {
		return err
	}
	r := &runner.Runner{Binary: bin, WorkDir: filepath.Join(tmp, "work"), CLIConfig: cliConfig,
		Env: map[string]string{sandbox.RootEnv: cloud.Root}}
	job := runner.Job{Key: sc.name, Dir: dir}
	p, err := r.Plan(ctx, job)
	if err != nil {
		return fmt.Errorf("%v\n%s", err, p.Log)
	}
	if _, err := r.Apply(ctx, p); err != nil {
		return err
	}
	p.Discard()
	if sc.cloud != nil {
		if err := sc.cloud(cloud); err != nil {
			return err
		}
	}
	if sc.code != nil {
		changed := sc.code(src)
		if changed == src {
			return fmt.Errorf("the code change changed nothing")
		}
		if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(changed), 0o644); err != nil {
			return err
		}
	}
	job.RefreshOnly = sc.refreshOnly
	p, err = r.Plan(ctx, job)
	if err != nil {
		return fmt.Errorf("%v\n%s", err, p.Log)
	}
	defer p.Discard()
	if !p.Changes {
		return fmt.Errorf("the scenario's plan has no changes")
	}
	show := exec.CommandContext(ctx, bin.Path, "show", "-json", p.File)
	show.Dir = dir
	show.Env = append(os.Environ(), "TF_DATA_DIR="+filepath.Join(r.WorkDir, dirOf(r.WorkDir), "data"), "TF_CLI_CONFIG_FILE="+cliConfig, sandbox.RootEnv+"="+cloud.Root)
	raw, err := show.Output()
	if err != nil {
		return fmt.Errorf("show -json: %w", err)
	}
	// Temporary paths differ on every run; keep the fixtures stable.
	raw = []byte(strings.ReplaceAll(string(raw), tmp, "/tmp/drift-gen"))
	if p.Log != "" {
		// The runner's log of the plan (human text, which terraform masks)
		// is kept too, so tests can prove no planted secret is in it.
		log := strings.ReplaceAll(p.Log, tmp, "/tmp/drift-gen")
		if err := os.WriteFile(filepath.Join(out, fixture(sc, bin)+".log"), []byte(log), 0o644); err != nil {
			return err
		}
	}
	dest := filepath.Join(out, fixture(sc, bin)+".json")
	fmt.Println("wrote", dest)
	return os.WriteFile(dest, raw, 0o644)
}

// fixture names a scenario's files for a binary: "both.terraform-1.13.3".
func fixture(sc scenario, bin runner.Binary) string {
	return sc.name + "." + bin.Name + "-" + bin.Version.String()
}

// dirOf finds the one working directory the runner made under work.
func dirOf(work string) string {
	entries, _ := os.ReadDir(work)
	for _, e := range entries {
		if e.IsDir() {
			return e.Name()
		}
	}
	return ""
}
