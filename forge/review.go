package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"code.gitea.io/sdk/gitea"
	"github.com/google/go-github/v75/github"
	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// OpenPR is an open pull (or merge) request, as planning it needs.
type OpenPR struct {
	Number     int64
	URL        string
	Title      string
	Author     string
	HeadBranch string
	HeadSHA    string
	BaseBranch string
	// Fork is true when the head branch lives in another repository (or
	// in one that was deleted): its code comes from outside.
	Fork bool
	// Ref is the ref of the base repository that holds the head commit,
	// forks included: refs/pull/N/head (GitHub, Gitea) or
	// refs/merge-requests/N/head (GitLab).
	Ref string
}

// StatusState is the state of a commit status.
type StatusState string

const (
	StatusPending StatusState = "pending"
	StatusSuccess StatusState = "success"
	StatusFailure StatusState = "failure"
	StatusError   StatusState = "error"
)

// StatusContext names the plan's status on a commit.
const StatusContext = "trueline/plan"

// MaxStatusDescription is GitHub's limit on a status description, in
// characters; longer ones are cut on every forge, so all read alike.
const MaxStatusDescription = 140

// CommitStatus is a status to set on a commit.
type CommitStatus struct {
	State StatusState
	// Context is the status's name; empty means StatusContext.
	Context     string
	Description string
	TargetURL   string // http or https, or empty
}

// Reviews is what planning pull requests needs from a forge. New's forges
// implement it (see ReviewsOf); every call has the forge's deadline, bodies
// fit the forge's limit, and errors name no secret.
type Reviews interface {
	// OpenPRs lists every open pull request, all pages.
	OpenPRs(ctx context.Context) ([]OpenPR, error)
	// PullRequest reads one pull request, open or not.
	PullRequest(ctx context.Context, number int64) (*OpenPR, error)
	// UpsertComment edits the comment on pull request number that holds
	// marker (an HTML comment such as "<!-- trueline:plan -->") and was
	// written by the forge credentials' own user, or adds one, and returns
	// its web address. A marked comment by anyone else is left alone. The
	// body gets the marker when it lacks it.
	UpsertComment(ctx context.Context, number int64, marker, body string) (string, error)
	// SetStatus sets a status on commit sha (its full hex name).
	SetStatus(ctx context.Context, sha string, st CommitStatus) error
	// CanWrite tells whether user may push to the repository.
	CanWrite(ctx context.Context, user string) (bool, error)
}

// ReviewsOf returns the pull request side of a forge New returned.
func ReviewsOf(f Forge) (Reviews, error) {
	if r, ok := f.(Reviews); ok {
		return r, nil
	}
	return nil, fmt.Errorf("this forge cannot comment on pull requests or set commit statuses")
}

var (
	_ Reviews = (*bounded)(nil)
	_ Reviews = (*gitHub)(nil)
	_ Reviews = (*gitLab)(nil)
	_ Reviews = (*giteaForge)(nil)
)

// maxPages bounds a listing: a repository with more open pull requests, or
// a pull request with more comments, than this many pages hold is refused
// rather than read without end.
const maxPages = 50

