package forge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/trueline/trueline/internal/hangtest"
)

const (
	testAppID          = 12
	testInstallationID = 34
)

// appKeys are made once: RSA key generation is slow.
var appKeys = sync.OnceValues(func() (right, wrong []byte) {
	return rsaPEM(), rsaPEM()
})

func rsaPEM() []byte {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func publicKey(t *testing.T, p []byte) *rsa.PublicKey {
	t.Helper()
	k, err := jwt.ParseRSAPrivateKeyFromPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

// appServer checks what GitHub checks: the app's JWT on the token exchange,
// and an unexpired installation token (never the JWT) on API calls.
type appServer struct {
	t        *testing.T
	pub      *rsa.PublicKey
	lifetime time.Duration // of the tokens issued
	delay    time.Duration // before answering an exchange
	// fail, when set, answers the nth exchange (from 1) with a status and a
	// body; status 0 issues a token.
	fail func(n int, r *http.Request) (int, string)
	// push is the installation's push permission on acme/infra; nil: the
	// app is not installed there.
	push *bool

	mu        sync.Mutex
	exchanges int
	tokens    map[string]time.Time // issued -> expires_at
	used      []string             // tokens the API calls carried
}

func (s *appServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/v3/app/installations/"):
		s.exchange(w, r)
	case r.Method == "GET" && r.URL.Path == "/api/v3/repos/acme/infra/pulls":
		s.api(w, r, `[]`)
	case r.Method == "GET" && r.URL.Path == "/api/v3/repos/acme/infra":
		if s.push == nil {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"message":"Not Found"}`)
			return
		}
		b, _ := json.Marshal(map[string]any{"full_name": "acme/infra", "private": true,
			"permissions": map[string]bool{"pull": true, "push": *s.push}})
		s.api(w, r, string(b))
	default:
		s.t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
	}
}

func (s *appServer) exchange(w http.ResponseWriter, r *http.Request) {
	if r.Method != "POST" || r.URL.Path != fmt.Sprintf("/api/v3/app/installations/%d/access_tokens", testInstallationID) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`)
		return
	}
	if a := r.Header.Get("Accept"); !strings.Contains(a, "application/vnd.github") {
		s.t.Errorf("exchange Accept = %q", a)
	}
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		s.t.Errorf("exchange Authorization = %q, want a bearer JWT", r.Header.Get("Authorization"))
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return s.pub, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"message":"A JSON web token could not be decoded","documentation_url":"https://docs.github.com/rest"}`)
		return
	}
	s.checkClaims(raw, claims)
	s.mu.Lock()
	s.exchanges++
	n := s.exchanges
	s.mu.Unlock()
	time.Sleep(s.delay)
	if s.fail != nil {
		if status, body := s.fail(n, r); status != 0 {
			w.WriteHeader(status)
			io.WriteString(w, body)
			return
		}
	}
	tok := fmt.Sprintf("ghs_installation%02d_%d", n, time.Now().UnixNano())
	exp := time.Now().Add(s.lifetime).UTC().Truncate(time.Second)
	s.mu.Lock()
	s.tokens[tok] = exp
	s.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_at": exp.Format(time.RFC3339),
		"permissions": map[string]string{"contents": "write", "pull_requests": "write"}})
}

func (s *appServer) checkClaims(raw string, c jwt.RegisteredClaims) {
	now := time.Now()
	if c.Issuer != fmt.Sprint(testAppID) {
		s.t.Errorf("iss = %q, want the app id", c.Issuer)
	}
	if c.IssuedAt == nil || c.ExpiresAt == nil {
		s.t.Errorf("iat or exp missing: %+v", c)
		return
	}
	iat, exp := c.IssuedAt.Time, c.ExpiresAt.Time
	if d := now.Sub(iat); d < 55*time.Second || d > 65*time.Second {
		s.t.Errorf("iat is %v in the past, want 60s", d)
	}
	if exp.Sub(iat) > 10*time.Minute || !exp.After(now) {
		s.t.Errorf("exp %v, iat %v: want exp after now and at most 10 minutes after iat", exp, iat)
	}
	// GitHub refuses fractional timestamps.
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		s.t.Errorf("JWT payload: %v", err)
	}
	for _, k := range []string{"iat", "exp"} {
		if n, ok := m[k].(json.Number); !ok || strings.ContainsAny(string(n), ".eE") {
			s.t.Errorf("%s = %v, want an integer", k, m[k])
		}
	}
}

func (s *appServer) api(w http.ResponseWriter, r *http.Request, answer string) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, ok := s.tokens[tok]
	s.used = append(s.used, tok)
	s.mu.Unlock()
	if !ok || time.Now().After(exp) {
		s.t.Errorf("API call with %q, want an unexpired installation token", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"message":"Bad credentials"}`)
		return
	}
	io.WriteString(w, answer)
}

