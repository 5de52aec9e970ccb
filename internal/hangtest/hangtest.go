// Package hangtest is an HTTP server for tests that never answers: it reads
// each request and then waits until the client gives up, so a test can
// prove that a call has a deadline.
package hangtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Start starts the server; it is closed when the test ends.
func Start(t testing.TB) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leave
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	// Release hanging handlers first: Close waits for them.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv
}
