package state

import (
	"context"
	"encoding/json"
	"errors"
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
	_, err = tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("record %s: %w", path, err), removeIfThere(tmp.Name()))
	}
	return nil
}

// removeIfThere removes a file that may already be gone.
func removeIfThere(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
