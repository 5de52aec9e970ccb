package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trueline/trueline/drift"
)

// slackServer stands in for Slack: it checks each request the way Slack
// does and records what it accepted.
type slackServer struct {
	t        *testing.T
	mu       sync.Mutex
	token    string
	fail     []int // status codes to answer first, in order
	payloads []string
	calls    []url.Values // API calls, with "method" set
	nextTS   int
}

func (s *slackServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method != http.MethodPost {
		s.t.Errorf("%s %s: Slack takes POST", r.Method, r.URL.Path)
	}
	body, _ := io.ReadAll(r.Body)
	if len(s.fail) > 0 {
		code := s.fail[0]
		s.fail = s.fail[1:]
		if code == 429 {
			w.Header().Set("Retry-After", "3")
		}
		w.WriteHeader(code)
		return
	}
	switch r.URL.Path {
	case "/webhook":
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			s.t.Errorf("webhook Content-Type = %q", ct)
		}
		checkBlocksJSON(s.t, body)
		s.payloads = append(s.payloads, string(body))
		w.Write([]byte("ok"))
	case "/api/chat.postMessage", "/api/chat.update":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			s.t.Errorf("%s: body is not form-encoded: %v", r.URL.Path, err)
		}
		// Slack takes the token as a bearer header or a form field.
		if r.Header.Get("Authorization") != "Bearer "+s.token && form.Get("token") != s.token {
			json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		form.Del("token") // the credential itself; the content is what must hold no secret
		if form.Get("channel") == "" {
			json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "channel_not_found"})
			return
		}
		checkBlocksJSON(s.t, []byte(`{"blocks":`+form.Get("blocks")+`}`))
		form.Set("method", strings.TrimPrefix(r.URL.Path, "/api/"))
		s.calls = append(s.calls, form)
		s.payloads = append(s.payloads, form.Encode())
		ts := form.Get("ts")
		if ts == "" {
			s.nextTS++
			ts = fmt.Sprintf("1700000000.%06d", s.nextTS)
		}
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C0INFRA", "ts": ts})
	default:
		w.WriteHeader(404)
	}
}

