package sandbox

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"
)

func TestResolveSettings(t *testing.T) {
	null := providerModel{
		Root: types.StringNull(), Account: types.StringNull(), ReadLatency: types.StringNull(),
		CreateLatency: types.StringNull(), UpdateLatency: types.StringNull(), DeleteLatency: types.StringNull(),
		RequestsPerSecond: types.Float64Null(), Burst: types.Int64Null(), MaxRetries: types.Int64Null(), MaxBackoff: types.StringNull(),
	}
	block := func(fn func(m *providerModel)) providerModel {
		m := null
		m.Root = types.StringValue("/cloud")
		fn(&m)
		return m
	}
	none := func(*providerModel) {}
	cases := []struct {
		name  string
		model providerModel
		env   map[string]string
		want  string // fmt of the settings, or the error's words
		err   bool
	}{
		{"defaults", block(none), nil,
			"root=/cloud account=default read=0s data=0s create=0s update=0s delete=0s limit=no limit retries=25 backoff=20s", false},
		{"everything from the environment", null, map[string]string{
			RootEnv: "/env", AccountEnv: "ci", ReadLatencyEnv: "200ms", CreateLatencyEnv: "1s", UpdateLatencyEnv: "2s",
			DeleteLatencyEnv: "3s", RequestsPerSecondEnv: "2.5", BurstEnv: "7", MaxRetriesEnv: "0", MaxBackoffEnv: "1s"},
			"root=/env account=ci read=200ms data=200ms create=1s update=2s delete=3s limit=2.5 requests/s, burst 7 retries=0 backoff=1s", false},
		{"the block wins over the environment", block(func(m *providerModel) {
			m.Account, m.ReadLatency, m.CreateLatency = types.StringValue("prod"), types.StringValue("300ms"), types.StringValue("0s")
			m.RequestsPerSecond, m.Burst, m.MaxRetries = types.Float64Value(5), types.Int64Value(1), types.Int64Value(3)
		}), map[string]string{RootEnv: "/env", AccountEnv: "ci", ReadLatencyEnv: "9s", CreateLatencyEnv: "9s",
			RequestsPerSecondEnv: "100", BurstEnv: "100", MaxRetriesEnv: "9"},
			"root=/cloud account=prod read=300ms data=300ms create=0s update=0s delete=0s limit=5 requests/s, burst 1 retries=3 backoff=20s", false},
		{"the older delay variables", block(none), map[string]string{DelayEnv: "60s", WriteDelayEnv: "5s", DeleteLatencyEnv: "1s"},
			"root=/cloud account=default read=1m0s data=1m0s create=5s update=5s delete=1s limit=no limit retries=25 backoff=20s", false},
		{"the new read latency wins over the older name", block(none), map[string]string{DelayEnv: "60s", ReadLatencyEnv: "10ms"},
			"read=10ms", false},
		{"the burst defaults to a second's worth", block(func(m *providerModel) { m.RequestsPerSecond = types.Float64Value(2.5) }), nil,
			"limit=2.5 requests/s, burst 3", false},
		{"a slow limit still serves one", block(func(m *providerModel) { m.RequestsPerSecond = types.Float64Value(0.1) }), nil,
			"limit=0.1 requests/s, burst 1", false},
		{"an empty root in the block falls back", block(func(m *providerModel) { m.Root = types.StringValue("") }), map[string]string{RootEnv: "/env"},
			"root=/env", false},

		{"no root", null, nil, "Missing sandbox root", true},
		{"unknown root", block(func(m *providerModel) { m.Root = types.StringUnknown() }), nil, "root must be known", true},
		{"unknown rate", block(func(m *providerModel) { m.RequestsPerSecond = types.Float64Unknown() }), nil, "requests_per_second must be known", true},
		{"a latency that is no duration", block(func(m *providerModel) { m.ReadLatency = types.StringValue("fast") }), nil,
			`read_latency = "fast" must be a duration`, true},
		{"a negative latency", block(func(m *providerModel) { m.UpdateLatency = types.StringValue("-1s") }), nil, "update_latency", true},
		{"an hour's latency", block(none), map[string]string{DeleteLatencyEnv: "1h"},
			"environment variable SANDBOX_DELETE_LATENCY", true},
		{"a bad older variable", block(none), map[string]string{WriteDelayEnv: "soon"}, "SANDBOX_WRITE_DELAY", true},
		{"a negative rate", block(func(m *providerModel) { m.RequestsPerSecond = types.Float64Value(-1) }), nil, "requests_per_second = -1", true},
		{"NaN", block(none), map[string]string{RequestsPerSecondEnv: "NaN"}, "SANDBOX_REQUESTS_PER_SECOND", true},
		{"Inf", block(none), map[string]string{RequestsPerSecondEnv: "+Inf"}, "SANDBOX_REQUESTS_PER_SECOND", true},
		{"a burst of 0", block(func(m *providerModel) { m.Burst = types.Int64Value(0) }), nil, "burst = 0 must be a whole number from 1", true},
		{"a burst that is no number", block(none), map[string]string{BurstEnv: "lots"}, "SANDBOX_BURST", true},
		{"negative retries", block(func(m *providerModel) { m.MaxRetries = types.Int64Value(-1) }), nil, "max_retries = -1", true},
		{"a thousand retries", block(none), map[string]string{MaxRetriesEnv: "1000"}, "from 0 to 100", true},
		{"a day's backoff", block(func(m *providerModel) { m.MaxBackoff = types.StringValue("24h") }), nil, "max_backoff", true},
		{"an account that is a path", block(func(m *providerModel) { m.Account = types.StringValue("../other") }), nil,
			`account "../other" must be`, true},
		{"a long account", block(none), map[string]string{AccountEnv: strings.Repeat("x", 65)}, "SANDBOX_ACCOUNT", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, diags := resolve(tc.model, func(k string) string { return tc.env[k] })
			if tc.err {
				if !diags.HasError() {
					t.Fatalf("no error; settings %s", show(s))
				}
				var all []string
				for _, d := range diags.Errors() {
					all = append(all, d.Summary()+": "+d.Detail())
				}
				if !strings.Contains(strings.Join(all, "\n"), tc.want) {
					t.Errorf("errors %q do not say %q", all, tc.want)
				}
				return
			}
			if diags.HasError() {
				t.Fatalf("errors: %v", diags)
			}
			if got := show(s); !strings.Contains(got, tc.want) {
				t.Errorf("settings %s, want %s", got, tc.want)
			}
		})
	}
}

func show(s settings) string {
	return fmt.Sprintf("root=%s account=%s read=%v data=%v create=%v update=%v delete=%v limit=%s retries=%d backoff=%v",
		s.Root, s.Account, s.Latency[OpRead], s.Latency[OpData], s.Latency[OpCreate], s.Latency[OpUpdate], s.Latency[OpDelete],
		s.Limit, s.MaxRetries, s.MaxBackoff)
}