func startApp(t *testing.T, s *appServer) string {
	t.Helper()
	s.t = t
	s.tokens = map[string]time.Time{}
	if s.pub == nil {
		right, _ := appKeys()
		s.pub = publicKey(t, right)
	}
	if s.lifetime == 0 {
		s.lifetime = time.Hour
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL + "/api/v3/"
}

func newTestApp(t *testing.T, api string, key []byte, logger *slog.Logger) *App {
	t.Helper()
	a, err := NewApp(Options{Kind: "github", URL: "https://github.example/acme/infra.git", APIURL: api, Timeout: 5 * time.Second},
		AppAuth{AppID: testAppID, InstallationID: testInstallationID, PrivateKeyPEM: key, KeySource: "file /run/secrets/app.pem"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Every API call carries an installation token; the JWT only reaches the
// exchange.
func TestAppAPICallsUseInstallationToken(t *testing.T) {
	right, _ := appKeys()
	srv := &appServer{}
	api := startApp(t, srv)
	app := newTestApp(t, api, right, nil)
	f, err := New(Options{Kind: "github", URL: "https://github.example/acme/infra.git", APIURL: api, App: app})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := f.FindOpen(context.Background(), "trueline/x/default"); err != nil {
			t.Fatal(err)
		}
	}
	if srv.exchanges != 1 || len(srv.used) != 3 {
		t.Fatalf("%d exchanges for %d API calls, want 1 for 3", srv.exchanges, len(srv.used))
	}
	tok, err := app.Token(context.Background())
	if err != nil || tok != srv.used[0] {
		t.Errorf("Token = %q, %v; want the API's token %q, for Git", tok, err, srv.used[0])
	}
}

func TestAppTokenCache(t *testing.T) {
	fail500 := func(n int, _ *http.Request) (int, string) {
		if n > 1 {
			return http.StatusInternalServerError, `{"message":"Server Error"}`
		}
		return 0, ""
	}
	for _, tc := range []struct {
		name      string
		lifetime  time.Duration
		fail      func(int, *http.Request) (int, string)
		exchanges int
		same      bool   // the second call returns the first token
		bad       string // the second call's error
	}{
		{name: "valid token reused", lifetime: time.Hour, exchanges: 1, same: true},
		{name: "token near expiry refreshed", lifetime: 4 * time.Minute, exchanges: 2},
		{name: "refresh fails, current token still good", lifetime: 4 * time.Minute, fail: fail500, exchanges: 2, same: true},
		{name: "refresh fails, current token about to expire", lifetime: 30 * time.Second, fail: fail500, exchanges: 2,
			bad: "github app 12: installation token for installation 34"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			right, _ := appKeys()
			srv := &appServer{lifetime: tc.lifetime, fail: tc.fail}
			app := newTestApp(t, startApp(t, srv), right, nil)
			first, err := app.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			second, err := app.Token(context.Background())
			switch {
			case tc.bad != "":
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Errorf("second Token = %q, %v; want an error with %q", second, err, tc.bad)
				}
			case err != nil:
				t.Fatal(err)
			case (first == second) != tc.same:
				t.Errorf("tokens %q then %q; want the same: %v", first, second, tc.same)
			}
			if srv.exchanges != tc.exchanges {
				t.Errorf("%d exchanges, want %d", srv.exchanges, tc.exchanges)
			}
		})
	}
}

// Callers that need a token at once share one exchange.
func TestAppConcurrentCallersShareOneExchange(t *testing.T) {
	right, _ := appKeys()
	srv := &appServer{delay: 200 * time.Millisecond}
	app := newTestApp(t, startApp(t, srv), right, nil)
	const n = 16
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok, err := app.Token(context.Background())
			if err != nil {
				t.Error(err)
			}
			got[i] = tok
		})
	}
	wg.Wait()
	if srv.exchanges != 1 {
		t.Errorf("%d exchanges for %d concurrent callers, want 1", srv.exchanges, n)
	}
	for _, tok := range got {
		if tok != got[0] || tok == "" {
			t.Fatalf("callers got different tokens: %q", got)
		}
	}
	// A caller that gives up does not fail the exchange for the others.
	srv.lifetime, app.token = time.Hour, ""
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := app.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("impatient caller: %v, want its deadline", err)
	}
	if tok, err := app.Token(context.Background()); err != nil || tok == got[0] {
		t.Errorf("patient caller: %q, %v; want a new token", tok, err)
	}
}

