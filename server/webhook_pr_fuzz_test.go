package server

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPullRequestWebhook delivers pull request and comment payloads to a
// daemon that takes them, seeded with every delivery in testdata/webhooks.
// It must not panic, must answer JSON with a known result, must pass on
// nothing unsigned, and what it passes on must be one event whose values
// could only have come from a forge.
func FuzzPullRequestWebhook(f *testing.F) {
	forges := []string{"github", "gitea", "gitlab"}
	events := map[string]string{"github_pull_request": "pull_request", "github_issue_comment": "issue_comment",
		"gitea_pull_request": "pull_request", "gitea_issue_comment": "issue_comment",
		"gitlab_merge_request": "Merge Request Hook", "gitlab_note": "Note Hook"}
	files, err := filepath.Glob(filepath.Join("testdata", "webhooks", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		for prefix, event := range events {
			if strings.HasPrefix(name, prefix) {
				forge, _, _ := strings.Cut(name, "_")
				f.Add(uint8(slices.Index(forges, forge)), event, b, true, "")
			}
		}
	}
	f.Add(uint8(0), "pull_request", []byte(`{"action":"opened","pull_request":{"number":1}}`), true, "")
	f.Add(uint8(0), "issue_comment", []byte(`{"action":"created","issue":{"number":1,"pull_request":{}},"comment":{"body":"/trueline plan","user":{"login":"a"}}}`), true, "")
	f.Add(uint8(2), "Note Hook", []byte(`{"object_kind":"note","object_attributes":{"noteable_type":"MergeRequest","note":"/trueline plan"},"merge_request":{"iid":1}}`), true, "")
	f.Add(uint8(1), "pull_request", []byte(`{"pull_request":null}`), false, "00")

	const secret = "fuzz-webhook-secret"
	actions := map[PullAction]bool{PullOpened: true, PullUpdated: true, PullReopened: true, PullClosed: true, PullMerged: true, PullPlanCommand: true}
	f.Fuzz(func(t *testing.T, forgeIndex uint8, event string, body []byte, signed bool, sig string) {
		forge := forges[int(forgeIndex)%len(forges)]
		h := &prHooks{hooks: hooks{secret: secret, forge: forge}}
		srv := New(Options{Hooks: h})

		rec, answer, sig, want := deliverAs(t, srv, forge, event, secret, body, signed, sig)
		if !strings.EqualFold(sig, want) {
			if rec.Code != http.StatusUnauthorized || len(h.events) > 0 {
				t.Errorf("wrong signature %q: status %d, %d events", sig, rec.Code, len(h.events))
			}
			return
		}
		if len(h.events) > 1 {
			t.Fatalf("one delivery, %d events", len(h.events))
		}
		if len(h.events) == 0 {
			if WebhookResult(answer["result"]) == HookAccepted && len(h.pushed) == 0 {
				t.Errorf("accepted, yet nothing was passed on: %s", answer["message"])
			}
			return
		}
		ev := h.events[0]
		if !pullRequestEvent(forge, event) {
			t.Errorf("event header %q of %s became %+v", event, forge, ev)
		}
		if rec.Code != http.StatusAccepted || WebhookResult(answer["result"]) != HookAccepted {
			t.Errorf("passed on, then answered %d %s", rec.Code, answer["result"])
		}
		if ev.Forge != forge || ev.Repo != "infra" || ev.Number <= 0 || !actions[ev.Action] {
			t.Errorf("event %+v", ev)
		}
		if ev.HeadSHA != "" && !fullSHA.MatchString(ev.HeadSHA) {
			t.Errorf("head %q", ev.HeadSHA)
		}
		for _, b := range []string{ev.HeadBranch, ev.Base} {
			if b != "" && !validBranch(b) {
				t.Errorf("branch %q", b)
			}
		}
		for _, u := range []string{ev.Author, ev.Commenter} {
			if u != "" && !forgeUser.MatchString(u) {
				t.Errorf("user %q", u)
			}
		}
		if ev.Action == PullPlanCommand {
			if ev.Commenter == "" || !strings.HasPrefix(ev.Command, "/trueline plan") || utf8.RuneCountInString(ev.Command) > MaxCommand || strings.Contains(ev.Command, "\n") {
				t.Errorf("plan command %+v", ev)
			}
		} else if ev.HeadSHA == "" || ev.HeadBranch == "" || ev.Base == "" || ev.Command != "" || ev.Commenter != "" {
			t.Errorf("pull request event %+v", ev)
		}
	})
}
