package sandbox_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/sandbox"
)

// fleet renders a stack of n load balancers named <prefix>-<i>, the first
// with the given idle timeout, and an image data source; settings go into
// the provider block.
func fleet(root, prefix string, n, idle int, settings string) string {
	return fmt.Sprintf(`
terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

provider "sandbox" {
  root = %q
%s
}

data "sandbox_image" "base" {
  name = "base"
}

resource "sandbox_load_balancer" "lb" {
  count        = %d
  name         = "%s-${count.index}"
  idle_timeout = count.index == 0 ? %d : 60
  subnets      = [data.sandbox_image.base.id]
}
`, root, settings, n, prefix, idle)
}

func stats(t *testing.T, cloud sandbox.Store, account string) sandbox.Stats {
	t.Helper()
	st, err := cloud.Stats(account)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestProviderCountsEveryCall(t *testing.T) {
	for _, bin := range testenv.Binaries(t) {
		t.Run(bin.Name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, bin)
			// The account comes from the block; the environment's is ignored.
			f.setEnv(t, map[string]string{sandbox.AccountEnv: "elsewhere"})
			f.write(t, fleet(f.cloud.Root, "web", 3, 60, `  account = "ops"`))
			if err := f.tf.Init(ctx); err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				name  string
				run   func() error
				calls map[string]int64
			}{
				{"apply creates", func() error { return f.tf.Apply(ctx) }, map[string]int64{sandbox.OpData: 1, sandbox.OpCreate: 3}},
				{"plan refreshes", func() error { _, err := f.tf.Plan(ctx); return err }, map[string]int64{sandbox.OpData: 1, sandbox.OpRead: 3}},
				{"apply updates", func() error {
					f.write(t, fleet(f.cloud.Root, "web", 3, 90, `  account = "ops"`))
					return f.tf.Apply(ctx)
				}, map[string]int64{sandbox.OpData: 1, sandbox.OpRead: 3, sandbox.OpUpdate: 1}},
				{"destroy deletes", func() error { return f.tf.Destroy(ctx) }, map[string]int64{sandbox.OpData: 1, sandbox.OpRead: 3, sandbox.OpDelete: 3}},
			}
			for _, step := range steps {
				if err := f.cloud.ResetStats("ops"); err != nil {
					t.Fatal(err)
				}
				if err := step.run(); err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				st := stats(t, f.cloud, "ops")
				var total int64
				for _, n := range step.calls {
					total += n
				}
				if fmt.Sprint(st.Calls) != fmt.Sprint(step.calls) || st.Requests != total || st.Throttled != 0 || st.Retries != 0 {
					t.Errorf("%s: stats %+v, want calls %v and nothing else", step.name, st, step.calls)
				}
			}
			if st := stats(t, f.cloud, "elsewhere"); st.Requests != 0 {
				t.Errorf("the environment's account was used: %+v", st)
			}
		})
	}
}

func TestProviderReadLatency(t *testing.T) {
	const (
		n           = 12
		parallelism = 2
		latency     = 500 * time.Millisecond
	)
	ctx := context.Background()
	f := newFixture(t, testenv.Binary(t, "tofu"))
	f.write(t, fleet(f.cloud.Root, "web", n, 60, ""))
	if err := f.tf.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.tf.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	// The block's latency wins over the environment's.
	f.write(t, fleet(f.cloud.Root, "web", n, 60, fmt.Sprintf("  read_latency = %q", latency)))
	f.setEnv(t, map[string]string{sandbox.ReadLatencyEnv: "1ms"})
	start := time.Now()
	changes, err := f.tf.Plan(ctx, tfexec.Parallelism(parallelism))
	elapsed := time.Since(start)
	if err != nil || changes {
		t.Fatalf("plan: changes %v, %v\n%s", changes, err, f.output.String())
	}
	// Every read waits its latency, at most `parallelism` at once, after the
	// data source's own read: at least 1 + n/parallelism latencies. All in
	// a row would be 1 + n.
	lower := latency * (1 + n/parallelism)
	upper := latency * (1 + n)
	if elapsed < lower || elapsed >= upper {
		t.Errorf("plan of %d resources with a %v read latency and -parallelism=%d took %v; want %v to %v",
			n, latency, parallelism, elapsed, lower, upper)
	}
	if st := stats(t, f.cloud, sandbox.DefaultAccount); st.Calls[sandbox.OpRead] < n {
		t.Errorf("stats %+v, want %d reads", st, n)
	}
}

