package sandbox

import (
	"context"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
)

// RootEnv names the environment variable that sets the provider's root when
// the provider block does not.
const RootEnv = "SANDBOX_ROOT"

// New returns the sandbox provider, for providerserver.Serve.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &sandboxProvider{version: version} }
}

type sandboxProvider struct {
	version string
}

func (p *sandboxProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "sandbox"
	resp.Version = p.version
}

func (p *sandboxProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	latency := func(kind, env string) schema.StringAttribute {
		return schema.StringAttribute{Optional: true,
			Description: "How long each " + kind + " call takes, such as \"300ms\". Defaults to $" + env + ", else 0."}
	}
	resp.Schema = schema.Schema{
		Description: "A stand-in cloud whose objects are JSON files under a directory. Every setting " +
			"the block leaves out is read from its SANDBOX_* environment variable.",
		Attributes: map[string]schema.Attribute{
			"root": schema.StringAttribute{
				Optional:    true,
				Description: "Directory holding the objects. Defaults to $" + RootEnv + ".",
			},
			"account": schema.StringAttribute{Optional: true,
				Description: "The account whose rate limit and counters the calls share with every provider using the same root. Defaults to $" + AccountEnv + ", else \"" + DefaultAccount + "\"."},
			"read_latency":   latency("read (refresh and data source)", ReadLatencyEnv),
			"create_latency": latency("create", CreateLatencyEnv),
			"update_latency": latency("update", UpdateLatencyEnv),
			"delete_latency": latency("delete", DeleteLatencyEnv),
			"requests_per_second": schema.Float64Attribute{Optional: true,
				Description: "The account's rate limit; requests over it are throttled. Defaults to $" + RequestsPerSecondEnv + ", else 0: no limit."},
			"burst": schema.Int64Attribute{Optional: true,
				Description: "How many requests the account serves at once before the rate applies. Defaults to $" + BurstEnv + ", else one second's worth."},
			"max_retries": schema.Int64Attribute{Optional: true,
				Description: "How many times a throttled request is retried before the call fails. Defaults to $" + MaxRetriesEnv + ", else 25."},
			"max_backoff": schema.StringAttribute{Optional: true,
				Description: "The longest wait before a retry. Defaults to $" + MaxBackoffEnv + ", else \"20s\"."},
		},
	}
}

func (p *sandboxProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	s, diags := resolve(cfg, os.Getenv)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	c := newClient(Store{Root: s.Root}, s)
	resp.ResourceData = c
	resp.DataSourceData = c
}

func (p *sandboxProvider) Resources(context.Context) []func() resource.Resource {
	var out []func() resource.Resource
	for _, k := range kinds() {
		out = append(out, func() resource.Resource { return &objectResource{kind: k} })
	}
	return out
}

func (p *sandboxProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		func() datasource.DataSource { return image() },
		func() datasource.DataSource { return secret() },
	}
}
