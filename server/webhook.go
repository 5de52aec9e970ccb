package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// MaxWebhookBody bounds a webhook delivery; forges send far less for a push.
const MaxWebhookBody = 5 << 20

// Hooks is what the webhook endpoints need from the daemon.
type Hooks interface {
	// WebhookSecret returns the forge kind and secret configured for a
	// repository; ok is false for an unknown repository.
	WebhookSecret(repo string) (forge string, secret []byte, ok bool)
	// Pushed tells the daemon that branch of repo moved; it fetches at once.
	// It reports whether the push concerns the repository's branch.
	Pushed(repo, branch, after string) (accepted bool, reason string)
}

// WebhookResult counts deliveries by outcome, for metrics.
type WebhookResult string

const (
	HookAccepted  WebhookResult = "accepted"
	HookIgnored   WebhookResult = "ignored"
	HookRejected  WebhookResult = "rejected"
	HookMalformed WebhookResult = "malformed"
	HookFailed    WebhookResult = "failed" // the daemon could not take a valid delivery
)

// webhookResults are every result a delivery can have: the values of the
// metric's result label, all present from the start.
var webhookResults = []WebhookResult{HookAccepted, HookIgnored, HookRejected, HookMalformed, HookFailed}

// webhookForges are the forges a webhook path may name, and so the only
// values of the metric's forge label.
var webhookForges = []string{"github", "gitlab", "gitea"}

// handleWebhook serves POST /hooks/{forge}/{repo}.
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	forge, repo := r.PathValue("forge"), r.PathValue("repo")
	var (
		res  WebhookResult
		code int
		msg  string
	)
	kind, secret, ok := s.hooks.WebhookSecret(repo)
	switch {
	case !slices.Contains(webhookForges, forge):
		res, code, msg = HookRejected, http.StatusNotFound, fmt.Sprintf("unknown forge %q: use github, gitlab or gitea", forge)
	case !ok:
		res, code, msg = HookRejected, http.StatusNotFound, fmt.Sprintf("no repository %q is configured", repo)
	default:
		// Only a known forge and a configured repository are counted: paths
		// anyone can make up must not grow the metric's series.
		res, code, msg = s.webhook(w, r, forge, repo, kind, secret)
		s.observeWebhook(forge, res)
	}
	s.log.Info("webhook", "forge", forge, "repository", repo, "result", res, "status", code, "message", msg)
	writeJSON(w, code, map[string]string{"result": string(res), "message": msg})
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request, forge, repo, kind string, secret []byte) (WebhookResult, int, string) {
	if kind != forge && kind != "none" {
		return HookRejected, http.StatusNotFound, fmt.Sprintf("repository %q is configured for %s, not %s", repo, kind, forge)
	}
	if len(secret) == 0 {
		return HookRejected, http.StatusUnauthorized, fmt.Sprintf("repository %q has no webhook secret; set webhook_secret_env or webhook_secret_file", repo)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return HookMalformed, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", MaxWebhookBody)
		}
		return HookMalformed, http.StatusBadRequest, "cannot read body"
	}

	var event string
	switch forge {
	case "github":
		event = r.Header.Get("X-GitHub-Event")
		if !validHMAC(secret, body, strings.TrimPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")) ||
			!strings.HasPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=") {
			return HookRejected, http.StatusUnauthorized, "X-Hub-Signature-256 does not match the body and the webhook secret"
		}
	case "gitea":
		event = r.Header.Get("X-Gitea-Event")
		if event == "" {
			event = r.Header.Get("X-Gogs-Event")
		}
		if !validHMAC(secret, body, r.Header.Get("X-Gitea-Signature")) {
			return HookRejected, http.StatusUnauthorized, "X-Gitea-Signature does not match the body and the webhook secret"
		}
	case "gitlab":
		event = r.Header.Get("X-Gitlab-Event")
		token := r.Header.Get("X-Gitlab-Token")
		if subtle.ConstantTimeCompare([]byte(token), secret) != 1 {
			return HookRejected, http.StatusUnauthorized, "X-Gitlab-Token does not match the webhook secret"
		}
		if event == "Push Hook" {
			event = "push"
		}
	}
	if pullRequestEvent(forge, event) {
		return s.pullRequestWebhook(r.Context(), forge, repo, event, body)
	}
	if event != "push" {
		return HookIgnored, http.StatusAccepted, fmt.Sprintf("event %q ignored; trueline acts on push", event)
	}
	var push struct {
		Ref   string `json:"ref"`
		After string `json:"after"`
	}
	if err := json.Unmarshal(body, &push); err != nil || push.Ref == "" {
		return HookMalformed, http.StatusBadRequest, "push payload without a ref"
	}
	branch, ok := strings.CutPrefix(push.Ref, "refs/heads/")
	if !ok {
		return HookIgnored, http.StatusAccepted, fmt.Sprintf("ref %s is not a branch", push.Ref)
	}
	accepted, reason := s.hooks.Pushed(repo, branch, push.After)
	if !accepted {
		return HookIgnored, http.StatusAccepted, reason
	}
	return HookAccepted, http.StatusAccepted, reason
}

// validHMAC compares a hex HMAC-SHA256 signature in constant time.
func validHMAC(secret, body []byte, sigHex string) bool {
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}
