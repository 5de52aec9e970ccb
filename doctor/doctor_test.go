package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/trueline/trueline/config"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/state"
)

// prober answers from tables; the real clients are tested in their packages
// and end to end by the trueline doctor command's test.
type prober struct {
	tree     fs.FS
	gitErr   error
	forgeErr error
	slowGit  bool
	binaries map[string]error // "name constraint" → error
	states   []string         // backends asked, by bucket
	stateErr error
}

func (p *prober) Binary(_ context.Context, name, constraint string) (string, error) {
	if err := p.binaries[name+" "+constraint]; err != nil {
		return "", err
	}
	return name + " 1.10.10", nil
}

func (p *prober) Git(ctx context.Context, r config.Repository) (fs.FS, string, error) {
	if p.slowGit {
		<-ctx.Done()
		return nil, "", ctx.Err()
	}
	return p.tree, "0123456789ab on " + r.Branch, p.gitErr
}

func (p *prober) Forge(context.Context, config.Repository) (string, error) {
	return "token of octocat", p.forgeErr
}

func (p *prober) Notify(context.Context, config.Notify) (string, error) { return "accepted", nil }

func (p *prober) State(_ context.Context, b state.Backend, _ string) (string, error) {
	p.states = append(p.states, b.String("bucket"))
	return "bucket " + b.String("bucket") + " writable", p.stateErr
}

func repoTree() fstest.MapFS {
	s3 := func(bucket, key string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(`terraform {
  backend "s3" {
    bucket = "` + bucket + `"
    key    = "` + key + `"
    region = "eu-west-1"
  }
}
`)}
	}
	return fstest.MapFS{
		"stacks/web/stack.hcl":   {Data: []byte("stack {\n  policy = \"guarded\"\n  binary = \"tofu\"\n  version = \"~> 1.10\"\n}\n")},
		"stacks/web/main.tf":     s3("state-prod", "web.tfstate"),
		"stacks/db/stack.hcl":    {Data: []byte("stack {\n  policy = \"guarded\"\n}\n")},
		"stacks/db/main.tf":      s3("state-prod", "db.tfstate"),
		"stacks/audit/stack.hcl": {Data: []byte("stack {}\n")},
		"stacks/audit/main.tf":   s3("state-audit", "audit.tfstate"),
		"policies/guarded.hcl":   {Data: []byte("policy \"guarded\" {\n  on_drift = \"report\"\n}\n")},
	}
}

func config1(t *testing.T) config.Config {
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Repositories = []config.Repository{{Name: "infra", URL: "https://github.com/acme/infra.git", Branch: "main", Forge: "github",
		Token: config.NewSecret("ghp_secret_token_value", "env GITHUB_TOKEN")}}
	cfg.Notify = []config.Notify{{Kind: "slack", Name: "infra"}}
	return cfg
}

func find(results []Result, check string) *Result {
	for i := range results {
		if results[i].Check == check {
			return &results[i]
		}
	}
	return nil
}

