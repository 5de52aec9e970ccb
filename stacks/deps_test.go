package stacks

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestAffected(t *testing.T) {
	mod := func(src string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("module \"m\" {\n  source = \"" + src + "\"\n}\n")}
	}
	fsys := fstest.MapFS{
		"stacks/web/stack.hcl":     {Data: []byte("stack {\n  backend_config = [\"../../backends/prod.hcl\"]\n  workspace \"prod\" {\n    var_files = [\"../../vars/prod.tfvars\"]\n  }\n}\n")},
		"stacks/web/main.tf":       mod("../../modules/service"),
		"stacks/api/stack.hcl":     {Data: []byte("stack {}\n")},
		"stacks/api/main.tf":       mod("../../modules/service"),
		"stacks/db/stack.hcl":      {Data: []byte("stack {}\n")},
		"stacks/db/main.tf":        {Data: []byte("resource \"x\" \"y\" {}\n")},
		"stacks/net/stack.hcl":     {Data: []byte("stack {}\n")},
		"stacks/net/main.tf":       mod("git::https://example.com/net.git"),
		"modules/service/main.tf":  mod("../lb"),
		"modules/lb/main.tf":       {Data: []byte("")},
		"modules/unused/main.tf":   {Data: []byte("")},
		"backends/prod.hcl":        {Data: []byte("bucket = \"state\"\n")},
		"vars/prod.tfvars":         {Data: []byte("x = 1\n")},
		"stacks/web/other.tf.json": {Data: []byte(`{"module": {"n": {"source": "../../modules/unused"}}}`)},
		"stacks/cfg/stack.hcl":     {Data: []byte("stack {\n  watch = [\"../../config/*.yaml\"]\n}\n")},
		"stacks/cfg/main.tf":       {Data: []byte("locals {\n  p = file(\"../../shared/x.json\")\n  t = fileset(path.module, \"../../tpl/*.tpl\")\n  f = fileset(\"../../files\", \"**/*.json\")\n}\n")},
		"stacks/cfg/link.json":     {Data: []byte("../../linked/x.json"), Mode: os.ModeSymlink},
		"shared/x.json":            {Data: []byte("{}")},
		"files/a/b.json":           {Data: []byte("{}")},
		"config/a.yaml":            {Data: []byte("a: 1\n")},
		"linked/x.json":            {Data: []byte("{}")},
	}
	all, err := DiscoverFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		changed []string
		want    []string
	}{
		{[]string{"modules/lb/main.tf"}, []string{"stacks/api", "stacks/web"}},
		{[]string{"modules/service/variables.tf"}, []string{"stacks/api", "stacks/web"}},
		{[]string{"modules/unused/main.tf"}, []string{"stacks/web"}},
		{[]string{"stacks/db/main.tf"}, []string{"stacks/db"}},
		{[]string{"backends/prod.hcl"}, []string{"stacks/web"}},
		{[]string{"vars/prod.tfvars"}, []string{"stacks/web"}},
		{[]string{"README.md", "stacks/dbx/main.tf"}, nil},
		{[]string{"stacks/net/stack.hcl"}, []string{"stacks/net"}},
		// What the code reads, what stack.hcl watches, and link targets.
		{[]string{"shared/x.json"}, []string{"stacks/cfg"}},
		{[]string{"shared/y.json"}, nil},
		{[]string{"config/b.yaml"}, []string{"stacks/cfg"}}, // a new file the watch glob matches
		{[]string{"config/a.yaml.bak"}, nil},
		{[]string{"files/a/gone.json"}, []string{"stacks/cfg"}}, // a fileset match, removed
		{[]string{"files/a/b.txt"}, nil},
		{[]string{"linked/x.json"}, []string{"stacks/cfg"}},
		// A fileset pattern leaving its directory is not followed (a warning says so).
		{[]string{"tpl/a.tpl"}, nil},
		// A changed path above a dependency: a symbolic link or a submodule on the way.
		{[]string{"shared"}, []string{"stacks/cfg"}},
		{[]string{"modules"}, []string{"stacks/api", "stacks/web"}},
	}
	for _, tc := range tests {
		if got := Affected(fsys, all, tc.changed); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Affected(%v) = %v, want %v", tc.changed, got, tc.want)
		}
	}
}

