package state

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Check tells whether trueline could write the records of a workspace's
// backend, as trueline doctor asks before serve depends on it. For S3 it
// writes and deletes a probe object where records go, with the backend's
// own identity: reading the bucket is not enough to know a write works.
// Backends whose records live in the ledger only give ErrLedgerOnly.
func Check(ctx context.Context, b Backend, workspace string) (string, error) {
	if b.Type != "s3" {
		if b.Type == "local" {
			return "records beside the local state file", nil
		}
		return "", ErrLedgerOnly
	}
	w, err := newS3(ctx, b, workspace)
	if err != nil {
		return "", err
	}
	key := w.prefix + ".trueline-check-" + time.Now().UTC().Format("20060102T150405.000000000")
	if err := w.put(ctx, key, []byte("{}"), nil); err != nil {
		return "", fmt.Errorf("write s3://%s/%s: %w", w.bucket, key, w.explain(err))
	}
	ctx, cancel := w.bound(ctx)
	defer cancel()
	if _, err := w.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key)}); err != nil {
		return "", fmt.Errorf("delete the probe s3://%s/%s: %w", w.bucket, key, w.explain(err))
	}
	return "can write records to " + w.Where().Record, nil
}
