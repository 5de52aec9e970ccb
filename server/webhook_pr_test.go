package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// prHooks is a daemon that takes pull request events.
type prHooks struct {
	hooks
	events []PullRequestEvent
	err    error
}

func (h *prHooks) PullRequestEvent(_ context.Context, ev PullRequestEvent) error {
	h.events = append(h.events, ev)
	return h.err
}

// fixture reads a delivery from testdata/webhooks (the Gitea ones as Gitea
// 1.26 sent them), edited by patch when given.
func fixture(t *testing.T, name string, patch func(map[string]any)) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "webhooks", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if patch == nil {
		return string(b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	patch(m)
	b, _ = json.Marshal(m)
	return string(b)
}

// at returns the object at a path of keys in a decoded payload.
func at(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = m[k].(map[string]any)
	}
	return m
}

// deliver sends a signed delivery of event to /hooks/{forge}/infra.
func deliver(t *testing.T, s *Server, forge, event, body, secret string) *httptest.ResponseRecorder {
	t.Helper()
	rec, _, _, _ := deliverAs(t, s, forge, event, secret, []byte(body), true, "")
	return rec
}

const (
	ghSHA    = "3f786850e387550fdab836ed7e6dc881de23001b"
	glSHA    = "1b6453892473a467d07372d45eb05abc2031647a"
	giteaSHA = "556d54c35f87234d70eacd328cffde80f62ed632"
)

