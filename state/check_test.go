package state

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trueline/trueline/internal/s3test"
)

func TestCheck(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "state")
	ctx := context.Background()
	t.Setenv("AWS_ACCESS_KEY_ID", srv.Access)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	backend := func(bucket string) Backend {
		return Backend{Type: "s3", Config: map[string]any{"bucket": bucket, "key": "web/terraform.tfstate", "region": "us-east-1",
			"endpoints": map[string]any{"s3": srv.Endpoint}, "use_path_style": true}}
	}
	tests := []struct {
		name, secret string
		b            Backend
		want, bad    string
	}{
		{name: "writable", secret: srv.Secret, b: backend("state"), want: "can write records to s3://state/web/terraform.tfstate.trueline/"},
		{name: "wrong secret", secret: "wrong", b: backend("state"), bad: "check the credentials"},
		{name: "no bucket", secret: srv.Secret, b: backend("nope"), bad: "write s3://nope/"},
		{name: "local", b: Backend{Type: "local", Config: map[string]any{}}, want: "beside the local state file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_SECRET_ACCESS_KEY", tc.secret)
			got, err := Check(ctx, tc.b, "default")
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("Check = %q, %v; want an error with %q", got, err, tc.bad)
				}
				return
			}
			if err != nil || !strings.Contains(got, tc.want) {
				t.Fatalf("Check = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if keys := srv.List(t, "state", ""); len(keys) != 0 {
		t.Errorf("the probe was left behind: %v", keys)
	}
	if _, err := Check(ctx, Backend{Type: "gcs"}, "default"); !errors.Is(err, ErrLedgerOnly) {
		t.Errorf("gcs: %v, want ErrLedgerOnly", err)
	}
}
