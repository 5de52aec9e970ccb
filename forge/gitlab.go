package forge

import (
	"context"
	"fmt"
	"net/http"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

type gitLab struct {
	c       *gitlab.Client
	project string // owner/name, the API takes it URL-encoded
	self    self   // the user comments are written as
}

func newGitLab(o Options, host, owner, name string, hc *http.Client) (Forge, error) {
	api := o.APIURL
	if api == "" {
		api = host + "/api/v4"
	}
	c, err := gitlab.NewClient(o.Token, gitlab.WithBaseURL(api), gitlab.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("gitlab API URL %q: %w", api, err)
	}
	return &gitLab{c: c, project: owner + "/" + name}, nil
}

func (g *gitLab) FindOpen(ctx context.Context, head string) (*PR, error) {
	opt := &gitlab.ListProjectMergeRequestsOptions{
		State: gitlab.Ptr("opened"), SourceBranch: gitlab.Ptr(head),
		ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1},
	}
	for {
		mrs, resp, err := g.c.MergeRequests.ListProjectMergeRequests(g.project, opt, gitlab.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("gitlab: list merge requests of %s: %w", g.project, err)
		}
		for _, m := range mrs {
			if m.SourceBranch == head && m.SourceProjectID == m.TargetProjectID {
				return &PR{Number: m.IID, URL: m.WebURL, Head: m.SourceBranch, Base: m.TargetBranch, Title: m.Title, Body: m.Description}, nil
			}
		}
		if resp.NextPage == 0 {
			return nil, nil
		}
		opt.Page = resp.NextPage
	}
}

func (g *gitLab) Create(ctx context.Context, pr NewPR) (*PR, error) {
	m, _, err := g.c.MergeRequests.CreateMergeRequest(g.project, &gitlab.CreateMergeRequestOptions{
		Title: gitlab.Ptr(pr.Title), Description: gitlab.Ptr(pr.Body), SourceBranch: gitlab.Ptr(pr.Head),
		TargetBranch: gitlab.Ptr(pr.Base), RemoveSourceBranch: gitlab.Ptr(true)}, gitlab.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("gitlab: open merge request %s: %w", pr.Head, err)
	}
	return &PR{Number: m.IID, URL: m.WebURL, Head: m.SourceBranch, Base: m.TargetBranch, Title: m.Title, Body: m.Description}, nil
}

func (g *gitLab) Update(ctx context.Context, number int64, title, body string) error {
	_, _, err := g.c.MergeRequests.UpdateMergeRequest(g.project, number, &gitlab.UpdateMergeRequestOptions{
		Title: gitlab.Ptr(title), Description: gitlab.Ptr(body)}, gitlab.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("gitlab: update merge request !%d: %w", number, err)
	}
	return nil
}

func (g *gitLab) Close(ctx context.Context, number int64, comment string) error {
	if _, _, err := g.c.Notes.CreateMergeRequestNote(g.project, number, &gitlab.CreateMergeRequestNoteOptions{Body: gitlab.Ptr(comment)}, gitlab.WithContext(ctx)); err != nil {
		return fmt.Errorf("gitlab: comment on merge request !%d: %w", number, err)
	}
	if _, _, err := g.c.MergeRequests.UpdateMergeRequest(g.project, number, &gitlab.UpdateMergeRequestOptions{StateEvent: gitlab.Ptr("close")}, gitlab.WithContext(ctx)); err != nil {
		return fmt.Errorf("gitlab: close merge request !%d: %w", number, err)
	}
	return nil
}
