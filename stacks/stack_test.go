package stacks

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/trueline/trueline/drift"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseFull(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"staging.tfvars": "x = 1\n"})
	src := `
stack {
  workspaces = ["default", "prod"]
  schedule   = "0 2 * * *"
  timezone   = "Europe/Berlin"
  policy     = "guarded"
  binary     = "tofu"
  version    = "~> 1.10"
  backend_config = ["bucket=state"]
  ignore {
    attributes = ["sandbox_autoscaling_group.*.desired_capacity"]
  }
  workspace "staging" {
    var_files = ["staging.tfvars"]
    env       = { TF_VAR_size = "small" }
  }
}
`
	cfg, diags := Parse("stack.hcl", []byte(src), os.DirFS(dir), ".")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var names []string
	for _, w := range cfg.Workspaces {
		names = append(names, w.Name)
	}
	if strings.Join(names, ",") != "default,prod,staging" {
		t.Errorf("workspaces = %v", names)
	}
	if ws := cfg.Workspaces[2]; ws.VarFiles[0] != "staging.tfvars" || ws.Env["TF_VAR_size"] != "small" {
		t.Errorf("staging workspace = %+v", ws)
	}
	if cfg.Timezone.String() != "Europe/Berlin" || cfg.Cron == nil || cfg.Policy != "guarded" || cfg.Binary != "tofu" || cfg.Version != "~> 1.10" {
		t.Errorf("config = %+v", cfg)
	}
	next := cfg.Cron.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, cfg.Timezone))
	if next.Hour() != 2 {
		t.Errorf("next run at %v", next)
	}
	if len(cfg.Ignore) != 1 || !cfg.Ignore[0].Matches("sandbox_autoscaling_group.web", "desired_capacity") {
		t.Errorf("ignore = %+v", cfg.Ignore)
	}
}

// A stack's mode applies to its workspaces; a workspace block's own mode
// wins; and where stack.hcl says nothing, Mode stays empty so that the
// policy's mode can apply.
func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		stack     drift.Mode
		want      map[string]drift.Mode
	}{
		{"not said", "stack {\n  workspaces = [\"a\"]\n  workspace \"b\" {}\n}\n", "",
			map[string]drift.Mode{"a": "", "b": ""}},
		{"the stack's, for every workspace", "stack {\n  mode = \"refresh-only\"\n  workspaces = [\"a\"]\n  workspace \"b\" {}\n}\n", drift.RefreshOnly,
			map[string]drift.Mode{"a": drift.RefreshOnly, "b": drift.RefreshOnly}},
		{"the default workspace", "stack {\n  mode = \"refresh-only\"\n}\n", drift.RefreshOnly,
			map[string]drift.Mode{"default": drift.RefreshOnly}},
		{"a workspace overrides", "stack {\n  mode = \"refresh-only\"\n  workspaces = [\"a\"]\n  workspace \"prod\" {\n    mode = \"full\"\n  }\n}\n", drift.RefreshOnly,
			map[string]drift.Mode{"a": drift.RefreshOnly, "prod": drift.Full}},
		{"only a workspace says", "stack {\n  workspace \"a\" {\n    mode = \"refresh-only\"\n  }\n  workspace \"b\" {}\n}\n", "",
			map[string]drift.Mode{"a": drift.RefreshOnly, "b": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse("stack.hcl", []byte(tc.src), nil, ".")
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			got := map[string]drift.Mode{}
			for _, w := range cfg.Workspaces {
				got[w.Name] = w.Mode
			}
			if cfg.Mode != tc.stack || !maps.Equal(got, tc.want) {
				t.Errorf("stack mode %q, workspaces %v; want %q, %v", cfg.Mode, got, tc.stack, tc.want)
			}
		})
	}
}

