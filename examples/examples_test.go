// Package examples_test checks that the examples parse and validate with
// trueline's own parsers, as a user copying them would need.
package examples_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/policies"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/stacks"
	"github.com/trueline/trueline/state"
)

func TestAWSExample(t *testing.T) {
	fsys := os.DirFS("aws-asg-alb")
	all, err := stacks.DiscoverFS(fsys)
	if err != nil || len(all) != 1 {
		t.Fatalf("stacks: %v %v", all, err)
	}
	web := all[0]
	if web.Err != nil {
		t.Fatal(web.Err)
	}
	if web.Config.Policy != "guarded" || web.Config.Binary != "tofu" || len(web.Config.Ignore) != 1 || web.Config.Workspaces[0].VarFiles[0] != "prod.tfvars" {
		t.Errorf("stack config = %+v", web.Config)
	}
	pols, err := policies.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if p := pols["guarded"]; p == nil || p.Window == nil || len(p.Protect) != 2 {
		t.Errorf("policy = %+v", p)
	}
	b, err := state.Detect(fsys, web.Path, nil)
	if err != nil || b.Type != "s3" || b.String("bucket") != "acme-terraform-state" || !b.Bool("use_lockfile") {
		t.Errorf("backend = %+v %v", b, err)
	}
	p := hclparse.NewParser()
	for _, f := range []string{"aws-asg-alb/stacks/web/main.tf", "aws-asg-alb/stacks/web/prod.tfvars"} {
		src, _ := os.ReadFile(f)
		if _, diags := p.ParseHCL(src, f); diags.HasErrors() {
			t.Errorf("%s: %v", f, diags)
		}
	}
	env := map[string]string{"GITHUB_APP_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----", "GITHUB_WEBHOOK_SECRET": "y", "SLACK_WEBHOOK_URL": "https://hooks.example/z"}
	cfg, err := config.Load("aws-asg-alb/trueline.hcl", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Repositories) != 1 || cfg.Repositories[0].Forge != "github" || cfg.Repositories[0].GitHubApp == nil || cfg.Report == nil || len(cfg.Notify) != 1 ||
		len(cfg.PassEnv) != 1 {
		t.Errorf("trueline.hcl = %+v", cfg)
	}
}

func TestSandboxExample(t *testing.T) {
	fsys := os.DirFS("sandbox")
	all, err := stacks.DiscoverFS(fsys)
	if err != nil || len(all) != 2 {
		t.Fatalf("stacks: %v %v", all, err)
	}
	pols, err := policies.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.Err != nil {
			t.Errorf("%s: %v", s.Path, s.Err)
			continue
		}
		if _, ok := pols[s.Config.Policy]; !ok {
			t.Errorf("%s names policy %q, which policies/ lacks", s.Path, s.Config.Policy)
		}
	}
}

// TestAWSExampleBinaries: the example's S3 lock file (use_lockfile) needs
// Terraform or OpenTofu 1.10 or later, which main.tf's required_version
// demands. Its trueline.hcl and stack.hcl choose such a binary among those
// installed by version, and the releases that admit it, OpenTofu 1.10.10
// and Terraform 1.13.3, read its code: `fmt -check` parses every file.
// terraform validate and plan need the AWS provider, which the build
// machines cannot reach.
func TestAWSExampleBinaries(t *testing.T) {
	env := map[string]string{"GITHUB_APP_PRIVATE_KEY": "x", "GITHUB_WEBHOOK_SECRET": "y", "SLACK_WEBHOOK_URL": "https://hooks.example/z"}
	cfg, err := config.Load("aws-asg-alb/trueline.hcl", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	all, err := stacks.DiscoverFS(os.DirFS("aws-asg-alb"))
	if err != nil || len(all) != 1 || all[0].Err != nil {
		t.Fatalf("stacks: %v %v", all, err)
	}
	web := all[0].Config
	tc := &runner.Toolchain{Default: cfg.Binary, Constraint: cfg.BinaryVersion, ToolsDir: testenv.VersionsDir(t)}
	chosen, err := tc.Binary(context.Background(), web.Binary, web.Version)
	if err != nil {
		t.Fatal(err)
	}
	required := requiredVersion(t, "aws-asg-alb/stacks/web/main.tf")
	if !required.Check(chosen.Version) {
		t.Errorf("the toolchain chose %s, which main.tf's required_version %q refuses", chosen, required)
	}
	if required.Check(version.Must(version.NewVersion("1.9.9"))) {
		t.Errorf("required_version %q admits releases without S3 lock files", required)
	}
	for _, bin := range testenv.Binaries(t) {
		t.Run(testenv.Label(bin), func(t *testing.T) {
			if !required.Check(bin.Version) {
				t.Fatalf("required_version %q refuses %s", required, bin)
			}
			cmd := exec.Command(bin.Path, "fmt", "-check", "-recursive", "-diff", "aws-asg-alb")
			cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+testenv.CLIConfig(t), "CHECKPOINT_DISABLE=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s fmt -check: %v\n%s", bin, err, out)
			}
		})
	}
}

// requiredVersion reads the terraform block's required_version of a file.
func requiredVersion(t *testing.T, file string) version.Constraints {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCLFile(file)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	content, _, diags := f.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "terraform"}}})
	if diags.HasErrors() || len(content.Blocks) != 1 {
		t.Fatalf("%s: no terraform block: %v", file, diags)
	}
	attrs, _ := content.Blocks[0].Body.JustAttributes()
	a, ok := attrs["required_version"]
	if !ok {
		t.Fatalf("%s: no required_version", file)
	}
	var s string
	if diags := gohcl.DecodeExpression(a.Expr, nil, &s); diags.HasErrors() {
		t.Fatalf("%s: required_version: %v", file, diags)
	}
	c, err := version.NewConstraint(s)
	if err != nil {
		t.Fatalf("%s: required_version %q: %v", file, s, err)
	}
	return c
}
