package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// PullRequests is what the daemon does with pull request events. A Hooks
// that implements it receives them; without it they are answered 202 and
// ignored. PullRequestEvent must return soon (queue, not plan): the forge
// waits for the answer.
type PullRequests interface {
	PullRequestEvent(ctx context.Context, ev PullRequestEvent) error
}

// PullAction is what happened to a pull request.
type PullAction string

const (
	PullOpened   PullAction = "opened"
	PullUpdated  PullAction = "updated" // new commits on the head branch
	PullReopened PullAction = "reopened"
	PullClosed   PullAction = "closed" // without merging
	PullMerged   PullAction = "merged"
	// PullPlanCommand is a "/trueline plan" comment; whether its author
	// may ask is the daemon's to check (forge.Reviews.CanWrite).
	PullPlanCommand PullAction = "plan_command"
)

// PullRequestEvent is a pull (merge) request event from any forge.
type PullRequestEvent struct {
	Forge  string // github, gitlab, gitea
	Repo   string // the configured repository, as in the webhook's path
	Number int64
	Action PullAction
	// HeadSHA, HeadBranch, Base and Fork are empty when the payload does
	// not say: GitHub's comment events name only the number, so the
	// pull request is to be read (forge.Reviews.PullRequest).
	HeadSHA    string
	HeadBranch string
	Base       string
	Fork       bool
	// Author is the pull request's author where the payload names one
	// (GitLab's merge request events give only an id).
	Author string
	// Commenter and Command are the author and the first line of a plan
	// command ("/trueline plan" and what follows, at most MaxCommand
	// characters).
	Commenter string
	Command   string
}

// MaxCommand bounds PullRequestEvent.Command, in characters.
const MaxCommand = 200

// pullRequestEvent reports whether a forge's event header names a pull
// request or comment event.
func pullRequestEvent(forge, event string) bool {
	switch forge {
	case "github", "gitea":
		return event == "pull_request" || event == "issue_comment"
	case "gitlab":
		return event == "Merge Request Hook" || event == "Note Hook"
	}
	return false
}

// pullRequestWebhook takes a verified pull request or comment delivery.
func (s *Server) pullRequestWebhook(ctx context.Context, forge, repo, event string, body []byte) (WebhookResult, int, string) {
	prs, ok := s.hooks.(PullRequests)
	if !ok {
		return HookIgnored, http.StatusAccepted, fmt.Sprintf("event %q ignored; pull request plans are not enabled", event)
	}
	ev, ignored, err := parsePullRequest(forge, event, body)
	if err != nil {
		return HookMalformed, http.StatusBadRequest, err.Error()
	}
	if ev == nil {
		return HookIgnored, http.StatusAccepted, ignored
	}
	ev.Forge, ev.Repo = forge, repo
	if err := prs.PullRequestEvent(ctx, *ev); err != nil {
		s.log.Error("webhook: pull request event not taken", "forge", forge, "repository", repo, "number", ev.Number, "action", ev.Action, "err", err)
		return HookFailed, http.StatusServiceUnavailable, "trueline could not take the event; see its log"
	}
	return HookAccepted, http.StatusAccepted, fmt.Sprintf("pull request #%d %s", ev.Number, ev.Action)
}

// The payloads below decode only the fields read: forges add fields, and
// the SDKs' complete types would refuse a whole delivery over one field
// of an unexpected shape (GitLab writes some times as "2015-05-17
// 18:21:36 UTC", others in RFC 3339).

type ghUser struct {
	Login string `json:"login"`
}

type ghBranch struct {
	Ref  string `json:"ref"`
	SHA  string `json:"sha"`
	Repo *struct {
		ID       int64  `json:"id"`
		FullName string `json:"full_name"`
	} `json:"repo"` // null once a fork is deleted
}

// ghPull is GitHub's pull_request payload, and Gitea's: Gitea's pull
// request also says repo_id beside each branch.
type ghPull struct {
	Action      string `json:"action"`
	PullRequest *struct {
		Number int64  `json:"number"`
		User   ghUser `json:"user"`
		Merged bool   `json:"merged"`
		Head   struct {
			ghBranch
			RepoID int64 `json:"repo_id"`
		} `json:"head"`
		Base struct {
			ghBranch
			RepoID int64 `json:"repo_id"`
		} `json:"base"`
	} `json:"pull_request"`
}

// ghComment is GitHub's issue_comment payload, and Gitea's, which adds
// is_pull and the pull request itself.
type ghComment struct {
	Action string `json:"action"`
	Issue  *struct {
		Number      int64           `json:"number"`
		User        ghUser          `json:"user"`
		PullRequest json.RawMessage `json:"pull_request"` // present on pull requests
	} `json:"issue"`
	Comment *struct {
		Body string `json:"body"`
		User ghUser `json:"user"`
	} `json:"comment"`
	IsPull bool `json:"is_pull"`
}

