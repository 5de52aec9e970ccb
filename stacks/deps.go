package stacks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Bounds on what dependency discovery reads. A repository's code is
// written by many hands and read by the server on every commit: a huge or
// deeply nested file must cost a warning, not the server's memory or stack.
const (
	// MaxSourceSize is the largest .tf or .tf.json file searched.
	MaxSourceSize = 8 << 20
	// MaxNesting is the deepest nesting of brackets searched; the HCL
	// parser recurses once per level.
	MaxNesting = 200
	// maxLinkHops bounds the symbolic links followed for one path, as the
	// kernel's ELOOP does.
	maxLinkHops = 40
)

// maxGlobMatches is how many files one stack's globs may match.
var maxGlobMatches = 20000

// Deps is what a run of a stack reads from the repository.
type Deps struct {
	// Paths are files and directories, slash-separated and relative to the
	// repository root, each read whole: the stack directory, its local
	// modules (transitively), var and backend config files, the files the
	// code reads whose path is known statically, the files the globs match
	// now, and the targets of the symbolic links among all these. It is
	// what serve checks out.
	Paths []string
	// Globs are doublestar patterns relative to the repository root: the
	// stack's watch globs and the code's fileset calls. A commit adding,
	// changing or removing a file they match touches the stack.
	Globs []string
	// Warnings name what was not followed and why, each as "file:line: ...":
	// paths outside the repository, symbolic links leaving it, files too
	// large or too deeply nested to search.
	Warnings []string
}

// Covers reports whether a change to p (a path a commit added, changed or
// removed) can change what a run of the stack reads. A changed path above
// a dependency counts too: a symbolic link or submodule on the way to it.
func (d Deps) Covers(p string) bool {
	for _, dep := range d.Paths {
		if under(p, dep) || under(dep, p) {
			return true
		}
	}
	for _, g := range d.Globs {
		if ok, _ := doublestar.Match(g, p); ok {
			return true
		}
		if base, _ := doublestar.SplitPattern(g); base != "." && under(base, p) {
			return true
		}
	}
	return false
}

// Dependencies lists what a run of the stack reads from the repository
// (Analyze's Paths): what serve checks out for it.
func Dependencies(fsys fs.FS, s Stack) []string {
	return Analyze(fsys, s).Paths
}

// Analyze finds what a run of the stack reads from the repository: the
// stack directory, every local module it calls (followed transitively),
// var files and backend config files, stack.hcl's watch globs, the paths
// of file functions (file, templatefile, fileset, filebase64, ...) whose
// argument is known without planning (literals, path.module, path.root,
// path.cwd), and the targets of symbolic links among them. Paths outside
// the repository are left out, with a warning.
func Analyze(fsys fs.FS, s Stack) Deps {
	a := &analysis{fsys: fsys, stack: s.Path, paths: map[string]bool{}, globs: map[string]bool{},
		scanned: map[string]bool{}, warned: map[string]bool{}}
	stackFile := path.Join(s.Path, FileName)
	modules := map[string]bool{}
	queue := []string{s.Path}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		if modules[dir] {
			continue
		}
		modules[dir] = true
		a.add(dir, stackFile)
		queue = append(queue, a.module(dir)...)
	}
	if s.Config != nil {
		for _, ws := range s.Config.Workspaces {
			for _, vf := range ws.VarFiles {
				a.ref(vf, stackFile)
			}
		}
		for _, bc := range s.Config.BackendConfig {
			if !strings.Contains(bc, "=") {
				a.ref(bc, stackFile)
			}
		}
		for _, w := range s.Config.Watch {
			a.glob(path.Join(s.Path, w), stackFile)
		}
	}
	a.expand()
	return a.deps()
}

type analysis struct {
	fsys     fs.FS
	stack    string
	paths    map[string]bool
	globs    map[string]bool
	scanned  map[string]bool // directories searched for symbolic links
	warnings []string
	warned   map[string]bool
}

func (a *analysis) warn(where, msg string) {
	w := where + ": " + msg
	if !a.warned[w] {
		a.warned[w] = true
		a.warnings = append(a.warnings, w)
	}
}