var (
	// hexSHA is a full commit name, SHA-1 or SHA-256: it goes into API
	// paths, and it comes from webhooks.
	hexSHA = regexp.MustCompile(`^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$`)
	// userName is what GitHub, GitLab and Gitea allow in a user name, and
	// nothing that could change an API path.
	userName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$`)
	// markerRE is an HTML comment on one line, invisible in the rendered body.
	markerRE = regexp.MustCompile(`^<!--[^\n]{1,200}-->$`)
)

func (b *bounded) reviews() Reviews { return b.f.(Reviews) }

// scrub keeps the forge's own secrets out of what trueline writes there.
func (b *bounded) scrub(s string) string {
	s = b.secrets.Scrub(s)
	if b.app != nil {
		s = b.app.secrets().Scrub(s)
	}
	return s
}

func (b *bounded) OpenPRs(ctx context.Context) ([]OpenPR, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	prs, err := b.reviews().OpenPRs(ctx)
	return prs, b.redact(err)
}

func (b *bounded) PullRequest(ctx context.Context, number int64) (*OpenPR, error) {
	if number <= 0 {
		return nil, fmt.Errorf("pull request number %d: want a positive number", number)
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	pr, err := b.reviews().PullRequest(ctx, number)
	return pr, b.redact(err)
}

func (b *bounded) UpsertComment(ctx context.Context, number int64, marker, body string) (string, error) {
	if number <= 0 {
		return "", fmt.Errorf("pull request number %d: want a positive number", number)
	}
	if !markerRE.MatchString(marker) || strings.Contains(marker[4:len(marker)-3], "--") {
		return "", fmt.Errorf("comment marker %q: want one HTML comment on one line, such as <!-- trueline:plan -->", marker)
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	u, err := b.reviews().UpsertComment(ctx, number, marker, withMarker(b.scrub(body), marker, b.maxBody))
	return u, b.redact(err)
}

// withMarker fits body to max characters with marker in it: a cut must
// not drop the marker, or the next run would add a second comment.
func withMarker(body, marker string, max int) string {
	if fitted := fitBody(body, max); strings.Contains(fitted, marker) {
		return fitted
	}
	return marker + "\n" + fitBody(body, max-utf8.RuneCountInString(marker)-1)
}

func (b *bounded) SetStatus(ctx context.Context, sha string, st CommitStatus) error {
	if !hexSHA.MatchString(sha) {
		return fmt.Errorf("commit %q: want a full commit hash (40 or 64 hex digits)", sha)
	}
	switch st.State {
	case StatusPending, StatusSuccess, StatusFailure, StatusError:
	default:
		return fmt.Errorf("commit status state %q: want pending, success, failure or error", st.State)
	}
	if st.Context == "" {
		st.Context = StatusContext
	}
	if st.TargetURL != "" {
		if u, err := url.Parse(st.TargetURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("commit status target URL %q: want an http or https URL", st.TargetURL)
		}
	}
	st.Description = cutDescription(b.scrub(st.Description))
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.redact(b.reviews().SetStatus(ctx, sha, st))
}

// cutDescription fits a status description to MaxStatusDescription
// characters, ending a cut one with "…".
func cutDescription(s string) string {
	if utf8.RuneCountInString(s) <= MaxStatusDescription {
		return s
	}
	return string([]rune(s)[:MaxStatusDescription-1]) + "…"
}

func (b *bounded) CanWrite(ctx context.Context, user string) (bool, error) {
	if !userName.MatchString(user) {
		return false, fmt.Errorf("user name %q: not a user name on a forge", user)
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	ok, err := b.reviews().CanWrite(ctx, user)
	return ok, b.redact(err)
}

// self is the forge credentials' own user, looked up once.
type self struct {
	mu    sync.Mutex
	id    int64
	login string
}

func (s *self) get(lookup func() (int64, string, error)) (int64, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != 0 || s.login != "" {
		return s.id, s.login, nil
	}
	id, login, err := lookup()
	if err != nil {
		return 0, "", err // not cached: the next call asks again
	}
	s.id, s.login = id, login
	return id, login, nil
}

// GitHub.

func (g *gitHub) openPR(p *github.PullRequest) OpenPR {
	head, base := p.GetHead(), p.GetBase()
	fork := head.GetRepo() == nil // the fork was deleted
	if !fork {
		if head.GetRepo().GetID() != 0 && base.GetRepo().GetID() != 0 {
			fork = head.GetRepo().GetID() != base.GetRepo().GetID()
		} else {
			fork = !strings.EqualFold(head.GetRepo().GetFullName(), g.owner+"/"+g.name)
		}
	}
	return OpenPR{Number: int64(p.GetNumber()), URL: p.GetHTMLURL(), Title: p.GetTitle(), Author: p.GetUser().GetLogin(),
		HeadBranch: head.GetRef(), HeadSHA: head.GetSHA(), BaseBranch: base.GetRef(), Fork: fork,
		Ref: fmt.Sprintf("refs/pull/%d/head", p.GetNumber())}
}

func (g *gitHub) OpenPRs(ctx context.Context) ([]OpenPR, error) {
	opt := &github.PullRequestListOptions{State: "open", ListOptions: github.ListOptions{PerPage: 100}}
	var out []OpenPR
	for page := 1; ; page++ {
		if page > maxPages {
			return nil, fmt.Errorf("github: %s/%s has more than %d open pull requests", g.owner, g.name, maxPages*100)
		}
		prs, resp, err := g.c.PullRequests.List(ctx, g.owner, g.name, opt)
		if err != nil {
			return nil, fmt.Errorf("github: list pull requests of %s/%s: %w", g.owner, g.name, err)
		}
		for _, p := range prs {
			out = append(out, g.openPR(p))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opt.Page = resp.NextPage
	}
}

func (g *gitHub) PullRequest(ctx context.Context, number int64) (*OpenPR, error) {
	p, _, err := g.c.PullRequests.Get(ctx, g.owner, g.name, int(number))
	if err != nil {
		return nil, fmt.Errorf("github: read pull request #%d of %s/%s: %w", number, g.owner, g.name, err)
	}
	pr := g.openPR(p)
	return &pr, nil
}

// me is the login comments are written as: the token's user, or an app's
// bot user, "<slug>[bot]" (an installation token cannot read /user).
func (g *gitHub) me(ctx context.Context) (string, error) {
	_, login, err := g.self.get(func() (int64, string, error) {
		if g.appSrc != nil {
			a, _, err := g.appSrc.client.Apps.Get(ctx, "")
			if err != nil {
				return 0, "", fmt.Errorf("github: read the app: %w", err)
			}
			return a.GetID(), a.GetSlug() + "[bot]", nil
		}
		u, _, err := g.c.Users.Get(ctx, "")
		if err != nil {
			return 0, "", fmt.Errorf("github: read the token's user: %w", err)
		}
		return u.GetID(), u.GetLogin(), nil
	})
	return login, err
}

func (g *gitHub) UpsertComment(ctx context.Context, number int64, marker, body string) (string, error) {
	me, err := g.me(ctx)
	if err != nil {
		return "", err
	}
	opt := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for page := 1; ; page++ {
		if page > maxPages {
			return "", fmt.Errorf("github: pull request #%d has more than %d comments", number, maxPages*100)
		}
		cs, resp, err := g.c.Issues.ListComments(ctx, g.owner, g.name, int(number), opt)
		if err != nil {
			return "", fmt.Errorf("github: list comments of pull request #%d: %w", number, err)
		}
		for _, c := range cs {
			if strings.EqualFold(c.GetUser().GetLogin(), me) && strings.Contains(c.GetBody(), marker) {
				e, _, err := g.c.Issues.EditComment(ctx, g.owner, g.name, c.GetID(), &github.IssueComment{Body: github.Ptr(body)})
				if err != nil {
					return "", fmt.Errorf("github: edit comment %d on pull request #%d: %w", c.GetID(), number, err)
				}
				return e.GetHTMLURL(), nil
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	c, _, err := g.c.Issues.CreateComment(ctx, g.owner, g.name, int(number), &github.IssueComment{Body: github.Ptr(body)})
	if err != nil {
		return "", fmt.Errorf("github: comment on pull request #%d: %w", number, err)
	}
	return c.GetHTMLURL(), nil
}

func (g *gitHub) SetStatus(ctx context.Context, sha string, st CommitStatus) error {
	s := &github.RepoStatus{State: github.Ptr(string(st.State)), Context: github.Ptr(st.Context), Description: github.Ptr(st.Description)}
	if st.TargetURL != "" {
		s.TargetURL = github.Ptr(st.TargetURL)
	}
	if _, _, err := g.c.Repositories.CreateStatus(ctx, g.owner, g.name, sha, s); err != nil {
		return fmt.Errorf("github: set status %s on %s: %w", st.Context, sha, err)
	}
	return nil
}

func (g *gitHub) CanWrite(ctx context.Context, user string) (bool, error) {
	p, resp, err := g.c.Repositories.GetPermissionLevel(ctx, g.owner, g.name, user)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return false, nil // no such user
	}
	if err != nil {
		return false, fmt.Errorf("github: permission of %s on %s/%s: %w", user, g.owner, g.name, err)
	}
	// maintain is permission "write" with role_name "maintain"; custom
	// roles report the base permission.
	switch p.GetPermission() {
	case "admin", "write":
		return true, nil
	}
	switch p.GetRoleName() {
	case "admin", "maintain", "write":
		return true, nil
	}
	return false, nil
}

// GitLab.

func (g *gitLab) openPR(m *gitlab.BasicMergeRequest) OpenPR {
	pr := OpenPR{Number: m.IID, URL: m.WebURL, Title: m.Title, HeadBranch: m.SourceBranch, HeadSHA: m.SHA,
		BaseBranch: m.TargetBranch, Fork: m.SourceProjectID != m.TargetProjectID,
		Ref: fmt.Sprintf("refs/merge-requests/%d/head", m.IID)}
	if m.Author != nil {
		pr.Author = m.Author.Username
	}
	return pr
}

func (g *gitLab) OpenPRs(ctx context.Context) ([]OpenPR, error) {
	opt := &gitlab.ListProjectMergeRequestsOptions{State: gitlab.Ptr("opened"), ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1}}
	var out []OpenPR
	for page := 1; ; page++ {
		if page > maxPages {
			return nil, fmt.Errorf("gitlab: %s has more than %d open merge requests", g.project, maxPages*100)
		}
		mrs, resp, err := g.c.MergeRequests.ListProjectMergeRequests(g.project, opt, gitlab.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("gitlab: list merge requests of %s: %w", g.project, err)
		}
		for _, m := range mrs {
			out = append(out, g.openPR(m))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opt.Page = resp.NextPage
	}
}

func (g *gitLab) PullRequest(ctx context.Context, number int64) (*OpenPR, error) {
	m, _, err := g.c.MergeRequests.GetMergeRequest(g.project, number, nil, gitlab.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("gitlab: read merge request !%d of %s: %w", number, g.project, err)
	}
	pr := g.openPR(&m.BasicMergeRequest)
	return &pr, nil
}

func (g *gitLab) me(ctx context.Context) (int64, error) {
	id, _, err := g.self.get(func() (int64, string, error) {
		u, _, err := g.c.Users.CurrentUser(gitlab.WithContext(ctx))
		if err != nil {
			return 0, "", fmt.Errorf("gitlab: read the token's user: %w", err)
		}
		return u.ID, u.Username, nil
	})
	return id, err
}

func (g *gitLab) UpsertComment(ctx context.Context, number int64, marker, body string) (string, error) {
	me, err := g.me(ctx)
	if err != nil {
		return "", err
	}
	// The merge request's address makes the note's: notes carry none.
	m, _, err := g.c.MergeRequests.GetMergeRequest(g.project, number, nil, gitlab.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("gitlab: read merge request !%d of %s: %w", number, g.project, err)
	}
	opt := &gitlab.ListMergeRequestNotesOptions{ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1},
		OrderBy: gitlab.Ptr("created_at"), Sort: gitlab.Ptr("asc")}
	for page := 1; ; page++ {
		if page > maxPages {
			return "", fmt.Errorf("gitlab: merge request !%d has more than %d notes", number, maxPages*100)
		}
		notes, resp, err := g.c.Notes.ListMergeRequestNotes(g.project, number, opt, gitlab.WithContext(ctx))
		if err != nil {
			return "", fmt.Errorf("gitlab: list notes of merge request !%d: %w", number, err)
		}
		for _, n := range notes {
			if !n.System && n.Author.ID == me && strings.Contains(n.Body, marker) {
				if _, _, err := g.c.Notes.UpdateMergeRequestNote(g.project, number, n.ID,
					&gitlab.UpdateMergeRequestNoteOptions{Body: gitlab.Ptr(body)}, gitlab.WithContext(ctx)); err != nil {
					return "", fmt.Errorf("gitlab: edit note %d on merge request !%d: %w", n.ID, number, err)
				}
				return fmt.Sprintf("%s#note_%d", m.WebURL, n.ID), nil
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	n, _, err := g.c.Notes.CreateMergeRequestNote(g.project, number, &gitlab.CreateMergeRequestNoteOptions{Body: gitlab.Ptr(body)}, gitlab.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("gitlab: comment on merge request !%d: %w", number, err)
	}
	return fmt.Sprintf("%s#note_%d", m.WebURL, n.ID), nil
}

// glState maps a status to GitLab's: it has failed for both failure and
// error, and says which in the description.
var glState = map[StatusState]gitlab.BuildStateValue{
	StatusPending: gitlab.Pending, StatusSuccess: gitlab.Success, StatusFailure: gitlab.Failed, StatusError: gitlab.Failed,
}

func (g *gitLab) SetStatus(ctx context.Context, sha string, st CommitStatus) error {
	opt := &gitlab.SetCommitStatusOptions{State: glState[st.State], Name: gitlab.Ptr(st.Context), Description: gitlab.Ptr(st.Description)}
	if st.TargetURL != "" {
		opt.TargetURL = gitlab.Ptr(st.TargetURL)
	}
	_, resp, err := g.c.Commits.SetCommitStatus(g.project, sha, opt, gitlab.WithContext(ctx))
	// GitLab refuses pending over pending ("Cannot transition status via
	// :enqueue from :pending"), where GitHub and Gitea accept it: the
	// status already says what was asked.
	if err != nil && st.State == StatusPending && resp != nil && resp.StatusCode == http.StatusBadRequest &&
		strings.Contains(err.Error(), "Cannot transition status via :enqueue from :pending") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gitlab: set status %s on %s: %w", st.Context, sha, err)
	}
	return nil
}

func (g *gitLab) CanWrite(ctx context.Context, user string) (bool, error) {
	users, _, err := g.c.Users.ListUsers(&gitlab.ListUsersOptions{Username: gitlab.Ptr(user)}, gitlab.WithContext(ctx))
	if err != nil {
		return false, fmt.Errorf("gitlab: look up user %s: %w", user, err)
	}
	var id int64
	for _, u := range users {
		if strings.EqualFold(u.Username, user) {
			id = u.ID
		}
	}
	if id == 0 {
		return false, nil
	}
	// members/all counts roles inherited from groups too.
	m, resp, err := g.c.ProjectMembers.GetInheritedProjectMember(g.project, id, gitlab.WithContext(ctx))
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("gitlab: role of %s on %s: %w", user, g.project, err)
	}
	return m.AccessLevel >= gitlab.DeveloperPermissions && (m.State == "" || m.State == "active"), nil
}

// Gitea.

func giteaOpenPR(p *gitea.PullRequest) OpenPR {
	pr := OpenPR{Number: p.Index, URL: p.HTMLURL, Title: p.Title, Ref: fmt.Sprintf("refs/pull/%d/head", p.Index), Fork: true}
	if p.Poster != nil {
		pr.Author = p.Poster.UserName
	}
	if p.Base != nil {
		pr.BaseBranch = p.Base.Ref
	}
	if p.Head != nil {
		pr.HeadBranch, pr.HeadSHA = p.Head.Ref, p.Head.Sha
		pr.Fork = p.Base == nil || p.Head.RepoID != p.Base.RepoID
	}
	return pr
}

func (g *giteaForge) OpenPRs(ctx context.Context) ([]OpenPR, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetContext(ctx)
	opt := gitea.ListPullRequestsOptions{State: gitea.StateOpen, ListOptions: gitea.ListOptions{Page: 1, PageSize: 50}}
	var out []OpenPR
	for page := 1; ; page++ {
		if page > maxPages {
			return nil, fmt.Errorf("gitea: %s/%s has more than %d open pull requests", g.owner, g.name, maxPages*50)
		}
		prs, resp, err := g.c.ListRepoPullRequests(g.owner, g.name, opt)
		if err != nil {
			return nil, fmt.Errorf("gitea: list pull requests of %s/%s: %w", g.owner, g.name, err)
		}
		for _, p := range prs {
			out = append(out, giteaOpenPR(p))
		}
		if resp == nil || resp.NextPage == 0 || len(prs) == 0 {
			return out, nil
		}
		opt.Page = resp.NextPage
	}
}

func (g *giteaForge) PullRequest(ctx context.Context, number int64) (*OpenPR, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetContext(ctx)
	p, _, err := g.c.GetPullRequest(g.owner, g.name, number)
	if err != nil {
		return nil, fmt.Errorf("gitea: read pull request #%d of %s/%s: %w", number, g.owner, g.name, err)
	}
	pr := giteaOpenPR(p)
	return &pr, nil
}

// me is the token's user; the caller holds g.mu.
func (g *giteaForge) me() (int64, error) {
	id, _, err := g.self.get(func() (int64, string, error) {
		u, _, err := g.c.GetMyUserInfo()
		if err != nil {
			return 0, "", fmt.Errorf("gitea: read the token's user: %w", err)
		}
		return u.ID, u.UserName, nil
	})
	return id, err
}

func (g *giteaForge) UpsertComment(ctx context.Context, number int64, marker, body string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetContext(ctx)
	me, err := g.me()
	if err != nil {
		return "", err
	}
	opt := gitea.ListIssueCommentOptions{ListOptions: gitea.ListOptions{Page: 1, PageSize: 50}}
	for page := 1; ; page++ {
		if page > maxPages {
			return "", fmt.Errorf("gitea: pull request #%d has more than %d comments", number, maxPages*50)
		}
		cs, resp, err := g.c.ListIssueComments(g.owner, g.name, number, opt)
		if err != nil {
			return "", fmt.Errorf("gitea: list comments of pull request #%d: %w", number, err)
		}
		for _, c := range cs {
			if c.Poster != nil && c.Poster.ID == me && strings.Contains(c.Body, marker) {
				e, _, err := g.c.EditIssueComment(g.owner, g.name, c.ID, gitea.EditIssueCommentOption{Body: body})
				if err != nil {
					return "", fmt.Errorf("gitea: edit comment %d on pull request #%d: %w", c.ID, number, err)
				}
				return e.HTMLURL, nil
			}
		}
		if resp == nil || resp.NextPage == 0 || len(cs) == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	c, _, err := g.c.CreateIssueComment(g.owner, g.name, number, gitea.CreateIssueCommentOption{Body: body})
	if err != nil {
		return "", fmt.Errorf("gitea: comment on pull request #%d: %w", number, err)
	}
	return c.HTMLURL, nil
}

func (g *giteaForge) SetStatus(ctx context.Context, sha string, st CommitStatus) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetContext(ctx)
	if _, _, err := g.c.CreateStatus(g.owner, g.name, sha, gitea.CreateStatusOption{State: gitea.StatusState(st.State),
		TargetURL: st.TargetURL, Description: st.Description, Context: st.Context}); err != nil {
		return fmt.Errorf("gitea: set status %s on %s: %w", st.Context, sha, err)
	}
	return nil
}

func (g *giteaForge) CanWrite(ctx context.Context, user string) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetContext(ctx)
	p, resp, err := g.c.CollaboratorPermission(g.owner, g.name, user)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return false, nil // no such user
	}
	if resp != nil && resp.StatusCode == http.StatusForbidden {
		// Gitea tells a user's permission only to that user and to admins.
		return false, fmt.Errorf("gitea: permission of %s on %s/%s: %w; fix: make the token's user an administrator of the repository (Settings, Collaborators)", user, g.owner, g.name, err)
	}
	if err != nil {
		return false, fmt.Errorf("gitea: permission of %s on %s/%s: %w", user, g.owner, g.name, err)
	}
	if p == nil {
		return false, errors.New("gitea: the permission answer is empty")
	}
	switch p.Permission {
	case gitea.AccessModeWrite, gitea.AccessModeAdmin, gitea.AccessModeOwner:
		return true, nil
	}
	return false, nil
}
