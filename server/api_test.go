package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/run"
)

type triggers struct {
	led   *ledger.SQLite
	calls []string
}

func (f *triggers) Trigger(ctx context.Context, repo, stack, ws, trigger string) ([]ledger.Run, error) {
	f.calls = append(f.calls, stack+"/"+ws)
	r, _, err := f.led.Enqueue(ctx, ledger.Request{Workspace: run.Workspace{Repository: "infra", Stack: stack, Name: "default"}, Trigger: trigger})
	return []ledger.Run{r}, err
}

func (f *triggers) Approve(ctx context.Context, id int64) (ledger.Run, error) {
	f.calls = append(f.calls, fmt.Sprintf("approve %d", id))
	r, _, err := f.led.Enqueue(ctx, ledger.Request{Workspace: run.Workspace{Repository: "infra", Stack: "stacks/web", Name: "default"}, Trigger: "approve", Approval: "abc"})
	return r, err
}

func newAPI(t *testing.T, auth *Auth) (*httptest.Server, *triggers, *ledger.SQLite) {
	t.Helper()
	led, err := ledger.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	tr := &triggers{led: led}
	srv := httptest.NewServer(New(Options{Ledger: led, Trigger: tr, Auth: auth, Metrics: NewMetrics(led)}))
	t.Cleanup(srv.Close)
	led.SetWorkspaces(context.Background(), "infra", []ledger.Workspace{{Workspace: run.Workspace{Stack: "stacks/web", Name: "default"}, Schedule: "@hourly", Timezone: "UTC"}})
	return srv, tr, led
}

func do(t *testing.T, method, u, token string, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}

func TestRunsPaging(t *testing.T) {
	srv, _, led := newAPI(t, &Auth{})
	ctx := context.Background()
	for i := 0; i < 7; i++ {
		r, _, _ := led.Enqueue(ctx, ledger.Request{Workspace: run.Workspace{Repository: "infra", Stack: fmt.Sprintf("s%d", i), Name: "default"}, Trigger: "schedule"})
		led.Claim(ctx, ledger.Limits{})
		led.Finish(ctx, r.ID, ledger.Result{Verdict: "in_sync"})
	}
	var ids []int64
	next := ""
	for page := 0; page < 4; page++ {
		_, body := do(t, "GET", srv.URL+"/api/v1/runs?limit=3"+next, "", "", nil)
		var p struct {
			Runs []struct{ ID int64 }
			Next int64
		}
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Runs {
			ids = append(ids, r.ID)
		}
		if p.Next == 0 {
			break
		}
		next = fmt.Sprintf("&before=%d", p.Next)
	}
	if fmt.Sprint(ids) != "[7 6 5 4 3 2 1]" {
		t.Errorf("paged ids = %v", ids)
	}
	if resp, _ := do(t, "GET", srv.URL+"/api/v1/runs?limit=0", "", "", nil); resp.StatusCode != 400 {
		t.Errorf("limit=0: %d", resp.StatusCode)
	}
}

func TestAPIAuth(t *testing.T) {
	auth := &Auth{TokenHashes: [][32]byte{HashToken("right-token")}}
	srv, tr, _ := newAPI(t, auth)
	body := `{"stack":"stacks/web"}`
	for _, tc := range []struct {
		token string
		code  int
	}{{"", 401}, {"wrong-token", 401}, {"right-token", 202}} {
		resp, out := do(t, "POST", srv.URL+"/api/v1/runs", tc.token, body, nil)
		if resp.StatusCode != tc.code {
			t.Errorf("token %q: %d %s", tc.token, resp.StatusCode, out)
		}
		if tc.code == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Error("a 401 without WWW-Authenticate")
		}
	}
	if len(tr.calls) != 1 {
		t.Errorf("triggered %v, want once", tr.calls)
	}
	// Reading is open by default...
	if resp, _ := do(t, "GET", srv.URL+"/api/v1/workspaces", "", "", nil); resp.StatusCode != 200 {
		t.Errorf("open read: %d", resp.StatusCode)
	}
	// ...and token-protected when configured.
	auth.ReadToken = true
	if resp, _ := do(t, "GET", srv.URL+"/api/v1/workspaces", "", "", nil); resp.StatusCode != 401 {
		t.Errorf("read without token: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", srv.URL+"/", "", "", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("dashboard without token: %d, want a redirect to sign in", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", srv.URL+"/api/v1/stacks", "right-token", "", nil); resp.StatusCode != 200 {
		t.Errorf("read with token: %d", resp.StatusCode)
	}
	// A trusted proxy's user header is for the dashboard's forms, not the API.
	auth.ProxyHeader = "X-Forwarded-User"
	auth.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	if resp, _ := do(t, "POST", srv.URL+"/api/v1/runs", "", body, map[string]string{"X-Forwarded-User": "alice"}); resp.StatusCode != 401 {
		t.Errorf("proxy user writing through the API: %d, want 401", resp.StatusCode)
	}
	// No secret in any page.
	_, page := do(t, "GET", srv.URL+"/login", "", "", nil)
	if strings.Contains(page, "right-token") {
		t.Error("the token appears in a page")
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func TestFormsNeedSessionAndCSRF(t *testing.T) {
	srv, tr, _ := newAPI(t, &Auth{TokenHashes: [][32]byte{HashToken("right-token")}})
	form := url.Values{"key": {"infra/stacks/web/default"}}.Encode()
	formHdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

	// Not signed in: refused.
	if resp, _ := do(t, "POST", srv.URL+"/workspace/plan", "", form, formHdr); resp.StatusCode != 401 {
		t.Errorf("plan without sign-in: %d", resp.StatusCode)
	}
	// Sign in: a session cookie.
	resp, _ := do(t, "POST", srv.URL+"/login", "", url.Values{"token": {"wrong"}}.Encode(), formHdr)
	if resp.StatusCode != 401 {
		t.Errorf("sign in with a wrong token: %d", resp.StatusCode)
	}
	resp, _ = do(t, "POST", srv.URL+"/login", "", url.Values{"token": {"right-token"}}.Encode(), formHdr)
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			cookie = c.Name + "=" + c.Value
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Error("the session cookie must be HttpOnly and SameSite=Strict")
			}
		}
	}
	if cookie == "" {
		t.Fatal("no session cookie")
	}
	withCookie := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
	// A form without its CSRF token: refused.
	if resp, _ := do(t, "POST", srv.URL+"/workspace/plan", "", form, withCookie); resp.StatusCode != 403 {
		t.Errorf("plan without CSRF token: %d", resp.StatusCode)
	}
	_, page := do(t, "GET", srv.URL+"/workspace?key=infra/stacks/web/default", "", "", map[string]string{"Cookie": cookie})
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the workspace page:\n%s", page)
	}
	withToken := form + "&csrf=" + m[1]
	// From another site, even with the token: refused by the browser headers check.
	cross := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
	if resp, _ := do(t, "POST", srv.URL+"/workspace/plan", "", withToken, cross); resp.StatusCode != 403 {
		t.Errorf("cross-site form: %d", resp.StatusCode)
	}
	resp, _ = do(t, "POST", srv.URL+"/workspace/plan", "", withToken, withCookie)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "queued") {
		t.Errorf("plan with session and CSRF token: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(tr.calls) != 1 {
		t.Errorf("triggered %v, want once", tr.calls)
	}
}
