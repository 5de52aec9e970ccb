// Package sandbox is a stand-in cloud for tests, benchmarks and the demo:
// every object is one JSON file under a root directory,
// <root>/<resource type>/<id>.json, and a Terraform provider (see New)
// manages those files. Editing a file is a console change; deleting it is an
// out-of-band delete. Like a real cloud, every API call can take time (a
// latency per kind of call) and counts against its account's rate limit,
// shared by every provider process using the root (see account.go); a call
// over the limit is throttled and retried as the AWS provider does.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Store reads and writes sandbox objects. The zero value is not usable; set Root.
type Store struct {
	Root string
}

// ErrNotFound is returned when an object has no file.
var ErrNotFound = errors.New("sandbox object not found")

func (s Store) path(typ, id string) (string, error) {
	if typ == "" || id == "" {
		return "", fmt.Errorf("sandbox object needs a type and an id (got %q, %q)", typ, id)
	}
	// Ids such as "lb:80" are fine in file names; path separators are not.
	if strings.ContainsAny(id, `/\`) || id == "." || id == ".." {
		return "", fmt.Errorf("sandbox id %q may not contain a path separator", id)
	}
	return filepath.Join(s.Root, typ, id+".json"), nil
}

// Get returns the attributes of one object, or ErrNotFound.
func (s Store) Get(typ, id string) (map[string]any, error) {
	p, err := s.path(typ, id)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s %s: %w", typ, id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return obj, nil
}

// Put writes an object atomically: a temporary file renamed over the old one,
// so a crash never leaves half a JSON document behind.
func (s Store) Put(typ, id string, obj map[string]any) error {
	p, err := s.path(typ, id)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", typ, id, err)
	}
	return writeFile(p, append(b, '\n'), true)
}

// Update reads an object, lets fn change it, and writes it back.
func (s Store) Update(typ, id string, fn func(obj map[string]any)) error {
	obj, err := s.Get(typ, id)
	if err != nil {
		return err
	}
	fn(obj)
	return s.Put(typ, id, obj)
}

// Delete removes an object. Deleting a missing object is not an error.
func (s Store) Delete(typ, id string) error {
	p, err := s.path(typ, id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// writeFile replaces path atomically, through a temporary file renamed over
// it, and syncs the data first when sync is set.
func writeFile(path string, data []byte, sync bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp) // the write's error is the one to report
		return err
	}
	return nil
}
