package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"
)

// kind describes one resource type of the sandbox cloud. All resource types
// share one implementation (objectResource); a kind only says what differs.
type kind struct {
	name   string // type name without the "sandbox_" prefix
	schema schema.Schema
	// id derives the object id from its planned attributes.
	id func(obj map[string]any) string
	// computed fills attributes the cloud decides, where the plan left them unknown.
	computed func(obj map[string]any)
	// validate reports configuration problems as (attribute, message).
	validate func(obj map[string]any) []problem
}

type problem struct{ attr, msg string }

type objectResource struct {
	kind  kind
	api   *client
	store Store
}

var (
	_ resource.ResourceWithConfigure      = (*objectResource)(nil)
	_ resource.ResourceWithImportState    = (*objectResource)(nil)
	_ resource.ResourceWithValidateConfig = (*objectResource)(nil)
)

func (r *objectResource) typeName() string { return "sandbox_" + r.kind.name }

func (r *objectResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_" + r.kind.name
}

func (r *objectResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = r.kind.schema
}

func (r *objectResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if req.ProviderData == nil {
		return // called before the provider is configured
	}
	api, ok := req.ProviderData.(*client)
	if !ok {
		resp.Diagnostics.AddError("Internal error", fmt.Sprintf("unexpected provider data %T", req.ProviderData))
		return
	}
	r.api, r.store = api, api.store
}

// call makes one API call of kind op; a failure becomes an error diagnostic
// and false. An interrupted call says so, since a stopped apply is normal.
func (r *objectResource) call(ctx context.Context, op, verb string, diags interface{ AddError(string, string) }) bool {
	err := r.api.request(ctx, op)
	switch {
	case err == nil:
		return true
	case ctx.Err() != nil:
		diags.AddError(verb+" interrupted", err.Error())
	default:
		diags.AddError("Cannot "+strings.ToLower(verb)+" object", r.api.describe(err))
	}
	return false
}

func (r *objectResource) ValidateConfig(_ context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	if r.kind.validate == nil {
		return
	}
	obj, err := objectOf(req.Config.Raw)
	if err != nil {
		resp.Diagnostics.AddError("Invalid configuration", err.Error())
		return
	}
	for _, p := range r.kind.validate(obj) {
		resp.Diagnostics.AddAttributeError(path.Root(p.attr), "Invalid "+p.attr, p.msg)
	}
}

func (r *objectResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	obj, err := objectOf(req.Plan.Raw)
	if err != nil {
		resp.Diagnostics.AddError("Invalid plan", err.Error())
		return
	}
	if !r.call(ctx, OpCreate, "Create", &resp.Diagnostics) {
		return
	}
	id := r.kind.id(obj)
	obj["id"] = id
	if _, err := r.store.Get(r.typeName(), id); err == nil {
		resp.Diagnostics.AddError("Object already exists",
			fmt.Sprintf("%s %q already exists in the sandbox; import it with `terraform import` or choose another name.", r.typeName(), id))
		return
	}
	r.finish(obj)
	if err := r.store.Put(r.typeName(), id, obj); err != nil {
		resp.Diagnostics.AddError("Cannot create object", err.Error())
		return
	}
	tflog.Debug(ctx, "created sandbox object", map[string]any{"type": r.typeName(), "id": id})
	r.setState(&resp.State.Raw, req.Plan.Raw.Type(), obj, &resp.Diagnostics)
}

func (r *objectResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	cur, err := objectOf(req.State.Raw)
	if err != nil {
		resp.Diagnostics.AddError("Invalid state", err.Error())
		return
	}
	id, _ := cur["id"].(string)
	if !r.call(ctx, OpRead, "Read", &resp.Diagnostics) {
		return
	}
	obj, err := r.store.Get(r.typeName(), id)
	if errors.Is(err, ErrNotFound) {
		tflog.Debug(ctx, "sandbox object is gone", map[string]any{"type": r.typeName(), "id": id})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Cannot read object", err.Error())
		return
	}
	obj["id"] = id
	r.setState(&resp.State.Raw, req.State.Raw.Type(), obj, &resp.Diagnostics)
}

func (r *objectResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	obj, err := objectOf(req.Plan.Raw)
	if err != nil {
		resp.Diagnostics.AddError("Invalid plan", err.Error())
		return
	}
	prior, err := objectOf(req.State.Raw)
	if err != nil {
		resp.Diagnostics.AddError("Invalid state", err.Error())
		return
	}
	if !r.call(ctx, OpUpdate, "Update", &resp.Diagnostics) {
		return
	}
	id, _ := prior["id"].(string)
	obj["id"] = id
	if _, err := r.store.Get(r.typeName(), id); err != nil {
		resp.Diagnostics.AddError("Cannot update object", err.Error())
		return
	}
	r.finish(obj)
	if err := r.store.Put(r.typeName(), id, obj); err != nil {
		resp.Diagnostics.AddError("Cannot update object", err.Error())
		return
	}
	tflog.Debug(ctx, "updated sandbox object", map[string]any{"type": r.typeName(), "id": id})
	r.setState(&resp.State.Raw, req.Plan.Raw.Type(), obj, &resp.Diagnostics)
}

func (r *objectResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	cur, err := objectOf(req.State.Raw)
	if err != nil {
		resp.Diagnostics.AddError("Invalid state", err.Error())
		return
	}
	if !r.call(ctx, OpDelete, "Delete", &resp.Diagnostics) {
		return
	}
	id, _ := cur["id"].(string)
	if err := r.store.Delete(r.typeName(), id); err != nil {
		resp.Diagnostics.AddError("Cannot delete object", err.Error())
		return
	}
	tflog.Debug(ctx, "deleted sandbox object", map[string]any{"type": r.typeName(), "id": id})
}

func (r *objectResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// finish fills what the cloud decides and drops any unknown left over, so
// that state never holds an unknown value.
func (r *objectResource) finish(obj map[string]any) {
	if r.kind.computed != nil {
		r.kind.computed(obj)
	}
	for k, v := range obj {
		if _, ok := v.(unknown); ok {
			obj[k] = nil
		}
	}
}

func (r *objectResource) setState(dst *tftypes.Value, t tftypes.Type, obj map[string]any, diags interface{ AddError(string, string) }) {
	v, err := fromGo(t, obj, "")
	if err != nil {
		diags.AddError("Invalid sandbox object",
			fmt.Sprintf("%s %v: %v; fix or delete the object's JSON file", r.typeName(), obj["id"], err))
		return
	}
	*dst = v
}

func objectOf(v tftypes.Value) (map[string]any, error) {
	g, err := toGo(v)
	if err != nil {
		return nil, err
	}
	obj, ok := g.(map[string]any)
	if !ok {
		return map[string]any{}, nil
	}
	return obj, nil
}

func isUnknown(v any) bool { _, ok := v.(unknown); return ok }
