package sandbox_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/sandbox"
)

const password = "hunter2-very-secret"

// stack renders a configuration using every sandbox resource and the data source.
func stack(root, asgName string, maxSize int) string {
	return fmt.Sprintf(`
terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {
  root = %q
}

data "sandbox_image" "base" {
  name = "base"
}

resource "sandbox_autoscaling_group" "web" {
  name            = %q
  min_size        = 3
  max_size        = %d
  launch_template = data.sandbox_image.base.id
  tags            = { team = "web" }
}

resource "sandbox_load_balancer" "web" {
  name    = "web"
  subnets = ["a", "b"]
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
  password       = %q
}
`, root, asgName, maxSize, password)
}

type fixture struct {
	tf     *tfexec.Terraform
	dir    string
	cloud  sandbox.Store
	logs   string // provider log file
	output bytes.Buffer
	env    map[string]string // what terraform runs with, before setEnv's additions
}

func newFixture(t *testing.T, bin runner.Binary) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), cloud: sandbox.Store{Root: t.TempDir()}}
	f.logs = filepath.Join(t.TempDir(), "provider.log")
	if err := f.cloud.Put("images", "base", map[string]any{"id": "img-123"}); err != nil {
		t.Fatal(err)
	}
	tf, err := tfexec.NewTerraform(f.dir, bin.Path)
	if err != nil {
		t.Fatal(err)
	}
	f.env = map[string]string{
		"TF_CLI_CONFIG_FILE":  testenv.CLIConfig(t),
		"TF_DATA_DIR":         filepath.Join(t.TempDir(), "data"),
		"TF_PLUGIN_CACHE_DIR": testenv.PluginCache(t),
		"PATH":                os.Getenv("PATH"),
	}
	if err := tf.SetEnv(f.env); err != nil {
		t.Fatal(err)
	}
	tf.SetLogProvider("TRACE")
	tf.SetLogPath(f.logs)
	tf.SetStdout(&f.output)
	tf.SetStderr(&f.output)
	f.tf = tf
	return f
}

// setEnv runs terraform with the fixture's environment and extra, such as
// SANDBOX_* settings; a nil extra goes back to the fixture's own.
func (f *fixture) setEnv(t *testing.T, extra map[string]string) {
	t.Helper()
	env := maps.Clone(f.env)
	maps.Copy(env, extra)
	if err := f.tf.SetEnv(env); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) write(t *testing.T, src string) {
	t.Helper()
	testenv.WriteFiles(t, f.dir, map[string]string{"main.tf": src})
}

