package sandbox

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

func kinds() []kind {
	return []kind{autoscalingGroup(), loadBalancer(), lbListener(), database(), appConfig()}
}

// Plan modifiers shared by the kinds.
var (
	replaceString = []planmodifier.String{stringplanmodifier.RequiresReplace()}
	keepString    = []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
)

func idAttribute(doc string) schema.StringAttribute {
	return schema.StringAttribute{Computed: true, Description: doc, PlanModifiers: keepString}
}

func nameOf(obj map[string]any) string { s, _ := obj["name"].(string); return s }

func autoscalingGroup() kind {
	return kind{
		name: "autoscaling_group",
		schema: schema.Schema{
			Description: "An autoscaling group.",
			Attributes: map[string]schema.Attribute{
				"id":       idAttribute("Equal to name."),
				"arn":      idAttribute("The group's ARN."),
				"name":     schema.StringAttribute{Required: true, PlanModifiers: replaceString},
				"min_size": schema.Int64Attribute{Required: true},
				"max_size": schema.Int64Attribute{Required: true},
				"desired_capacity": schema.Int64Attribute{Optional: true, Computed: true,
					Description:   "Defaults to min_size when the group is created.",
					PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown()}},
				"launch_template":   schema.StringAttribute{Optional: true},
				"health_check_type": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("EC2")},
				"tags":              schema.MapAttribute{Optional: true, ElementType: types.StringType},
			},
		},
		id: nameOf,
		computed: func(obj map[string]any) {
			obj["arn"] = "arn:sandbox:autoscaling::000000000000:autoScalingGroup/" + nameOf(obj)
			if isUnknown(obj["desired_capacity"]) || obj["desired_capacity"] == nil {
				obj["desired_capacity"] = obj["min_size"]
			}
		},
		validate: func(obj map[string]any) []problem {
			var ps []problem
			ps = append(ps, validName(obj)...)
			minSize, okMin := number(obj, "min_size")
			maxSize, okMax := number(obj, "max_size")
			if okMin && minSize < 0 {
				ps = append(ps, problem{"min_size", fmt.Sprintf("min_size must be 0 or more, not %v.", minSize)})
			}
			if okMin && okMax && maxSize < minSize {
				ps = append(ps, problem{"max_size", fmt.Sprintf("max_size (%v) must be at least min_size (%v).", maxSize, minSize)})
			}
			if d, ok := number(obj, "desired_capacity"); ok && okMin && okMax && (d < minSize || d > maxSize) {
				ps = append(ps, problem{"desired_capacity", fmt.Sprintf("desired_capacity (%v) must lie between min_size (%v) and max_size (%v).", d, minSize, maxSize)})
			}
			if s, ok := obj["health_check_type"].(string); ok && s != "EC2" && s != "ELB" {
				ps = append(ps, problem{"health_check_type", fmt.Sprintf("health_check_type must be \"EC2\" or \"ELB\", not %q.", s)})
			}
			return ps
		},
	}
}

func loadBalancer() kind {
	return kind{
		name: "load_balancer",
		schema: schema.Schema{
			Description: "A load balancer.",
			Attributes: map[string]schema.Attribute{
				"id":           idAttribute("Equal to name."),
				"dns_name":     idAttribute("The DNS name clients use."),
				"name":         schema.StringAttribute{Required: true, PlanModifiers: replaceString},
				"internal":     schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false)},
				"idle_timeout": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(60)},
				"subnets":      schema.SetAttribute{Optional: true, ElementType: types.StringType},
			},
		},
		id: nameOf,
		computed: func(obj map[string]any) {
			obj["dns_name"] = nameOf(obj) + ".lb.sandbox.internal"
		},
		validate: func(obj map[string]any) []problem {
			ps := validName(obj)
			if t, ok := number(obj, "idle_timeout"); ok && (t < 1 || t > 4000) {
				ps = append(ps, problem{"idle_timeout", fmt.Sprintf("idle_timeout must be between 1 and 4000 seconds, not %v.", t)})
			}
			return ps
		},
	}
}

