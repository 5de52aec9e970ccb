package forge

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-github/v75/github"
)

type gitHub struct {
	c           *github.Client
	owner, name string
	app         bool // authenticated as a GitHub App installation
	appSrc      *App // that installation's app, which names its bot user
	self        self // the user comments are written as
}

func newGitHub(o Options, host, owner, name string, hc *http.Client) (Forge, error) {
	var c *github.Client
	if o.App != nil {
		// Each request asks the app for its token: installation tokens
		// expire within the hour.
		c = github.NewClient(&http.Client{Timeout: hc.Timeout, Transport: &tokenTransport{app: o.App}})
	} else {
		c = github.NewClient(hc).WithAuthToken(o.Token)
	}
	if api := githubAPI(host, o.APIURL); api != "" {
		var err error
		if c, err = c.WithEnterpriseURLs(api, api); err != nil {
			return nil, fmt.Errorf("github API URL %q: %w", api, err)
		}
	}
	return &gitHub{c: c, owner: owner, name: name, app: o.App != nil, appSrc: o.App}, nil
}

// githubAPI is the API base for a repository on host: api, when given;
// none (go-github's default) for github.com; /api/v3/ on the host for
// GitHub Enterprise Server.
func githubAPI(host, api string) string {
	if api == "" && !strings.HasSuffix(host, "://github.com") {
		api = host + "/api/v3/"
	}
	return api
}

func (g *gitHub) FindOpen(ctx context.Context, head string) (*PR, error) {
	opt := &github.PullRequestListOptions{State: "open", ListOptions: github.ListOptions{PerPage: 100}}
	for {
		prs, resp, err := g.c.PullRequests.List(ctx, g.owner, g.name, opt)
		if err != nil {
			return nil, fmt.Errorf("github: list pull requests of %s/%s: %w", g.owner, g.name, err)
		}
		for _, p := range prs {
			// Match the branch and the repository: a fork's branch of the same name is not ours.
			if p.GetHead().GetRef() == head && p.GetHead().GetRepo().GetFullName() == g.owner+"/"+g.name {
				return ghPR(p), nil
			}
		}
		if resp.NextPage == 0 {
			return nil, nil
		}
		opt.Page = resp.NextPage
	}
}

func ghPR(p *github.PullRequest) *PR {
	return &PR{Number: int64(p.GetNumber()), URL: p.GetHTMLURL(), Head: p.GetHead().GetRef(), Base: p.GetBase().GetRef(),
		Title: p.GetTitle(), Body: p.GetBody()}
}

func (g *gitHub) Create(ctx context.Context, pr NewPR) (*PR, error) {
	p, _, err := g.c.PullRequests.Create(ctx, g.owner, g.name, &github.NewPullRequest{
		Title: github.Ptr(pr.Title), Head: github.Ptr(pr.Head), Base: github.Ptr(pr.Base), Body: github.Ptr(pr.Body),
		MaintainerCanModify: github.Ptr(true)})
	if err != nil {
		return nil, fmt.Errorf("github: open pull request %s: %w", pr.Head, err)
	}
	return ghPR(p), nil
}

func (g *gitHub) Update(ctx context.Context, number int64, title, body string) error {
	_, _, err := g.c.PullRequests.Edit(ctx, g.owner, g.name, int(number), &github.PullRequest{Title: github.Ptr(title), Body: github.Ptr(body)})
	if err != nil {
		return fmt.Errorf("github: update pull request #%d: %w", number, err)
	}
	return nil
}

func (g *gitHub) Close(ctx context.Context, number int64, comment string) error {
	if _, _, err := g.c.Issues.CreateComment(ctx, g.owner, g.name, int(number), &github.IssueComment{Body: github.Ptr(comment)}); err != nil {
		return fmt.Errorf("github: comment on pull request #%d: %w", number, err)
	}
	if _, _, err := g.c.PullRequests.Edit(ctx, g.owner, g.name, int(number), &github.PullRequest{State: github.Ptr("closed")}); err != nil {
		return fmt.Errorf("github: close pull request #%d: %w", number, err)
	}
	return nil
}
