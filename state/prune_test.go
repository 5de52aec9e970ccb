package state

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestExpired(t *testing.T) {
	names := []string{"2026-01-03T00:00:00Z-3.json", "2026-01-01T00:00:00Z-1.json", "2026-01-02T00:00:00Z-2.json", "2026-01-04T00:00:00Z-10.json"}
	day := func(d int) time.Time { return time.Date(2026, 1, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		before time.Time
		keep   int
		want   []string
	}{
		{time.Time{}, 0, nil},
		{day(3), 0, []string{"2026-01-02T00:00:00Z-2.json", "2026-01-01T00:00:00Z-1.json"}},
		{time.Time{}, 3, []string{"2026-01-01T00:00:00Z-1.json"}},
		{day(2), 3, []string{"2026-01-01T00:00:00Z-1.json"}},
	}
	for _, tc := range tests {
		if got := expired(append([]string(nil), names...), tc.before, tc.keep); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("expired(%v, %d) = %v, want %v", tc.before, tc.keep, got, tc.want)
		}
	}
}

func TestLocalPruneKeepsLatest(t *testing.T) {
	dir := t.TempDir()
	w := newLocal(Backend{Type: "local", Config: map[string]any{"path": filepath.Join(dir, "s.tfstate")}}, dir, "default")
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		if err := w.Write(ctx, Record{RunID: int64(i + 1), FinishedAt: start.Add(time.Duration(i) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := w.Prune(ctx, time.Time{}, 4)
	if err != nil || n != 6 {
		t.Fatalf("Prune = %d, %v; want 6", n, err)
	}
	left, _ := os.ReadDir(filepath.Join(w.dir, "runs"))
	if len(left) != 4 {
		t.Errorf("%d records left, want 4", len(left))
	}
	if _, err := os.Stat(filepath.Join(w.dir, "latest.json")); err != nil {
		t.Errorf("latest.json: %v", err)
	}
}
