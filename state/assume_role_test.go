package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// stsServer answers AssumeRole as AWS STS does, for one role: the request
// must be a form POST signed (SigV4, service sts) by a known key, name the
// role and carry its external ID; it answers with the credentials the role
// gives.
type stsServer struct {
	*httptest.Server
	keys       map[string]string // access key → secret of who may call
	role       string
	externalID string
	gives      aws.Credentials

	mu    sync.Mutex
	calls []stsCall
}

type stsCall struct {
	access string // the key that signed it
	form   url.Values
}

func startSTS(t *testing.T, role, externalID string, keys map[string]string, gives aws.Credentials) *stsServer {
	s := &stsServer{keys: keys, role: role, externalID: externalID, gives: gives}
	s.Server = httptest.NewServer(s)
	t.Cleanup(s.Close)
	return s
}

func (s *stsServer) Calls() []stsCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stsCall(nil), s.calls...)
}

var (
	authHeader  = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)
	sessionName = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

func (s *stsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil || r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		stsError(w, http.StatusBadRequest, "InvalidRequest", "want a form POST")
		return
	}
	access, err := s.verify(r, body)
	if err != nil {
		code := "SignatureDoesNotMatch"
		if _, known := s.keys[access]; !known {
			code = "InvalidClientTokenId"
		}
		stsError(w, http.StatusForbidden, code, err.Error())
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		stsError(w, http.StatusBadRequest, "InvalidRequest", "a form that does not parse")
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, stsCall{access: access, form: form})
	s.mu.Unlock()
	if form.Get("Action") != "AssumeRole" || form.Get("Version") != "2011-06-15" {
		stsError(w, http.StatusBadRequest, "InvalidAction", "want Action=AssumeRole&Version=2011-06-15")
		return
	}
	if !sessionName.MatchString(form.Get("RoleSessionName")) {
		stsError(w, http.StatusBadRequest, "ValidationError", "RoleSessionName must match [\\w+=,.@-]{2,64}")
		return
	}
	if form.Get("RoleArn") != s.role || form.Get("ExternalId") != s.externalID {
		stsError(w, http.StatusForbidden, "AccessDenied",
			fmt.Sprintf("User: arn:aws:iam::000000000000:user/%s is not authorized to perform: sts:AssumeRole on resource: %s", access, form.Get("RoleArn")))
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>%s</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <Arn>%s/%s</Arn>
      <AssumedRoleId>AROAEXAMPLE:%s</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, s.gives.AccessKeyID, s.gives.SecretAccessKey, s.gives.SessionToken, time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		s.role, xmlText(form.Get("RoleSessionName")), xmlText(form.Get("RoleSessionName")))
}

// verify recomputes the request's SigV4 signature with the secret of the
// key it names, over the headers it says it signed, and compares.
func (s *stsServer) verify(r *http.Request, body []byte) (string, error) {
	m := authHeader.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return "", fmt.Errorf("no SigV4 Authorization header")
	}
	access, region, service, signed := m[1], m[3], m[4], m[5]
	secret, ok := s.keys[access]
	if !ok {
		return access, fmt.Errorf("the security token included in the request is invalid")
	}
	if service != "sts" {
		return access, fmt.Errorf("signed for service %q, not sts", service)
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || m[2] != when.Format("20060102") {
		return access, fmt.Errorf("X-Amz-Date does not match the credential scope")
	}
	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return access, err
	}
	again.ContentLength = 0
	for _, h := range strings.Split(signed, ";") {
		switch h {
		case "host":
			again.Host = r.Host
		case "content-length":
			again.ContentLength = int64(len(body))
		default:
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: access, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), "sts", region, when); err != nil {
		return access, err
	}
	if again.Header.Get("Authorization") != r.Header.Get("Authorization") {
		return access, fmt.Errorf("the request signature we calculated does not match the signature you provided")
	}
	return access, nil
}

func stsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>`, code, xmlText(msg))
}

func xmlText(s string) string {
	var b strings.Builder
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		panic(err) // a strings.Builder does not fail
	}
	return b.String()
}

func TestS3WriterAssumeRole(t *testing.T) {
	srv := twoUsers(t)
	ctx := context.Background()
	const (
		role       = "arn:aws:iam::111111111111:role/records"
		externalID = "ext-7f3a"
	)
	sts := startSTS(t, role, externalID, map[string]string{firstAccess: firstSecret},
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
				if calls[0].access != firstAccess {
					t.Errorf("AssumeRole was signed by %q, want the base identity %q", calls[0].access, firstAccess)
				}
				for k, v := range tc.form {
					if got := calls[0].form.Get(k); got != v {
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