type glUser struct {
	Username string `json:"username"`
}

type glMR struct {
	IID             int64  `json:"iid"`
	SourceBranch    string `json:"source_branch"`
	TargetBranch    string `json:"target_branch"`
	SourceProjectID int64  `json:"source_project_id"`
	TargetProjectID int64  `json:"target_project_id"`
	LastCommit      struct {
		ID string `json:"id"`
	} `json:"last_commit"`
}

// glMergeRequest is GitLab's "Merge Request Hook".
type glMergeRequest struct {
	ObjectKind       string `json:"object_kind"`
	ObjectAttributes struct {
		glMR
		Action string `json:"action"`
		OldRev string `json:"oldrev"` // set when commits were pushed
	} `json:"object_attributes"`
}

// glNote is GitLab's "Note Hook".
type glNote struct {
	ObjectKind       string `json:"object_kind"`
	User             glUser `json:"user"`
	ObjectAttributes struct {
		Note         string `json:"note"`
		NoteableType string `json:"noteable_type"`
		Action       string `json:"action"` // create, update; older GitLab sends none
	} `json:"object_attributes"`
	MergeRequest *glMR `json:"merge_request"`
}

// parsePullRequest makes a verified delivery an event, or says why it is
// ignored (ev nil, err nil), or why it is malformed.
func parsePullRequest(forge, event string, body []byte) (ev *PullRequestEvent, ignored string, err error) {
	switch event {
	case "pull_request":
		var p ghPull
		if err := json.Unmarshal(body, &p); err != nil || p.PullRequest == nil {
			return nil, "", fmt.Errorf("%s payload without a pull_request", event)
		}
		pr := p.PullRequest
		ev = &PullRequestEvent{Number: pr.Number, HeadSHA: pr.Head.SHA, HeadBranch: pr.Head.Ref, Base: pr.Base.Ref, Author: pr.User.Login}
		switch {
		case pr.Head.Repo == nil && pr.Head.RepoID == 0: // a deleted fork
			ev.Fork = true
		case pr.Head.RepoID != 0 || pr.Base.RepoID != 0: // Gitea
			ev.Fork = pr.Head.RepoID != pr.Base.RepoID
		case pr.Base.Repo != nil && pr.Head.Repo.ID != 0 && pr.Base.Repo.ID != 0:
			ev.Fork = pr.Head.Repo.ID != pr.Base.Repo.ID
		case pr.Base.Repo != nil && pr.Base.Repo.FullName != "":
			ev.Fork = !strings.EqualFold(pr.Head.Repo.FullName, pr.Base.Repo.FullName)
		default:
			ev.Fork = true // nothing to compare: assume the worst
		}
		switch p.Action {
		case "opened":
			ev.Action = PullOpened
		case "synchronize", "synchronized": // GitHub, Gitea
			ev.Action = PullUpdated
		case "reopened":
			ev.Action = PullReopened
		case "closed":
			ev.Action = PullClosed
			if pr.Merged {
				ev.Action = PullMerged
			}
		default:
			return nil, fmt.Sprintf("pull request action %q ignored", p.Action), nil
		}
	case "issue_comment":
		var p ghComment
		if err := json.Unmarshal(body, &p); err != nil || p.Issue == nil || p.Comment == nil {
			return nil, "", fmt.Errorf("%s payload without an issue and a comment", event)
		}
		if p.Action != "created" {
			return nil, fmt.Sprintf("comment action %q ignored", p.Action), nil
		}
		if !p.IsPull && (len(p.Issue.PullRequest) == 0 || string(p.Issue.PullRequest) == "null") {
			return nil, "a comment on an issue, not a pull request", nil
		}
		cmd, ok := planCommand(p.Comment.Body)
		if !ok {
			return nil, "a comment without /trueline plan", nil
		}
		ev = &PullRequestEvent{Number: p.Issue.Number, Action: PullPlanCommand, Author: p.Issue.User.Login,
			Commenter: p.Comment.User.Login, Command: cmd}
		// Gitea sends the pull request too.
		var withPR ghPull
		if forge == "gitea" && json.Unmarshal(body, &withPR) == nil && withPR.PullRequest != nil {
			pr := withPR.PullRequest
			ev.HeadSHA, ev.HeadBranch, ev.Base = pr.Head.SHA, pr.Head.Ref, pr.Base.Ref
			ev.Fork = pr.Head.RepoID != pr.Base.RepoID
		}
	case "Merge Request Hook":
		var p glMergeRequest
		if err := json.Unmarshal(body, &p); err != nil || p.ObjectKind != "merge_request" {
			return nil, "", fmt.Errorf("%s payload whose object_kind is not merge_request", event)
		}
		a := p.ObjectAttributes
		ev = glEvent(&a.glMR)
		switch a.Action {
		case "open":
			ev.Action = PullOpened
		case "update":
			// Also sent for a new title or label; only commits are planned.
			if a.OldRev == "" {
				return nil, "merge request update without new commits ignored", nil
			}
			ev.Action = PullUpdated
		case "reopen":
			ev.Action = PullReopened
		case "close":
			ev.Action = PullClosed
		case "merge":
			ev.Action = PullMerged
		default:
			return nil, fmt.Sprintf("merge request action %q ignored", a.Action), nil
		}
	case "Note Hook":
		var p glNote
		if err := json.Unmarshal(body, &p); err != nil || p.ObjectKind != "note" {
			return nil, "", fmt.Errorf("%s payload whose object_kind is not note", event)
		}
		a := p.ObjectAttributes
		if a.NoteableType != "MergeRequest" {
			return nil, fmt.Sprintf("a note on a %q, not a merge request", a.NoteableType), nil
		}
		if a.Action != "" && a.Action != "create" {
			return nil, fmt.Sprintf("note action %q ignored", a.Action), nil
		}
		if p.MergeRequest == nil {
			return nil, "", fmt.Errorf("%s payload on a merge request without merge_request", event)
		}
		cmd, ok := planCommand(a.Note)
		if !ok {
			return nil, "a note without /trueline plan", nil
		}
		ev = glEvent(p.MergeRequest)
		ev.Action, ev.Commenter, ev.Command = PullPlanCommand, p.User.Username, cmd
	default:
		return nil, fmt.Sprintf("event %q ignored", event), nil
	}
	if err := ev.check(); err != nil {
		return nil, "", fmt.Errorf("%s payload: %w", event, err)
	}
	return ev, "", nil
}