// What GitHub refuses comes back naming the app, the installation and the fix.
func TestAppExchangeRefused(t *testing.T) {
	right, wrong := appKeys()
	for _, tc := range []struct {
		name         string
		key          []byte
		installation int64
		want         []string
	}{
		{name: "key of another app", key: wrong, installation: testInstallationID,
			want: []string{"github app 12", "401", "fix: the private key from file /run/secrets/app.pem must be a current key of app 12", "Private keys"}},
		{name: "installation of another app", key: right, installation: 99,
			want: []string{"github app 12", "installation 99", "404", "fix: installation_id 99 must be an installation of app 12"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &appServer{}
			api := startApp(t, srv)
			app, err := NewApp(Options{URL: "https://github.example/acme/infra.git", APIURL: api},
				AppAuth{AppID: testAppID, InstallationID: tc.installation, PrivateKeyPEM: tc.key, KeySource: "file /run/secrets/app.pem"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = app.Token(context.Background())
			if err == nil {
				t.Fatal("the exchange succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			assertNoKey(t, err.Error(), tc.key)
		})
	}
}

func TestNewAppRejectsBadKeys(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	right, _ := appKeys()
	truncated := right[:len(right)/2]
	for _, tc := range []struct {
		name string
		auth AppAuth
		want string
	}{
		{"empty", AppAuth{AppID: 12, InstallationID: 34}, "fix: point private_key_file at the .pem file"},
		{"not PEM", AppAuth{AppID: 12, InstallationID: 34, PrivateKeyPEM: []byte("ghp_notakey")}, "is not a PEM RSA private key"},
		{"an EC key", AppAuth{AppID: 12, InstallationID: 34, PrivateKeyPEM: ecPEM}, "is not a PEM RSA private key"},
		{"cut short", AppAuth{AppID: 12, InstallationID: 34, PrivateKeyPEM: truncated}, "is not a PEM RSA private key"},
		{"no app id", AppAuth{InstallationID: 34, PrivateKeyPEM: right}, "fix: app_id is on the app's settings page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.auth.KeySource = "env GITHUB_APP_KEY"
			_, err := NewApp(Options{URL: "https://github.com/acme/infra.git"}, tc.auth, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewApp = %v, want an error with %q", err, tc.want)
			}
			if tc.auth.AppID != 0 && !strings.Contains(err.Error(), "github app 12") {
				t.Errorf("error %q does not name the app", err)
			}
			assertNoKey(t, err.Error(), tc.auth.PrivateKeyPEM)
		})
	}
}

// A server that echoes credentials back, in exchange errors and API errors,
// gets none of them into trueline's errors or logs.
func TestAppSecretsStayOutOfErrorsAndLogs(t *testing.T) {
	right, _ := appKeys()
	var first string
	var jwts []string
	srv := &appServer{lifetime: 4 * time.Minute}
	srv.fail = func(n int, r *http.Request) (int, string) {
		if n == 1 {
			return 0, ""
		}
		// Refused, quoting the key, the current token and the JWT sent.
		auth := r.Header.Get("Authorization")
		jwts = append(jwts, strings.TrimPrefix(auth, "Bearer "))
		b, _ := json.Marshal(map[string]string{"message": "bad key " + string(right) + " token " + first + " auth " + auth})
		return http.StatusUnauthorized, string(b)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app := newTestApp(t, startApp(t, srv), right, logger)
	first, err := app.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The current token still has four minutes: it is used, and the refused
	// refresh logged.
	if _, err := app.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Once it is about to run out, the refusal is the error.
	app.expires = time.Now().Add(30 * time.Second)
	_, exchangeErr := app.Token(context.Background())
	if exchangeErr == nil {
		t.Fatal("a refused refresh succeeded")
	}
	app.expires = time.Now().Add(time.Hour)
	apiErr := srvEcho(t, app)
	if len(jwts) != 2 {
		t.Fatalf("%d refused exchanges, want 2", len(jwts))
	}
	for name, text := range map[string]string{"exchange error": exchangeErr.Error(), "API error": apiErr.Error(), "logs": logs.String()} {
		assertNoKey(t, text, right)
		for _, secret := range append([]string{first}, jwts...) {
			if strings.Contains(text, secret) {
				t.Errorf("%s names a credential: %s", name, text)
			}
		}
	}
	if !strings.Contains(logs.String(), "installation token refreshed") || !strings.Contains(logs.String(), "not refreshed") {
		t.Errorf("logs lack the refresh and the failed refresh:\n%s", logs.String())
	}
}

// srvEcho calls the API through a forge whose server echoes the credential
// it was sent.
func srvEcho(t *testing.T, app *App) error {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		b, _ := json.Marshal(map[string]string{"message": "bad credentials: " + r.Header.Get("Authorization")})
		w.Write(b)
	}))
	defer ts.Close()
	f, err := New(Options{Kind: "github", URL: "https://github.example/acme/infra.git", APIURL: ts.URL + "/api/v3/", App: app})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.FindOpen(context.Background(), "trueline/x/default")
	if err == nil {
		t.Fatal("a 401 succeeded")
	}
	if !strings.Contains(err.Error(), "bad credentials") {
		t.Fatalf("unexpected error %v", err)
	}
	return err
}

// assertNoKey fails when text holds the key or any line of it.
func assertNoKey(t *testing.T, text string, key []byte) {
	t.Helper()
	for _, l := range strings.Split(string(key), "\n") {
		if len(l) >= 16 && !strings.HasPrefix(l, "-----") && strings.Contains(text, l) {
			t.Fatalf("the text names a line of the private key: %s", text)
		}
	}
}

// The exchange is untrusted input: a huge answer or none costs an error,
// bounded in size and time.
func TestAppExchangeBounded(t *testing.T) {
	right, _ := appKeys()
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"token":"`)
		chunk := strings.Repeat("a", 64<<10)
		for range 64 { // 4 MiB
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		io.WriteString(w, `"}`)
	}))
	defer huge.Close()
	hang := hangtest.Start(t)
	for _, tc := range []struct {
		name, api string
		want      func(error) bool
	}{
		{"huge answer", huge.URL + "/api/v3/", func(err error) bool { return errors.Is(err, errTooLong) }},
		{"no answer", hang.URL + "/api/v3/", func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewApp(Options{URL: "https://github.example/acme/infra.git", APIURL: tc.api, Timeout: 300 * time.Millisecond},
				AppAuth{AppID: testAppID, InstallationID: testInstallationID, PrivateKeyPEM: right}, nil)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			tok, err := a.Token(context.Background())
			if err == nil || !tc.want(err) {
				t.Errorf("Token = %.20q, %v", tok, err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("took %v with a 300ms timeout", took)
			}
		})
	}
}

