package limiter

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/terraform-exec/tfexec"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/sandbox"
)

func TestThrottlesAndRequests(t *testing.T) {
	tests := []struct {
		file      string
		throttles int
		requests  int
	}{
		// tofu 1.10.10 against the sandbox, 1 request/s, burst 1, no retries:
		// five of six reads refused, five error blocks.
		{"sandbox-tofu-throttled.txt", 5, 6},
		{"sandbox-tofu-in-sync.txt", 0, 6},
		// RequestLimitExceeded and Throttling: Rate exceeded, each wrapped
		// over lines; the third error is another one. Ids with 429 are not.
		{"aws-errors.txt", 2, 4},
		// In color, boxed: a 429 with TooManyRequests, and Google's Error 429.
		{"azure-google-color.txt", 2, 2},
		// A provider's debug log: every throttled answer on its own line.
		{"retry-log.txt", 3, 0},
		// status_code = 429 in a plan, 429 in ids and line numbers.
		{"not-throttled.txt", 0, 2},
		// Refreshes, a data source read, creates, an update, a delete; not
		// "Still creating..." nor an attribute value that looks like one.
		{"apply.txt", 0, 7},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "output", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := Throttles(string(b)); got != tt.throttles {
				t.Errorf("Throttles = %d, want %d", got, tt.throttles)
			}
			if got := Requests(string(b)); got != tt.requests {
				t.Errorf("Requests = %d, want %d", got, tt.requests)
			}
		})
	}
}

// TestThrottlesOfRealPlans plans a stack of load balancers with both
// binaries against the sandbox: without a limit the output shows every
// read and no throttling; against a limit of 1 request a second without
// retries refused requests fail the plan, and Throttles counts each error
// terraform prints (tofu prints one for every refusal, terraform stops at
// the first).
func TestThrottlesOfRealPlans(t *testing.T) {
	const n = 6
	for _, bin := range testenv.Binaries(t) {
		t.Run(testenv.Label(bin), func(t *testing.T) {
			ctx := context.Background()
			dir, cloud := t.TempDir(), sandbox.Store{Root: t.TempDir()}
			testenv.WriteFiles(t, dir, map[string]string{"main.tf": fmt.Sprintf(`
terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {
  root    = %q
  account = "tight"
}

resource "sandbox_load_balancer" "lb" {
  count   = %d
  name    = "lb-${count.index}"
  subnets = ["a"]
}
`, cloud.Root, n)})
			tf, err := tfexec.NewTerraform(dir, bin.Path)
			if err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"TF_CLI_CONFIG_FILE": testenv.CLIConfig(t), "TF_PLUGIN_CACHE_DIR": testenv.PluginCache(t),
				"TF_DATA_DIR": filepath.Join(t.TempDir(), "data"), "PATH": os.Getenv("PATH")}
			if err := tf.SetEnv(env); err != nil {
				t.Fatal(err)
			}
			// terraform-exec copies stdout and stderr from two goroutines.
			var out lockedBuffer
			tf.SetStdout(&out)
			tf.SetStderr(&out)
			if err := tf.Init(ctx); err != nil {
				t.Fatalf("init: %v\n%s", err, out.String())
			}
			if err := tf.Apply(ctx); err != nil {
				t.Fatalf("apply: %v\n%s", err, out.String())
			}
			if got := Requests(out.String()); got != n {
				t.Errorf("the apply's output shows %d requests, want %d creates", got, n)
			}

			for _, step := range []struct {
				name  string
				limit map[string]string
			}{
				{"no limit", nil},
				{"1 request/s, no retries", map[string]string{sandbox.RequestsPerSecondEnv: "1", sandbox.BurstEnv: "1", sandbox.MaxRetriesEnv: "0"}},
			} {
				e := map[string]string{}
				for k, v := range env {
					e[k] = v
				}
				for k, v := range step.limit {
					e[k] = v
				}
				if err := tf.SetEnv(e); err != nil {
					t.Fatal(err)
				}
				if err := cloud.ResetStats("tight"); err != nil {
					t.Fatal(err)
				}
				out.Reset()
				_, err := tf.Plan(ctx)
				st, serr := cloud.Stats("tight")
				if serr != nil {
					t.Fatal(serr)
				}
				got := Throttles(out.String())
				if step.limit == nil {
					if err != nil || got != 0 || st.Throttled != 0 {
						t.Errorf("%s: plan error %v, Throttles %d, sandbox throttled %d; want none\n%s", step.name, err, got, st.Throttled, out.String())
					}
				} else if errs := strings.Count(out.String(), "\nError: "); err == nil || got == 0 || got != errs || int64(got) > st.Throttled {
					t.Errorf("%s: plan error %v; Throttles = %d of %d errors, the sandbox refused %d requests; want every error counted\n%s",
						step.name, err, got, errs, st.Throttled, out.String())
				}
				if got := Requests(out.String()); got != n || st.Calls[sandbox.OpRead]+st.Throttled != n {
					t.Errorf("%s: Requests = %d, sandbox %+v; want %d reads asked", step.name, got, st, n)
				}
			}
		})
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func TestLocalState(t *testing.T) {
	dir := t.TempDir()
	state := func(resources string) string {
		return fmt.Sprintf(`{"version": 4, "terraform_version": "1.10.10", "serial": 3, "lineage": "x", "outputs": {}, "resources": [%s]}`, resources)
	}
	lb := `{"mode": "managed", "type": "sandbox_load_balancer", "name": "lb", "provider": "p", "instances": [{"attributes": {"id": "a", "tags": {"k": [1, 2, {"x": null}]}}}, {"attributes": {"id": "b"}}]}`
	data := `{"mode": "data", "type": "sandbox_image", "name": "base", "provider": "p", "instances": [{"attributes": {"id": "img"}}]}`
	testenv.WriteFiles(t, dir, map[string]string{
		"default/terraform.tfstate":                          state(lb + "," + data),
		"ws/terraform.tfstate.d/staging/terraform.tfstate":   state(lb),
		"empty/terraform.tfstate":                            state(""),
		"old/terraform.tfstate":                              `{"version": 3, "modules": [{"resources": {"a": {}}}]}`,
		"garbage/terraform.tfstate":                          "not json",
		"truncated/terraform.tfstate":                        state(lb)[:60],
		"escape/terraform.tfstate.d/../../terraform.tfstate": state(lb),
	})
	// Past the bound the file is unknown, not read on.
	big := filepath.Join(dir, "big", "terraform.tfstate")
	if err := os.MkdirAll(filepath.Dir(big), 0o755); err != nil {
		t.Fatal(err)
	}
	pad := state(lb + "," + data)
	pad = pad[:len(pad)-2] + strings.Repeat(" ", maxStateFile) + "]}"
	if err := os.WriteFile(big, []byte(pad), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dir, workspace string
		n              int
		ok             bool
	}{
		{"default", "", 3, true},
		{"default", "default", 3, true},
		{"ws", "staging", 2, true},
		{"ws", "prod", 0, false},
		{"empty", "", 0, true},
		{"missing", "", 0, false},
		{"old", "", 0, false},
		{"garbage", "", 0, false},
		{"truncated", "", 0, false},
		{"big", "", 0, false},
		{"escape", "..", 0, false},
		{"escape", "../..", 0, false},
	}
	for _, tt := range tests {
		n, ok := LocalState(filepath.Join(dir, tt.dir), tt.workspace)
		if n != tt.n || ok != tt.ok {
			t.Errorf("LocalState(%s, %q) = %d, %v; want %d, %v", tt.dir, tt.workspace, n, ok, tt.n, tt.ok)
		}
	}
}
