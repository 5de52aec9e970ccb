package redact

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/trueline/trueline/drift"
)

func TestError(t *testing.T) {
	hook := "https://hooks.slack.com/services/T0/B0/XXXXsecret"
	secrets := drift.SecretsFrom(append(URL(hook), "ghp_token1234")...)
	for _, tc := range []struct {
		name     string
		err      error
		want     string
		deadline bool
	}{
		{"nil", nil, "", false},
		{"nothing secret", errors.New("slack server error: 500"), "slack server error: 500", false},
		{"the URL as net/http quotes it",
			fmt.Errorf("failed to post webhook: %w", &url.Error{Op: "Post", URL: hook, Err: context.DeadlineExceeded}),
			`failed to post webhook: Post "(sensitive)": context deadline exceeded`, true},
		{"the path alone", fmt.Errorf("404 for /services/T0/B0/XXXXsecret"), "404 for (sensitive)", false},
		{"a token", fmt.Errorf("github: GET https://x/?access_token=ghp_token1234: %w", http.ErrHandlerTimeout),
			"github: GET https://x/?access_token=(sensitive): http: Handler timeout", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Error(tc.err, secrets)
			if tc.err == nil {
				if got != nil {
					t.Fatalf("Error(nil) = %v", got)
				}
				return
			}
			if got.Error() != tc.want {
				t.Errorf("Error() = %q, want %q", got.Error(), tc.want)
			}
			if strings.Contains(got.Error(), "XXXXsecret") {
				t.Errorf("%q names the secret", got)
			}
			if errors.Is(got, context.DeadlineExceeded) != tc.deadline {
				t.Errorf("errors.Is(deadline) = %v, want %v", !tc.deadline, tc.deadline)
			}
		})
	}
}

func TestHandlerScrubsEveryLine(t *testing.T) {
	var b strings.Builder
	secrets := drift.SecretsFrom("tok-SECRET-123", "https://hooks.example/services/T1/B2/xyz")
	log := slog.New(Handler(slog.NewTextHandler(&b, nil), secrets)).With("token", "tok-SECRET-123")
	log.Error("call failed with tok-SECRET-123", "error", errors.New(`Post "https://hooks.example/services/T1/B2/xyz": refused`),
		slog.Group("g", "url", "https://hooks.example/services/T1/B2/xyz"))
	if strings.Contains(b.String(), "SECRET") || strings.Contains(b.String(), "xyz") {
		t.Errorf("the log holds a secret:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "call failed") {
		t.Errorf("the log lost its message:\n%s", b.String())
	}
}
