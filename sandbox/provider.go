package sandbox

import (
	"context"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
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

type providerModel struct {
	Root types.String `tfsdk:"root"`
}

func (p *sandboxProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "sandbox"
	resp.Version = p.version
}

func (p *sandboxProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A stand-in cloud whose objects are JSON files under a directory.",
		Attributes: map[string]schema.Attribute{
			"root": schema.StringAttribute{
				Optional:    true,
				Description: "Directory holding the objects. Defaults to $" + RootEnv + ".",
			},
		},
	}
}

func (p *sandboxProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if cfg.Root.IsUnknown() {
		resp.Diagnostics.AddAttributeError(path.Root("root"), "Unknown sandbox root",
			"root must be known when the provider is configured; use a literal or a variable.")
		return
	}
	root := cfg.Root.ValueString()
	if root == "" {
		root = os.Getenv(RootEnv)
	}
	if root == "" {
		resp.Diagnostics.AddAttributeError(path.Root("root"), "Missing sandbox root",
			"Set root in the provider \"sandbox\" block, or the "+RootEnv+" environment variable, to the directory that holds the sandbox objects.")
		return
	}
	store := &Store{Root: root}
	resp.ResourceData = store
	resp.DataSourceData = store
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
