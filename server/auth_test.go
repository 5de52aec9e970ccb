package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/run"
)

var formHeader = map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

// signIn signs in with a token and returns the session cookie as a header value.
func signIn(t *testing.T, base, token string) string {
	t.Helper()
	resp, body := do(t, "POST", base+"/login", "", url.Values{"token": {token}}.Encode(), formHeader)
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("no session cookie: %d %s", resp.StatusCode, body)
	return ""
}

func TestReadProtection(t *testing.T) {
	auth := &Auth{TokenHashes: [][32]byte{HashToken("right-token")}}
	srv, _, led := newAPI(t, auth)
	ctx := context.Background()
	run, _, _ := led.Enqueue(ctx, ledger.Request{Workspace: run.Workspace{Repository: "infra", Stack: "stacks/web", Name: "default"}, Trigger: "schedule"})
	led.Claim(ctx, ledger.Limits{})
	led.Finish(ctx, run.ID, ledger.Result{Verdict: "in_sync"})
	session := signIn(t, srv.URL, "right-token")
	runID := strconv.FormatInt(run.ID, 10)

	routes := []struct {
		path string
		page bool // refused with a redirect to sign in, not a 401
		open bool // never refused: probes and the sign-in page
	}{
		{path: "/", page: true},
		{path: "/workspace?key=infra/stacks/web/default", page: true},
		{path: "/runs/" + runID, page: true},
		{path: "/report", page: true},
		{path: "/report?format=json", page: true},
		{path: "/metrics"},
		{path: "/api/v1/status"},
		{path: "/api/v1/workspaces"},
		{path: "/api/v1/stacks"},
		{path: "/api/v1/runs"},
		{path: "/api/v1/runs/" + runID},
		{path: "/healthz", open: true},
		{path: "/readyz", open: true},
		{path: "/login", open: true},
	}
	callers := []struct {
		name, token string
		header      map[string]string
		reads       bool // may read when reading needs a token
	}{
		{name: "stranger"},
		{name: "wrong token", token: "wrong-token"},
		{name: "bearer token", token: "right-token", reads: true},
		{name: "session", header: map[string]string{"Cookie": session}, reads: true},
		{name: "forged session", header: map[string]string{"Cookie": sessionCookie + "=00ff"}},
	}
	for _, protected := range []bool{false, true} {
		auth.ReadToken = protected
		for _, rt := range routes {
			for _, c := range callers {
				resp, body := do(t, "GET", srv.URL+rt.path, c.token, "", c.header)
				refused := resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusSeeOther
				wantRefused := protected && !rt.open && !c.reads
				if refused != wantRefused {
					t.Errorf("read protection %v, %s GET %s: %d, want refused %v: %.200s", protected, c.name, rt.path, resp.StatusCode, wantRefused, body)
					continue
				}
				if !refused {
					continue
				}
				if rt.page && c.token == "" {
					if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/login" {
						t.Errorf("%s GET %s: %d to %q, want a redirect to /login", c.name, rt.path, resp.StatusCode, loc)
					}
				} else if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s GET %s: %d, want 401 with WWW-Authenticate", c.name, rt.path, resp.StatusCode)
				}
			}
		}
	}
	// Prometheus scrapes with the token.
	auth.ReadToken = true
	if resp, body := do(t, "GET", srv.URL+"/metrics", "right-token", "", nil); resp.StatusCode != 200 || !strings.Contains(body, "trueline_workspaces") {
		t.Errorf("scrape with a token: %d %.200s", resp.StatusCode, body)
	}
}

func TestProxyHeaderTrust(t *testing.T) {
	local := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		want    string
	}{
		{"no trusted proxies", nil, "127.0.0.1:4000", ""},
		{"from a trusted proxy", local, "127.0.0.1:4000", "alice"},
		{"from a trusted IPv6 proxy", local, "[::1]:4000", "alice"},
		{"IPv4 in IPv6", local, "[::ffff:127.0.0.1]:4000", "alice"},
		{"from elsewhere", local, "192.0.2.7:4000", ""},
		{"within a trusted network", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "10.1.2.3:4000", "alice"},
		{"unparsable peer", local, "somewhere", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &Auth{ProxyHeader: "X-Forwarded-User", TrustedProxies: tc.trusted, ReadToken: true}
			// A path nothing serves: read, it is a 404, refused, a redirect.
			r := httptest.NewRequest("GET", "/nothing-here", nil)
			r.RemoteAddr = tc.remote
			r.Header.Set("X-Forwarded-User", "alice")
			if got := a.who(r); got != tc.want {
				t.Errorf("who = %q, want %q", got, tc.want)
			}
			// The same decides whether a page may be read.
			rec := httptest.NewRecorder()
			New(Options{Auth: a}).ServeHTTP(rec, r)
			if refused := rec.Code == http.StatusSeeOther; refused != (tc.want == "") {
				t.Errorf("GET /nothing-here: %d", rec.Code)
			}
		})
	}
}

