package state

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/trueline/trueline/internal/s3test"
)

func TestS3WriterAssumeRole(t *testing.T) {
	srv := twoUsers(t)
	ctx := context.Background()
	const (
		role       = "arn:aws:iam::111111111111:role/records"
		externalID = "ext-7f3a"
	)
	sts := s3test.StartSTS(t, role, externalID, map[string]string{firstAccess: firstSecret},
		// No session token: versitygw refuses one, having no STS of its own.
		aws.Credentials{AccessKeyID: secondAccess, SecretAccessKey: secondSecret})
	creds, err := filepath.Abs(filepath.Join("testdata", "aws", "credentials"))
	if err != nil {
		t.Fatal(err)
	}
	backend := func(settings map[string]any) Backend {
		b := Backend{Type: "s3", Config: map[string]any{"bucket": "second-only", "key": "web/terraform.tfstate", "region": "us-east-1",
			"endpoints": map[string]any{"s3": srv.Endpoint, "sts": sts.URL}, "use_path_style": true}}
		for k, v := range settings {
			b.Config[k] = v
		}
		return b
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`
	tests := []struct {
		name     string
		b        Backend
		form     map[string]string // what STS must have been asked
		bad      []string          // what the error says; none when the write must succeed
		stsCalls int
	}{
		{name: "assume_role block with the backend's keys",
			b: backend(map[string]any{"access_key": firstAccess, "secret_key": firstSecret,
				"assume_role": map[string]any{"role_arn": role, "session_name": "trueline-records", "external_id": externalID,
					"duration": "1h", "policy": policy, "source_identity": "trueline", "tags": map[string]any{"team": "platform"},
					"transitive_tag_keys": []any{"team"}}}),
			form: map[string]string{"RoleArn": role, "RoleSessionName": "trueline-records", "ExternalId": externalID, "DurationSeconds": "3600",
				"Policy": policy, "SourceIdentity": "trueline", "Tags.member.1.Key": "team", "Tags.member.1.Value": "platform",
				"TransitiveTagKeys.member.1": "team"},
			stsCalls: 1},
		{name: "assume_role from the environment's identity, legacy endpoints",
			b: Backend{Type: "s3", Config: map[string]any{"bucket": "second-only", "key": "web/terraform.tfstate", "region": "us-east-1",
				"endpoint": srv.Endpoint, "sts_endpoint": sts.URL, "force_path_style": "true",
				"assume_role": map[string]any{"role_arn": role, "external_id": externalID}}},
			form: map[string]string{"RoleArn": role, "ExternalId": externalID, "DurationSeconds": "900"}, stsCalls: 1},
		{name: "legacy top-level role_arn with a profile",
			b: backend(map[string]any{"profile": "first", "shared_credentials_files": []any{creds},
				"role_arn": role, "session_name": "legacy", "external_id": externalID}),
			form: map[string]string{"RoleArn": role, "RoleSessionName": "legacy", "ExternalId": externalID}, stsCalls: 1},
		{name: "wrong external id",
			b: backend(map[string]any{"assume_role": map[string]any{"role_arn": role, "external_id": "ext-wrong"}}),
			bad: []string{"write s3://second-only/web/terraform.tfstate.trueline/runs/", "assume role " + role + ": AccessDenied: User: arn:aws:iam::000000000000:user/first-access is not authorized to perform: sts:AssumeRole",
				"check the role's trust policy: it must let the AWS credentials in trueline's environment", "sts:ExternalId", "match the backend's external_id"},
			stsCalls: 1},
		{name: "another role",
			b:   backend(map[string]any{"assume_role": map[string]any{"role_arn": "arn:aws:iam::111111111111:role/other", "external_id": externalID}}),
			bad: []string{"assume role arn:aws:iam::111111111111:role/other: AccessDenied", "trust policy"}, stsCalls: 1},
		{name: "base keys with the wrong secret",
			b: backend(map[string]any{"access_key": firstAccess, "secret_key": "not-the-secret",
				"assume_role": map[string]any{"role_arn": role, "external_id": externalID}}),
			bad: []string{"assume role " + role + ": SignatureDoesNotMatch", "the credentials that assume the role are not valid: check the backend's access_key and secret_key"}},
		{name: "base keys STS does not know",
			b: backend(map[string]any{"access_key": secondAccess, "secret_key": secondSecret,
				"assume_role": map[string]any{"role_arn": role, "external_id": externalID}}),
			bad: []string{"assume role " + role + ": InvalidClientTokenId", "are not valid"}},
		{name: "no role: the base identity alone is denied",
			b:   backend(map[string]any{"access_key": firstAccess, "secret_key": firstSecret}),
			bad: []string{"AccessDenied", "check the credentials records are written with, the backend's access_key and secret_key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(sts.Calls())
			err := writeAs(ctx, t, srv, tc.b)
			calls := sts.Calls()[before:]
			if tc.stsCalls != 0 && len(calls) != tc.stsCalls {
				t.Errorf("STS answered %d AssumeRole calls, want %d (credentials are cached for the writer)", len(calls), tc.stsCalls)
			}
			if len(tc.bad) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if calls[0].Access != firstAccess {
					t.Errorf("AssumeRole was signed by %q, want the base identity %q", calls[0].Access, firstAccess)
				}
				for k, v := range tc.form {
					if got := calls[0].Form.Get(k); got != v {
						t.Errorf("AssumeRole %s = %q, want %q", k, got, v)
					}
				}
				return
			}
			if err == nil {
				t.Fatal("the write succeeded; want it refused")
			}
			t.Logf("error: %v", err)
			for _, want := range tc.bad {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\nwant it to say %q", err, want)
				}
			}
			noSecrets(t, err, firstSecret, secondSecret, externalID, "not-the-secret")
		})
	}
}
