// Package examples_test checks that the examples parse and validate with
// trueline's own parsers, as a user copying them would need.
package examples_test

import (
	"os"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/policies"
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
