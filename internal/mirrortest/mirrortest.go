// Package mirrortest serves the providers of the filesystem mirror that
// `make tools` builds (.tools/mirror) as a provider network mirror over
// HTTPS on loopback, as a deployment's own mirror would serve them, so
// tests can install providers over the network. Terraform and OpenTofu
// accept network mirrors over HTTPS only: give the binaries the server's
// certificate with SSL_CERT_FILE (Server.Env). The server counts requests
// per path, so a test can tell whether an archive was downloaded again or
// came from the plugin cache.
//
// The protocol: GET <base>/<host>/<namespace>/<type>/index.json lists the
// versions, GET .../<version>.json lists an archive per platform with its
// URL and h1 hash, and the archive is a zip of the provider's directory.
package mirrortest

import (
	"archive/zip"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/trueline/trueline/internal/testenv"
	"golang.org/x/mod/sumdb/dirhash"
)

// Options changes what the mirror serves.
type Options struct {
	// WrongHash makes every version document list, instead of the
	// archive's own h1 hash, the hash of other content: a mirror whose
	// archives were swapped after their hashes were published.
	WrongHash bool
}

// Server is a running network mirror.
type Server struct {
	// URL is the mirror's base URL, with its trailing slash, for
	// network_mirror { url = ... }.
	URL string
	// CAFile holds the PEM certificate that signs the server's: terraform
	// trusts the mirror with SSL_CERT_FILE set to it.
	CAFile string

	opts      Options
	dir       string               // where archives are built
	providers map[string]*provider // by "host/namespace/type"
	routes    map[string]route     // by request path

	mu   sync.Mutex
	hits map[string]int // by request path, unknown paths included
}

type provider struct {
	source   string                         // host/namespace/type
	versions map[string]map[string]*archive // version -> os_arch -> archive
}

type archive struct {
	typ, version, platform string
	binary                 string // the provider executable in the filesystem mirror

	once       sync.Once
	zip, hash  string // the built archive and its h1 hash
	err        error
	servedPath string // request path of the archive
}

// route is what a request path serves: a provider's index, one version
// document, or an archive.
type route struct {
	p       *provider
	version string   // set for a version document
	a       *archive // set for an archive
}

