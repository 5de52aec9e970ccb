package sandbox

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// The environment variables that set what the provider block leaves out;
// the block wins.
const (
	AccountEnv           = "SANDBOX_ACCOUNT"
	ReadLatencyEnv       = "SANDBOX_READ_LATENCY"
	CreateLatencyEnv     = "SANDBOX_CREATE_LATENCY"
	UpdateLatencyEnv     = "SANDBOX_UPDATE_LATENCY"
	DeleteLatencyEnv     = "SANDBOX_DELETE_LATENCY"
	RequestsPerSecondEnv = "SANDBOX_REQUESTS_PER_SECOND"
	BurstEnv             = "SANDBOX_BURST"
	MaxRetriesEnv        = "SANDBOX_MAX_RETRIES"
	MaxBackoffEnv        = "SANDBOX_MAX_BACKOFF"
)

// DelayEnv is the older name of the read latency, for tests that need a run
// to stay in progress: SANDBOX_READ_LATENCY wins over it.
const DelayEnv = "SANDBOX_READ_DELAY"

// WriteDelayEnv is the older name of the create, update and delete
// latencies, for tests that stop an apply: the SANDBOX_*_LATENCY of each
// kind wins over it.
const WriteDelayEnv = "SANDBOX_WRITE_DELAY"

// Defaults, as the AWS provider has them.
const (
	// DefaultMaxRetries is the AWS provider's max_retries.
	DefaultMaxRetries = 25
	// DefaultMaxBackoff is the AWS SDK's cap on one retry's delay.
	DefaultMaxBackoff = 20 * time.Second
)

// Bounds on the settings: a typo such as "300s" for "300ms" should fail
// loudly, not hang a test suite.
const (
	maxLatency    = 10 * time.Minute
	maxBackoffCap = 10 * time.Minute
	maxRate       = 1e6
	maxRetries    = 100
)

type providerModel struct {
	Root              types.String  `tfsdk:"root"`
	Account           types.String  `tfsdk:"account"`
	ReadLatency       types.String  `tfsdk:"read_latency"`
	CreateLatency     types.String  `tfsdk:"create_latency"`
	UpdateLatency     types.String  `tfsdk:"update_latency"`
	DeleteLatency     types.String  `tfsdk:"delete_latency"`
	RequestsPerSecond types.Float64 `tfsdk:"requests_per_second"`
	Burst             types.Int64   `tfsdk:"burst"`
	MaxRetries        types.Int64   `tfsdk:"max_retries"`
	MaxBackoff        types.String  `tfsdk:"max_backoff"`
}

// settings is what a configured provider does, once the environment filled
// what the block left out.
type settings struct {
	Root       string
	Account    string
	Latency    map[string]time.Duration // by kind of call (OpRead, ...)
	Limit      Limit
	MaxRetries int
	MaxBackoff time.Duration
}

// resolve reads the provider block, then the environment, then the
// defaults, and checks every value against its bounds.
func resolve(m providerModel, getenv func(string) string) (settings, diag.Diagnostics) {
	r := &resolver{getenv: getenv}
	s := settings{
		Root:    r.str("root", m.Root, RootEnv, ""),
		Account: r.str("account", m.Account, AccountEnv, DefaultAccount),
		Latency: map[string]time.Duration{},
	}
	if s.Root == "" && !r.diags.HasError() {
		r.diags.AddAttributeError(path.Root("root"), "Missing sandbox root",
			"Set root in the provider \"sandbox\" block, or the "+RootEnv+" environment variable, to the directory that holds the sandbox objects.")
	}
	if err := checkAccount(s.Account); err != nil {
		r.diags.AddAttributeError(path.Root("account"), "Invalid sandbox account",
			fmt.Sprintf("%v; set account in the provider \"sandbox\" block or %s.", err, AccountEnv))
	}
	read := r.duration("read_latency", m.ReadLatency, maxLatency, 0, ReadLatencyEnv, DelayEnv)
	s.Latency[OpRead], s.Latency[OpData] = read, read
	s.Latency[OpCreate] = r.duration("create_latency", m.CreateLatency, maxLatency, 0, CreateLatencyEnv, WriteDelayEnv)
	s.Latency[OpUpdate] = r.duration("update_latency", m.UpdateLatency, maxLatency, 0, UpdateLatencyEnv, WriteDelayEnv)
	s.Latency[OpDelete] = r.duration("delete_latency", m.DeleteLatency, maxLatency, 0, DeleteLatencyEnv, WriteDelayEnv)

	s.Limit.PerSecond = r.float("requests_per_second", m.RequestsPerSecond, RequestsPerSecondEnv, maxRate)
	// A burst of one second's worth of requests unless told otherwise.
	burst := int64(max(1, math.Ceil(s.Limit.PerSecond)))
	s.Limit.Burst = int(r.integer("burst", m.Burst, BurstEnv, burst, 1, maxRate))
	s.MaxRetries = int(r.integer("max_retries", m.MaxRetries, MaxRetriesEnv, DefaultMaxRetries, 0, maxRetries))
	s.MaxBackoff = r.duration("max_backoff", m.MaxBackoff, maxBackoffCap, DefaultMaxBackoff, MaxBackoffEnv)
	return s, r.diags
}