// A stack's account applies to its workspaces; a workspace block's own
// account wins.
func TestParseAccount(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		stack     string
		want      map[string]string
	}{
		{"not said", "stack {\n  workspaces = [\"a\"]\n}\n", "", map[string]string{"a": ""}},
		{"the stack's, for every workspace", "stack {\n  account = \"aws-prod\"\n  workspaces = [\"a\"]\n  workspace \"b\" {}\n}\n", "aws-prod",
			map[string]string{"a": "aws-prod", "b": "aws-prod"}},
		{"the default workspace", "stack {\n  account = \"123456789012\"\n}\n", "123456789012", map[string]string{"default": "123456789012"}},
		{"a workspace overrides", "stack {\n  account = \"aws-prod\"\n  workspace \"staging\" {\n    account = \"aws:staging\"\n  }\n}\n", "aws-prod",
			map[string]string{"staging": "aws:staging"}},
		{"only a workspace says", "stack {\n  workspace \"a\" {\n    account = \"gcp.ops\"\n  }\n  workspace \"b\" {}\n}\n", "",
			map[string]string{"a": "gcp.ops", "b": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse("stack.hcl", []byte(tc.src), nil, ".")
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			got := map[string]string{}
			for _, w := range cfg.Workspaces {
				got[w.Name] = w.Account
			}
			if cfg.Account != tc.stack || !maps.Equal(got, tc.want) {
				t.Errorf("stack account %q, workspaces %v; want %q, %v", cfg.Account, got, tc.stack, tc.want)
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, diags := Parse("stack.hcl", []byte("stack {}\n"), nil, ".")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(cfg.Workspaces) != 1 || cfg.Workspaces[0].Name != "default" || cfg.Timezone != time.UTC || cfg.Cron != nil {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"syntax", "stack {\n  schedule = \n}\n", "stack.hcl:2"},
		{"unknown attribute", "stack {\n  schedul = \"@daily\"\n}\n", `stack.hcl:2,3: Unsupported argument: An argument named "schedul" is not expected here. Did you mean "schedule"?`},
		{"bad cron", "stack {\n  schedule = \"61 * * * *\"\n}\n", "stack.hcl:2,14: Invalid schedule"},
		{"cron that never fires", "stack {\n  schedule = \"0 0 30 2 *\"\n}\n", "stack.hcl:2,14: Invalid schedule: never fires: no time matches within a year"},
		{"timezone without cron", "stack {\n  schedule = \"TZ=UTC\"\n}\n", "stack.hcl:2,14: Invalid schedule"},
		{"bad timezone", "stack {\n\n  timezone = \"Mars/Olympus\"\n}\n", "stack.hcl:3,14: Unknown timezone"},
		{"bad binary", "stack {\n  binary = \"pulumi\"\n}\n", `use "terraform" or "tofu"`},
		{"bad version", "stack {\n  version = \"about 1\"\n}\n", "Invalid version constraint"},
		{"bad ignore", "stack {\n  ignore {\n    attributes = [\"desired_capacity\"]\n  }\n}\n", "stack.hcl:3,18: Invalid ignore rule"},
		{"missing var file", "stack {\n  workspace \"x\" {\n    var_files = [\"nope.tfvars\"]\n  }\n}\n", `stack.hcl:3,17: Missing var file: Var file "nope.tfvars" does not exist`},
		{"no stack block", "# nothing\n", "stack.hcl:1,1: Missing stack block"},
		{"two stack blocks", "stack {}\nstack {}\n", "stack.hcl:2,1: Duplicate stack block"},
		{"duplicate workspace", "stack {\n  workspaces = [\"a\"]\n  workspace \"a\" {}\n}\n", "stack.hcl:3,3: Duplicate workspace"},
		{"unknown block", "stack {}\nstacks {}\n", "stack.hcl:2,1: Unsupported block type"},
		{"watch leaving the repository", "stack {\n  watch = [\"shared/**\",\n    \"../x/*\"]\n}\n", `stack.hcl:3,5: Invalid watch glob: watch glob "../x/*" leaves the repository`},
		{"absolute watch", "stack {\n  watch = [\"/etc/*\"]\n}\n", `stack.hcl:2,12: Invalid watch glob: watch glob "/etc/*" is absolute`},
		{"bad watch glob", "stack {\n  watch = [\"a/[b\"]\n}\n", `stack.hcl:2,12: Invalid watch glob: watch glob "a/[b" is not a valid glob`},
		{"watch .. in braces", "stack {\n  watch = [\"{a,..}/x\"]\n}\n", `stack.hcl:2,12: Invalid watch glob: watch glob "{a,..}/x" uses .. inside braces`},
		{"empty watch", "stack {\n  watch = [\"\"]\n}\n", `stack.hcl:2,12: Invalid watch glob: watch glob "" is empty`},
		{"watch backslash", "stack {\n  watch = [\"a\\\\*\"]\n}\n", `holds a backslash`},
		{"bad mode", "stack {\n  mode = \"refresh\"\n}\n", `stack.hcl:2,10: Invalid mode: mode = "refresh"; use "full" (drift and pending code) or "refresh-only"`},
		{"bad workspace mode", "stack {\n  workspace \"prod\" {\n    mode = \"drift\"\n  }\n}\n", `stack.hcl:3,12: Invalid mode: mode = "drift"; use "full"`},
		{"mode not a string", "stack {\n  mode = [\"full\"]\n}\n", `stack.hcl:2,10: Unsuitable value type`},
		{"empty account", "stack {\n  account = \"\"\n}\n", `stack.hcl:2,13: Invalid account: account = ""; name the cloud account in 1 to 64 letters`},
		{"account with a space", "stack {\n  account = \"aws prod\"\n}\n", `stack.hcl:2,13: Invalid account: account = "aws prod"`},
		{"account too long", "stack {\n  workspace \"a\" {\n    account = \"" + strings.Repeat("a", 65) + "\"\n  }\n}\n", `stack.hcl:3,15: Invalid account`},
		{"account with a newline", "stack {\n  account = \"aws\\nprod\"\n}\n", `stack.hcl:2,13: Invalid account`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := Parse("stack.hcl", []byte(tc.src), os.DirFS(t.TempDir()), ".")
			if !diags.HasErrors() {
				t.Fatal("no error")
			}
			got := (&DiagnosticsError{Diags: diags}).Error()
			if !strings.Contains(got, tc.want) {
				t.Errorf("error %q does not contain %q", got, tc.want)
			}
		})
	}
}

func TestParseScheduleWindow(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		window  string // the parsed window; empty: none
		daily   bool   // Cron picks every day
		wantErr string
	}{
		{name: "nightly in a window", src: "stack {\n  schedule = \"nightly\"\n  window = \"01:00-05:00\"\n  timezone = \"Europe/Berlin\"\n}\n",
			window: "01:00-05:00", daily: true},
		{name: "a window past midnight", src: "stack {\n  schedule = \"nightly\"\n  window = \"22:00-02:00\"\n}\n", window: "22:00-02:00", daily: true},
		{name: "a cron picks the days, the window the time", src: "stack {\n  schedule = \"0 0 * * 1-5\"\n  window = \"01:00-05:00\"\n}\n", window: "01:00-05:00"},
		{name: "a cron without a window", src: "stack {\n  schedule = \"0 2 * * *\"\n}\n"},
		{name: "nightly without a window", src: "stack {\n  schedule = \"nightly\"\n}\n",
			wantErr: `stack.hcl:2,14: Nightly schedule without a window: schedule = "nightly" runs each workspace once a day inside a window; add window = "01:00-05:00"`},
		{name: "a window without a schedule", src: "stack {\n  policy = \"guarded\"\n  window = \"01:00-05:00\"\n}\n",
			wantErr: `stack.hcl:3,12: Window without a schedule: window sets the time of day of a schedule; add schedule = "nightly"`},
		{name: "a window that is no window", src: "stack {\n  schedule = \"nightly\"\n  window = \"1am-5am\"\n}\n",
			wantErr: `stack.hcl:3,12: Invalid window: window "1am-5am": start is not a time of day`},
		{name: "an empty window", src: "stack {\n  schedule = \"nightly\"\n  window = \"03:00-03:00\"\n}\n",
			wantErr: `stack.hcl:3,12: Invalid window: window "03:00-03:00" starts and ends at the same time; for the whole day write "00:00-24:00"`},
		{name: "a hostile window is not quoted back", src: "stack {\n  schedule = \"nightly\"\n  window = \"" + strings.Repeat("9", 1<<20) + "\"\n}\n",
			wantErr: `stack.hcl:3,12: Invalid window: window is 1048576 characters long; write it as "HH:MM-HH:MM"`},
		{name: "@nightly is not a cron descriptor", src: "stack {\n  schedule = \"@nightly\"\n}\n",
			wantErr: `stack.hcl:2,14: Invalid schedule: unrecognized descriptor: @nightly. Use five cron fields (minute hour day-of-month month day-of-week), e.g. "0 2 * * *", or a descriptor such as @daily`},
		{name: "window not a string", src: "stack {\n  schedule = \"nightly\"\n  window = [\"01:00\", \"05:00\"]\n}\n",
			wantErr: `stack.hcl:3,12: Unsuitable value type`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse("stack.hcl", []byte(tc.src), nil, ".")
			if tc.wantErr != "" {
				if !diags.HasErrors() {
					t.Fatal("no error")
				}
				got := (&DiagnosticsError{Diags: diags}).Error()
				if !strings.Contains(got, tc.wantErr) {
					t.Errorf("error %q does not contain %q", got, tc.wantErr)
				}
				if len(got) > 1000 {
					t.Errorf("the error is %d bytes: it quotes the input", len(got))
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			switch {
			case tc.window == "" && cfg.Window != nil:
				t.Errorf("window = %v, want none", cfg.Window)
			case tc.window != "" && (cfg.Window == nil || cfg.Window.String() != tc.window):
				t.Errorf("window = %v, want %s", cfg.Window, tc.window)
			}
			if cfg.Cron == nil {
				t.Fatal("no cron")
			}
			// Every day of a week, or only some.
			days := 0
			from := time.Date(2026, 6, 1, 0, 0, 0, 0, cfg.Timezone) // a Monday
			for at := cfg.Cron.Next(from.Add(-time.Second)); at.Before(from.AddDate(0, 0, 7)); at = cfg.Cron.Next(at) {
				days++
			}
			if tc.daily && days != 7 {
				t.Errorf("nightly picks %d days of a week, want 7", days)
			}
		})
	}
}

func TestDiscover(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"stacks/web/stack.hcl":                    "stack {}\n",
		"stacks/web/main.tf":                      "",
		"stacks/db/stack.hcl":                     "stack {\n  schedul = 1\n}\n",
		"stacks/web/.terraform/modules/stack.hcl": "stack {}\n",
		".git/stack.hcl":                          "stack {}\n",
		"vendor/x/stack.hcl":                      "stack {}\n",
		"modules/net/main.tf":                     "",
	})
	got, err := Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Path != "stacks/db" || got[1].Path != "stacks/web" {
		t.Fatalf("stacks = %+v", got)
	}
	if got[0].Err == nil || !strings.Contains(got[0].Err.Error(), "stacks/db/stack.hcl:2,3") {
		t.Errorf("broken stack error = %v", got[0].Err)
	}
	if got[1].Err != nil || got[1].Config == nil {
		t.Errorf("good stack = %+v", got[1])
	}
	if _, err := Discover(filepath.Join(root, "missing")); err == nil {
		t.Error("Discover of a missing directory succeeded")
	}
}

