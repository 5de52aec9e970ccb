package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Check tells whether the target would accept trueline's messages, without
// posting one. With a token it calls auth.test and reads the token's scopes
// (chat:write is needed); with an incoming webhook it posts an empty
// payload, which Slack refuses with 400 for a live webhook (nothing is
// shown to anyone) and with 403, 404 or 410 for a revoked or unknown one.
func (s *Slack) Check(ctx context.Context) (string, error) {
	got, err := s.check(ctx)
	return got, s.redact(err)
}

func (s *Slack) check(ctx context.Context) (string, error) {
	if s.WebhookURL != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.WebhookURL, bytes.NewReader([]byte("{}")))
		if err != nil {
			return "", fmt.Errorf("slack %s: webhook URL: %w", s.Name, err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.client().Do(req)
		if err != nil {
			return "", fmt.Errorf("slack %s: %w", s.Name, err)
		}
		defer func() { _ = resp.Body.Close() }() // read below; nothing to report
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		switch {
		case resp.StatusCode == http.StatusBadRequest:
			return "incoming webhook answers (an empty test message was refused, as it should be)", nil
		case resp.StatusCode < 300:
			return "incoming webhook accepted a message", nil
		}
		return "", fmt.Errorf("slack %s: the webhook answered %d %s; fix: create a new incoming webhook for the channel and put its URL where webhook_url_env or webhook_url_file points",
			s.Name, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if s.Token == "" || s.Channel == "" {
		return "", fmt.Errorf("slack %s: neither a webhook nor a token and channel; fix: set webhook_url_env, or token_env and channel", s.Name)
	}
	base := s.APIURL
	if base == "" {
		base = "https://slack.com/api/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/auth.test", nil)
	if err != nil {
		return "", fmt.Errorf("slack %s: %w", s.Name, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := s.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("slack %s: auth.test: %w", s.Name, err)
	}
	defer func() { _ = resp.Body.Close() }() // read below; nothing to report
	var out struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
		User  string `json:"user"`
		Team  string `json:"team"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out); err != nil {
		return "", fmt.Errorf("slack %s: auth.test answered %d, not Slack's JSON: %w", s.Name, resp.StatusCode, err)
	}
	if !out.OK {
		return "", fmt.Errorf("slack %s: auth.test: %s; fix: use a bot token (xoxb-...) of an installed app", s.Name, out.Error)
	}
	if scopes := resp.Header.Get("X-OAuth-Scopes"); scopes != "" && !hasScope(scopes, "chat:write") {
		return "", fmt.Errorf("slack %s: the token of %s has scopes %s, without chat:write; fix: add the chat:write scope to the app and reinstall it", s.Name, out.User, scopes)
	}
	return fmt.Sprintf("bot %s in %s, posting to %s", out.User, out.Team, s.Channel), nil
}

func hasScope(list, scope string) bool {
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == scope {
			return true
		}
	}
	return false
}