// TestAnalyze reads the stacks of testdata/deps, a repository with one
// stack per way of reading a file.
func TestAnalyze(t *testing.T) {
	fsys := os.DirFS("testdata/deps")
	tests := []struct {
		stack    string
		paths    []string
		globs    []string
		warnings []string // each a substring of one warning, in order
	}{
		{stack: "stacks/literal", paths: []string{"shared/policy.json", "stacks/literal"}},
		{stack: "stacks/template", paths: []string{"shared/policy.json", "shared/x.json", "stacks/template", "tpl/x.tpl"}},
		{stack: "stacks/fileset", paths: []string{"files/a.json", "files/b.json", "stacks/fileset"}, globs: []string{"files/*.json"}},
		// The module's own file (path.module) is in its directory; its
		// file("../../shared/x.json") is relative to the stack, where
		// terraform runs.
		{stack: "stacks/module", paths: []string{"modules/lb", "modules/svc", "shared/x.json", "stacks/module"}},
		{stack: "stacks/unknown", paths: []string{"stacks/unknown"}},
		{stack: "stacks/escape", paths: []string{"stacks/escape"}, warnings: []string{
			`stacks/escape/main.tf: module source "../../../elsewhere" is outside the repository`,
			`stacks/escape/main.tf:2: ../../../outside.json is outside the repository`,
			`stacks/escape/main.tf:3: /etc/hostname is outside the repository`,
			`stacks/escape/main.tf:4: /etc is outside the repository`,
			`stacks/escape/main.tf:5: fileset pattern "../../../*" leaves its directory`,
		}},
		{stack: "stacks/json", paths: []string{"shared/policy.json", "stacks/json"}},
		{stack: "stacks/watch", paths: []string{"policies/p.json", "stacks/watch"}, globs: []string{"policies/*.json", "stacks/watch/extra/**"}},
		// Links: a directory and a file inside the repository are followed
		// to their targets; one leaving it and an absolute one are not.
		{stack: "stacks/link", paths: []string{"shared", "stacks/link", "tpl/x.tpl"}, warnings: []string{
			"stacks/link/absolute: stacks/link/absolute is a symbolic link to /etc/hostname, outside the repository",
			"stacks/link/escaping: stacks/link/escaping is a symbolic link to ../../../outside, outside the repository",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.stack, func(t *testing.T) {
			s := LoadFS(fsys, tc.stack)
			if s.Err != nil {
				t.Fatal(s.Err)
			}
			d := Analyze(fsys, s)
			if !reflect.DeepEqual(d.Paths, tc.paths) {
				t.Errorf("paths = %q, want %q", d.Paths, tc.paths)
			}
			if !reflect.DeepEqual(d.Globs, tc.globs) {
				t.Errorf("globs = %q, want %q", d.Globs, tc.globs)
			}
			if len(d.Warnings) != len(tc.warnings) {
				t.Fatalf("warnings = %q, want %d", d.Warnings, len(tc.warnings))
			}
			for i, w := range tc.warnings {
				if !strings.Contains(d.Warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, d.Warnings[i], w)
				}
			}
			if got := Dependencies(fsys, s); !reflect.DeepEqual(got, d.Paths) {
				t.Errorf("Dependencies = %q, want Analyze's paths %q", got, d.Paths)
			}
		})
	}
}

