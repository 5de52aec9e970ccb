package s3test

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
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// STS answers AssumeRole as AWS STS does, for one role: the request
// must be a form POST signed (SigV4, service sts) by a known key, name the
// role and carry its external ID; it answers with the credentials the role
// gives.
type STS struct {
	*httptest.Server
	keys       map[string]string // access key → secret of who may call
	role       string
	externalID string
	gives      aws.Credentials

	mu    sync.Mutex
	calls []STSCall
}

// STSCall is one AssumeRole request STS answered.
type STSCall struct {
	Access string // the key that signed it
	Form   url.Values
}

// StartSTS runs an STS endpoint until the test ends: keys may call it,
// to assume role (with externalID), which gives the credentials gives.
func StartSTS(t testing.TB, role, externalID string, keys map[string]string, gives aws.Credentials) *STS {
	s := &STS{keys: keys, role: role, externalID: externalID, gives: gives}
	s.Server = httptest.NewServer(s)
	t.Cleanup(s.Close)
	return s
}

// Calls are the AssumeRole requests answered so far.
func (s *STS) Calls() []STSCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]STSCall(nil), s.calls...)
}

var (
	authHeader  = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)
	sessionName = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

func (s *STS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	s.calls = append(s.calls, STSCall{Access: access, Form: form})
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
	_, _ = fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
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
func (s *STS) verify(r *http.Request, body []byte) (string, error) {
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
	_, _ = fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
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
