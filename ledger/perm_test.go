package ledger

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The ledger is this user's only, whatever modes were there before.
func TestOpenSQLiteModes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]os.FileMode // suffixes of the database path, created before opening
	}{
		{"new", nil},
		{"existing 0644", map[string]os.FileMode{"": 0o644}},
		{"existing 0666 with wal and shm", map[string]os.FileMode{"": 0o666, "-wal": 0o644, "-shm": 0o644}},
		{"existing 0600", map[string]os.FileMode{"": 0o600}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "trueline.db")
			for suffix, mode := range tc.files {
				if err := os.WriteFile(path+suffix, nil, mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path+suffix, mode); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			l, err := OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if _, _, err := l.Enqueue(context.Background(), req("infra", "stacks/web", "default", "schedule")); err != nil {
				t.Fatal(err)
			}
			for _, suffix := range []string{"", "-wal", "-shm"} {
				fi, err := os.Stat(path + suffix)
				if os.IsNotExist(err) && suffix != "" {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != 0o600 {
					t.Errorf("trueline.db%s is %v, want -rw-------", suffix, fi.Mode())
				}
			}
		})
	}
}
