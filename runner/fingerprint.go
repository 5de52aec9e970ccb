package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// initFingerprint hashes everything `init` consumes, so that init can be
// skipped when none of it changed: the binary, the CLI config, the lock file,
// the backend configuration and its -backend-config inputs, and per module
// (the root and, transitively, local modules) the terraform blocks, module
// calls and the providers implied by resource types. It also returns the
// module sources it read, whose Git branches the caller resolves (see
// fingerprint).
func initFingerprint(bin Binary, cliConfig, dir string, backendConfig []string) (string, []string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "binary %s %s %s\n", bin.Name, bin.Version, bin.Path)
	for _, f := range []string{cliConfig, filepath.Join(dir, ".terraform.lock.hcl")} {
		if f == "" {
			continue
		}
		if err := hashFile(h, f); err != nil {
			return "", nil, err
		}
	}
	for _, bc := range backendConfig {
		// A -backend-config value is either a file or key=value.
		fmt.Fprintf(h, "backend-config %s\n", bc)
		if !strings.Contains(bc, "=") {
			p := bc
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			if err := hashFile(h, p); err != nil {
				return "", nil, err
			}
		}
	}
	seen := map[string]bool{}
	var sources []string
	if err := hashModule(h, dir, seen, &sources); err != nil {
		return "", nil, err
	}
	return hex.EncodeToString(h.Sum(nil)), sources, nil
}

func hashFile(w hash.Hash, path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		fmt.Fprintf(w, "absent %s\n", path)
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read only: closing cannot lose data
	fmt.Fprintf(w, "file %s\n", path)
	_, err = io.Copy(w, f)
	return err
}

var initSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "terraform"},
		{Type: "module", LabelNames: []string{"name"}},
		{Type: "resource", LabelNames: []string{"type", "name"}},
		{Type: "data", LabelNames: []string{"type", "name"}},
	},
}

// hashModule writes the init-relevant parts of one module directory. Parse
// errors are not returned: init would report them better, so the fingerprint
// just includes the raw file and a plan will run init and show the error.
func hashModule(w hash.Hash, dir string, seen map[string]bool, sources *[]string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if seen[abs] {
		return nil
	}
	seen[abs] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".tf") || strings.HasSuffix(n, ".tf.json") || strings.HasSuffix(n, ".tofu") || strings.HasSuffix(n, ".tofu.json")) {
			files = append(files, n)
		}
	}
	sort.Strings(files)
	p := hclparse.NewParser()
	var locals []string
	for _, name := range files {
		path := filepath.Join(dir, name)
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var f *hcl.File
		var diags hcl.Diagnostics
		if strings.HasSuffix(name, ".json") {
			f, diags = p.ParseJSON(src, path)
		} else {
			f, diags = p.ParseHCL(src, path)
		}
		if diags.HasErrors() || f == nil {
			fmt.Fprintf(w, "unparsable %s\n", path)
			w.Write(src)
			continue
		}
		content, _, _ := f.Body.PartialContent(initSchema)
		fmt.Fprintf(w, "module-file %s\n", path)
		for _, b := range content.Blocks {
			switch b.Type {
			case "terraform":
				w.Write(rangeBytes(src, b.DefRange, b.Body))
			case "module":
				attrs, _ := b.Body.JustAttributes()
				for _, key := range []string{"source", "version"} {
					if a, ok := attrs[key]; ok {
						fmt.Fprintf(w, "module %s %s=%s\n", b.Labels[0], key, a.Expr.Range().SliceBytes(src))
						if key == "source" {
							if v, d := a.Expr.Value(nil); !d.HasErrors() && v.Type().FriendlyName() == "string" {
								s := v.AsString()
								if strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") {
									locals = append(locals, filepath.Join(dir, s))
								} else {
									*sources = append(*sources, s)
								}
							}
						}
					}
				}
			case "resource", "data":
				// The provider a resource implies is its type's prefix.
				typ, _, _ := strings.Cut(b.Labels[0], "_")
				fmt.Fprintf(w, "implies %s\n", typ)
			}
		}
	}
	for _, l := range locals {
		if err := hashModule(w, l, seen, sources); err != nil {
			fmt.Fprintf(w, "missing module %s\n", l)
		}
	}
	return nil
}

