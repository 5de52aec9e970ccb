package forge

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"code.gitea.io/sdk/gitea"
)

type giteaForge struct {
	mu          sync.Mutex // the SDK client holds one context at a time
	c           *gitea.Client
	owner, name string
	self        self // the user comments are written as
}

func newGitea(o Options, host, owner, name string, hc *http.Client) (Forge, error) {
	api := o.APIURL
	if api == "" {
		api = host
	}
	// No version probe at construction: the first call reaches the server.
	c, err := gitea.NewClient(api, gitea.SetToken(o.Token), gitea.SetGiteaVersion(""), gitea.SetHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("gitea %s: %w", api, err)
	}
	return &giteaForge{c: c, owner: owner, name: name}, nil
}

func (g *giteaForge) FindOpen(ctx context.Context, head string) (*PR, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetContext(ctx)
	opt := gitea.ListPullRequestsOptions{State: gitea.StateOpen, ListOptions: gitea.ListOptions{Page: 1, PageSize: 50}}
	for {
		prs, resp, err := g.c.ListRepoPullRequests(g.owner, g.name, opt)
		if err != nil {
			return nil, fmt.Errorf("gitea: list pull requests of %s/%s: %w", g.owner, g.name, err)
		}
		for _, p := range prs {
			if p.Head != nil && p.Head.Ref == head && p.Head.RepoID == p.Base.RepoID {
				return giteaPR(p), nil
			}
		}
		if resp == nil || resp.NextPage == 0 || len(prs) == 0 {
			return nil, nil
		}
		opt.Page = resp.NextPage
	}
}

func giteaPR(p *gitea.PullRequest) *PR {
	pr := &PR{Number: p.Index, URL: p.HTMLURL, Title: p.Title, Body: p.Body}
	if p.Head != nil {
		pr.Head = p.Head.Ref
	}
	if p.Base != nil {
		pr.Base = p.Base.Ref
	}
	return pr
}

func (g *giteaForge) Create(ctx context.Context, pr NewPR) (*PR, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetContext(ctx)
	p, _, err := g.c.CreatePullRequest(g.owner, g.name, gitea.CreatePullRequestOption{Head: pr.Head, Base: pr.Base, Title: pr.Title, Body: pr.Body})
	if err != nil {
		return nil, fmt.Errorf("gitea: open pull request %s: %w", pr.Head, err)
	}
	return giteaPR(p), nil
}

func (g *giteaForge) Update(ctx context.Context, number int64, title, body string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetContext(ctx)
	if _, _, err := g.c.EditPullRequest(g.owner, g.name, number, gitea.EditPullRequestOption{Title: title, Body: &body}); err != nil {
		return fmt.Errorf("gitea: update pull request #%d: %w", number, err)
	}
	return nil
}

func (g *giteaForge) Close(ctx context.Context, number int64, comment string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetContext(ctx)
	if _, _, err := g.c.CreateIssueComment(g.owner, g.name, number, gitea.CreateIssueCommentOption{Body: comment}); err != nil {
		return fmt.Errorf("gitea: comment on pull request #%d: %w", number, err)
	}
	closed := gitea.StateClosed
	if _, _, err := g.c.EditPullRequest(g.owner, g.name, number, gitea.EditPullRequestOption{State: &closed}); err != nil {
		return fmt.Errorf("gitea: close pull request #%d: %w", number, err)
	}
	return nil
}