// ref adds a path the code names, relative to the stack directory (where
// terraform runs), as terraform would resolve it.
func (a *analysis) ref(p, where string) {
	if full := path.Join(a.stack, p); path.IsAbs(p) || escapes(full) {
		a.warn(where, fmt.Sprintf("%s is outside the repository; serve does not check it out", p))
	} else {
		a.add(full, where)
	}
}

// add adds a repository path, the symbolic links on its way and their
// targets; a directory is searched for the links in it.
func (a *analysis) add(p, where string) {
	a.follow(path.Clean(p), where, 0)
}

func (a *analysis) follow(p, where string, hops int) {
	if escapes(p) {
		a.warn(where, fmt.Sprintf("%s is outside the repository; serve does not check it out", p))
		return
	}
	parts := strings.Split(p, "/")
	if p == "." {
		parts = nil
	}
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		fi, err := fs.Lstat(a.fsys, prefix)
		if err != nil {
			break // missing, or in a submodule: checked out as it is named
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		target, err := fs.ReadLink(a.fsys, prefix)
		if err != nil {
			break
		}
		resolved := path.Join(path.Dir(prefix), target)
		switch {
		case path.IsAbs(target) || escapes(resolved):
			a.warn(where, fmt.Sprintf("%s is a symbolic link to %s, outside the repository; serve does not follow it", prefix, target))
			return
		case hops >= maxLinkHops:
			a.warn(where, fmt.Sprintf("%s: too many levels of symbolic links", p))
			return
		}
		a.paths[prefix] = true
		a.follow(path.Join(append([]string{resolved}, parts[i+1:]...)...), prefix, hops+1)
		return
	}
	a.paths[p] = true
	if fi, err := fs.Stat(a.fsys, p); err == nil && fi.IsDir() {
		a.scan(p)
	}
}

// scan finds the symbolic links in a directory that is checked out whole,
// so that their targets are checked out too.
func (a *analysis) scan(dir string) {
	if a.scanned[dir] {
		return
	}
	a.scanned[dir] = true
	_ = fs.WalkDir(a.fsys, dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil // unreadable: nothing more to find in it
		case d.IsDir() && p != dir && skipDirs[d.Name()]:
			return fs.SkipDir
		case d.Type()&fs.ModeSymlink != 0:
			a.follow(p, p, 0)
		}
		return nil
	})
}

// glob adds a repository-relative doublestar pattern.
func (a *analysis) glob(g, where string) {
	if escapes(g) {
		a.warn(where, fmt.Sprintf("%s is outside the repository; serve does not check it out", g))
		return
	}
	if !doublestar.ValidatePattern(g) {
		a.warn(where, fmt.Sprintf("%s is not a valid glob", g))
		return
	}
	a.globs[g] = true
}

// expand adds the files the globs match now.
func (a *analysis) expand() {
	n := 0
	for _, g := range sortedSet(a.globs) {
		err := doublestar.GlobWalk(a.fsys, g, func(p string, d fs.DirEntry) error {
			if n++; n > maxGlobMatches {
				return errTooMany
			}
			a.add(p, p)
			return nil
		}, doublestar.WithFilesOnly())
		if errors.Is(err, errTooMany) {
			a.warn(path.Join(a.stack, FileName), fmt.Sprintf("the globs match more than %d files; the rest are not checked out", maxGlobMatches))
			return
		}
	}
}

var errTooMany = errors.New("too many matches")

func (a *analysis) deps() Deps {
	// A path inside another is checked out with it.
	var paths []string
	for _, p := range sortedSet(a.paths) {
		inside := false
		for d := p; d != "." && !inside; {
			d = path.Dir(d)
			inside = a.paths[d]
		}
		if !inside {
			paths = append(paths, p)
		}
	}
	d := Deps{Paths: paths, Warnings: a.warnings}
	if len(a.globs) > 0 {
		d.Globs = sortedSet(a.globs)
	}
	sort.Strings(d.Warnings) // the parser's attributes come in no order
	return d
}

