package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// fuzzHooks is a repository "infra" configured for one forge.
type fuzzHooks struct {
	forge, secret string
	pushes        []fuzzPush
}

type fuzzPush struct{ branch, after string }

func (h *fuzzHooks) WebhookSecret(repo string) (string, []byte, bool) {
	if repo != "infra" {
		return "", nil, false
	}
	return h.forge, []byte(h.secret), true
}

func (h *fuzzHooks) Pushed(repo, branch, after string) (bool, string) {
	h.pushes = append(h.pushes, fuzzPush{branch, after})
	return branch == "main", "branch " + branch
}

// FuzzWebhook delivers webhook payloads to the server. Deliveries are
// signed as the forge would (signed) or carry the fuzzed signature header
// (sig). It must not panic, must answer JSON with a known result, must
// never act on a delivery whose signature does not match, and must act
// on exactly the branch and commit the payload names.
func FuzzWebhook(f *testing.F) {
	const push = `{"ref":"refs/heads/main","after":"abc123","repository":{"full_name":"acme/infra"}}`
	seeds := []struct {
		forge  uint8
		event  string
		sig    string
		body   string
		signed bool
	}{
		{0, "push", "", push, true},
		{1, "push", "", push, true},
		{2, "Push Hook", "", push, true},
		{0, "ping", "", `{"zen":"Keep it logically awesome."}`, true},
		{0, "push", "", `{"ref":"refs/heads/dev","after":"def456"}`, true},
		{2, "Push Hook", "", `{"ref":"refs/tags/v1"}`, true},
		{2, "Push Hook", "", `not json`, true},
		{1, "push", "", `{"ref":"","after":"x"}`, true},
		{0, "push", "sha256=00", push, false},
		{1, "push", strings.Repeat("ab", 32), push, false},
		{2, "Push Hook", "s3cre", push, false},
		{3, "push", "", push, true},
	}
	for _, s := range seeds {
		f.Add(s.forge, s.event, s.sig, []byte(s.body), s.signed)
	}
	forges := []string{"github", "gitea", "gitlab", "bitbucket"}
	const secret = "fuzz-webhook-secret"
	f.Fuzz(func(t *testing.T, forgeIndex uint8, event, sig string, body []byte, signed bool) {
		forge := forges[int(forgeIndex)%len(forges)]
		h := &fuzzHooks{forge: forge, secret: secret}
		srv := New(Options{Hooks: h})

		rec, answer, sig, want := deliverAs(t, srv, forge, event, secret, body, signed, sig)
		switch rec.Code {
		case http.StatusAccepted, http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		default:
			t.Errorf("status %d", rec.Code)
		}
		if strings.Contains(rec.Body.String(), secret) {
			t.Errorf("the answer shows the webhook secret: %s", rec.Body)
		}
		if forge == "bitbucket" {
			if rec.Code != http.StatusNotFound || len(h.pushes) > 0 {
				t.Errorf("unknown forge: status %d, %d pushes", rec.Code, len(h.pushes))
			}
			return
		}
		// Hex compares case-insensitively; anything else that differs must
		// be refused before the payload is read.
		authentic := strings.EqualFold(sig, want)
		if !authentic {
			if rec.Code != http.StatusUnauthorized || len(h.pushes) > 0 {
				t.Errorf("wrong signature %q: status %d, %d pushes", sig, rec.Code, len(h.pushes))
			}
			return
		}
		if len(h.pushes) > 1 {
			t.Fatalf("one delivery, %d pushes", len(h.pushes))
		}
		if len(h.pushes) == 1 {
			var p struct{ Ref, After string }
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("acted on a payload that is not JSON: %v", err)
			}
			got := h.pushes[0]
			if "refs/heads/"+got.branch != p.Ref || got.after != p.After {
				t.Errorf("payload ref %q after %q became branch %q after %q", p.Ref, p.After, got.branch, got.after)
			}
			if isPush := event == "push" || (forge == "gitlab" && event == "Push Hook"); !isPush {
				t.Errorf("acted on event %q", event)
			}
			if wantRes := map[bool]WebhookResult{true: HookAccepted, false: HookIgnored}[got.branch == "main"]; WebhookResult(answer["result"]) != wantRes || rec.Code != http.StatusAccepted {
				t.Errorf("push of %q: %d %s", got.branch, rec.Code, answer["result"])
			}
		}
	})
}

// deliverAs posts body to the repository "infra" as forge would send event:
// signed with secret when signed, else with sig. It returns the answer
// (checked to be JSON with a known result), the signature sent and the one
// the forge would have sent.
func deliverAs(t *testing.T, srv http.Handler, forge, event, secret string, body []byte, signed bool, sig string) (*httptest.ResponseRecorder, map[string]string, string, string) {
	t.Helper()
	sum := sign(secret, string(body))
	var sigHeader, eventHeader, want string
	switch forge {
	case "github":
		sigHeader, eventHeader, want = "X-Hub-Signature-256", "X-GitHub-Event", "sha256="+sum
	case "gitea":
		sigHeader, eventHeader, want = "X-Gitea-Signature", "X-Gitea-Event", sum
	default:
		sigHeader, eventHeader, want = "X-Gitlab-Token", "X-Gitlab-Event", secret
	}
	if signed {
		sig = want
	}
	req := httptest.NewRequest("POST", "/hooks/"+forge+"/infra", bytes.NewReader(body))
	req.Header.Set(eventHeader, event)
	req.Header.Set(sigHeader, sig)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)

	var answer map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatalf("answer is not JSON: %v: %q", err, rec.Body)
	}
	if !slices.Contains(webhookResults, WebhookResult(answer["result"])) {
		t.Errorf("unknown result %q", answer["result"])
	}
	return rec, answer, sig, want
}
