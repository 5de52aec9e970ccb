package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreRoundTripAndAtomicWrite(t *testing.T) {
	s := Store{Root: t.TempDir()}
	if _, err := s.Get("sandbox_database", "main"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing object: %v, want ErrNotFound", err)
	}
	if err := s.Put("sandbox_database", "main", map[string]any{"name": "main", "size": 3}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update("sandbox_database", "main", func(o map[string]any) { o["size"] = 4 }); err != nil {
		t.Fatal(err)
	}
	obj, err := s.Get("sandbox_database", "main")
	if err != nil {
		t.Fatal(err)
	}
	if obj["size"].(interface{ String() string }).String() != "4" {
		t.Errorf("size = %v, want 4", obj["size"])
	}
	entries, _ := os.ReadDir(filepath.Join(s.Root, "sandbox_database"))
	if len(entries) != 1 {
		t.Errorf("want exactly the object file, found %d entries (a temp file left behind?)", len(entries))
	}
	if err := s.Delete("sandbox_database", "main"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("sandbox_database", "main"); err != nil {
		t.Errorf("second delete: %v", err)
	}
}

func TestStoreRejectsPathsInIDs(t *testing.T) {
	s := Store{Root: t.TempDir()}
	for _, id := range []string{"../x", "a/b", "..", ""} {
		if err := s.Put("t", id, map[string]any{}); err == nil {
			t.Errorf("Put with id %q succeeded", id)
		}
	}
}

func TestStoreReportsBrokenJSON(t *testing.T) {
	s := Store{Root: t.TempDir()}
	os.MkdirAll(filepath.Join(s.Root, "t"), 0o755)
	os.WriteFile(filepath.Join(s.Root, "t", "x.json"), []byte("{broken"), 0o644)
	_, err := s.Get("t", "x")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(s.Root, "t", "x.json")) {
		t.Errorf("Get of broken JSON: %v, want an error naming the file", err)
	}
}