type resolver struct {
	getenv func(string) string
	diags  diag.Diagnostics
}

// lookup returns the block's value when it is set, else the first set
// variable of envs; ok is false when neither is.
func (r *resolver) lookup(name string, v attr.Value, envs ...string) (text, from string, ok bool) {
	if v.IsUnknown() {
		r.diags.AddAttributeError(path.Root(name), "Unknown sandbox "+name,
			name+" must be known when the provider is configured; use a literal or a variable.")
		return "", "", false
	}
	if !v.IsNull() {
		return "", name, true
	}
	for _, e := range envs {
		if t := r.getenv(e); t != "" {
			return t, e, true
		}
	}
	return "", "", false
}

// bad reports a value out of its bounds: on the attribute when the block
// set it, else naming the variable.
func (r *resolver) bad(name, from, msg string) {
	if from == name {
		r.diags.AddAttributeError(path.Root(name), "Invalid sandbox "+name, msg)
		return
	}
	r.diags.AddError("Invalid "+from, fmt.Sprintf("%s (from the environment variable %s, read because the provider block sets no %s).", msg, from, name))
}

func (r *resolver) str(name string, v types.String, env, def string) string {
	v = blank(v)
	t, from, ok := r.lookup(name, v, env)
	if !ok {
		return def
	}
	if from == name {
		return v.ValueString()
	}
	return t
}

func (r *resolver) duration(name string, v types.String, upper, def time.Duration, envs ...string) time.Duration {
	v = blank(v)
	t, from, ok := r.lookup(name, v, envs...)
	if !ok {
		return def
	}
	if from == name {
		t = v.ValueString()
	}
	d, err := time.ParseDuration(t)
	if err != nil || d < 0 || d > upper {
		r.bad(name, from, fmt.Sprintf("%s = %q must be a duration from 0s to %s, such as \"300ms\".", name, t, upper))
		return def
	}
	return d
}

// blank takes an empty string in the block for no value, so that
// root = var.root with an empty variable still falls back to the environment.
func blank(v types.String) types.String {
	if !v.IsNull() && !v.IsUnknown() && v.ValueString() == "" {
		return types.StringNull()
	}
	return v
}

func (r *resolver) float(name string, v types.Float64, env string, upper float64) float64 {
	t, from, ok := r.lookup(name, v, env)
	if !ok {
		return 0
	}
	f := v.ValueFloat64()
	if from != name {
		var err error
		if f, err = strconv.ParseFloat(t, 64); err != nil {
			f = math.NaN()
		}
	} else {
		t = strconv.FormatFloat(f, 'g', -1, 64)
	}
	if !(f >= 0 && f <= upper) { // NaN too
		r.bad(name, from, fmt.Sprintf("%s = %s must be a number from 0 (no limit) to %g.", name, t, upper))
		return 0
	}
	return f
}

func (r *resolver) integer(name string, v types.Int64, env string, def, lower, upper int64) int64 {
	t, from, ok := r.lookup(name, v, env)
	if !ok {
		return def
	}
	n := v.ValueInt64()
	if from != name {
		var err error
		if n, err = strconv.ParseInt(t, 10, 64); err != nil {
			n = lower - 1
		}
	} else {
		t = strconv.FormatInt(n, 10)
	}
	if n < lower || n > upper {
		r.bad(name, from, fmt.Sprintf("%s = %s must be a whole number from %d to %d.", name, t, lower, upper))
		return def
	}
	return n
}