// Start serves the filesystem mirror until the test ends. A missing
// mirror fails the test with the command that builds it.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	root := filepath.Join(testenv.Root(t), ".tools", "mirror")
	providers, err := scan(root)
	if err != nil {
		t.Fatalf("provider mirror %s: %v (run `make tools`)", root, err)
	}
	if len(providers) == 0 {
		t.Fatalf("provider mirror %s holds no providers: run `make tools`", root)
	}
	s := &Server{opts: opts, dir: t.TempDir(), providers: providers, routes: map[string]route{}, hits: map[string]int{}}
	for _, p := range providers {
		base := "/" + p.source + "/"
		s.routes[base+"index.json"] = route{p: p}
		for v, platforms := range p.versions {
			s.routes[base+v+".json"] = route{p: p, version: v}
			for _, a := range platforms {
				a.servedPath = base + a.name()
				s.routes[a.servedPath] = route{p: p, a: a}
			}
		}
	}

	srv := httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("network mirror requests: %v", s.Requests())
		}
	})
	s.URL = srv.URL + "/"
	s.CAFile = filepath.Join(t.TempDir(), "mirror-ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(s.CAFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// scan reads the unpacked filesystem mirror layout:
// <host>/<namespace>/<type>/<version>/<os>_<arch>/terraform-provider-<type>_v<version>.
func scan(root string) (map[string]*provider, error) {
	bins, err := filepath.Glob(filepath.Join(root, "*", "*", "*", "*", "*", "terraform-provider-*"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(root); err != nil {
		return nil, err
	}
	providers := map[string]*provider{}
	for _, bin := range bins {
		rel, err := filepath.Rel(root, bin)
		if err != nil {
			return nil, err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		host, ns, typ, version, platform := parts[0], parts[1], parts[2], parts[3], parts[4]
		source := host + "/" + ns + "/" + typ
		p := providers[source]
		if p == nil {
			p = &provider{source: source, versions: map[string]map[string]*archive{}}
			providers[source] = p
		}
		if p.versions[version] == nil {
			p.versions[version] = map[string]*archive{}
		}
		p.versions[version][platform] = &archive{typ: typ, version: version, platform: platform, binary: bin}
	}
	return providers, nil
}

// name is the archive's file name, as a registry names it.
func (a *archive) name() string {
	return fmt.Sprintf("terraform-provider-%s_%s_%s.zip", a.typ, a.version, a.platform)
}

// build zips the provider once (stored, not deflated: the binaries are
// large and compress slowly) and hashes the zip as terraform does.
func (a *archive) build(dir string) error {
	a.once.Do(func() {
		a.zip = filepath.Join(dir, a.name())
		if a.err = writeZip(a.zip, a.binary); a.err != nil {
			return
		}
		a.hash, a.err = dirhash.HashZip(a.zip, dirhash.Hash1)
	})
	return a.err
}

func writeZip(dst, bin string) (err error) {
	in, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }() // read only
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	zw := zip.NewWriter(out)
	h, err := zip.FileInfoHeader(fi) // keeps the executable bit
	if err != nil {
		return err
	}
	h.Method = zip.Store
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, in); err != nil {
		return err
	}
	return zw.Close()
}

// wrongHash is a well-formed h1 hash of content no archive has.
func wrongHash(a *archive) (string, error) {
	name := filepath.Base(a.binary)
	return dirhash.Hash1([]string{name}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("not the provider")), nil
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	s.mu.Unlock()
	rt, ok := s.routes[r.URL.Path]
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	switch {
	case rt.a != nil:
		if err := rt.a.build(s.dir); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/zip")
		http.ServeFile(w, r, rt.a.zip)
	case rt.version != "":
		type entry struct {
			URL    string   `json:"url"`
			Hashes []string `json:"hashes"`
		}
		archives := map[string]entry{}
		for platform, a := range rt.p.versions[rt.version] {
			hash, err := s.served(a)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			// Relative to this document, as the protocol allows.
			archives[platform] = entry{URL: a.name(), Hashes: []string{hash}}
		}
		writeJSON(w, map[string]any{"archives": archives})
	default:
		versions := map[string]struct{}{}
		for v := range rt.p.versions {
			versions[v] = struct{}{}
		}
		writeJSON(w, map[string]any{"versions": versions})
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}

// served is the hash a version document lists for a.
func (s *Server) served(a *archive) (string, error) {
	if err := a.build(s.dir); err != nil {
		return "", err
	}
	if s.opts.WrongHash {
		return wrongHash(a)
	}
	return a.hash, nil
}

func (s *Server) archive(t testing.TB, source, version string) *archive {
	t.Helper()
	p := s.providers[source]
	if p == nil {
		t.Fatalf("the mirror has no provider %s", source)
	}
	platform := runtime.GOOS + "_" + runtime.GOARCH
	a := p.versions[version][platform]
	if a == nil {
		t.Fatalf("the mirror has no %s %s for %s", source, version, platform)
	}
	return a
}

// Hash is the h1 hash the mirror lists for a provider's archive for this
// platform (source is "host/namespace/type"): the archive's own unless
// Options.WrongHash.
func (s *Server) Hash(t testing.TB, source, version string) string {
	t.Helper()
	h, err := s.served(s.archive(t, source, version))
	if err != nil {
		t.Fatalf("archive of %s %s: %v", source, version, err)
	}
	return h
}

// Versions lists the versions the mirror holds of a provider.
func (s *Server) Versions(source string) []string {
	var vs []string
	if p := s.providers[source]; p != nil {
		for v := range p.versions {
			vs = append(vs, v)
		}
	}
	sort.Strings(vs)
	return vs
}

// Downloads counts the requests for a provider's archives, all versions
// and platforms.
func (s *Server) Downloads(source string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if p := s.providers[source]; p != nil {
		for _, platforms := range p.versions {
			for _, a := range platforms {
				n += s.hits[a.servedPath]
			}
		}
	}
	return n
}

// Requests returns the number of requests per path so far.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.hits))
	for k, v := range s.hits {
		out[k] = v
	}
	return out
}

// CLIConfig writes a CLI config that installs every provider from this
// mirror and from nowhere else, and returns its path. It sets no plugin
// cache: trueline sets TF_PLUGIN_CACHE_DIR itself.
func (s *Server) CLIConfig(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "terraformrc")
	rc := fmt.Sprintf(`provider_installation {
  network_mirror {
    url = %q
  }
}
disable_checkpoint = true
`, s.URL)
	if err := os.WriteFile(p, []byte(rc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Env is the environment terraform needs to trust the mirror.
func (s *Server) Env() map[string]string {
	return map[string]string{"SSL_CERT_FILE": s.CAFile}
}

// LockFile is a dependency lock file (.terraform.lock.hcl) selecting, for
// every provider the mirror holds under host, its only version with the
// hash the mirror lists: what a stack whose lock file was committed has.
func (s *Server) LockFile(t testing.TB, host string) string {
	t.Helper()
	var sources []string
	for src := range s.providers {
		if strings.HasPrefix(src, host+"/") {
			sources = append(sources, src)
		}
	}
	sort.Strings(sources)
	var b strings.Builder
	for _, src := range sources {
		vs := s.Versions(src)
		if len(vs) != 1 {
			t.Fatalf("the mirror holds %d versions of %s; a lock file selects one", len(vs), src)
		}
		fmt.Fprintf(&b, "provider %q {\n  version = %q\n  hashes = [\n    %q,\n  ]\n}\n\n", src, vs[0], s.Hash(t, src, vs[0]))
	}
	return b.String()
}

// Cached reports whether a plugin cache holds the provider's unpacked
// package for this platform.
func Cached(cache, source, version string) bool {
	dir := filepath.Join(cache, filepath.FromSlash(source), version, runtime.GOOS+"_"+runtime.GOARCH)
	found := false
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "terraform-provider-") {
			found = true
		}
		return nil
	})
	return found
}