// checkBlocksJSON applies Block Kit's limits that Slack enforces.
func checkBlocksJSON(t *testing.T, body []byte) {
	var msg struct {
		Blocks []map[string]any `json:"blocks"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || len(msg.Blocks) == 0 || len(msg.Blocks) > 50 {
		t.Errorf("blocks missing or invalid: %v %s", err, body)
		return
	}
	for _, b := range msg.Blocks {
		switch b["type"] {
		case "header":
			txt := b["text"].(map[string]any)
			if txt["type"] != "plain_text" || len(txt["text"].(string)) > 150 {
				t.Errorf("bad header block: %v", b)
			}
		case "section":
			if f, ok := b["fields"].([]any); ok && len(f) > 10 {
				t.Errorf("section with %d fields", len(f))
			}
			if txt, ok := b["text"].(map[string]any); ok && len(txt["text"].(string)) > 3000 {
				t.Errorf("section text over 3000 characters")
			}
		case "context":
		default:
			t.Errorf("unexpected block type %v", b["type"])
		}
	}
}

type memThreads struct {
	mu sync.Mutex
	m  map[string][2]string
}

func (m *memThreads) Thread(_ context.Context, key string) (string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.m[key]
	return v[0], v[1], nil
}
func (m *memThreads) SetThread(_ context.Context, key, ch, ts string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[key] = [2]string{ch, ts}
	return nil
}
func (m *memThreads) DeleteThread(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, key)
	return nil
}

func event(kind Kind) Event {
	return Event{Kind: kind, Repository: "infra", Stack: "stacks/web", Workspace: "default", Commit: "0123456789abcdef", Verdict: "drifted",
		Result: drift.Result{Verdict: drift.Drifted, Drift: []drift.Finding{{Address: "sandbox_autoscaling_group.web", Action: "update",
			Attributes: []drift.Attribute{{Path: "min_size", Git: 3.0, Live: 4.0}, {Path: "password", Git: drift.Masked, Live: drift.Masked}}}}},
		Action: "report", Reason: "drift: on_drift = report", URL: "http://trueline/runs/7"}
}

func newSlack(t *testing.T, srv *slackServer, webhook bool) (*Slack, *[]time.Duration) {
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	var slept []time.Duration
	s := &Slack{Name: "infra", Secrets: []string{"xoxb-secret-token", "hunter2-db-pass"},
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }}
	if webhook {
		s.WebhookURL = ts.URL + "/webhook"
	} else {
		s.Token, s.Channel, s.APIURL = srv.token, "#infra", ts.URL+"/api/"
		s.Threads = &memThreads{m: map[string][2]string{}}
	}
	return s, &slept
}

func TestWebhookRetries(t *testing.T) {
	srv := &slackServer{t: t, fail: []int{429, 503}}
	s, slept := newSlack(t, srv, true)
	if err := s.Send(context.Background(), event(DriftFound)); err != nil {
		t.Fatal(err)
	}
	if len(srv.payloads) != 1 {
		t.Fatalf("delivered %d payloads, want 1", len(srv.payloads))
	}
	if fmt.Sprint(*slept) != "[3s 500ms]" {
		t.Errorf("waits = %v, want Retry-After 3s, then a 500ms backoff", *slept)
	}
	p := srv.payloads[0]
	for _, want := range []string{"Drift in stacks/web (default)", "min_size: git `3` → live `4`", "password: git `(sensitive)`", "http://trueline/runs/7"} {
		if !strings.Contains(p, want) {
			t.Errorf("payload lacks %q:\n%s", want, p)
		}
	}
}

func TestGivesUpAndDoesNotRetryClientErrors(t *testing.T) {
	srv := &slackServer{t: t, fail: []int{500, 500, 500, 500, 500, 500}}
	s, slept := newSlack(t, srv, true)
	if err := s.Send(context.Background(), event(DriftFound)); err == nil || !strings.Contains(err.Error(), "giving up after 5 attempts") {
		t.Errorf("err = %v", err)
	}
	if len(*slept) != 4 || (*slept)[3] != 4*time.Second {
		t.Errorf("backoff = %v", *slept)
	}
	srv2 := &slackServer{t: t, fail: []int{400}}
	s2, slept2 := newSlack(t, srv2, true)
	if err := s2.Send(context.Background(), event(DriftFound)); err == nil || len(*slept2) != 0 {
		t.Errorf("a 400 was retried: %v %v", err, *slept2)
	}
}

func TestThreadPerIncident(t *testing.T) {
	srv := &slackServer{t: t, token: "xoxb-secret-token"}
	s, _ := newSlack(t, srv, false)
	ctx := context.Background()
	esc := event(Escalated)
	esc.Error = "apply failed: token xoxb-secret-token rejected, db password hunter2-db-pass"
	for _, e := range []Event{event(DriftFound), esc, event(Cleared), event(DriftFound)} {
		if err := s.Send(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, c := range srv.calls {
		got = append(got, fmt.Sprintf("%s thread=%q ts=%q", c.Get("method"), c.Get("thread_ts"), c.Get("ts")))
	}
	want := []string{
		`chat.postMessage thread="" ts=""`,                  // the incident opens
		`chat.postMessage thread="1700000000.000001" ts=""`, // escalation: a reply
		`chat.update thread="" ts="1700000000.000001"`,      // and the first message updated
		`chat.postMessage thread="1700000000.000001" ts=""`, // cleared: a reply
		`chat.update thread="" ts="1700000000.000001"`,      // and the update
		`chat.postMessage thread="" ts=""`,                  // a new incident: a new thread
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range srv.payloads {
		for _, secret := range []string{"xoxb-secret-token", "hunter2-db-pass"} {
			if strings.Contains(p, secret) {
				t.Errorf("a payload contains the secret %q", secret)
			}
		}
	}
	// A cleared event without an open thread sends nothing.
	n := len(srv.calls)
	e := event(Cleared)
	e.Stack = "stacks/other"
	s.Send(ctx, e)
	if len(srv.calls) != n {
		t.Error("a cleared event with no incident was sent")
	}
}

type stuck struct{ started chan struct{} }

func (s stuck) Send(ctx context.Context, e Event) error {
	s.started <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func TestDispatcherNeverBlocks(t *testing.T) {
	st := stuck{started: make(chan struct{}, 10)}
	d := NewDispatcher(map[string]Sender{"slack.infra": st}, 4, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go d.Run(ctx)
	start := time.Now()
	for i := 0; i < 100; i++ {
		d.Notify([]string{"slack.infra"}, event(DriftFound))
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Errorf("Notify blocked for %v while Slack hangs", time.Since(start))
	}
	<-st.started
	cancel()
}