func TestRun(t *testing.T) {
	broken := repoTree()
	broken["stacks/cache/stack.hcl"] = &fstest.MapFile{Data: []byte("stack {\n  schedul = \"@nightly\"\n}\n")}
	unknownPolicy := repoTree()
	unknownPolicy["stacks/db/stack.hcl"] = &fstest.MapFile{Data: []byte("stack {\n  policy = \"gaurded\"\n}\n")}

	tests := []struct {
		name   string
		p      *prober
		usable bool
		check  string // the result to look at
		status Status
		want   string // in its detail
		fix    string // in its fix
	}{
		{name: "all usable", p: &prober{tree: repoTree()}, usable: true, check: "stacks infra", status: OK, want: "3 stacks on main, 0 broken"},
		{name: "git fails with the error's own fix", p: &prober{gitErr: errors.New("authentication required; fix: rotate the token")},
			check: "git infra", status: Fail, want: "authentication required", fix: "rotate the token"},
		{name: "git fails, generic fix names the token source", p: &prober{gitErr: errors.New("repository not found")},
			check: "git infra", status: Fail, fix: "env GITHUB_TOKEN"},
		{name: "git hangs", p: &prober{slowGit: true}, check: "git infra", status: Fail, want: "no answer within"},
		{name: "forge token", p: &prober{tree: repoTree(), forgeErr: errors.New("401 Bad credentials")},
			check: "forge infra", status: Fail, want: "github: 401 Bad credentials", fix: "pull requests read/write"},
		{name: "broken stack names the line", p: &prober{tree: broken}, check: "stack infra/stacks/cache", status: Fail,
			want: "stacks/cache/stack.hcl:2", fix: "stacks/cache/stack.hcl"},
		{name: "unknown policy", p: &prober{tree: unknownPolicy}, check: "policies infra", status: Fail,
			want: `unknown policy "gaurded" (used by stacks/db)`},
		{name: "binary a stack needs", p: &prober{tree: repoTree(), binaries: map[string]error{"tofu ~> 1.10": errors.New("no tofu matching ~> 1.10; installed: 1.9.0")}},
			check: "binary tofu ~> 1.10", status: Fail, want: "asked for by stacks/web"},
		{name: "state credentials", p: &prober{tree: repoTree(), stateErr: errors.New("AccessDenied; fix: let the role write state-prod")},
			check: "state infra/stacks/audit", status: Fail, want: "s3: AccessDenied", fix: "let the role write"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var seen []string
			results := Run(context.Background(), config1(t), tc.p, Options{ConfigFile: "trueline.hcl", Timeout: 200 * time.Millisecond,
				Secrets: drift.SecretsFrom("ghp_secret_token_value"), Progress: func(r Result) { seen = append(seen, r.Check) }})
			if got := Usable(results); got != tc.usable {
				t.Errorf("usable = %v, want %v:\n%s", got, tc.usable, text(t, results))
			}
			if len(seen) != len(results) {
				t.Errorf("progress told %d results, Run returned %d", len(seen), len(results))
			}
			r := find(results, tc.check)
			if r == nil {
				t.Fatalf("no %q check:\n%s", tc.check, text(t, results))
			}
			if r.Status != tc.status || !strings.Contains(r.Detail, tc.want) || !strings.Contains(r.Fix, tc.fix) {
				t.Errorf("%s = %+v, want status %s, detail with %q, fix with %q", tc.check, *r, tc.status, tc.want, tc.fix)
			}
			out := text(t, results)
			if strings.Contains(out, "ghp_secret_token_value") {
				t.Errorf("the token leaked:\n%s", out)
			}
		})
	}
}

func TestBackendsCheckedOncePerBucketAndIdentity(t *testing.T) {
	p := &prober{tree: repoTree()}
	Run(context.Background(), config1(t), p, Options{})
	// web and db share state-prod (different keys); audit has its own.
	if got := strings.Join(p.states, ","); got != "state-audit,state-prod" {
		t.Errorf("backends checked: %s", got)
	}
}

func TestOutput(t *testing.T) {
	results := []Result{
		{Check: "config", Status: OK, Detail: "trueline.hcl: 1 repository"},
		{Check: "git infra", Status: Fail, Detail: "authentication required", Fix: "check the token"},
	}
	out := text(t, results)
	for _, want := range []string{"ok    config     trueline.hcl", "FAIL  git infra  authentication required", "fix: check the token", "1 of 2 checks failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, results); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Usable bool     `json:"usable"`
		Checks []Result `json:"checks"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil || got.Usable || len(got.Checks) != 2 || got.Checks[1].Fix != "check the token" {
		t.Errorf("json = %s (%v)", buf.String(), err)
	}
}

func text(t *testing.T, results []Result) string {
	t.Helper()
	width := 0
	for _, r := range results {
		width = max(width, len(r.Check))
	}
	var b strings.Builder
	for _, r := range results {
		b.WriteString(Line(r, width))
	}
	return b.String() + "\n" + Summary(results) + "\n"
}