// TestAnalyzeHostile: files written to exhaust the server cost a warning,
// quickly, and the rest of the stack is still read.
func TestAnalyzeHostile(t *testing.T) {
	nested := func(n int, inner string) string {
		return strings.Repeat("(", n) + inner + strings.Repeat(")", n)
	}
	tests := []struct {
		name    string
		files   map[string]string
		paths   []string
		warning string
	}{
		{"huge file", map[string]string{
			"main.tf": "locals {\n  a = file(\"../shared/x.json\")\n}\n" + strings.Repeat("# padding\n", MaxSourceSize/10+1),
		}, []string{"s"}, "s/main.tf: larger than 8 MiB"},
		{"deeply nested expression", map[string]string{
			"main.tf": "locals {\n  a = file(" + nested(1_000_000, `"../shared/x.json"`) + ")\n}\n",
		}, []string{"s"}, "s/main.tf: nested deeper than 200 levels"},
		{"deeply nested json", map[string]string{
			"main.tf.json": strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000),
		}, []string{"s"}, "s/main.tf.json: nested deeper than 200 levels"},
		{"unbalanced brackets", map[string]string{
			"main.tf": "locals {\n  a = " + strings.Repeat("[", 100_000) + "\n}\n",
		}, []string{"s"}, "s/main.tf: nested deeper than 200 levels"},
		{"nesting within the bound is read", map[string]string{
			"main.tf": "locals {\n  a = file(" + nested(MaxNesting-5, `"../shared/x.json"`) + ")\n}\n",
		}, []string{"s", "shared/x.json"}, ""},
		{"one bad file, the others read", map[string]string{
			"big.tf":  strings.Repeat("{", MaxNesting+1),
			"main.tf": "locals {\n  a = file(\"../shared/x.json\")\n}\n",
		}, []string{"s", "shared/x.json"}, "s/big.tf: nested deeper"},
		{"symbolic link loop", map[string]string{
			"main.tf": "locals {\n  a = file(\"${path.module}/a/x\")\n}\n",
			"a":       "->b", "b": "->a",
		}, []string{"s"}, "too many levels of symbolic links"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"s/stack.hcl": {Data: []byte("stack {}\n")}, "shared/x.json": {Data: []byte("{}")}}
			for name, content := range tc.files {
				if target, ok := strings.CutPrefix(content, "->"); ok {
					fsys["s/"+name] = &fstest.MapFile{Data: []byte(target), Mode: os.ModeSymlink}
					continue
				}
				fsys["s/"+name] = &fstest.MapFile{Data: []byte(content)}
			}
			start := time.Now()
			d := Analyze(fsys, LoadFS(fsys, "s"))
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v", took)
			}
			if !reflect.DeepEqual(d.Paths, tc.paths) {
				t.Errorf("paths = %q, want %q", d.Paths, tc.paths)
			}
			found := tc.warning == ""
			for _, w := range d.Warnings {
				found = found || strings.Contains(w, tc.warning)
			}
			if !found || (tc.warning == "" && len(d.Warnings) > 0) {
				t.Errorf("warnings = %q, want one containing %q", d.Warnings, tc.warning)
			}
		})
	}
}

// TestAnalyzeGlobBound: globs matching more files than the bound stop
// there, with a warning.
func TestAnalyzeGlobBound(t *testing.T) {
	defer func(n int) { maxGlobMatches = n }(maxGlobMatches)
	maxGlobMatches = 50
	fsys := fstest.MapFS{"s/stack.hcl": {Data: []byte("stack {\n  watch = [\"../many/**\"]\n}\n")}}
	for i := range maxGlobMatches + 10 {
		fsys[fmt.Sprintf("many/%d/f", i)] = &fstest.MapFile{}
	}
	d := Analyze(fsys, LoadFS(fsys, "s"))
	if n := len(d.Paths); n != maxGlobMatches+1 {
		t.Errorf("%d paths, want %d and the stack", n, maxGlobMatches)
	}
	if len(d.Warnings) != 1 || !strings.Contains(d.Warnings[0], "s/stack.hcl: the globs match more than 50 files") {
		t.Errorf("warnings = %q", d.Warnings)
	}
}