func glEvent(m *glMR) *PullRequestEvent {
	return &PullRequestEvent{Number: m.IID, HeadSHA: m.LastCommit.ID, HeadBranch: m.SourceBranch, Base: m.TargetBranch,
		Fork: m.SourceProjectID != m.TargetProjectID}
}

// planCommand finds "/trueline plan" opening a comment, and returns the
// first line, cut to MaxCommand characters.
func planCommand(body string) (string, bool) {
	line, _, _ := strings.Cut(strings.TrimLeftFunc(body, unicode.IsSpace), "\n")
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != "/trueline" || fields[1] != "plan" {
		return "", false
	}
	cmd := strings.Join(fields, " ")
	if utf8.RuneCountInString(cmd) > MaxCommand {
		cmd = string([]rune(cmd)[:MaxCommand])
	}
	return cmd, true
}

var (
	// fullSHA is a whole commit name, SHA-1 or SHA-256.
	fullSHA = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)
	// forgeUser is a user name on GitHub, GitLab or Gitea; GitHub's bots
	// (apps) end in [bot].
	forgeUser = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}(\[bot\])?$`)
)

// check refuses an event whose values could not have come from a forge:
// they go on to Git and to forge API paths.
func (ev *PullRequestEvent) check() error {
	if ev.Number <= 0 {
		return fmt.Errorf("pull request number %d", ev.Number)
	}
	if ev.HeadSHA != "" && !fullSHA.MatchString(ev.HeadSHA) {
		return fmt.Errorf("head commit %q is not a full commit hash", ev.HeadSHA)
	}
	for _, b := range []struct{ name, v string }{{"head branch", ev.HeadBranch}, {"base branch", ev.Base}} {
		if b.v != "" && !validBranch(b.v) {
			return fmt.Errorf("%s %q is not a branch name", b.name, b.v)
		}
	}
	for _, u := range []struct{ name, v string }{{"author", ev.Author}, {"commenter", ev.Commenter}} {
		if u.v != "" && !forgeUser.MatchString(u.v) {
			return fmt.Errorf("%s %q is not a user name", u.name, u.v)
		}
	}
	if ev.Action == PullPlanCommand && ev.Commenter == "" {
		return fmt.Errorf("a plan command without its author")
	}
	if ev.Action != PullPlanCommand && (ev.HeadSHA == "" || ev.HeadBranch == "" || ev.Base == "") {
		return fmt.Errorf("pull request #%d without its head commit, head branch and base", ev.Number)
	}
	return nil
}

// validBranch is Git's rule for a branch name (git check-ref-format),
// within 255 bytes.
func validBranch(b string) bool {
	if b == "" || len(b) > 255 || !utf8.ValidString(b) || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") ||
		strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".") || strings.HasSuffix(b, ".lock") || b == "@" ||
		strings.Contains(b, "..") || strings.Contains(b, "//") || strings.Contains(b, "@{") || strings.Contains(b, "/.") || strings.HasPrefix(b, ".") {
		return false
	}
	for _, r := range b {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	return true
}