// rangeBytes returns the source of a whole block: from its header to the end
// of its body.
func rangeBytes(src []byte, def hcl.Range, body hcl.Body) []byte {
	type ranger interface{ Range() hcl.Range }
	end := def.End.Byte
	if r, ok := body.(ranger); ok {
		end = r.Range().End.Byte
	}
	if def.Start.Byte < 0 || end > len(src) || def.Start.Byte > end {
		return nil
	}
	return src[def.Start.Byte:end]
}

// A fingerprint is what init consumed, as kept in the working directory:
// the hash of initFingerprint and, per Git module source whose ref can
// move (a branch, or none: the default branch), the commit it resolved to.
// init does not fetch an installed module again while its source string is
// unchanged, so a moved branch must both trigger init and make init forget
// the installed copy (forgetModules).
type fingerprint struct {
	Hash string
	Git  map[string]string // gitSource.key() -> commit; "" when never resolved
}

func (f fingerprint) String() string {
	var b strings.Builder
	b.WriteString(f.Hash + "\n")
	keys := make([]string, 0, len(f.Git))
	for k := range f.Git {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "git %s %s\n", f.Git[k], k)
	}
	return b.String()
}

func parseFingerprint(s string) fingerprint {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	f := fingerprint{Hash: lines[0], Git: map[string]string{}}
	for _, l := range lines[1:] {
		if parts := strings.SplitN(l, " ", 3); len(parts) == 3 && parts[0] == "git" {
			f.Git[parts[2]] = parts[1]
		}
	}
	return f
}

// moved lists the Git sources whose commit differs from old's.
func (f fingerprint) moved(old fingerprint) []string {
	var out []string
	for k, c := range f.Git {
		if oc, ok := old.Git[k]; !ok || oc != c {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// gitSource is a module source terraform fetches with Git.
type gitSource struct {
	Remote string // as git takes it: https://, http://, ssh:// or file://
	Ref    string // "" is the remote's default branch
}

func (g gitSource) key() string { return g.Remote + "?ref=" + g.Ref }

// String is the source for messages, without a password it may carry.
func (g gitSource) String() string {
	s := g.Remote
	if u, err := url.Parse(g.Remote); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "***")
			s = u.Redacted()
		}
	}
	if g.Ref != "" {
		s += "?ref=" + g.Ref
	}
	return s
}