// module reads the Terraform files of the module in dir (the stack's root
// module or a local module): it adds the paths their file functions read
// and returns the directories of the local modules they call.
func (a *analysis) module(dir string) []string {
	entries, err := fs.ReadDir(a.fsys, dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		isJSON := strings.HasSuffix(name, ".tf.json") || strings.HasSuffix(name, ".tofu.json")
		if e.IsDir() || !(isJSON || strings.HasSuffix(name, ".tf") || strings.HasSuffix(name, ".tofu")) {
			continue
		}
		file := path.Join(dir, name)
		src, ok := a.read(file)
		if !ok {
			continue
		}
		var sources []string
		if isJSON {
			sources = a.jsonModule(dir, file, src)
		} else {
			sources = a.hclModule(dir, file, src)
		}
		for _, s := range sources {
			if strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") {
				m := path.Join(dir, s)
				if escapes(m) {
					a.warn(file, fmt.Sprintf("module source %q is outside the repository; serve does not check it out", s))
					continue
				}
				out = append(out, m)
			}
		}
	}
	return out
}

// read reads a Terraform file within the bounds.
func (a *analysis) read(file string) ([]byte, bool) {
	f, err := a.fsys.Open(file)
	if err != nil {
		return nil, false
	}
	defer func() { _ = f.Close() }() // read only
	src, err := io.ReadAll(io.LimitReader(f, MaxSourceSize+1))
	if err != nil {
		return nil, false
	}
	if len(src) > MaxSourceSize {
		a.warn(file, fmt.Sprintf("larger than %d MiB; the files it reads are not searched (list them in stack.hcl watch)", MaxSourceSize>>20))
		return nil, false
	}
	if depth(src) > MaxNesting {
		a.warn(file, fmt.Sprintf("nested deeper than %d levels; the files it reads are not searched (list them in stack.hcl watch)", MaxNesting))
		return nil, false
	}
	return src, true
}

// depth is the deepest nesting of brackets in src, counted over the bytes
// without parsing: strings holding brackets count too, which errs on the
// safe side.
func depth(src []byte) int {
	d, most := 0, 0
	for _, c := range src {
		switch c {
		case '(', '[', '{':
			if d++; d > most {
				most = d
			}
		case ')', ']', '}':
			if d > 0 {
				d--
			}
		}
	}
	return most
}

var moduleSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "module", LabelNames: []string{"name"}}}}

// hclModule reads a .tf file: its module sources, and the paths of its
// file function calls.
func (a *analysis) hclModule(dir, file string, src []byte) []string {
	f, _ := hclsyntax.ParseConfig(src, file, hcl.InitialPos)
	if f == nil {
		return nil
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var sources []string
	for _, b := range body.Blocks {
		if b.Type != "module" {
			continue
		}
		if attr, ok := b.Body.Attributes["source"]; ok {
			if s, ok := literal(attr.Expr); ok {
				sources = append(sources, s)
			}
		}
	}
	a.calls(dir, body)
	return sources
}

// jsonModule reads a .tf.json file: its module sources, and the paths of
// the file function calls in its strings (each a template).
func (a *analysis) jsonModule(dir, file string, src []byte) []string {
	var sources []string
	if f, _ := hclparse.NewParser().ParseJSON(src, file); f != nil {
		content, _, _ := f.Body.PartialContent(moduleSchema)
		for _, b := range content.Blocks {
			attrs, _ := b.Body.JustAttributes()
			if attr, ok := attrs["source"]; ok {
				if s, ok := literal(attr.Expr); ok {
					sources = append(sources, s)
				}
			}
		}
	}
	// A token stream, not a tree: nesting costs no recursion.
	dec := json.NewDecoder(bytes.NewReader(src))
	line, counted := 1, int64(0)
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		s, ok := tok.(string)
		if !ok || !strings.Contains(s, "${") {
			continue
		}
		off := dec.InputOffset()
		line += bytes.Count(src[counted:off], []byte("\n"))
		counted = off
		expr, diags := hclsyntax.ParseTemplate([]byte(s), file, hcl.Pos{Line: line, Column: 1, Byte: 0})
		if diags.HasErrors() || expr == nil {
			continue
		}
		a.calls(dir, expr)
	}
	return sources
}

