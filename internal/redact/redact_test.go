package redact

import (
	"context"
	"errors"
	"fmt"
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
