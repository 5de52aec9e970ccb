package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
)

// awsIdentity is the AWS configuration records are written with: the one
// terraform's s3 backend builds from the same block, so records reach a
// bucket with the credentials the state itself is reached with.
type awsIdentity struct {
	cfg aws.Config
	// who names the identity for errors, never a secret.
	who string
}

// awsConfigFor reads the backend's region, profile, shared files, static
// keys and assume_role the way terraform's s3 backend does: static keys win
// over a profile, a profile over the environment's default chain, and
// assume_role starts from whichever of those applies.
func awsConfigFor(ctx context.Context, b Backend) (awsIdentity, error) {
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(s3Timeout)),
	}
	if r := b.String("region"); r != "" {
		opts = append(opts, awsconfig.WithRegion(r))
	}
	who := "the AWS credentials in trueline's environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance or container role)"
	profile := b.String("profile")
	if profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(profile))
		who = fmt.Sprintf("the backend's profile %q", profile)
	}
	cfgFiles := expandHome(b.Strings("shared_config_files"))
	if len(cfgFiles) > 0 {
		opts = append(opts, awsconfig.WithSharedConfigFiles(cfgFiles))
	}
	credFiles := expandHome(b.Strings("shared_credentials_files"))
	if len(credFiles) == 0 {
		credFiles = expandHome(b.Strings("shared_credentials_file"))
	}
	if len(credFiles) > 0 {
		opts = append(opts, awsconfig.WithSharedCredentialsFiles(credFiles))
	}
	if ak, sk := b.String("access_key"), b.String("secret_key"); ak != "" && sk != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(ak, sk, b.String("token"))))
		who = "the backend's access_key and secret_key"
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		var np awsconfig.SharedConfigProfileNotExistError
		if errors.As(err, &np) {
			files := "the default shared files (~/.aws/credentials, ~/.aws/config) or AWS_SHARED_CREDENTIALS_FILE/AWS_CONFIG_FILE"
			if all := append(append([]string{}, credFiles...), cfgFiles...); len(all) > 0 {
				files = strings.Join(all, ", ")
			}
			return awsIdentity{}, fmt.Errorf("%ss3 backend: profile %q is in none of %s: add it there, or fix profile, shared_credentials_files or shared_config_files in the backend",
				b.where("profile"), np.Profile, files)
		}
		return awsIdentity{}, fmt.Errorf("s3 backend: AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	role, err := assumeRoleOf(b)
	if err != nil {
		return awsIdentity{}, err
	}
	if role != nil {
		client := sts.NewFromConfig(cfg, func(o *sts.Options) {
			if ep := endpointOf(b, "sts", "sts_endpoint"); ep != "" {
				o.BaseEndpoint = aws.String(ep)
			}
			if r := b.String("sts_region"); r != "" {
				o.Region = r
			}
		})
		p := stscreds.NewAssumeRoleProvider(client, role.arn, role.apply)
		cfg.Credentials = aws.NewCredentialsCache(&assumer{arn: role.arn, base: who, p: p})
		who = "role " + role.arn + " assumed with " + who
	}
	return awsIdentity{cfg: cfg, who: who}, nil
}

// endpointOf reads endpoints { <service> = ... }, or the older top-level setting.
func endpointOf(b Backend, service, legacy string) string {
	if e, ok := b.Map("endpoints")[service].(string); ok && e != "" {
		return e
	}
	return b.String(legacy)
}

func expandHome(paths []string) []string {
	home, err := os.UserHomeDir()
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if err == nil && (p == "~" || strings.HasPrefix(p, "~/")) {
			p = filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
		out = append(out, p)
	}
	return out
}

// roleToAssume is the backend's assume_role.
type roleToAssume struct {
	arn, session, externalID, policy, sourceIdentity string
	duration                                         time.Duration
	policyARNs, transitive                           []string
	tags                                             map[string]string
}