func TestNewWithApp(t *testing.T) {
	right, _ := appKeys()
	app := newTestApp(t, "https://github.example/api/v3/", right, nil)
	for _, o := range []Options{
		{Kind: "gitlab", URL: "https://gitlab.example/acme/infra.git", App: app},
		{Kind: "github", URL: "https://github.example/acme/infra.git", Token: "ghp_x", App: app},
	} {
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), "GitHub App authenticates to GitHub only") {
			t.Errorf("New(%s, token %v) = %v, want refused", o.Kind, o.Token != "", err)
		}
	}
	if s := fmt.Sprintf("%v %+v", AppAuth{AppID: 1, PrivateKeyPEM: right}, AppAuth{AppID: 1, PrivateKeyPEM: right}); strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, "[") {
		t.Errorf("an AppAuth formats with its key: %s", s)
	}
}

func TestAccessGitHubApp(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name      string
		push      *bool
		want, bad string
	}{
		{name: "read and write", push: &yes, want: "can push to acme/infra"},
		{name: "read only", push: &no, bad: "the app may read acme/infra but not push; fix: give the app Contents and Pull requests read and write"},
		{name: "not installed on the repository", bad: "fix: install the app on the repository"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			right, _ := appKeys()
			srv := &appServer{push: tc.push}
			api := startApp(t, srv)
			f, err := New(Options{Kind: "github", URL: "https://github.example/acme/infra.git", APIURL: api, App: newTestApp(t, api, right, nil)})
			if err != nil {
				t.Fatal(err)
			}
			checkAccess(t, f, tc.want, tc.bad, "ghs_installation")
		})
	}
}