func TestPullRequestWebhooks(t *testing.T) {
	tests := []struct {
		name, forge, event, fixture string
		patch                       func(map[string]any)
		code                        int
		result                      WebhookResult
		want                        *PullRequestEvent // Forge and Repo are filled in
	}{
		// GitHub
		{name: "github opened", forge: "github", event: "pull_request", fixture: "github_pull_request_opened", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 42, Action: PullOpened, HeadSHA: ghSHA, HeadBranch: "web-asg", Base: "main", Author: "alice"}},
		{name: "github synchronize from a fork's main", forge: "github", event: "pull_request", fixture: "github_pull_request_synchronize_fork", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 43, Action: PullUpdated, HeadSHA: "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", HeadBranch: "main", Base: "main", Fork: true, Author: "mallory"}},
		{name: "github reopened", forge: "github", event: "pull_request", fixture: "github_pull_request_opened", code: 202, result: HookAccepted,
			patch: func(m map[string]any) { m["action"] = "reopened" },
			want:  &PullRequestEvent{Number: 42, Action: PullReopened, HeadSHA: ghSHA, HeadBranch: "web-asg", Base: "main", Author: "alice"}},
		{name: "github merged", forge: "github", event: "pull_request", fixture: "github_pull_request_closed_merged", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 42, Action: PullMerged, HeadSHA: ghSHA, HeadBranch: "web-asg", Base: "main", Author: "alice"}},
		{name: "github closed, the fork deleted", forge: "github", event: "pull_request", fixture: "github_pull_request_closed_deleted_fork", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 44, Action: PullClosed, HeadSHA: "0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33", HeadBranch: "patch-1", Base: "main", Fork: true, Author: "mallory"}},
		{name: "github labeled is ignored", forge: "github", event: "pull_request", fixture: "github_pull_request_labeled", code: 202, result: HookIgnored},
		{name: "github plan command", forge: "github", event: "issue_comment", fixture: "github_issue_comment_plan", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 42, Action: PullPlanCommand, Author: "alice", Commenter: "bob", Command: "/trueline plan stacks/web"}},
		{name: "github command on an issue is ignored", forge: "github", event: "issue_comment", fixture: "github_issue_comment_issue", code: 202, result: HookIgnored},
		{name: "github edited comment is ignored", forge: "github", event: "issue_comment", fixture: "github_issue_comment_plan", code: 202, result: HookIgnored,
			patch: func(m map[string]any) { m["action"] = "edited" }},
		{name: "github command not first is ignored", forge: "github", event: "issue_comment", fixture: "github_issue_comment_plan", code: 202, result: HookIgnored,
			patch: func(m map[string]any) { at(m, "comment")["body"] = "LGTM, then /trueline plan" }},
		{name: "github /trueline planet is no command", forge: "github", event: "issue_comment", fixture: "github_issue_comment_plan", code: 202, result: HookIgnored,
			patch: func(m map[string]any) { at(m, "comment")["body"] = "/trueline planet" }},
		{name: "github command cut to its limit", forge: "github", event: "issue_comment", fixture: "github_issue_comment_plan", code: 202, result: HookAccepted,
			patch: func(m map[string]any) { at(m, "comment")["body"] = "/trueline plan " + strings.Repeat("x", 70000) },
			want:  &PullRequestEvent{Number: 42, Action: PullPlanCommand, Author: "alice", Commenter: "bob", Command: "/trueline plan " + strings.Repeat("x", MaxCommand-15)}},
		{name: "github bot author", forge: "github", event: "pull_request", fixture: "github_pull_request_opened", code: 202, result: HookAccepted,
			patch: func(m map[string]any) { at(m, "pull_request", "user")["login"] = "dependabot[bot]" },
			want:  &PullRequestEvent{Number: 42, Action: PullOpened, HeadSHA: ghSHA, HeadBranch: "web-asg", Base: "main", Author: "dependabot[bot]"}},

		// Hostile or broken payloads, signed all the same.
		{name: "github short head sha", forge: "github", event: "pull_request", fixture: "github_pull_request_opened", code: 400, result: HookMalformed,
			patch: func(m map[string]any) { at(m, "pull_request", "head")["sha"] = "3f78685" }},
		{name: "github head branch with an option", forge: "github", event: "pull_request", fixture: "github_pull_request_opened", code: 400, result: HookMalformed,
			patch: func(m map[string]any) { at(m, "pull_request", "head")["ref"] = "--upload-pack=touch /tmp/x" }},
		{name: "github base with a range", forge: "github", event: "pull_request", fixture: "github_pull_request_opened", code: 400, result: HookMalformed,
			patch: func(m map[string]any) { at(m, "pull_request", "base")["ref"] = "main..evil" }},
		{name: "github commenter with a path", forge: "github", event: "issue_comment", fixture: "github_issue_comment_plan", code: 400, result: HookMalformed,
			patch: func(m map[string]any) { at(m, "comment", "user")["login"] = "../../admin" }},
		{name: "github number zero", forge: "github", event: "pull_request", fixture: "github_pull_request_opened", code: 400, result: HookMalformed,
			patch: func(m map[string]any) { at(m, "pull_request")["number"] = 0 }},
		{name: "github without the pull request", forge: "github", event: "pull_request", fixture: "github_pull_request_opened", code: 400, result: HookMalformed,
			patch: func(m map[string]any) { delete(m, "pull_request") }},
		{name: "github pull request of the wrong type", forge: "github", event: "pull_request", fixture: "github_pull_request_opened", code: 400, result: HookMalformed,
			patch: func(m map[string]any) { m["pull_request"] = "42" }},

		// GitLab
		{name: "gitlab open", forge: "gitlab", event: "Merge Request Hook", fixture: "gitlab_merge_request_open", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 12, Action: PullOpened, HeadSHA: glSHA, HeadBranch: "web-asg", Base: "main"}},
		{name: "gitlab new commits from a fork", forge: "gitlab", event: "Merge Request Hook", fixture: "gitlab_merge_request_update_commits", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 13, Action: PullUpdated, HeadSHA: "da39a3ee5e6b4b0d3255bfef95601890afd80709", HeadBranch: "web-asg", Base: "main", Fork: true}},
		{name: "gitlab new title is ignored", forge: "gitlab", event: "Merge Request Hook", fixture: "gitlab_merge_request_update_title", code: 202, result: HookIgnored},
		{name: "gitlab reopen", forge: "gitlab", event: "Merge Request Hook", fixture: "gitlab_merge_request_open", code: 202, result: HookAccepted,
			patch: func(m map[string]any) { at(m, "object_attributes")["action"] = "reopen" },
			want:  &PullRequestEvent{Number: 12, Action: PullReopened, HeadSHA: glSHA, HeadBranch: "web-asg", Base: "main"}},
		{name: "gitlab close", forge: "gitlab", event: "Merge Request Hook", fixture: "gitlab_merge_request_open", code: 202, result: HookAccepted,
			patch: func(m map[string]any) { at(m, "object_attributes")["action"] = "close" },
			want:  &PullRequestEvent{Number: 12, Action: PullClosed, HeadSHA: glSHA, HeadBranch: "web-asg", Base: "main"}},
		{name: "gitlab merge", forge: "gitlab", event: "Merge Request Hook", fixture: "gitlab_merge_request_merge", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 12, Action: PullMerged, HeadSHA: glSHA, HeadBranch: "web-asg", Base: "main"}},
		{name: "gitlab approved is ignored", forge: "gitlab", event: "Merge Request Hook", fixture: "gitlab_merge_request_open", code: 202, result: HookIgnored,
			patch: func(m map[string]any) { at(m, "object_attributes")["action"] = "approved" }},
		{name: "gitlab plan note", forge: "gitlab", event: "Note Hook", fixture: "gitlab_note_merge_request_plan", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 12, Action: PullPlanCommand, HeadSHA: glSHA, HeadBranch: "web-asg", Base: "main", Commenter: "bob", Command: "/trueline plan"}},
		{name: "gitlab note from a GitLab without note actions", forge: "gitlab", event: "Note Hook", fixture: "gitlab_note_merge_request_plan", code: 202, result: HookAccepted,
			patch: func(m map[string]any) { delete(at(m, "object_attributes"), "action") },
			want:  &PullRequestEvent{Number: 12, Action: PullPlanCommand, HeadSHA: glSHA, HeadBranch: "web-asg", Base: "main", Commenter: "bob", Command: "/trueline plan"}},
		{name: "gitlab edited note is ignored", forge: "gitlab", event: "Note Hook", fixture: "gitlab_note_merge_request_plan", code: 202, result: HookIgnored,
			patch: func(m map[string]any) { at(m, "object_attributes")["action"] = "update" }},
		{name: "gitlab note on an issue is ignored", forge: "gitlab", event: "Note Hook", fixture: "gitlab_note_merge_request_plan", code: 202, result: HookIgnored,
			patch: func(m map[string]any) {
				at(m, "object_attributes")["noteable_type"] = "Issue"
				delete(m, "merge_request")
			}},
		{name: "gitlab note without its merge request", forge: "gitlab", event: "Note Hook", fixture: "gitlab_note_merge_request_plan", code: 400, result: HookMalformed,
			patch: func(m map[string]any) { delete(m, "merge_request") }},
		{name: "gitlab merge request hook of another kind", forge: "gitlab", event: "Merge Request Hook", fixture: "gitlab_note_merge_request_plan", code: 400, result: HookMalformed},
		{name: "gitlab head sha in capitals", forge: "gitlab", event: "Merge Request Hook", fixture: "gitlab_merge_request_open", code: 400, result: HookMalformed,
			patch: func(m map[string]any) {
				at(m, "object_attributes", "last_commit")["id"] = strings.ToUpper(glSHA) + "/.."
			}},

		// Gitea, as Gitea 1.26 sent them.
		{name: "gitea opened", forge: "gitea", event: "pull_request", fixture: "gitea_pull_request_opened", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 1, Action: PullOpened, HeadSHA: "fb44ef8f4d30c55cf1bf2330c6538507b6466b66", HeadBranch: "change", Base: "main", Author: "alice"}},
		{name: "gitea synchronized", forge: "gitea", event: "pull_request", fixture: "gitea_pull_request_synchronized", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 1, Action: PullUpdated, HeadSHA: giteaSHA, HeadBranch: "change", Base: "main", Author: "alice"}},
		{name: "gitea closed", forge: "gitea", event: "pull_request", fixture: "gitea_pull_request_closed", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 1, Action: PullClosed, HeadSHA: giteaSHA, HeadBranch: "change", Base: "main", Author: "alice"}},
		{name: "gitea reopened", forge: "gitea", event: "pull_request", fixture: "gitea_pull_request_reopened", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 1, Action: PullReopened, HeadSHA: giteaSHA, HeadBranch: "change", Base: "main", Author: "alice"}},
		{name: "gitea merged", forge: "gitea", event: "pull_request", fixture: "gitea_pull_request_merged", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 1, Action: PullMerged, HeadSHA: giteaSHA, HeadBranch: "change", Base: "main", Author: "alice"}},
		{name: "gitea fork", forge: "gitea", event: "pull_request", fixture: "gitea_pull_request_opened_fork", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 2, Action: PullOpened, HeadSHA: "b5bc18a07bb601041967d57f2fd22cd176fdfb81", HeadBranch: "outside", Base: "main", Fork: true, Author: "bob"}},
		{name: "gitea plan comment", forge: "gitea", event: "issue_comment", fixture: "gitea_issue_comment_plan", code: 202, result: HookAccepted,
			want: &PullRequestEvent{Number: 1, Action: PullPlanCommand, HeadSHA: giteaSHA, HeadBranch: "change", Base: "main", Author: "alice", Commenter: "bob", Command: "/trueline plan"}},
		{name: "gitea comment on an issue is ignored", forge: "gitea", event: "issue_comment", fixture: "gitea_issue_comment_issue", code: 202, result: HookIgnored},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &prHooks{hooks: hooks{secret: "s3cret", forge: tc.forge}}
			rec := deliver(t, New(Options{Hooks: h}), tc.forge, tc.event, fixture(t, tc.fixture, tc.patch), "s3cret")
			var answer map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
				t.Fatalf("answer %q: %v", rec.Body, err)
			}
			if rec.Code != tc.code || WebhookResult(answer["result"]) != tc.result {
				t.Errorf("answer %d %s, want %d %s: %s", rec.Code, answer["result"], tc.code, tc.result, answer["message"])
			}
			var want []PullRequestEvent
			if tc.want != nil {
				w := *tc.want
				w.Forge, w.Repo = tc.forge, "infra"
				want = []PullRequestEvent{w}
			}
			if !reflect.DeepEqual(h.events, want) {
				t.Errorf("events\n%+v\nwant\n%+v", h.events, want)
			}
			if len(h.pushed) > 0 {
				t.Errorf("a pull request event pushed %v", h.pushed)
			}
		})
	}
}

