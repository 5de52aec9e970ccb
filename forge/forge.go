// Package forge opens, finds, updates and closes remediation pull requests
// on GitHub (go-github), GitLab (client-go) and Gitea/Forgejo (the Gitea
// SDK). trueline keeps one pull request per stack workspace, on branch
// trueline/<stack>/<workspace>, found again by that branch on later runs.
package forge

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// PR is a pull (or merge) request.
type PR struct {
	Number int64
	URL    string
	Head   string
	Base   string
	Title  string
	Body   string
}

// NewPR describes a pull request to open.
type NewPR struct {
	Title, Body, Head, Base string
}

// Forge is one repository on one forge.
type Forge interface {
	// FindOpen returns the open pull request from branch head, or nil.
	FindOpen(ctx context.Context, head string) (*PR, error)
	Create(ctx context.Context, pr NewPR) (*PR, error)
	Update(ctx context.Context, number int64, title, body string) error
	// Close comments and closes.
	Close(ctx context.Context, number int64, comment string) error
}

// Options say how to reach a repository's forge.
type Options struct {
	Kind   string // github, gitlab, gitea
	URL    string // the repository's Git URL: https://host/owner/name(.git)
	APIURL string // the API base, when it is not derived from URL
	Token  string
}

// New returns the driver for a repository.
func New(o Options) (Forge, error) {
	host, owner, name, err := splitURL(o.URL)
	if err != nil {
		return nil, err
	}
	switch o.Kind {
	case "github":
		return newGitHub(o, host, owner, name)
	case "gitlab":
		return newGitLab(o, host, owner, name)
	case "gitea":
		return newGitea(o, host, owner, name)
	}
	return nil, fmt.Errorf("forge %q has no pull requests: use github, gitlab or gitea", o.Kind)
}

// splitURL takes https://host[:port]/owner/name(.git) apart. GitLab groups
// may nest: everything before the last element is the owner.
func splitURL(raw string) (host, owner, name string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", "", "", fmt.Errorf("repository URL %q: want https://host/owner/name", raw)
	}
	p := strings.Trim(strings.TrimSuffix(u.Path, ".git"), "/")
	i := strings.LastIndex(p, "/")
	if i <= 0 {
		return "", "", "", fmt.Errorf("repository URL %q: want https://host/owner/name", raw)
	}
	return u.Scheme + "://" + u.Host, p[:i], p[i+1:], nil
}

// Branch is the pull request branch of a stack workspace.
func Branch(stack, workspace string) string { return "trueline/" + stack + "/" + workspace }