func TestParseCron(t *testing.T) {
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		spec  string
		never bool   // refused with ErrNeverFires
		err   string // refused otherwise, with this text
	}{
		{spec: "0 2 * * *"},
		{spec: "@yearly"},
		{spec: "@every 30m"},
		{spec: "CRON_TZ=Europe/Berlin 0 2 * * *"},
		{spec: "0 0 31 * *"},
		{spec: "0 0 30 2 1"}, // day of month or day of week: every Monday in February
		{spec: "0 0 30 2 *", never: true},
		{spec: "0 0 31 4,6,9,11 *", never: true},
		{spec: "0 0 29 2 *", never: true}, // once in four years
		{spec: "@every 8784h", never: true},
		{spec: "61 * * * *", err: "above maximum"},
		{spec: "TZ=UTC", err: "has a timezone but no schedule"},
		{spec: "", err: "empty spec"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			sched, err := parseCron(tc.spec, now)
			switch {
			case tc.never:
				if !errors.Is(err, ErrNeverFires) {
					t.Fatalf("err = %v, want ErrNeverFires", err)
				}
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if next := sched.Next(now); next.IsZero() || next.After(now.AddDate(1, 0, 0)) {
					t.Errorf("next = %v", next)
				}
			}
		})
	}
	// Whether a schedule is accepted does not depend on the day it is read.
	for d := 0; d < 4*366; d += 5 {
		if _, err := parseCron("0 0 29 2 *", now.AddDate(0, 0, d)); err == nil {
			t.Fatalf("29 February accepted on %v", now.AddDate(0, 0, d))
		}
	}
}