func TestProviderRateLimitSharedAcrossPlans(t *testing.T) {
	const (
		n     = 10
		rate  = 5
		burst = 5
	)
	ctx := context.Background()
	bin := testenv.Binary(t, "tofu")
	// Two stacks in one cloud, set up without a limit.
	a := newFixture(t, bin)
	b := newFixture(t, bin)
	b.cloud = a.cloud
	for _, f := range []struct {
		fx     *fixture
		prefix string
	}{{a, "a"}, {b, "b"}} {
		f.fx.write(t, fleet(a.cloud.Root, f.prefix, n, 60, ""))
		if err := f.fx.tf.Init(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.fx.tf.Apply(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.cloud.ResetStats(sandbox.DefaultAccount); err != nil {
		t.Fatal(err)
	}

	// Both plans at once against one account limited from the environment:
	// 2n+2 reads (the data source's too) need (2n+2-burst)/rate seconds at least.
	limit := map[string]string{
		sandbox.RequestsPerSecondEnv: fmt.Sprint(rate),
		sandbox.BurstEnv:             fmt.Sprint(burst),
		sandbox.MaxBackoffEnv:        "2s",
	}
	a.setEnv(t, limit)
	b.setEnv(t, limit)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	start := time.Now()
	for i, f := range []*fixture{a, b} {
		wg.Go(func() {
			changes, err := f.tf.Plan(ctx)
			if err == nil && changes {
				err = fmt.Errorf("plan has changes:\n%s", f.output.String())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			t.Fatalf("a throttled plan failed instead of retrying: %v", err)
		}
	}
	lower := time.Duration(float64(2*n+2-burst) / rate * float64(time.Second))
	if elapsed < lower {
		t.Errorf("both plans took %v; a shared limit of %d/s (burst %d) needs %v", elapsed, rate, burst, lower)
	}
	st := stats(t, a.cloud, sandbox.DefaultAccount)
	if st.Calls[sandbox.OpRead] != 2*n || st.Calls[sandbox.OpData] != 2 {
		t.Errorf("calls %v, want %d reads and 2 data source reads", st.Calls, 2*n)
	}
	if st.Throttled == 0 || st.Retries != st.Throttled || st.Requests != 2*n+2+st.Throttled {
		t.Errorf("stats %+v: want throttles, each retried, and every request counted", st)
	}
}

func TestProviderFailsWhenRetriesRunOut(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, testenv.Binary(t, "tofu"))
	f.write(t, fleet(f.cloud.Root, "web", 10, 60, ""))
	if err := f.tf.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.tf.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.cloud.ResetStats(sandbox.DefaultAccount); err != nil {
		t.Fatal(err)
	}
	f.write(t, fleet(f.cloud.Root, "web", 10, 60, "  requests_per_second = 1\n  burst = 2\n  max_retries = 0"))
	_, err := f.tf.Plan(ctx)
	if err == nil {
		t.Fatal("a plan of 10 reads against a limit of 1/s, burst 2, without retries succeeded")
	}
	for _, want := range []string{
		"operation error Sandbox: ReadObject, exceeded maximum number of attempts, 1, api error ThrottlingException: Rate exceeded",
		`Sandbox account "default" allows 1 requests/s, burst 2`,
		"max_retries",
	} {
		if !strings.Contains(strings.Join(strings.Fields(err.Error()), " "), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	if st := stats(t, f.cloud, sandbox.DefaultAccount); st.Throttled == 0 || st.Retries != 0 {
		t.Errorf("stats %+v: want throttles and no retry", st)
	}
}