var (
	commitRef = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	// A version is taken for a tag, which does not move.
	versionRef = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+)+([-+][0-9A-Za-z.+-]*)?$`)
	scpLike    = regexp.MustCompile(`^([A-Za-z0-9._~-]+)@([A-Za-z0-9.-]+):/?([^:]+)$`)
	refName    = regexp.MustCompile(`^[A-Za-z0-9._/+-]+$`)
)

// moves reports whether the ref can move, so its commit must be looked up:
// a branch or the default branch, not a commit hash or a version tag.
func (g gitSource) moves() bool {
	return !commitRef.MatchString(g.Ref) && !versionRef.MatchString(g.Ref)
}

// maxSourceLen bounds the module source strings parsed as Git sources.
const maxSourceLen = 2048

// parseGitSource recognises the module sources terraform fetches with Git
// (as go-getter detects them): "git::" and a URL or scp-style address,
// "github.com/owner/repo" and "git@host:path", each with an optional
// "//subdir" and "?ref=". Anything else (registry modules, archives, local
// paths, other getters) is not Git, and a source too long or holding what
// git would take for an option or a control character is ignored.
func parseGitSource(src string) (gitSource, bool) {
	if len(src) > maxSourceLen || strings.ContainsFunc(src, func(r rune) bool { return r < ' ' || r == 0x7f || r == ' ' }) {
		return gitSource{}, false
	}
	rest, forced := strings.CutPrefix(src, "git::")
	rest = stripSubdir(rest)
	remote, query, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return gitSource{}, false
	}
	g := gitSource{Ref: q.Get("ref")}
	if g.Ref != "" && (!refName.MatchString(g.Ref) || strings.HasPrefix(g.Ref, "-")) {
		return gitSource{}, false
	}
	switch {
	case strings.HasPrefix(remote, "github.com/"):
		if forced {
			return gitSource{}, false
		}
		g.Remote = "https://" + remote
		if !strings.HasSuffix(g.Remote, ".git") {
			g.Remote += ".git"
		}
	case strings.Contains(remote, "://"):
		if !forced {
			return gitSource{}, false
		}
		u, err := url.Parse(remote)
		if err != nil || strings.HasPrefix(u.Host, "-") {
			return gitSource{}, false
		}
		switch u.Scheme {
		case "https", "http", "ssh":
			if u.Hostname() == "" {
				return gitSource{}, false
			}
		case "file":
		default:
			return gitSource{}, false
		}
		g.Remote = remote
	default:
		r, ok := scpRemote(remote)
		if !ok || (!forced && !strings.HasPrefix(remote, "git@")) {
			return gitSource{}, false
		}
		g.Remote = r
	}
	return g, true
}

// scpRemote turns an scp-style address (user@host:path) into the ssh://
// URL go-getter fetches it as.
func scpRemote(s string) (string, bool) {
	m := scpLike.FindStringSubmatch(s)
	if m == nil || strings.HasPrefix(m[2], "-") {
		return "", false
	}
	u := url.URL{Scheme: "ssh", User: url.User(m[1]), Host: m[2], Path: "/" + m[3]}
	return u.String(), true
}

// stripSubdir drops a "//subdir" from a source, keeping its query (as
// go-getter's SourceDirSubdir does).
func stripSubdir(src string) string {
	stop := len(src)
	if i := strings.Index(src, "?"); i >= 0 {
		stop = i
	}
	offset := 0
	if i := strings.Index(src[:stop], "://"); i >= 0 {
		offset = i + 3
	}
	i := strings.Index(src[offset:stop], "//")
	if i < 0 {
		return src
	}
	return src[:offset+i] + src[stop:]
}

// forgetModules removes from the data directory's module manifest the
// records of the moved Git sources and of the modules below them, and
// their installed copies, so that init fetches them again. A manifest it
// cannot read goes whole: init then installs every module.
func forgetModules(dataDir string, moved []string) error {
	if len(moved) == 0 {
		return nil
	}
	modDir := filepath.Join(dataDir, "modules")
	path := filepath.Join(modDir, "modules.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("module manifest: %w", err)
	}
	var doc map[string]json.RawMessage
	var records []map[string]any
	if json.Unmarshal(b, &doc) != nil || json.Unmarshal(doc["Modules"], &records) != nil {
		return os.RemoveAll(modDir)
	}
	gone := map[string]bool{}
	for _, m := range moved {
		gone[m] = true
	}
	var prefixes []string
	for _, rec := range records {
		src, _ := rec["Source"].(string)
		key, _ := rec["Key"].(string)
		if g, ok := parseGitSource(src); ok && gone[g.key()] && key != "" {
			prefixes = append(prefixes, key)
		}
	}
	if len(prefixes) == 0 {
		return nil
	}
	kept := records[:0]
	for _, rec := range records {
		key, _ := rec["Key"].(string)
		drop := false
		for _, p := range prefixes {
			if key == p || strings.HasPrefix(key, p+".") {
				drop = true
			}
		}
		if !drop {
			kept = append(kept, rec)
			continue
		}
		// The installed copy goes too, if it is where init installs
		// (never a path the manifest names elsewhere).
		if d, _ := rec["Dir"].(string); filepath.IsAbs(d) && strings.HasPrefix(filepath.Clean(d), modDir+string(filepath.Separator)) {
			if err := os.RemoveAll(d); err != nil {
				return fmt.Errorf("module manifest: %w", err)
			}
		}
	}
	doc["Modules"], err = json.Marshal(kept)
	if err != nil {
		return err
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return fmt.Errorf("module manifest: %w", err)
	}
	return os.Rename(tmp, path)
}