// Pull request deliveries are verified as pushes are, and a daemon without
// pull request plans ignores them.
func TestPullRequestWebhookRefusals(t *testing.T) {
	opened := map[string]struct{ event, fixture string }{
		"github": {"pull_request", "github_pull_request_opened"},
		"gitea":  {"pull_request", "gitea_pull_request_opened"},
		"gitlab": {"Merge Request Hook", "gitlab_merge_request_open"},
	}
	for _, tc := range []struct {
		name, forge, secret string
		plain, failing      bool // the daemon takes no pull requests; fails to take them
		code                int
		result              WebhookResult
	}{
		{name: "github wrong signature", forge: "github", secret: "other", code: 401, result: HookRejected},
		{name: "gitea wrong signature", forge: "gitea", secret: "other", code: 401, result: HookRejected},
		{name: "gitlab wrong token", forge: "gitlab", secret: "other", code: 401, result: HookRejected},
		{name: "github, plans not enabled", forge: "github", secret: "s3cret", plain: true, code: 202, result: HookIgnored},
		{name: "gitlab, plans not enabled", forge: "gitlab", secret: "s3cret", plain: true, code: 202, result: HookIgnored},
		{name: "gitea, the daemon fails", forge: "gitea", secret: "s3cret", failing: true, code: 503, result: HookFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := &prHooks{hooks: hooks{secret: "s3cret", forge: tc.forge}}
			var h Hooks = pr
			if tc.plain {
				h = &pr.hooks
			}
			if tc.failing {
				pr.err = errors.New("queue closed: stopping; token tok-SECRET")
			}
			o := opened[tc.forge]
			rec := deliver(t, New(Options{Hooks: h}), tc.forge, o.event, fixture(t, o.fixture, nil), tc.secret)
			var answer map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
				t.Fatalf("answer %q: %v", rec.Body, err)
			}
			if rec.Code != tc.code || WebhookResult(answer["result"]) != tc.result {
				t.Errorf("answer %d %s, want %d %s: %s", rec.Code, answer["result"], tc.code, tc.result, answer["message"])
			}
			if got := len(pr.events) > 0; got != tc.failing {
				t.Errorf("events %v", pr.events)
			}
			if strings.Contains(rec.Body.String(), "tok-SECRET") {
				t.Errorf("the daemon's error reached the forge: %s", rec.Body)
			}
		})
	}
}

