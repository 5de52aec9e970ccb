package source

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// treeFS presents one commit's tree as an fs.FS, so that stack discovery
// and parsing read a commit without checking it out.
type treeFS struct {
	mu   *sync.Mutex // go-git's storage is not safe for concurrent use
	root *object.Tree
	when time.Time
}

func (t *treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if name == "." {
		return t.dir(".", t.root)
	}
	entry, err := t.root.FindEntry(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if entry.Mode == filemode.Dir {
		sub, err := t.root.Tree(name)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return t.dir(name, sub)
	}
	if entry.Mode == filemode.Submodule {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("submodules are not supported")}
	}
	f, err := t.root.File(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(r)
	_ = r.Close() // read only, and all of it was read
	if err != nil {
		return nil, err
	}
	return &treeFile{info: fileInfo{name: path.Base(name), size: int64(len(data)), mode: 0o644, when: t.when}, data: data}, nil
}

func (t *treeFS) dir(name string, tree *object.Tree) (fs.File, error) {
	entries := make([]fs.DirEntry, 0, len(tree.Entries))
	for _, e := range tree.Entries {
		info := fileInfo{name: e.Name, mode: 0o644, when: t.when}
		switch e.Mode {
		case filemode.Dir:
			info.mode = fs.ModeDir | 0o755
		case filemode.Submodule:
			continue
		default:
			if sz, err := tree.Size(e.Name); err == nil {
				info.size = sz
			}
		}
		entries = append(entries, fs.FileInfoToDirEntry(info))
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	return &treeDir{info: fileInfo{name: path.Base(name), mode: fs.ModeDir | 0o755, when: t.when}, entries: entries}, nil
}

type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
	when time.Time
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return i.mode }
func (i fileInfo) ModTime() time.Time { return i.when }
func (i fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fileInfo) Sys() any           { return nil }

type treeFile struct {
	info fileInfo
	data []byte
	off  int
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *treeFile) Close() error               { return nil }
func (f *treeFile) Read(p []byte) (int, error) {
	if f.off >= len(f.data) {
		return 0, io.EOF
	}
	n := copy(p, f.data[f.off:])
	f.off += n
	return n, nil
}

type treeDir struct {
	info    fileInfo
	entries []fs.DirEntry
	off     int
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *treeDir) Close() error               { return nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.off += n
	return rest[:n], nil
}
