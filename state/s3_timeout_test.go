package state

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/trueline/trueline/internal/hangtest"
)

// An S3 endpoint that never answers costs one timeout per call, retries
// included, not forever.
func TestS3CallsHaveDeadlines(t *testing.T) {
	srv := hangtest.Start(t)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	backend := Backend{Type: "s3", Config: map[string]any{"bucket": "state", "key": "web/terraform.tfstate", "region": "us-east-1",
		"endpoint": srv.URL, "use_path_style": true, "access_key": "AKIDEXAMPLE", "secret_key": "secret"}}
	const bound = 200 * time.Millisecond
	for _, tc := range []struct {
		name string
		do   func(context.Context, *s3Writer) error
	}{
		{"write", func(ctx context.Context, w *s3Writer) error { return w.Write(ctx, record(1, time.Now())) }},
		{"prune", func(ctx context.Context, w *s3Writer) error { _, err := w.Prune(ctx, time.Now(), 0); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			w, err := newS3(ctx, backend, "default")
			if err != nil {
				t.Fatal(err)
			}
			if w.timeout != s3Timeout {
				t.Errorf("timeout = %v, want %v", w.timeout, s3Timeout)
			}
			w.timeout = bound
			start := time.Now()
			err = tc.do(ctx, w)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want a deadline", err)
			}
			if took := time.Since(start); took > 10*bound {
				t.Errorf("took %v with a %v timeout", took, bound)
			}
		})
	}
}
