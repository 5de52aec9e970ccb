package state

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// local writes records beside a local state file.
type local struct {
	dir string // <state file>.trueline
}

func newLocal(b Backend, stackDir, workspace string) *local {
	statePath := b.String("path")
	if statePath == "" {
		statePath = "terraform.tfstate"
	}
	if workspace != "" && workspace != "default" {
		wsDir := b.String("workspace_dir")
		if wsDir == "" {
			wsDir = "terraform.tfstate.d"
		}
		statePath = filepath.Join(wsDir, workspace, filepath.Base(statePath))
	}
	if !filepath.IsAbs(statePath) {
		statePath = filepath.Join(stackDir, statePath)
	}
	return &local{dir: statePath + ".trueline"}
}

func (l *local) Where() Location {
	return Location{Backend: "local", Record: l.dir + string(filepath.Separator)}
}

func (l *local) Write(_ context.Context, rec Record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(l.dir, "runs"), 0o755); err != nil {
		return fmt.Errorf("record beside the local state: %w", err)
	}
	if err := writeFile(filepath.Join(l.dir, "runs", runName(rec)), b); err != nil {
		return err
	}
	// latest.json only moves forward: an older run finishing late leaves it.
	latest := filepath.Join(l.dir, "latest.json")
	if cur, err := os.ReadFile(latest); err == nil {
		var old Record
		if json.Unmarshal(cur, &old) == nil && !newer(rec, old) {
			return nil
		}
	}
	return writeFile(latest, b)
}

// writeFile replaces a file atomically: a reader sees the old or the new one.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("record %s: %w", path, err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("record %s: %w", path, err)
	}
	tmp.Close()
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("record %s: %w", path, err)
	}
	return nil
}