// fileFuncs are the functions whose first argument is a path terraform reads.
var fileFuncs = map[string]bool{
	"file": true, "filebase64": true, "filemd5": true, "filesha1": true, "filesha256": true, "filesha512": true,
	"filebase64sha256": true, "filebase64sha512": true, "templatefile": true, "fileexists": true,
}

// calls finds the file function calls under node whose path arguments are
// known statically.
func (a *analysis) calls(dir string, node hclsyntax.Node) {
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"path": cty.ObjectVal(map[string]cty.Value{
		"module": cty.StringVal(rel(a.stack, dir)), "root": cty.StringVal("."), "cwd": cty.StringVal("."),
	})}}
	_ = hclsyntax.VisitAll(node, func(n hclsyntax.Node) hcl.Diagnostics {
		call, ok := n.(*hclsyntax.FunctionCallExpr)
		if !ok {
			return nil
		}
		r := call.Range()
		where := fmt.Sprintf("%s:%d", r.Filename, r.Start.Line)
		switch name := strings.TrimPrefix(call.Name, "core::"); {
		case fileFuncs[name] && len(call.Args) >= 1:
			if p, ok := known(ctx, call.Args[0]); ok {
				a.ref(p, where)
			}
		case name == "fileset" && len(call.Args) >= 2:
			base, ok1 := known(ctx, call.Args[0])
			pattern, ok2 := known(ctx, call.Args[1])
			if !ok1 || !ok2 {
				return nil
			}
			if path.IsAbs(base) {
				a.warn(where, fmt.Sprintf("%s is outside the repository; serve does not check it out", base))
				return nil
			}
			if path.IsAbs(pattern) || dotdot(pattern) {
				a.warn(where, fmt.Sprintf("fileset pattern %q leaves its directory; list what it reads in stack.hcl watch", pattern))
				return nil
			}
			a.glob(path.Join(escapeMeta(path.Join(a.stack, base)), pattern), where)
		}
		return nil
	})
}

// known evaluates a path argument that needs nothing but path.module,
// path.root and path.cwd.
func known(ctx *hcl.EvalContext, expr hcl.Expression) (string, bool) {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() || v.IsNull() || !v.IsWhollyKnown() || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

// literal evaluates a string needing no variables, such as a module source.
func literal(expr hcl.Expression) (string, bool) {
	return known(nil, expr)
}

// rel is the slash path from dir to target, both relative to the
// repository root, as terraform gives path.module.
func rel(dir, target string) string {
	split := func(p string) []string {
		if p == "." {
			return nil
		}
		return strings.Split(p, "/")
	}
	d, t := split(dir), split(target)
	i := 0
	for i < len(d) && i < len(t) && d[i] == t[i] {
		i++
	}
	var parts []string
	for range d[i:] {
		parts = append(parts, "..")
	}
	parts = append(parts, t[i:]...)
	if len(parts) == 0 {
		return "."
	}
	return strings.Join(parts, "/")
}

// escapeMeta makes a literal path safe as the start of a glob.
func escapeMeta(p string) string {
	var b strings.Builder
	for _, c := range p {
		if strings.ContainsRune(`*?[]{}\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// dotdot reports whether a glob has a ".." element, also inside braces
// ({a,..}), where path.Clean cannot see it.
func dotdot(g string) bool {
	seps := "/"
	if strings.ContainsAny(g, "{}") {
		seps = "/{},"
	}
	return slices.Contains(strings.FieldsFunc(g, func(r rune) bool { return strings.ContainsRune(seps, r) }), "..")
}

// escapes reports whether a cleaned relative path leaves the repository.
func escapes(p string) bool {
	return p == ".." || strings.HasPrefix(p, "../") || path.IsAbs(p)
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// under reports whether p is dir or inside it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/") || dir == "."
}

// Affected returns the stacks (by path) whose dependencies (Analyze) cover
// any of the changed paths.
func Affected(fsys fs.FS, all []Stack, changed []string) []string {
	var out []string
	for _, s := range all {
		deps := Analyze(fsys, s)
		for _, c := range changed {
			if deps.Covers(c) {
				out = append(out, s.Path)
				break
			}
		}
	}
	return out
}
