package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// secretDataSource reads <root>/secrets/<name>.json, {"value": "..."}: a
// secret manager whose value is sensitive, so that values a plan reads from
// a data source are masked like any other.
type secretDataSource struct {
	store *Store
}

type secretModel struct {
	Name  types.String `tfsdk:"name"`
	Value types.String `tfsdk:"value"`
}

func (d *secretDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_secret"
}

func (d *secretDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A secret, read from <root>/secrets/<name>.json.",
		Attributes: map[string]schema.Attribute{
			"name":  schema.StringAttribute{Required: true},
			"value": schema.StringAttribute{Computed: true, Sensitive: true, Description: "The file's \"value\"."},
		},
	}
}

func (d *secretDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	if store, ok := req.ProviderData.(*Store); ok {
		d.store = store
	}
}

func (d *secretDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m secretModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := m.Name.ValueString()
	obj, err := d.store.Get("secrets", name)
	if errors.Is(err, ErrNotFound) {
		resp.Diagnostics.AddAttributeError(path.Root("name"), "Secret not found",
			fmt.Sprintf("No secret %q: create %s with {\"value\": \"...\"}.", name, filepath.Join(d.store.Root, "secrets", name+".json")))
		return
	}
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("name"), "Cannot read secret", err.Error())
		return
	}
	v, _ := obj["value"].(string)
	m.Value = types.StringValue(v)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