func TestAPIWritesNeedBearerToken(t *testing.T) {
	auth := &Auth{TokenHashes: [][32]byte{HashToken("right-token")}, ProxyHeader: "X-Forwarded-User",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	srv, tr, _ := newAPI(t, auth)
	session := signIn(t, srv.URL, "right-token")
	tests := []struct {
		name    string
		token   string
		header  map[string]string
		allowed bool
	}{
		{"session cookie", "", map[string]string{"Cookie": session}, false},
		{"trusted proxy user", "", map[string]string{"X-Forwarded-User": "alice"}, false},
		{"both", "", map[string]string{"Cookie": session, "X-Forwarded-User": "alice"}, false},
		{"bearer token", "right-token", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr.calls = nil
			// What approving answers beyond authentication is not this test's business.
			for _, path := range []string{"/api/v1/runs", "/api/v1/runs/1/approve"} {
				resp, body := do(t, "POST", srv.URL+path, tc.token, `{"stack":"stacks/web"}`, tc.header)
				if allowed := resp.StatusCode != http.StatusUnauthorized; allowed != tc.allowed {
					t.Errorf("POST %s: %d, want allowed %v: %s", path, resp.StatusCode, tc.allowed, body)
				}
			}
			if !tc.allowed && len(tr.calls) != 0 {
				t.Errorf("a refused caller reached the daemon: %v", tr.calls)
			}
		})
	}
	// The dashboard's forms still take the proxy's user.
	resp, _ := do(t, "POST", srv.URL+"/workspace/plan", "", url.Values{"key": {"infra/stacks/web/default"}}.Encode(),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-User": "alice"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("plan form from the proxy's user: %d", resp.StatusCode)
	}
}

func TestSessionCookie(t *testing.T) {
	for _, secure := range []bool{false, true} {
		srv, _, _ := newAPI(t, &Auth{TokenHashes: [][32]byte{HashToken("right-token")}, SecureCookie: secure})
		resp, _ := do(t, "POST", srv.URL+"/login", "", url.Values{"token": {"right-token"}}.Encode(), formHeader)
		var c *http.Cookie
		for _, rc := range resp.Cookies() {
			if rc.Name == sessionCookie {
				c = rc
			}
		}
		if c == nil {
			t.Fatalf("secure %v: no session cookie", secure)
		}
		if c.Secure != secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
			t.Errorf("secure %v: cookie Secure=%v HttpOnly=%v SameSite=%v", secure, c.Secure, c.HttpOnly, c.SameSite)
		}
	}
}

// clock is a time tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestSignInRateLimit(t *testing.T) {
	clk := &clock{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	auth := &Auth{TokenHashes: [][32]byte{HashToken("right-token")}, now: clk.now,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	s := New(Options{Auth: auth})
	attempt := func(remote, forwarded, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = remote
		if forwarded != "" {
			r.Header.Set("X-Forwarded-For", forwarded)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		return rec
	}
	tests := []struct {
		name              string
		remote, forwarded string
		advance           time.Duration
		token             string
		code              int
	}{
		{"first", "192.0.2.1:1", "", 0, "wrong", 401},
		{"second", "192.0.2.1:2", "", 0, "wrong", 401},
		{"third", "192.0.2.1:3", "", 0, "wrong", 401},
		{"fourth", "192.0.2.1:4", "", 0, "wrong", 401},
		{"fifth", "192.0.2.1:5", "", 0, "wrong", 401},
		{"sixth is limited", "192.0.2.1:6", "", 0, "wrong", 429},
		{"even with the right token", "192.0.2.1:6", "", 0, "right-token", 429},
		{"a claimed X-Forwarded-For from an untrusted peer changes nothing", "192.0.2.1:7", "198.51.100.1", 0, "wrong", 429},
		{"another address is not", "192.0.2.2:1", "", 0, "wrong", 401},
		{"a while later, one more", "192.0.2.1:8", "", signInEvery, "right-token", 303},
		{"and not two", "192.0.2.1:9", "", 0, "right-token", 429},
		// Behind a trusted proxy, each client the proxy names is counted apart.
		{"proxied client a", "10.0.0.1:1", "198.51.100.1, 10.0.0.2", 0, "wrong", 401},
		{"proxied client b", "10.0.0.1:1", "198.51.100.2", 0, "wrong", 401},
	}
	for _, tc := range tests {
		clk.t = clk.t.Add(tc.advance)
		rec := attempt(tc.remote, tc.forwarded, tc.token)
		if rec.Code != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, rec.Code, tc.code)
		}
		if rec.Code == 429 {
			secs, err := strconv.Atoi(rec.Header().Get("Retry-After"))
			if err != nil || secs < 1 || secs > 60 {
				t.Errorf("%s: Retry-After %q", tc.name, rec.Header().Get("Retry-After"))
			}
		}
	}
	for range 4 {
		attempt("10.0.0.1:1", "198.51.100.1", "wrong")
	}
	if rec := attempt("10.0.0.1:1", "198.51.100.1", "wrong"); rec.Code != 429 {
		t.Errorf("sixth attempt of a proxied client: %d", rec.Code)
	}
	// Clients that stopped trying are forgotten.
	clk.t = clk.t.Add(2 * time.Minute)
	attempt("192.0.2.3:1", "", "wrong")
	if n := len(auth.signIns); n != 1 {
		t.Errorf("%d clients remembered, want 1", n)
	}
}

