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

// imageDataSource reads <root>/images/<name>.json. It never creates anything,
// so a stack that reads an image has nothing to drift.
type imageDataSource struct {
	store *Store
}

type imageModel struct {
	Name types.String `tfsdk:"name"`
	ID   types.String `tfsdk:"id"`
}

func (d *imageDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_image"
}

func (d *imageDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A machine image, read from <root>/images/<name>.json.",
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{Required: true},
			"id":   schema.StringAttribute{Computed: true, Description: "The file's \"id\", or the name when it has none."},
		},
	}
}

func (d *imageDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	if store, ok := req.ProviderData.(*Store); ok {
		d.store = store
	}
}

func (d *imageDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m imageModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := m.Name.ValueString()
	obj, err := d.store.Get("images", name)
	if errors.Is(err, ErrNotFound) {
		resp.Diagnostics.AddAttributeError(path.Root("name"), "Image not found",
			fmt.Sprintf("No image %q: create %s with {\"id\": \"...\"}.", name, filepath.Join(d.store.Root, "images", name+".json")))
		return
	}
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("name"), "Cannot read image", err.Error())
		return
	}
	id, _ := obj["id"].(string)
	if id == "" {
		id = name
	}
	m.ID = types.StringValue(id)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