func (r *roleToAssume) apply(o *stscreds.AssumeRoleOptions) {
	if r.session != "" {
		o.RoleSessionName = r.session
	}
	if r.externalID != "" {
		o.ExternalID = aws.String(r.externalID)
	}
	if r.policy != "" {
		o.Policy = aws.String(r.policy)
	}
	if r.sourceIdentity != "" {
		o.SourceIdentity = aws.String(r.sourceIdentity)
	}
	if r.duration > 0 {
		o.Duration = r.duration
	}
	for _, a := range r.policyARNs {
		o.PolicyARNs = append(o.PolicyARNs, ststypes.PolicyDescriptorType{Arn: aws.String(a)})
	}
	o.TransitiveTagKeys = r.transitive
	keys := make([]string, 0, len(r.tags))
	for k := range r.tags {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same request every time
	for _, k := range keys {
		o.Tags = append(o.Tags, ststypes.Tag{Key: aws.String(k), Value: aws.String(r.tags[k])})
	}
}

// assumeRoleOf reads assume_role { ... } (or assume_role = { ... }), else
// the top-level role_arn, session_name, external_id and assume_role_*
// settings older terraform versions take. Nil when there is no role.
func assumeRoleOf(b Backend) (*roleToAssume, error) {
	if v, ok := b.Config["assume_role"]; ok && v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%ss3 backend: assume_role is not a block: write assume_role { role_arn = \"...\" } or assume_role = { role_arn = \"...\" }",
				b.where("assume_role"))
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		r := &roleToAssume{arn: str("role_arn"), session: str("session_name"), externalID: str("external_id"), policy: str("policy"),
			sourceIdentity: str("source_identity"), policyARNs: stringsOf(m["policy_arns"]), transitive: stringsOf(m["transitive_tag_keys"]),
			tags: stringMap(m["tags"])}
		if r.arn == "" {
			return nil, fmt.Errorf("%ss3 backend: assume_role without role_arn: set role_arn to the ARN of the role to assume", b.where("assume_role"))
		}
		if d := str("duration"); d != "" {
			v, err := time.ParseDuration(d)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("%ss3 backend: assume_role duration %q is not a duration: write it like \"1h\" or \"30m\"", b.where("assume_role"), d)
			}
			r.duration = v
		}
		return r, nil
	}
	arn := b.String("role_arn")
	if arn == "" {
		return nil, nil
	}
	r := &roleToAssume{arn: arn, session: b.String("session_name"), externalID: b.String("external_id"), policy: b.String("assume_role_policy"),
		policyARNs: b.Strings("assume_role_policy_arns"), transitive: b.Strings("assume_role_transitive_tag_keys"),
		tags: stringMap(b.Config["assume_role_tags"])}
	switch s := b.Config["assume_role_duration_seconds"].(type) {
	case float64:
		r.duration = time.Duration(s) * time.Second
	case string:
		d, err := time.ParseDuration(s + "s")
		if err != nil {
			return nil, fmt.Errorf("%ss3 backend: assume_role_duration_seconds %q is not a number of seconds: write it like 3600",
				b.where("assume_role_duration_seconds"), s)
		}
		r.duration = d
	}
	return r, nil
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := map[string]string{}
	for k, e := range m {
		if s, ok := e.(string); ok {
			out[k] = s
		}
	}
	return out
}

// assumer assumes the role, and says which role failed and what to do:
// the SDK's own error names neither.
type assumer struct {
	arn, base string
	p         aws.CredentialsProvider
}

func (a *assumer) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := a.p.Retrieve(ctx)
	if err != nil {
		return c, &assumeRoleError{arn: a.arn, base: a.base, err: err}
	}
	return c, nil
}

// assumeRoleError is a failed AssumeRole. Its text holds the role, STS's
// code and message (which name principals, never keys) and the fix.
type assumeRoleError struct {
	arn, base string
	err       error
}

func (e *assumeRoleError) Unwrap() error { return e.err }

func (e *assumeRoleError) Error() string {
	var ae smithy.APIError
	what := e.err.Error()
	if errors.As(e.err, &ae) {
		what = ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return fmt.Sprintf("assume role %s: %s: %s", e.arn, what, e.fix(apiCode(e.err)))
}

func (e *assumeRoleError) fix(code string) string {
	switch code {
	case "AccessDenied":
		return "check the role's trust policy: it must let " + e.base +
			" call sts:AssumeRole, and its sts:ExternalId and sts:SourceIdentity conditions must match the backend's external_id and source_identity"
	case "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException":
		return "the credentials that assume the role are not valid: check " + e.base
	case "ExpiredToken", "ExpiredTokenException":
		return "the session token of " + e.base + " has expired: renew it"
	case "ValidationError":
		return "check assume_role's duration (at most the role's maximum session duration), session_name, tags and policy"
	case "MalformedPolicyDocument", "PackedPolicyTooLarge":
		return "check assume_role's policy, policy_arns and tags"
	case "RegionDisabledException":
		return "activate STS in that region, or set sts_region or endpoints { sts = ... } in the backend"
	}
	return "check the backend's endpoints { sts = ... } (or sts_endpoint) and sts_region, and that STS can be reached"
}
