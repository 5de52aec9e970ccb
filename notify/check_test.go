package notify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	const token = "xoxb-check-token"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("%s %s: Slack takes POST", r.Method, r.URL.Path)
		}
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/services/live":
			// A live webhook refuses a payload without text or blocks.
			if string(body) != "{}" {
				t.Errorf("the check posted %q: it must post nothing anyone sees", body)
			}
			http.Error(w, "invalid_payload", http.StatusBadRequest)
		case "/services/revoked":
			http.Error(w, "invalid_token", http.StatusForbidden)
		case "/api/auth.test", "/narrow/auth.test":
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.Write([]byte(`{"ok":false,"error":"invalid_auth"}`))
				return
			}
			if strings.HasPrefix(r.URL.Path, "/narrow") {
				w.Header().Set("X-OAuth-Scopes", "channels:read,users:read")
			} else {
				w.Header().Set("X-OAuth-Scopes", "chat:write,channels:read")
			}
			w.Write([]byte(`{"ok":true,"user":"trueline","team":"Acme"}`))
		default:
			t.Errorf("unexpected %s", r.URL.Path)
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	tests := []struct {
		name      string
		s         Slack
		want, bad string
	}{
		{name: "live webhook", s: Slack{WebhookURL: srv.URL + "/services/live"}, want: "incoming webhook answers"},
		{name: "revoked webhook", s: Slack{WebhookURL: srv.URL + "/services/revoked"}, bad: "answered 403 invalid_token; fix: create a new incoming webhook"},
		{name: "token", s: Slack{Token: token, Channel: "#infra", APIURL: srv.URL + "/api/"}, want: "bot trueline in Acme, posting to #infra"},
		{name: "wrong token", s: Slack{Token: "xoxb-wrong", Channel: "#infra", APIURL: srv.URL + "/api/"}, bad: "auth.test: invalid_auth; fix:"},
		{name: "token without chat:write", s: Slack{Token: token, Channel: "#infra", APIURL: srv.URL + "/narrow/"}, bad: "without chat:write"},
		{name: "nothing configured", s: Slack{}, bad: "neither a webhook nor a token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Name = "infra"
			got, err := tc.s.Check(context.Background())
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("err = %v, want %q", err, tc.bad)
				}
				if strings.Contains(err.Error(), "/services/") || strings.Contains(err.Error(), "xoxb-wrong") {
					t.Errorf("the error shows a secret: %v", err)
				}
				return
			}
			if err != nil || !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