func (f *fixture) object(t *testing.T, typ, id string) map[string]any {
	t.Helper()
	obj, err := f.cloud.Get(typ, id)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestProviderLifecycle(t *testing.T) {
	for _, bin := range testenv.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, bin)
			f.write(t, stack(f.cloud.Root, "web", 9))
			if err := f.tf.Init(ctx); err != nil {
				t.Fatal(err)
			}

			// Create.
			if err := f.tf.Apply(ctx); err != nil {
				t.Fatal(err)
			}
			asg := f.object(t, "sandbox_autoscaling_group", "web")
			for k, want := range map[string]string{"min_size": "3", "max_size": "9", "desired_capacity": "3",
				"health_check_type": "EC2", "launch_template": "img-123", "id": "web"} {
				if got := fmt.Sprint(asg[k]); got != want {
					t.Errorf("created group %s = %s, want %s", k, got, want)
				}
			}
			if !strings.HasPrefix(fmt.Sprint(asg["arn"]), "arn:sandbox:") {
				t.Errorf("arn = %v", asg["arn"])
			}
			lb := f.object(t, "sandbox_load_balancer", "web")
			if lb["idle_timeout"].(interface{ String() string }).String() != "60" || lb["internal"] != false || lb["dns_name"] != "web.lb.sandbox.internal" {
				t.Errorf("load balancer defaults: %v", lb)
			}
			if l := f.object(t, "sandbox_lb_listener", "web:80"); l["protocol"] != "HTTP" {
				t.Errorf("listener: %v", l)
			}
			if db := f.object(t, "sandbox_database", "main"); db["password"] != password {
				t.Errorf("database password not stored in the cloud object")
			}

			// Read: a console change shows up in a refresh.
			f.cloud.Update("sandbox_autoscaling_group", "web", func(o map[string]any) { o["min_size"] = 5 })
			if err := f.tf.Apply(ctx, tfexec.RefreshOnly(true)); err != nil {
				t.Fatal(err)
			}
			state, err := f.tf.Show(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// show -json prints state, secrets included, by design: keep it out of
			// the output that is checked for the password below.
			f.output.Reset()
			if got := fmt.Sprint(stateValue(state.Values.RootModule.Resources, "sandbox_autoscaling_group.web", "min_size")); got != "5" {
				t.Errorf("refreshed min_size = %v, want 5", got)
			}

			// Update in place.
			f.write(t, stack(f.cloud.Root, "web", 10))
			if err := f.tf.Apply(ctx); err != nil {
				t.Fatal(err)
			}
			asg = f.object(t, "sandbox_autoscaling_group", "web")
			if fmt.Sprint(asg["max_size"]) != "10" || fmt.Sprint(asg["min_size"]) != "3" {
				t.Errorf("updated group = %v", asg)
			}

			// Replace: a new name is a new group.
			f.write(t, stack(f.cloud.Root, "web2", 10))
			if err := f.tf.Apply(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := f.cloud.Get("sandbox_autoscaling_group", "web"); err == nil {
				t.Error("old group still exists after replace")
			}
			f.object(t, "sandbox_autoscaling_group", "web2")

			// Import: forget the group, import it again, and the plan is empty.
			if err := f.tf.StateRm(ctx, "sandbox_autoscaling_group.web"); err != nil {
				t.Fatal(err)
			}
			if err := f.tf.Import(ctx, "sandbox_autoscaling_group.web", "web2"); err != nil {
				t.Fatal(err)
			}
			changes, err := f.tf.Plan(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if changes {
				t.Errorf("plan after import has changes:\n%s", f.output.String())
			}

			// Delete.
			if err := f.tf.Destroy(ctx); err != nil {
				t.Fatal(err)
			}
			for typ, id := range map[string]string{"sandbox_autoscaling_group": "web2", "sandbox_load_balancer": "web",
				"sandbox_lb_listener": "web:80", "sandbox_database": "main"} {
				if _, err := f.cloud.Get(typ, id); err == nil {
					t.Errorf("%s %s still exists after destroy", typ, id)
				}
			}
			if _, err := f.cloud.Get("images", "base"); err != nil {
				t.Errorf("the data source's image was touched: %v", err)
			}

			// The password reached the cloud, and nothing else.
			logs, err := os.ReadFile(f.logs)
			if err != nil {
				t.Fatal(err)
			}
			if len(logs) == 0 {
				t.Fatal("no provider log was written; the secrecy check would prove nothing")
			}
			if bytes.Contains(logs, []byte(password)) {
				t.Error("the database password appears in the provider log")
			}
			if strings.Contains(f.output.String(), password) {
				t.Error("the database password appears in terraform's output")
			}
		})
	}
}

func TestProviderValidation(t *testing.T) {
	cases := []struct {
		name, resource, want string
	}{
		{"max below min", `resource "sandbox_autoscaling_group" "x" {
  name = "x"
  min_size = 5
  max_size = 2
}`, "max_size"},
		{"bad protocol", `resource "sandbox_lb_listener" "x" {
  load_balancer_id = "lb"
  port = 80
  protocol = "GOPHER"
}`, "protocol"},
		{"short password", `resource "sandbox_database" "x" {
  name = "x"
  engine = "postgres"
  instance_class = "small"
  password = "abc"
}`, "password must be at least 8"},
		{"bad name", `resource "sandbox_load_balancer" "x" {
  name = "a/b"
}`, "name"},
	}
	bin := testenv.Binary(t, "tofu")
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, bin)
			f.write(t, fmt.Sprintf("terraform {\n  required_providers {\n    sandbox = { source = \"trueline/sandbox\" }\n  }\n}\nprovider \"sandbox\" {\n  root = %q\n}\n%s\n", f.cloud.Root, tc.resource))
			if err := f.tf.Init(ctx); err != nil {
				t.Fatal(err)
			}
			_, err := f.tf.Plan(ctx)
			if err == nil {
				t.Fatal("plan succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not mention %q:\n%v", tc.want, err)
			}
		})
	}
}

func TestProviderNeedsRoot(t *testing.T) {
	bin := testenv.Binary(t, "tofu")
	ctx := context.Background()
	f := newFixture(t, bin)
	f.write(t, "terraform {\n  required_providers {\n    sandbox = { source = \"trueline/sandbox\" }\n  }\n}\nresource \"sandbox_load_balancer\" \"x\" {\n  name = \"x\"\n}\n")
	if err := f.tf.Init(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := f.tf.Plan(ctx)
	if err == nil || !strings.Contains(err.Error(), "SANDBOX_ROOT") {
		t.Errorf("want an error naming SANDBOX_ROOT, got %v", err)
	}
}

func stateValue(resources []*tfjson.StateResource, addr, key string) any {
	for _, r := range resources {
		if r.Address == addr {
			return r.AttributeValues[key]
		}
	}
	return nil
}