func TestExpiredSessionsAreDropped(t *testing.T) {
	clk := &clock{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := &Auth{TokenHashes: [][32]byte{HashToken("right-token")}, now: clk.now}
	login := func() string {
		rec := httptest.NewRecorder()
		if !a.login(rec, "right-token") {
			t.Fatal("login refused")
		}
		return rec.Result().Cookies()[0].Value
	}
	var ids []string
	for range 20 {
		ids = append(ids, login())
		clk.t = clk.t.Add(time.Minute)
	}
	tests := []struct {
		name     string
		advance  time.Duration
		do       func()
		sessions int
	}{
		{"all alive", 0, func() {}, 20},
		{"the first expired, asked for", sessionLifetime - 20*time.Minute, func() {
			if a.validSession(ids[0]) {
				t.Error("an expired session is valid")
			}
		}, 19},
		{"the rest expired, a new sign-in", 20 * time.Minute, func() { login() }, 1},
	}
	for _, tc := range tests {
		clk.t = clk.t.Add(tc.advance)
		tc.do()
		if n := len(a.sessions); n != tc.sessions {
			t.Errorf("%s: %d sessions, want %d", tc.name, n, tc.sessions)
		}
	}
}

func TestBodiesAreBounded(t *testing.T) {
	srv, tr, _ := newAPI(t, &Auth{TokenHashes: [][32]byte{HashToken("right-token")}})
	big := `{"stack":"stacks/web","pad":"` + strings.Repeat("x", maxFormBody) + `"}`
	if resp, body := do(t, "POST", srv.URL+"/api/v1/runs", "right-token", big, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized API body: %d %s", resp.StatusCode, body)
	}
	form := url.Values{"token": {"right-token"}, "pad": {strings.Repeat("x", maxFormBody)}}.Encode()
	if resp, _ := do(t, "POST", srv.URL+"/login", "", form, formHeader); resp.StatusCode == http.StatusSeeOther {
		t.Error("an oversized sign-in form was read")
	}
	if len(tr.calls) != 0 {
		t.Errorf("triggered %v", tr.calls)
	}
}

// No response and no log line carries a token, right or wrong.
func TestTokensStayOutOfErrorsAndLogs(t *testing.T) {
	var logs bytes.Buffer
	led, err := ledger.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	auth := &Auth{TokenHashes: [][32]byte{HashToken("right-token-1f2e")}, ReadToken: true}
	h := &hooks{secret: "hook-secret-9a8b", forge: "gitlab"}
	srv := httptest.NewServer(New(Options{Ledger: led, Trigger: &triggers{led: led}, Hooks: h, Auth: auth,
		Metrics: NewMetrics(led), Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))
	t.Cleanup(srv.Close)
	tests := []struct {
		method, path, token, body string
		header                    map[string]string
	}{
		{"GET", "/api/v1/runs", "wrong-token-7c6d", "", nil},
		{"GET", "/metrics", "wrong-token-7c6d", "", nil},
		{"GET", "/", "wrong-token-7c6d", "", nil},
		{"POST", "/api/v1/runs", "wrong-token-7c6d", `{"stack":"stacks/web"}`, nil},
		{"POST", "/api/v1/runs", "right-token-1f2e", `not json`, nil},
		{"POST", "/login", "", url.Values{"token": {"wrong-token-7c6d"}}.Encode(), formHeader},
		{"POST", "/hooks/gitlab/infra", "", pushBody, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong-token-7c6d"}},
		{"POST", "/hooks/gitlab/infra", "", `not json`, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "hook-secret-9a8b"}},
	}
	for _, tc := range tests {
		resp, body := do(t, tc.method, srv.URL+tc.path, tc.token, tc.body, tc.header)
		for _, secret := range []string{"wrong-token-7c6d", "right-token-1f2e", "hook-secret-9a8b"} {
			if strings.Contains(body, secret) || strings.Contains(logs.String(), secret) {
				t.Errorf("%s %s (%d): %q in the answer or the log:\n%s\n%s", tc.method, tc.path, resp.StatusCode, secret, body, logs.String())
			}
		}
	}
}