func lbListener() kind {
	return kind{
		name: "lb_listener",
		schema: schema.Schema{
			Description: "A listener of a load balancer. Its id is <load_balancer_id>:<port>, so a new port is a new listener.",
			Attributes: map[string]schema.Attribute{
				"id":               idAttribute("<load_balancer_id>:<port>."),
				"load_balancer_id": schema.StringAttribute{Required: true, PlanModifiers: replaceString},
				"port": schema.Int64Attribute{Required: true,
					PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()}},
				"protocol":     schema.StringAttribute{Required: true},
				"target_group": schema.StringAttribute{Optional: true},
			},
		},
		id: func(obj map[string]any) string {
			lb, _ := obj["load_balancer_id"].(string)
			return fmt.Sprintf("%s:%v", lb, obj["port"])
		},
		validate: func(obj map[string]any) []problem {
			var ps []problem
			if p, ok := number(obj, "port"); ok && (p < 1 || p > 65535) {
				ps = append(ps, problem{"port", fmt.Sprintf("port must be between 1 and 65535, not %v.", p)})
			}
			protocols := []string{"HTTP", "HTTPS", "TCP", "TLS", "UDP"}
			if s, ok := obj["protocol"].(string); ok && !slices.Contains(protocols, s) {
				ps = append(ps, problem{"protocol", fmt.Sprintf("protocol must be one of %s, not %q.", strings.Join(protocols, ", "), s)})
			}
			return ps
		},
	}
}

func database() kind {
	return kind{
		name: "database",
		schema: schema.Schema{
			Description: "A database instance.",
			Attributes: map[string]schema.Attribute{
				"id":             idAttribute("Equal to name."),
				"name":           schema.StringAttribute{Required: true, PlanModifiers: replaceString},
				"engine":         schema.StringAttribute{Required: true},
				"instance_class": schema.StringAttribute{Required: true},
				"password":       schema.StringAttribute{Required: true, Sensitive: true},
			},
		},
		id: nameOf,
		validate: func(obj map[string]any) []problem {
			ps := validName(obj)
			engines := []string{"postgres", "mysql", "mariadb"}
			if s, ok := obj["engine"].(string); ok && !slices.Contains(engines, s) {
				ps = append(ps, problem{"engine", fmt.Sprintf("engine must be one of %s, not %q.", strings.Join(engines, ", "), s)})
			}
			if s, ok := obj["password"].(string); ok && len(s) < 8 {
				// Never echo the password itself.
				ps = append(ps, problem{"password", "password must be at least 8 characters long."})
			}
			return ps
		},
	}
}

// appConfig is an application's configuration: a map, a list, a set, a
// nested object and nested blocks, any of which may hold sensitive values.
// It exists so that every shape a secret can take in a plan is exercised.
func appConfig() kind {
	return kind{
		name: "app_config",
		schema: schema.Schema{
			Description: "An application's configuration, with values of every shape.",
			Attributes: map[string]schema.Attribute{
				"id":            idAttribute("Equal to name."),
				"name":          schema.StringAttribute{Required: true, PlanModifiers: replaceString},
				"tags":          schema.MapAttribute{Optional: true, ElementType: types.StringType},
				"env":           schema.ListAttribute{Optional: true, ElementType: types.StringType},
				"allowed_cidrs": schema.SetAttribute{Optional: true, ElementType: types.StringType},
				"api_key":       schema.StringAttribute{Optional: true, Sensitive: true},
				"settings": schema.SingleNestedAttribute{Optional: true, Attributes: map[string]schema.Attribute{
					"level": schema.StringAttribute{Optional: true},
					"token": schema.StringAttribute{Optional: true, Sensitive: true},
				}},
			},
			Blocks: map[string]schema.Block{
				"rule": schema.ListNestedBlock{NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"name":   schema.StringAttribute{Required: true},
					"secret": schema.StringAttribute{Optional: true, Sensitive: true},
				}}},
			},
		},
		id:       nameOf,
		validate: validName,
	}
}

// validName checks a name that becomes a file name in the sandbox.
func validName(obj map[string]any) []problem {
	s, ok := obj["name"].(string)
	if !ok {
		return nil
	}
	if s == "" || strings.ContainsAny(s, `/\: `) || s == "." || s == ".." {
		return []problem{{"name", fmt.Sprintf("name %q must be non-empty and may not contain '/', '\\', ':' or spaces.", s)}}
	}
	return nil
}

// number reads a known numeric attribute.
func number(obj map[string]any, key string) (float64, bool) {
	n, ok := obj[key].(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}