func TestParseWatch(t *testing.T) {
	cfg, diags := Parse("stacks/web/stack.hcl", []byte("stack {\n  watch = [\"../../shared/**\", \"tpl/*.tpl\", \"../{a,b}/x.json\"]\n}\n"), nil, "stacks/web")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if want := []string{"../../shared/**", "tpl/*.tpl", "../{a,b}/x.json"}; !slices.Equal(cfg.Watch, want) {
		t.Errorf("watch = %q, want %q", cfg.Watch, want)
	}
}

func TestWorkspaceInputs(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"prod.tfvars": "", "vars/prod.tfvars": "", "../outside.tfvars": ""})
	workspace := func(body string) string { return "stack {\n  workspace \"prod\" {\n    " + body + "\n  }\n}\n" }
	tests := []struct {
		name, body string
		want       string // empty: accepted
	}{
		{"var file", `var_files = ["prod.tfvars"]`, ""},
		{"var file in a subdirectory", `var_files = ["./vars/prod.tfvars"]`, ""},
		{"var file through a subdirectory", `var_files = ["vars/../prod.tfvars"]`, ""},
		{"absolute var file", `var_files = ["/etc/passwd"]`, `stack.hcl:3,17: Var file outside the repository: Var file "/etc/passwd" is not inside the repository`},
		{"var file in the parent", `var_files = ["../outside.tfvars"]`, `stack.hcl:3,17: Var file outside the repository: Var file "../outside.tfvars"`},
		{"var file escaping after cleaning", `var_files = ["vars/../../outside.tfvars"]`, "stack.hcl:3,17: Var file outside the repository"},
		{"parent directory", `var_files = [".."]`, "Var file outside the repository"},
		{"the stack directory", `var_files = ["vars/.."]`, `stack.hcl:3,17: Var file is a directory: Var file "vars/.." is a directory`},
		{"inputs", `env = { TF_VAR_size = "small", TF_LOG = "debug" }`, ""},
		{"cli args", `env = { TF_CLI_ARGS_plan = "-lock=false" }`, "env may not set TF_CLI_ARGS_plan: extra command-line arguments"},
		{"data dir", `env = { TF_DATA_DIR = "/tmp/x" }`, "stack.hcl:3,13: Reserved environment variable: env may not set TF_DATA_DIR: trueline keeps"},
		{"cli config", `env = { TF_VAR_a = "1", TF_CLI_CONFIG_FILE = "x" }`, "stack.hcl:3,29: Reserved environment variable: env may not set TF_CLI_CONFIG_FILE"},
		{"plugin cache", `env = { "TF_PLUGIN_CACHE_DIR" = "x" }`, "stack.hcl:3,13: Reserved environment variable: env may not set TF_PLUGIN_CACHE_DIR"},
		{"path", `env = { PATH = "/tmp" }`, `env may not set PATH: it would change which programs terraform and its providers run. Remove it from workspace "prod"`},
		{"ld preload", `env = { LD_PRELOAD = "/tmp/x.so" }`, "env may not set LD_PRELOAD: dynamic linker"},
		{"ld library path, lower case", `env = { ld_library_path = "/tmp" }`, "env may not set ld_library_path"},
		{"dyld", `env = { DYLD_INSERT_LIBRARIES = "/tmp/x.dylib" }`, "env may not set DYLD_INSERT_LIBRARIES"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, fsys := range []fs.FS{os.DirFS(dir), nil} {
				_, diags := Parse("stack.hcl", []byte(workspace(tc.body)), fsys, ".")
				if tc.want == "" {
					if diags.HasErrors() {
						t.Fatal(diags)
					}
					continue
				}
				if !diags.HasErrors() {
					t.Fatal("accepted")
				}
				if got := (&DiagnosticsError{Diags: diags}).Error(); !strings.Contains(got, tc.want) {
					t.Errorf("error %q does not contain %q", got, tc.want)
				}
			}
		})
	}
}