func TestPlanCommand(t *testing.T) {
	for _, tc := range []struct {
		body, want string
		ok         bool
	}{
		{"/trueline plan", "/trueline plan", true},
		{"  \n/trueline   plan  stacks/web\t\nmore", "/trueline plan stacks/web", true},
		{"/trueline plan\r\nthanks", "/trueline plan", true},
		{"/trueline", "", false},
		{"/trueline planet", "", false},
		{"/Trueline plan", "", false},
		{"please /trueline plan", "", false},
		{"> /trueline plan", "", false},
		{"", "", false},
	} {
		got, ok := planCommand(tc.body)
		if got != tc.want || ok != tc.ok {
			t.Errorf("planCommand(%q) = %q, %v; want %q, %v", tc.body, got, ok, tc.want, tc.ok)
		}
	}
}

func TestValidBranch(t *testing.T) {
	for b, want := range map[string]bool{
		"main": true, "feature/web-asg": true, "trueline/stacks/web/default": true, "release-1.2": true, "ünïcode": true,
		"": false, "-x": false, "a..b": false, "a b": false, "a~1": false, "a^": false, "a:b": false, "a?": false, "a*": false,
		"a[b": false, `a\b`: false, "a/": false, "/a": false, "a//b": false, "a.lock": false, "a.": false, ".a": false, "a/.b": false,
		"a@{1}": false, "@": false, "a\x00b": false, "a\nb": false, "a\x7f": false, strings.Repeat("a", 256): false, strings.Repeat("a", 255): true,
	} {
		if got := validBranch(b); got != want {
			t.Errorf("validBranch(%q) = %v, want %v", b, got, want)
		}
	}
}
