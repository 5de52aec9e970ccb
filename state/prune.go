package state

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Pruner deletes old run records beside a workspace's state; latest.json
// always stays.
type Pruner interface {
	// Prune deletes records of runs that finished before before (zero: none
	// for age) or beyond the newest keep (0: no cap), and says how many.
	Prune(ctx context.Context, before time.Time, keep int) (int, error)
}

// expired picks, from record names (runName: time first, so they sort by
// time), those to delete.
func expired(names []string, before time.Time, keep int) []string {
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	var out []string
	for i, n := range names {
		at, err := time.Parse("2006-01-02T15:04:05Z", strings.SplitN(n, "Z-", 2)[0]+"Z")
		old := err == nil && !before.IsZero() && at.Before(before)
		if old || (keep > 0 && i >= keep) {
			out = append(out, n)
		}
	}
	return out
}

func (l *local) Prune(_ context.Context, before time.Time, keep int) (int, error) {
	dir := filepath.Join(l.dir, "runs")
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("prune records: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	n := 0
	for _, name := range expired(names, before, keep) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return n, fmt.Errorf("prune records: %w", err)
		}
		n++
	}
	return n, nil
}

func (w *s3Writer) Prune(ctx context.Context, before time.Time, keep int) (int, error) {
	prefix := w.prefix + "runs/"
	var names []string
	p := s3.NewListObjectsV2Paginator(w.client, &s3.ListObjectsV2Input{Bucket: aws.String(w.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		pctx, cancel := w.bound(ctx)
		page, err := p.NextPage(pctx)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("list s3://%s/%s: %w", w.bucket, prefix, w.explain(err))
		}
		for _, o := range page.Contents {
			names = append(names, strings.TrimPrefix(aws.ToString(o.Key), prefix))
		}
	}
	gone := expired(names, before, keep)
	n := 0
	// DeleteObjects takes at most 1,000 keys a call.
	for len(gone) > 0 {
		batch := gone[:min(len(gone), 1000)]
		gone = gone[len(batch):]
		var ids []types.ObjectIdentifier
		for _, name := range batch {
			ids = append(ids, types.ObjectIdentifier{Key: aws.String(prefix + name)})
		}
		dctx, cancel := w.bound(ctx)
		out, err := w.client.DeleteObjects(dctx, &s3.DeleteObjectsInput{Bucket: aws.String(w.bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		cancel()
		if err != nil {
			return n, fmt.Errorf("delete records under s3://%s/%s: %w", w.bucket, prefix, w.explain(err))
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return n, fmt.Errorf("delete s3://%s/%s: %s", w.bucket, aws.ToString(e.Key), aws.ToString(e.Message))
		}
		n += len(batch)
	}
	return n, nil
}