// A var file elsewhere in the repository is shared by stacks; one that
// leaves the repository is refused.
func TestSharedVarFiles(t *testing.T) {
	fsys := fstest.MapFS{"vars/prod.tfvars": {Data: []byte("x = 1\n")}}
	src := []byte("stack {\n  workspace \"prod\" {\n    var_files = [\"../../vars/prod.tfvars\"]\n  }\n}\n")
	if _, diags := Parse("stacks/web/stack.hcl", src, fsys, "stacks/web"); diags.HasErrors() {
		t.Errorf("a shared var file is refused: %v", diags)
	}
	out := []byte("stack {\n  workspace \"prod\" {\n    var_files = [\"../../../prod.tfvars\"]\n  }\n}\n")
	if _, diags := Parse("stacks/web/stack.hcl", out, fsys, "stacks/web"); !diags.HasErrors() || !strings.Contains(diags.Error(), "outside the repository") {
		t.Errorf("a var file outside the repository: %v", diags)
	}
}

// denyFS fails to read the files and directories in denied, as ones
// without read permission do (root reads those, so the test cannot chmod),
// and lists the directories in partly with an error after their entries.
type denyFS struct {
	fstest.MapFS
	denied, partly map[string]bool
}

func (f denyFS) Open(name string) (fs.File, error) {
	if f.denied[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return f.MapFS.Open(name)
}

func (f denyFS) ReadFile(name string) ([]byte, error) {
	if f.denied[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return f.MapFS.ReadFile(name)
}

func (f denyFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if f.denied[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	entries, err := f.MapFS.ReadDir(name)
	if err == nil && f.partly[name] {
		err = &fs.PathError{Op: "readdirent", Path: name, Err: fs.ErrPermission}
	}
	return entries, err
}

// What cannot be read is reported as a stack at its path with the error,
// never skipped: a stack that vanishes from discovery stops being checked.
func TestDiscoverUnreadable(t *testing.T) {
	files := fstest.MapFS{
		"stacks/web/stack.hcl":       {Data: []byte("stack {}\n")},
		"stacks/db/stack.hcl":        {Data: []byte("stack {}\n")},
		"stacks/secret/a/stack.hcl":  {Data: []byte("stack {}\n")},
		"stacks/secret/b/stack.hcl":  {Data: []byte("stack {}\n")},
		"stacks/web/modules/main.tf": {Data: []byte("")},
	}
	for _, tc := range []struct {
		name           string
		denied, partly []string
		want           map[string]string // path: "" when fine, else what its error says
	}{
		{
			name: "everything readable",
			want: map[string]string{"stacks/db": "", "stacks/secret/a": "", "stacks/secret/b": "", "stacks/web": ""},
		},
		{
			name:   "a directory of stacks",
			denied: []string{"stacks/secret"},
			want: map[string]string{"stacks/db": "", "stacks/web": "",
				"stacks/secret": "stacks under stacks/secret cannot be found: open stacks/secret: permission denied"},
		},
		{
			name:   "a stack's directory",
			denied: []string{"stacks/web"},
			want: map[string]string{"stacks/db": "", "stacks/secret/a": "", "stacks/secret/b": "",
				"stacks/web": "stacks under stacks/web cannot be found: open stacks/web: permission denied"},
		},
		{
			name:   "a stack's directory, listed in part, is one stack with the error",
			partly: []string{"stacks/web"},
			want: map[string]string{"stacks/db": "", "stacks/secret/a": "", "stacks/secret/b": "",
				"stacks/web": "stacks under stacks/web cannot be found: readdirent stacks/web: permission denied"},
		},
		{
			name:   "a stack.hcl",
			denied: []string{"stacks/db/stack.hcl"},
			want: map[string]string{"stacks/secret/a": "", "stacks/secret/b": "", "stacks/web": "",
				"stacks/db": "open stacks/db/stack.hcl: permission denied"},
		},
		{
			name:   "a directory that holds no stack still says so",
			denied: []string{"stacks/web/modules"},
			want: map[string]string{"stacks/db": "", "stacks/secret/a": "", "stacks/secret/b": "", "stacks/web": "",
				"stacks/web/modules": "stacks under stacks/web/modules cannot be found: open stacks/web/modules: permission denied"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := denyFS{MapFS: files, denied: map[string]bool{}, partly: map[string]bool{}}
			for _, p := range tc.denied {
				fsys.denied[p] = true
			}
			for _, p := range tc.partly {
				fsys.partly[p] = true
			}
			all, err := DiscoverFS(fsys)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, s := range all {
				if _, dup := got[s.Path]; dup {
					t.Errorf("%s found twice", s.Path)
				}
				got[s.Path] = ""
				switch {
				case s.Err != nil:
					got[s.Path] = s.Err.Error()
					if !errors.Is(s.Err, fs.ErrPermission) {
						t.Errorf("%s: error %v is not fs.ErrPermission", s.Path, s.Err)
					}
				case s.Config == nil:
					t.Errorf("%s has neither a config nor an error", s.Path)
				}
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
	if _, err := DiscoverFS(denyFS{MapFS: files, denied: map[string]bool{".": true}}); err == nil {
		t.Error("an unreadable root is not an error")
	}
}
