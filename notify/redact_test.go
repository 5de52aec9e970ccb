package notify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// A webhook URL is the credential: no error Send returns or logs quotes it,
// and a Slack that never answers costs at most the timeout per attempt.
func TestSlackErrorsNameNoSecretAndTimeOut(t *testing.T) {
	const secretPath = "/services/T0000/B0000/XXXXwebhookSECRETXXXX"
	const token = "xoxb-bot-token-SECRET"
	release := make(chan struct{})
	defer close(release)
	hang := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the server notices the client leave
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
	for _, tc := range []struct {
		name     string
		handler  http.HandlerFunc
		webhook  bool
		deadline bool // the error must be a deadline
	}{
		{"webhook answers 500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, true, false},
		{"webhook drops the connection", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}, true, false},
		{"webhook never answers", hang, true, true},
		{"bot token, never answers", hang, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var paths []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				paths = append(paths, r.URL.Path)
				mu.Unlock()
				tc.handler(w, r)
			}))
			defer srv.Close()
			var logs bytes.Buffer
			s := &Slack{Name: "infra", Timeout: 200 * time.Millisecond, MaxAttempts: 2,
				Sleep:  func(context.Context, time.Duration) error { return nil },
				Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			if tc.webhook {
				s.WebhookURL = srv.URL + secretPath
			} else {
				s.Token, s.Channel, s.APIURL = token, "#infra", srv.URL+"/api/"
			}
			start := time.Now()
			err := s.Send(context.Background(), event(DriftFound))
			took := time.Since(start)
			if err == nil {
				t.Fatal("Send succeeded")
			}
			mu.Lock()
			if len(paths) == 0 || tc.webhook && paths[0] != secretPath {
				t.Errorf("requests went to %v", paths)
			}
			mu.Unlock()
			for _, text := range []string{err.Error(), logs.String()} {
				for _, secret := range []string{secretPath, "XXXXwebhookSECRETXXXX", s.WebhookURL, token} {
					if secret != "" && strings.Contains(text, secret) {
						t.Errorf("%q names the secret %q", text, secret)
					}
				}
			}
			if tc.deadline {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err = %v, want a deadline", err)
				}
				if took > 2*time.Second {
					t.Errorf("two attempts took %v with a 200ms timeout", took)
				}
			}
		})
	}
}
