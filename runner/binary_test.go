package runner_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/runner"
)

// tools lays out a tools directory by version, each entry a link to a real
// binary `make tools` built: "terraform/1.13.3" → terraform 1.13.3. A
// value names the real version when it differs from the directory's.
func tools(t *testing.T, entries map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for entry, real := range entries {
		name, v, _ := strings.Cut(entry, "/")
		if real == "" {
			real = v
		}
		p := filepath.Join(dir, name, v, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(testenv.Binary(t, name+"@"+real).Path, p); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// onPath makes PATH a directory holding only the given binary, name@version.
func onPath(t *testing.T, spec string) {
	t.Helper()
	dir := t.TempDir()
	if spec != "" {
		b := testenv.Binary(t, spec)
		if err := os.Symlink(b.Path, filepath.Join(dir, b.Name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
}

// TestFindPicksNewestSatisfying: among a tools directory by version and
// PATH, Find picks the newest binary the constraint allows, and otherwise
// says what is installed and how to add what is missing.
func TestFindPicksNewestSatisfying(t *testing.T) {
	both := map[string]string{"terraform/1.13.3": "", "terraform/1.5.7": "", "tofu/1.10.10": ""}
	for _, tc := range []struct {
		name       string
		tools      map[string]string
		path       string // name@version on PATH; empty: nothing
		binary     string
		constraint string
		want       string   // the chosen version, or
		wantErr    []string // what the error says
	}{
		{name: "no constraint: the newest", tools: both, binary: "terraform", want: "1.13.3"},
		{name: "a range", tools: both, binary: "terraform", constraint: "~> 1.5.0", want: "1.5.7"},
		{name: "an upper bound", tools: both, binary: "terraform", constraint: ">= 1.5, < 1.13", want: "1.5.7"},
		{name: "an exact version", tools: both, binary: "terraform", constraint: "= 1.13.3", want: "1.13.3"},
		{name: "tofu", tools: both, binary: "tofu", constraint: "~> 1.10", want: "1.10.10"},
		{name: "PATH holds the only match", tools: map[string]string{"terraform/1.13.3": ""}, path: "terraform@1.5.7",
			binary: "terraform", constraint: "< 1.6", want: "1.5.7"},
		{name: "newer in the tools than on PATH", tools: both, path: "terraform@1.5.7", binary: "terraform", want: "1.13.3"},
		{name: "on PATH alone", path: "terraform@1.13.3", binary: "terraform", constraint: "= 1.13.3", want: "1.13.3"},
		{name: "no terraform satisfies", tools: both, binary: "terraform", constraint: ">= 1.14",
			wantErr: []string{`no terraform satisfies ">= 1.14"`, "installed: 1.13.3 (", "1.5.7 (", "/terraform/<version>/terraform or on PATH", "binary { install = true }"}},
		{name: "no tofu satisfies", tools: both, binary: "tofu", constraint: ">= 1.11",
			wantErr: []string{`no tofu satisfies ">= 1.11"`, "installed: 1.10.10 (", "/tofu/<version>/tofu or on PATH", "trueline installs no OpenTofu"}},
		{name: "none at all", binary: "tofu",
			wantErr: []string{"no tofu found", "none is installed (looked in ", "PATH)"}},
		{name: "a directory naming the wrong version", tools: map[string]string{"terraform/1.9.0": "1.5.7"}, binary: "terraform", constraint: "~> 1.9.0",
			wantErr: []string{"says it is version 1.5.7, not 1.9.0 as its directory does"}},
		{name: "a bad constraint", tools: both, binary: "terraform", constraint: "about 1.5",
			wantErr: []string{`version constraint "about 1.5"`, `"~> 1.10"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := ""
			if tc.tools != nil {
				dir = tools(t, tc.tools)
			}
			onPath(t, tc.path)
			b, err := runner.Find(context.Background(), runner.FindOptions{Name: tc.binary, Constraint: tc.constraint, ToolsDir: dir})
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("found %s, want an error", b)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				// Only a binary that cannot run is unusable: not the
				// directories of a layout by version.
				if !strings.Contains(strings.Join(tc.wantErr, " "), "as its directory does") && strings.Contains(err.Error(), "unusable") {
					t.Errorf("error calls something unusable:\n%v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Version.String() != tc.want || b.Name != tc.binary {
				t.Errorf("found %s, want %s %s", b, tc.binary, tc.want)
			}
		})
	}
}

// TestFindFlatAndVersionedDirectories: .tools/bin holds links to the
// default versions, .tools/versions every version; given both, a
// constraint still reaches the older one.
func TestFindFlatAndVersionedDirectories(t *testing.T) {
	onPath(t, "")
	flat := t.TempDir()
	if err := os.Symlink(testenv.Binary(t, "terraform").Path, filepath.Join(flat, "terraform")); err != nil {
		t.Fatal(err)
	}
	versions := tools(t, map[string]string{"terraform/1.5.7": ""})
	list := flat + string(os.PathListSeparator) + versions
	for constraint, want := range map[string]string{"": "1.13.3", "< 1.13": "1.5.7"} {
		b, err := runner.Find(context.Background(), runner.FindOptions{Constraint: constraint, ToolsDir: list})
		if err != nil {
			t.Fatal(err)
		}
		if b.Version.String() != want {
			t.Errorf("constraint %q: found %s, want %s", constraint, b, want)
		}
	}
}

// TestToolchainConstraints: trueline.hcl's binary version is the default
// a stack's own version narrows; when they leave nothing, the error names
// both and what is installed.
func TestToolchainConstraints(t *testing.T) {
	onPath(t, "")
	dir := tools(t, map[string]string{"terraform/1.13.3": "", "terraform/1.5.7": "", "tofu/1.10.10": ""})
	for _, tc := range []struct {
		name           string
		server         string // trueline.hcl binary { version }
		binary, stack  string // the stack's binary and version
		want           string
		wantErr        []string
		wantServer     string // the NotFoundError's Server, when it names both
		defaultBinary  string
		wantBinaryName string
	}{
		{name: "no constraints", want: "1.13.3"},
		{name: "the server's alone", server: "~> 1.5.0", want: "1.5.7"},
		{name: "the stack's alone", stack: "< 1.6", want: "1.5.7"},
		{name: "the stack narrows the server's", server: ">= 1.5", stack: "< 1.13", want: "1.5.7"},
		{name: "both agree on the newest", server: ">= 1.5", stack: "~> 1.13", want: "1.13.3"},
		{name: "they conflict", server: "~> 1.13", stack: "~> 1.5.0", wantServer: "~> 1.13",
			wantErr: []string{`no terraform satisfies both trueline.hcl's binary version "~> 1.13" and the stack's version "~> 1.5.0"`, "installed: 1.13.3 (", "1.5.7 ("}},
		{name: "the server's constraint is for its default binary", server: "~> 1.13", binary: "tofu", stack: "~> 1.10", want: "1.10.10", wantBinaryName: "tofu"},
		{name: "a tofu server, a terraform stack", defaultBinary: "tofu", server: "~> 1.10", binary: "terraform", stack: "~> 1.5.0", want: "1.5.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc2 := &runner.Toolchain{Default: tc.defaultBinary, Constraint: tc.server, ToolsDir: dir, CacheDir: t.TempDir()}
			b, err := tc2.Binary(context.Background(), tc.binary, tc.stack)
			if tc.wantErr != nil {
				var nf *runner.NotFoundError
				if !errors.As(err, &nf) || nf.Server != tc.wantServer {
					t.Fatalf("error = %v, want a NotFoundError naming the server's %q", err, tc.wantServer)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.wantBinaryName
			if want == "" {
				want = tc.binary
			}
			if want == "" {
				want = "terraform"
			}
			if b.Version.String() != tc.want || b.Name != want {
				t.Errorf("found %s, want %s %s", b, want, tc.want)
			}
		})
	}
}
