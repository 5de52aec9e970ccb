package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
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
	real, entry, err := t.lookup(name, true)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if real == "." {
		return t.dir(".", t.root)
	}
	switch entry.Mode {
	case filemode.Dir:
		sub, err := t.root.Tree(real)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return t.dir(name, sub)
	case filemode.Submodule:
		return nil, &fs.PathError{Op: "open", Path: name, Err: errSubmodule}
	}
	data, err := t.blob(real)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &treeFile{info: fileInfo{name: path.Base(name), size: int64(len(data)), mode: 0o644, when: t.when}, data: data}, nil
}

// errSubmodule: a submodule's files live in another repository, which only
// Materialize fetches.
var errSubmodule = errors.New("a submodule: its files are in another repository")

// ReadLink returns the target of a symbolic link, as Git stores it.
func (t *treeFS) ReadLink(name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	real, entry, err := t.lookup(name, false)
	if err == nil && entry.Mode != filemode.Symlink {
		err = errors.New("not a symbolic link")
	}
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	target, err := t.blob(real)
	return string(target), err
}

// Lstat describes name without following it if it is a symbolic link.
func (t *treeFS) Lstat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrInvalid}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	real, entry, err := t.lookup(name, false)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	info := fileInfo{name: path.Base(name), mode: fs.ModeDir | 0o755, when: t.when}
	if real != "." {
		info.mode = entryMode(entry.Mode)
		if !info.mode.IsDir() {
			info.size, _ = t.root.Size(real)
		}
	}
	return info, nil
}

// lookup finds name in the tree as the file system would: symbolic links
// on the way are followed (and the last one too, with follow) as long as
// they stay inside the repository. It returns the path with no link in it.
func (t *treeFS) lookup(name string, follow bool) (string, object.TreeEntry, error) {
	var parts []string
	if name != "." {
		parts = strings.Split(name, "/")
	}
	cur, hops := ".", 0
	for i := 0; i < len(parts); i++ {
		p := path.Join(cur, parts[i])
		entry, err := t.root.FindEntry(p)
		if err != nil {
			return "", object.TreeEntry{}, fs.ErrNotExist
		}
		last := i == len(parts)-1
		if entry.Mode != filemode.Symlink || (last && !follow) {
			if !last && entry.Mode != filemode.Dir {
				return "", object.TreeEntry{}, fs.ErrNotExist
			}
			if last {
				return p, *entry, nil
			}
			cur = p
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", object.TreeEntry{}, fmt.Errorf("%s: too many levels of symbolic links", name)
		}
		target, err := t.blob(p)
		if err != nil {
			return "", object.TreeEntry{}, err
		}
		resolved := path.Join(path.Dir(p), string(target))
		if path.IsAbs(string(target)) || resolved == ".." || strings.HasPrefix(resolved, "../") {
			return "", object.TreeEntry{}, fmt.Errorf("%s is a symbolic link to %s, outside the repository", p, target)
		}
		// Start over from the target, with what is left of name after it.
		rest := append(strings.Split(resolved, "/"), parts[i+1:]...)
		if resolved == "." {
			rest = parts[i+1:]
		}
		if len(rest) == 0 {
			return ".", object.TreeEntry{Mode: filemode.Dir}, nil
		}
		parts, cur, i = rest, ".", -1
	}
	return ".", object.TreeEntry{Mode: filemode.Dir}, nil
}

// maxLinkHops bounds the symbolic links followed for one name, as the
// kernel's ELOOP does.
const maxLinkHops = 40

// maxBlob bounds what one file of a commit may hold in memory.
const maxBlob = 64 << 20

// blob reads the content of the file (or link) at a path with no link in it.
func (t *treeFS) blob(p string) ([]byte, error) {
	f, err := t.root.File(p)
	if err != nil {
		return nil, fs.ErrNotExist
	}
	if f.Size > maxBlob {
		return nil, fmt.Errorf("%s is larger than %d MiB", p, maxBlob>>20)
	}
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(r)
	_ = r.Close() // read only, and all of it was read
	return data, err
}

func entryMode(m filemode.FileMode) fs.FileMode {
	switch m {
	case filemode.Dir:
		return fs.ModeDir | 0o755
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	case filemode.Executable:
		return 0o755
	}
	return 0o644
}

func (t *treeFS) dir(name string, tree *object.Tree) (fs.File, error) {
	entries := make([]fs.DirEntry, 0, len(tree.Entries))
	for _, e := range tree.Entries {
		info := fileInfo{name: e.Name, mode: entryMode(e.Mode), when: t.when}
		switch e.Mode {
		case filemode.Dir:
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
