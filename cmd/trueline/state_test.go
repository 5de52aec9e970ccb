package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/trueline/trueline/internal/gittest"
	"github.com/trueline/trueline/internal/s3test"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/runner"
	"github.com/trueline/trueline/sandbox"
)

// TestServeRecordsBesideS3State: stacks on the s3 backend (versitygw, with
// use_lockfile) get their run records beside the state key, in the schema,
// saying the mode of the run's plan (prod is refresh-only); wrong
// credentials leave an error in the ledger and lose no run.
func TestServeRecordsBesideS3State(t *testing.T) {
	r := newS3Repo(t, map[string]string{"stacks/web/stack.hcl": "stack {\n  workspaces = [\"default\"]\n  workspace \"prod\" {\n    mode = \"refresh-only\"\n  }\n}\n"},
		`resource "sandbox_autoscaling_group" "web" {
  name     = "web-${terraform.workspace}"
  min_size = 3
  max_size = 9
}`, "default", "prod")
	s3, cloud, env := r.s3, r.cloud, r.env
	data := t.TempDir()
	url := r.git.Serve()
	p := startServe(t, data, append(env, "TRUELINE_API_TOKEN=api"), "--repo", url, "--poll", "1h")
	waitFor(t, 60*time.Second, "the first runs", func() bool { return countStatus(p.runs(t), "finished") >= 2 })
	cloud.Update("sandbox_autoscaling_group", "web-default", func(o map[string]any) { o["min_size"] = 4 })
	trigger(t, p, "stacks/web/default")
	// The record beside the state is written after the run is finished in
	// the ledger; the run says where once it is.
	waitFor(t, 60*time.Second, "the drifted run and its record", func() bool {
		runs := p.runs(t)
		return len(runs) == 3 && runs[0].Status == "finished" && runs[0].Record != ""
	})
	if runs := p.runs(t); runs[0].Verdict != "drifted" {
		t.Fatalf("run = %+v", runs[0])
	}

	schema := compileSchema(t)
	for _, tc := range []struct{ prefix, verdict, mode string }{
		{"web/terraform.tfstate.trueline/", "drifted", "full"},
		{"env:/prod/web/terraform.tfstate.trueline/", "in_sync", "refresh-only"},
	} {
		raw, ok := s3.Get(t, "state", tc.prefix+"latest.json")
		if !ok {
			t.Fatalf("no %slatest.json; bucket holds %v", tc.prefix, s3.List(t, "state", ""))
		}
		v, _ := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
		if err := schema.Validate(v); err != nil {
			t.Errorf("%slatest.json does not match the schema: %v", tc.prefix, err)
		}
		var rec struct {
			Verdict string `json:"verdict"`
			Mode    string `json:"mode"`
			Drift   []struct {
				Address    string `json:"address"`
				Attributes []struct {
					Path string `json:"path"`
					Git  any    `json:"git"`
					Live any    `json:"live"`
				} `json:"attributes"`
			} `json:"drift"`
			DriftedSince *string `json:"drifted_since"`
			State        struct {
				Record string `json:"record"`
			} `json:"state"`
		}
		json.Unmarshal(raw, &rec)
		if rec.Verdict != tc.verdict || rec.Mode != tc.mode || rec.State.Record != "s3://state/"+tc.prefix {
			t.Errorf("%s: record = %s", tc.prefix, raw)
		}
		if tc.verdict == "drifted" && (len(rec.Drift) != 1 || fmt.Sprint(rec.Drift[0].Attributes) != "[{min_size 3 4}]" || rec.DriftedSince == nil) {
			t.Errorf("drift in the record = %s", raw)
		}
		if runs := s3.List(t, "state", tc.prefix+"runs/"); len(runs) == 0 {
			t.Errorf("no runs/ objects under %s", tc.prefix)
		}
	}

	// Wrong credentials: the run fails, is recorded in the ledger with a
	// clear message, and the record's own failure is noted there too.
	p.cmd.Process.Kill()
	p.wait()
	bad := append(append([]string{}, env...), "AWS_SECRET_ACCESS_KEY=wrong", "TRUELINE_API_TOKEN=api")
	p = startServe(t, data, bad, "--repo", url, "--poll", "1h")
	trigger(t, p, "stacks/web/default")
	var failed apiRun
	// Its record's failure is noted after the run is finished.
	waitFor(t, 60*time.Second, "the run with wrong credentials and its record", func() bool {
		runs := p.runs(t)
		failed = runs[0]
		return len(runs) == 4 && runs[0].Status == "finished" && runs[0].Record != ""
	})
	var detail struct {
		Error       string `json:"error"`
		Record      string `json:"record"`
		RecordError string `json:"record_error"`
	}
	getJSON(t, fmt.Sprintf("%s/api/v1/runs/%d", p.url, failed.ID), &detail)
	if failed.Verdict != "error" || detail.Error == "" || !strings.Contains(detail.RecordError, "check the credentials") ||
		detail.Record != "s3://state/web/terraform.tfstate.trueline/" {
		t.Errorf("run with wrong credentials: verdict %s, error %q, record %q, record error %q", failed.Verdict, detail.Error, detail.Record, detail.RecordError)
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(filepath.Join(testenv.Root(t), "docs", "schema", "run-record.v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func trigger(t *testing.T, p *serveProc, target string) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.url+"/api/v1/runs", strings.NewReader(`{"stack":"`+target+`"}`))
	req.Header.Set("Authorization", "Bearer api")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("trigger %s: %v %v", target, err, resp.Status)
	}
	resp.Body.Close()
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(v)
}

func apiTrigger(t *testing.T, base, target, token string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/api/v1/runs", strings.NewReader(`{"stack":"`+target+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("trigger %s: %v %v", target, err, resp.Status)
	}
	resp.Body.Close()
}

// s3Repo is a Git repository of one sandbox stack, stacks/web, whose state
// is web/terraform.tfstate in the bucket "state" of a fresh versitygw, locked
// with a lock file, and applied in each of its workspaces. env is what
// terraform, serve and the CLI need to reach the bucket and the cloud.
type s3Repo struct {
	s3    *s3test.Server
	cloud sandbox.Store
	git   *gittest.Repo
	env   []string
}

// newS3Repo commits files (stack.hcl, policies) with stacks/web/main.tf
// holding resources, and applies the stack in each workspace (default
// when none is named).
func newS3Repo(t *testing.T, files map[string]string, resources string, workspaces ...string) *s3Repo {
	t.Helper()
	r := &s3Repo{s3: s3test.Start(t), cloud: sandbox.Store{Root: t.TempDir()}, git: gittest.New(t)}
	r.s3.Bucket(t, "state")
	files[".gitignore"] = ".terraform.lock.hcl\n"
	files["stacks/web/main.tf"] = fmt.Sprintf(`terraform {
  backend "s3" {
    bucket                      = "state"
    key                         = "web/terraform.tfstate"
    region                      = "us-east-1"
    endpoints                   = { s3 = %q }
    use_path_style              = true
    use_lockfile                = true
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
  }
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {}

%s
`, r.s3.Endpoint, resources)
	r.git.Commit("stack", files)
	rn := testenv.Runner(t, testenv.Binary(t, "tofu"))
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": r.s3.Access, "AWS_SECRET_ACCESS_KEY": r.s3.Secret,
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none"), sandbox.RootEnv: r.cloud.Root} {
		rn.Env[k] = v
		r.env = append(r.env, k+"="+v)
	}
	if len(workspaces) == 0 {
		workspaces = []string{"default"}
	}
	for _, ws := range workspaces {
		p, err := rn.Plan(context.Background(), runner.Job{Key: ws, Dir: filepath.Join(r.git.Dir, "stacks/web"), Workspace: ws, CreateWorkspace: true})
		if err != nil {
			t.Fatalf("plan %s: %v\n%s", ws, err, p.Log)
		}
		if _, err := rn.Apply(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		p.Discard()
	}
	return r
}
