// Package testenv gives integration tests the real toolchain that
// `make tools` builds into .tools/: OpenTofu 1.10.10, Terraform 1.13.3 and
// 1.5.7 (by version in .tools/versions), the provider mirror and its CLI
// config. A missing tool fails the test with the command that fixes it; it
// never skips.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/trueline/trueline/runner"
)

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// Root returns the repository root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			rootErr = err
			return
		}
		rootDir = filepath.Dir(strings.TrimSpace(string(out)))
	})
	if rootErr != nil {
		t.Fatalf("find repository root: %v", rootErr)
	}
	return rootDir
}

// ToolsDir returns .tools/bin.
func ToolsDir(t testing.TB) string { return filepath.Join(Root(t), ".tools", "bin") }

// CLIConfig returns the generated CLI config that points at the provider mirror.
func CLIConfig(t testing.TB) string {
	t.Helper()
	p := filepath.Join(Root(t), ".tools", "terraformrc")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `make tools`", p)
	}
	return p
}

// Tool returns the path of a tool in .tools/bin.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(ToolsDir(t), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `make tools`", p)
	}
	return p
}

// VersionsDir returns .tools/versions, which holds each binary by version:
// <dir>/terraform/1.13.3/terraform.
func VersionsDir(t testing.TB) string { return filepath.Join(Root(t), ".tools", "versions") }

// Versions the tests run by default.
const (
	TerraformVersion = "1.13.3"
	TofuVersion      = "1.10.10"
)

// TerraformCompat names the older Terraform that one test path keeps
// proving trueline works with: the runner's plan and apply test and the
// drift package's fixtures.
const TerraformCompat = "terraform@1.5.7"

// Binary returns terraform or tofu from .tools/versions, with its version:
// "terraform" and "tofu" are the default versions, "terraform@1.5.7" names
// one.
func Binary(t testing.TB, spec string) runner.Binary {
	t.Helper()
	name, v, ok := strings.Cut(spec, "@")
	if !ok {
		v = map[string]string{"terraform": TerraformVersion, "tofu": TofuVersion}[name]
	}
	if v == "" {
		t.Fatalf("testenv.Binary(%q): name terraform or tofu, optionally @version", spec)
	}
	p := filepath.Join(VersionsDir(t), name, v, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s %s is missing (%s): run `make tools`", name, v, p)
	}
	b, err := runner.Find(context.Background(), runner.FindOptions{Name: name, Path: p, Constraint: "= " + v})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Binaries returns both binaries every integration test runs against, at
// their default versions.
func Binaries(t testing.TB) []runner.Binary {
	return []runner.Binary{Binary(t, "tofu"), Binary(t, "terraform")}
}

// Label names a binary and its version, for subtests: "terraform@1.13.3".
func Label(b runner.Binary) string { return b.Name + "@" + b.Version.String() }

var (
	cacheOnce sync.Once
	cacheDir  string
)

// PluginCache is a provider plugin cache for this test process, for tests
// that run terraform without the runner (whose lock on the shared cache
// they would bypass).
func PluginCache(t testing.TB) string {
	cacheOnce.Do(func() {
		dir, err := os.MkdirTemp("", "trueline-plugin-cache-")
		if err != nil {
			panic(err)
		}
		cacheDir = dir
	})
	return cacheDir
}

// Runner returns a runner for bin with a fresh working area and the
// generated CLI config, whose plugin cache all test processes share: the
// runner locks it across processes.
func Runner(t testing.TB, bin runner.Binary) *runner.Runner {
	return &runner.Runner{Binary: bin, WorkDir: t.TempDir(), CLIConfig: CLIConfig(t), Env: map[string]string{}}
}

// WriteFiles writes files (relative path -> content) under dir.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
