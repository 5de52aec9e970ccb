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

// fileDataSource reads <root>/<dir>/<name>.json and gives one of its
// string fields as a computed attribute. It never creates anything, so a
// stack that reads one has nothing to drift.
type fileDataSource struct {
	name      string // type name without the "sandbox_" prefix
	dir       string // directory under the root
	attr      string // the attribute, and the file's field, it gives
	doc       string
	sensitive bool
	// nameIfEmpty: a file without the field gives the name.
	nameIfEmpty bool
	api         *client
}

// image is a machine image; secret is a secret manager's value, sensitive,
// so that values a plan reads from a data source are masked like any other.
func image() *fileDataSource {
	return &fileDataSource{name: "image", dir: "images", attr: "id", nameIfEmpty: true,
		doc: "A machine image, read from <root>/images/<name>.json; its \"id\", or the name when it has none."}
}

func secret() *fileDataSource {
	return &fileDataSource{name: "secret", dir: "secrets", attr: "value", sensitive: true,
		doc: "A secret, read from <root>/secrets/<name>.json; its \"value\"."}
}

func (d *fileDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_" + d.name
}

func (d *fileDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: d.doc,
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{Required: true},
			d.attr: schema.StringAttribute{Computed: true, Sensitive: d.sensitive},
		},
	}
}

func (d *fileDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	if api, ok := req.ProviderData.(*client); ok {
		d.api = api
	}
}

func (d *fileDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var name types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("name"), &name)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := d.api.request(ctx, OpData); err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("name"), "Cannot read "+d.name, d.api.describe(err))
		return
	}
	obj, err := d.api.store.Get(d.dir, name.ValueString())
	if errors.Is(err, ErrNotFound) {
		resp.Diagnostics.AddAttributeError(path.Root("name"), "No "+d.name,
			fmt.Sprintf("No %s %q: create %s with {%q: \"...\"}.", d.name, name.ValueString(),
				filepath.Join(d.api.store.Root, d.dir, name.ValueString()+".json"), d.attr))
		return
	}
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("name"), "Cannot read "+d.name, err.Error())
		return
	}
	v, _ := obj[d.attr].(string)
	if v == "" && d.nameIfEmpty {
		v = name.ValueString()
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root(d.attr), types.StringValue(v))...)
}
