package forge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/trueline/trueline/internal/hangtest"
)

// forgeCalls are every call a forge driver makes, with valid arguments:
// pull requests, reviews and the access check.
var forgeCalls = []struct {
	name string
	do   func(Forge) error
}{
	{"find", func(f Forge) error { _, err := f.FindOpen(context.Background(), "trueline/x/default"); return err }},
	{"create", func(f Forge) error {
		_, err := f.Create(context.Background(), NewPR{Title: "t", Body: "b", Head: "h", Base: "main"})
		return err
	}},
	{"update", func(f Forge) error { return f.Update(context.Background(), 1, "t", "b") }},
	{"close", func(f Forge) error { return f.Close(context.Background(), 1, "c") }},
	{"access", func(f Forge) error { _, err := Access(context.Background(), f); return err }},
	{"open pull requests", review(func(r Reviews) error { _, err := r.OpenPRs(context.Background()); return err })},
	{"read a pull request", review(func(r Reviews) error { _, err := r.PullRequest(context.Background(), 7); return err })},
	{"comment", review(func(r Reviews) error { _, err := r.UpsertComment(context.Background(), 7, marker, "plan"); return err })},
	{"status", review(func(r Reviews) error {
		return r.SetStatus(context.Background(), headSHA, CommitStatus{State: StatusPending})
	})},
	{"can write", review(func(r Reviews) error { _, err := r.CanWrite(context.Background(), "alice"); return err })},
}

func review(do func(Reviews) error) func(Forge) error {
	return func(f Forge) error {
		r, err := ReviewsOf(f)
		if err != nil {
			return err
		}
		return do(r)
	}
}

// A forge that never answers costs one timeout per call, not forever (nor
// GitLab's retries times the timeout).
func TestCallsHaveDeadlines(t *testing.T) {
	srv := hangtest.Start(t)
	const bound = 200 * time.Millisecond
	for _, kind := range []string{"github", "gitlab", "gitea"} {
		for _, call := range forgeCalls {
			t.Run(kind+"/"+call.name, func(t *testing.T) {
				f, err := New(Options{Kind: kind, URL: "https://forge.example/acme/infra.git", APIURL: srv.URL + "/api/", Token: "tok-SECRET", Timeout: bound})
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				err = call.do(f)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err = %v, want a deadline", err)
				}
				if took := time.Since(start); took > 10*bound {
					t.Errorf("took %v with a %v timeout", took, bound)
				}
			})
		}
	}
}

// Errors name no token, even when the server echoes it back.
func TestErrorsNameNoToken(t *testing.T) {
	const token = "tok-SECRET-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"message":"bad credentials: `+token+`","error":"token `+token+` revoked"}`)
	}))
	defer srv.Close()
	for _, kind := range []string{"github", "gitlab", "gitea"} {
		for _, call := range forgeCalls {
			t.Run(kind+"/"+call.name, func(t *testing.T) {
				f, err := New(Options{Kind: kind, URL: "https://git:" + token + "@forge.example/acme/infra.git", APIURL: srv.URL + "/api/", Token: token})
				if err != nil {
					t.Fatal(err)
				}
				err = call.do(f)
				if err == nil {
					t.Fatal("a 401 succeeded")
				}
				if strings.Contains(err.Error(), token) {
					t.Errorf("error names the token: %v", err)
				}
			})
		}
	}
}

func TestFitBody(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		max  int
		cut  bool
	}{
		{"short", "hello", 65536, false},
		{"exactly the limit", strings.Repeat("a", 65536), 65536, false},
		{"one over", strings.Repeat("a", 65537), 65536, true},
		{"multibyte, counted in characters", strings.Repeat("ü", 65536), 65536, false},
		{"multibyte, over", strings.Repeat("ü", 70000), 65536, true},
		{"gitlab", strings.Repeat("b", 1000001), 1000000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fitBody(tc.body, tc.max)
			if n := utf8.RuneCountInString(got); n > tc.max {
				t.Errorf("%d characters, limit %d", n, tc.max)
			}
			if !utf8.ValidString(got) {
				t.Error("cut inside a character")
			}
			if cut := got != tc.body; cut != tc.cut || cut && !strings.Contains(got, "cut at the forge's limit") {
				t.Errorf("cut = %v, want %v", cut, tc.cut)
			}
		})
	}
}

// What reaches each forge fits its limit.
func TestBodiesFitEachForge(t *testing.T) {
	for _, kind := range []string{"github", "gitlab", "gitea"} {
		t.Run(kind, func(t *testing.T) {
			var got []int
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var body struct{ Body, Description string }
				json.NewDecoder(r.Body).Decode(&body)
				got = append(got, utf8.RuneCountInString(body.Body+body.Description))
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"number":1,"iid":1,"index":1}`)
			}))
			defer srv.Close()
			f, err := New(Options{Kind: kind, URL: "https://forge.example/acme/infra.git", APIURL: srv.URL + "/api/", Token: "t0ken"})
			if err != nil {
				t.Fatal(err)
			}
			huge := strings.Repeat("ü", 1200000)
			if _, err := f.Create(context.Background(), NewPR{Title: "t", Body: huge, Head: "h", Base: "main"}); err != nil {
				t.Fatal(err)
			}
			if err := f.Update(context.Background(), 1, "t", huge); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 {
				t.Fatalf("requests: %v", got)
			}
			for _, n := range got {
				if n > MaxBody(kind) || n < MaxBody(kind)-100 {
					t.Errorf("a body of %d characters reached %s (limit %d)", n, kind, MaxBody(kind))
				}
			}
		})
	}
}
