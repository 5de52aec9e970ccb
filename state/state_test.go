package state

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/s3test"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/run"
)

// Validate checks a record against docs/schema/run-record.v1.json.
func validate(t *testing.T, raw []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(filepath.Join(testenv.Root(t), "docs", "schema", "run-record.v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("record does not match the schema: %v\n%s", err, raw)
	}
}

func record(id int64, finished time.Time) Record {
	since := finished.Add(-time.Hour)
	commit := strings.Repeat("ab", 20)
	return Record{Schema: SchemaID, Version: 1, RunID: id, Repository: "infra", Commit: commit, Stack: "stacks/web", Workspace: "default",
		Trigger: "schedule", Triggers: []string{"schedule"}, QueuedAt: finished.Add(-2 * time.Second), StartedAt: finished.Add(-time.Second),
		FinishedAt: finished, Verdict: "drifted",
		Drift: []drift.Finding{{Address: "sandbox_autoscaling_group.web", Action: "update",
			Attributes: []drift.Attribute{{Path: "min_size", Git: 3.0, Live: 4.0}}}},
		Pending: []drift.Finding{}, Noise: []drift.Finding{}, Action: run.Action{Kind: "report", Reason: "drift: on_drift = report"},
		LastAppliedCommit: &commit, DriftedSince: &since}
}

func TestDetect(t *testing.T) {
	fsys := fstest.MapFS{
		"stacks/web/main.tf": {Data: []byte(`terraform {
  backend "s3" {
    bucket       = "state"
    key          = "web/terraform.tfstate"
    region       = "eu-central-1"
    use_lockfile = true
    endpoints = {
      s3 = "http://127.0.0.1:7070"
    }
  }
}
`)},
		"stacks/web/backend.hcl": {Data: []byte("bucket = \"prod-state\"\nuse_path_style = true\n")},
	}
	b, err := Detect(fsys, "stacks/web", []string{"backend.hcl", "workspace_key_prefix=envs"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Type != "s3" || b.String("bucket") != "prod-state" || b.String("key") != "web/terraform.tfstate" || !b.Bool("use_path_style") ||
		b.String("workspace_key_prefix") != "envs" || b.Config["endpoints"].(map[string]any)["s3"] != "http://127.0.0.1:7070" {
		t.Errorf("backend = %+v", b)
	}
	none, _ := Detect(fstest.MapFS{"s/main.tf": {Data: []byte("resource \"x\" \"y\" {}\n")}}, "s", nil)
	if none.Type != "local" {
		t.Errorf("no backend block = %q, want local", none.Type)
	}
	if _, err := Detect(fsys, "stacks/web", []string{"missing.hcl"}); err == nil {
		t.Error("a missing backend config file was accepted")
	}
}

func TestLocalWriter(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for _, ws := range []string{"default", "staging"} {
		w, err := WriterFor(ctx, Backend{Type: "local", Config: map[string]any{}}, dir, ws)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
		newerRec, older := record(2, now), record(1, now.Add(-time.Minute))
		newerRec.State, older.State = w.Where(), w.Where()
		if err := w.Write(ctx, newerRec); err != nil {
			t.Fatal(err)
		}
		if err := w.Write(ctx, older); err != nil { // finishes late
			t.Fatal(err)
		}
		base := filepath.Join(dir, "terraform.tfstate.trueline")
		if ws == "staging" {
			base = filepath.Join(dir, "terraform.tfstate.d", "staging", "terraform.tfstate.trueline")
		}
		latest, err := os.ReadFile(filepath.Join(base, "latest.json"))
		if err != nil {
			t.Fatal(err)
		}
		validate(t, latest)
		var got Record
		json.Unmarshal(latest, &got)
		if got.RunID != 2 {
			t.Errorf("%s: latest.json holds run %d; an older run replaced a newer one", ws, got.RunID)
		}
		runs, _ := os.ReadDir(filepath.Join(base, "runs"))
		if len(runs) != 2 || runs[1].Name() != "2026-11-23T07:00:00Z-2.json" {
			t.Errorf("%s: runs = %v", ws, runs)
		}
	}
	if _, err := WriterFor(ctx, Backend{Type: "gcs"}, dir, "default"); err != ErrLedgerOnly {
		t.Errorf("gcs: %v", err)
	}
}

func TestS3Writer(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "state")
	ctx := context.Background()
	t.Setenv("AWS_ACCESS_KEY_ID", srv.Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.Secret)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	backend := Backend{Type: "s3", Config: map[string]any{"bucket": "state", "key": "web/terraform.tfstate", "region": "us-east-1",
		"endpoints": map[string]any{"s3": srv.Endpoint}, "use_path_style": true, "workspace_key_prefix": "envs"}}
	now := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ ws, prefix string }{{"default", "web/terraform.tfstate.trueline/"}, {"prod", "envs/prod/web/terraform.tfstate.trueline/"}} {
		w, err := WriterFor(ctx, backend, t.TempDir(), tc.ws)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Where().Record; got != "s3://state/"+tc.prefix {
			t.Errorf("where = %s", got)
		}
		for _, rec := range []Record{record(5, now), record(4, now.Add(-time.Minute)), record(6, now.Add(time.Minute))} {
			rec.State = w.Where()
			if err := w.Write(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		raw, ok := srv.Get(t, "state", tc.prefix+"latest.json")
		if !ok {
			t.Fatalf("no %slatest.json; keys: %v", tc.prefix, srv.List(t, "state", ""))
		}
		validate(t, raw)
		var got Record
		json.Unmarshal(raw, &got)
		if got.RunID != 6 {
			t.Errorf("latest.json holds run %d, want 6", got.RunID)
		}
		if keys := srv.List(t, "state", tc.prefix+"runs/"); len(keys) != 3 {
			t.Errorf("runs = %v", keys)
		}
	}
	// Wrong credentials: a clear error that says what to check.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	w, _ := WriterFor(ctx, backend, t.TempDir(), "default")
	err := w.Write(ctx, record(7, now))
	if err == nil || !strings.Contains(err.Error(), "check the credentials") {
		t.Errorf("wrong credentials: %v", err)
	}
}
