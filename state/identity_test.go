package state

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trueline/trueline/internal/s3test"
	"github.com/trueline/trueline/internal/testenv"
)

// The versitygw users of testdata/aws/credentials: "first" may not touch
// the bucket "second-only", which only "second" (and root) may write.
const (
	firstAccess, firstSecret   = "first-access", "first-secret-key"
	secondAccess, secondSecret = "second-access", "second-secret-key"
)

// twoUsers starts versitygw with the users of testdata/aws and a bucket
// only the second may write, and runs the test as the first user, with no
// shared files of its own: records written as "second" prove the backend's
// identity was used rather than the environment's.
func twoUsers(t *testing.T) *s3test.Server {
	t.Helper()
	srv := s3test.Start(t)
	srv.User(t, firstAccess, firstSecret)
	srv.User(t, secondAccess, secondSecret)
	srv.BucketOwnedBy(t, "second-only", secondAccess)
	t.Setenv("AWS_ACCESS_KEY_ID", firstAccess)
	t.Setenv("AWS_SECRET_ACCESS_KEY", firstSecret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	return srv
}

// writeAs writes one record with a backend and reads it back as root.
func writeAs(ctx context.Context, t *testing.T, srv *s3test.Server, b Backend) error {
	t.Helper()
	w, err := WriterFor(ctx, b, t.TempDir(), "default")
	if err != nil {
		return err
	}
	rec := record(1, time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC))
	rec.State = w.Where()
	if err := w.Write(ctx, rec); err != nil {
		return err
	}
	raw, ok := srv.Get(t, "second-only", "web/terraform.tfstate.trueline/latest.json")
	if !ok {
		t.Fatalf("the write succeeded but there is no latest.json: %v", srv.List(t, "second-only", ""))
	}
	validate(t, raw)
	return nil
}

func TestS3WriterProfiles(t *testing.T) {
	srv := twoUsers(t)
	ctx := context.Background()
	creds, err := filepath.Abs(filepath.Join("testdata", "aws", "credentials"))
	if err != nil {
		t.Fatal(err)
	}
	config, err := filepath.Abs(filepath.Join("testdata", "aws", "config"))
	if err != nil {
		t.Fatal(err)
	}
	backend := func(settings map[string]any) Backend {
		b := Backend{Type: "s3", Config: map[string]any{"bucket": "second-only", "key": "web/terraform.tfstate", "region": "us-east-1",
			"endpoints": map[string]any{"s3": srv.Endpoint}, "use_path_style": true}}
		for k, v := range settings {
			b.Config[k] = v
		}
		return b
	}
	tests := []struct {
		name     string
		settings map[string]any
		bad      []string // what the error says; none when the write must succeed
	}{
		{name: "profile from shared_credentials_files",
			settings: map[string]any{"profile": "second", "shared_credentials_files": []any{"/nonexistent/credentials", creds}}},
		{name: "profile from the legacy shared_credentials_file",
			settings: map[string]any{"profile": "second", "shared_credentials_file": creds}},
		{name: "profile from shared_config_files",
			settings: map[string]any{"profile": "second-in-config", "shared_config_files": []any{config}}},
		{name: "static keys win over a profile",
			settings: map[string]any{"profile": "first", "shared_credentials_files": []any{creds}, "access_key": secondAccess, "secret_key": secondSecret}},
		{name: "the other profile is denied",
			settings: map[string]any{"profile": "first", "shared_credentials_files": []any{creds}},
			bad:      []string{"AccessDenied", `check the credentials records are written with, the backend's profile "first"`, "s3:DeleteObject on s3://second-only/web/terraform.tfstate.trueline/*"}},
		{name: "no profile: the environment's identity is denied",
			settings: map[string]any{},
			bad:      []string{"AccessDenied", "trueline's environment"}},
		{name: "a profile in no file",
			settings: map[string]any{"profile": "missing", "shared_credentials_files": []any{creds}},
			bad:      []string{`profile "missing" is in none of ` + creds, "add it there, or fix profile"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := writeAs(ctx, t, srv, backend(tc.settings))
			if len(tc.bad) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("the write succeeded; want it denied")
			}
			t.Logf("error: %v", err)
			for _, want := range tc.bad {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\nwant it to say %q", err, want)
				}
			}
			noSecrets(t, err, firstSecret, secondSecret)
		})
	}
}

// A profile that exists nowhere is named with the file and line that set it.
func TestS3WriterProfileOrigin(t *testing.T) {
	twoUsers(t)
	dir := t.TempDir()
	testenv.WriteFiles(t, dir, map[string]string{"main.tf": `terraform {
  backend "s3" {
    bucket  = "second-only"
    key     = "web/terraform.tfstate"
    profile = "nowhere"
  }
}
`})
	b, err := Detect(os.DirFS(dir), ".", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = WriterFor(context.Background(), b, dir, "default")
	if err == nil || !strings.HasPrefix(err.Error(), `main.tf:5: s3 backend: profile "nowhere" is in none of`) {
		t.Fatalf("err = %v; want it to start with main.tf:5 and name the profile", err)
	}
}

func noSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error holds a secret: %v", err)
		}
	}
}
