package forge

import (
	"context"
	"fmt"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"
)

// Access tells whether the forge's credentials can open, update and close
// trueline's pull requests on the repository, without changing anything:
// the repository is read and the permissions the forge reports for the
// caller are checked. Errors say the fix after "fix: ".
func Access(ctx context.Context, f Forge) (string, error) {
	type accessor interface {
		access(ctx context.Context) (string, error)
	}
	if b, ok := f.(*bounded); ok {
		a, ok := b.f.(accessor)
		if !ok {
			return "", fmt.Errorf("this forge cannot be checked")
		}
		ctx, cancel := context.WithTimeout(ctx, b.timeout)
		defer cancel()
		got, err := a.access(ctx)
		return got, b.redact(err)
	}
	if a, ok := f.(accessor); ok {
		return a.access(ctx)
	}
	return "", fmt.Errorf("this forge cannot be checked")
}

func (g *gitHub) access(ctx context.Context) (string, error) {
	repo, resp, err := g.c.Repositories.Get(ctx, g.owner, g.name)
	if err != nil && g.app {
		return "", fmt.Errorf("read %s/%s: %w; fix: install the app on the repository (the installation's Configure page, Repository access)", g.owner, g.name, err)
	}
	if err != nil {
		return "", fmt.Errorf("read %s/%s: %w; fix: the token must see the repository (fine-grained: select it; classic: the repo scope)", g.owner, g.name, err)
	}
	// Classic tokens list their scopes; fine-grained and installation
	// tokens list none, and the repository's permissions speak for them.
	if scopes := resp.Header.Get("X-OAuth-Scopes"); scopes != "" && !hasScope(scopes, "repo") && !(hasScope(scopes, "public_repo") && !repo.GetPrivate()) {
		return "", fmt.Errorf("the token's scopes are %q; fix: give it the repo scope", scopes)
	}
	if p := repo.GetPermissions(); p != nil && !p["push"] && g.app {
		return "", fmt.Errorf("the app may read %s but not push; fix: give the app Contents and Pull requests read and write, and accept the new permissions on the installation", repo.GetFullName())
	}
	if p := repo.GetPermissions(); p != nil && !p["push"] {
		return "", fmt.Errorf("the token may read %s but not push; fix: give it contents and pull requests read/write", repo.GetFullName())
	}
	return "can push to " + repo.GetFullName() + " and open pull requests", nil
}

func (g *gitLab) access(ctx context.Context) (string, error) {
	p, _, err := g.c.Projects.GetProject(g.project, nil, gitlab.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("read %s: %w; fix: the token needs the api scope and a role on the project", g.project, err)
	}
	level := gitlab.NoPermissions
	if p.Permissions != nil {
		if a := p.Permissions.ProjectAccess; a != nil {
			level = max(level, a.AccessLevel)
		}
		if a := p.Permissions.GroupAccess; a != nil {
			level = max(level, a.AccessLevel)
		}
	}
	if level < gitlab.DeveloperPermissions {
		return "", fmt.Errorf("the token's role on %s is below Developer (access level %d); fix: give its user (or the project access token) the Developer role", p.PathWithNamespace, level)
	}
	return fmt.Sprintf("access level %d on %s: can push and open merge requests", level, p.PathWithNamespace), nil
}

func (g *giteaForge) access(ctx context.Context) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetContext(ctx)
	repo, _, err := g.c.GetRepo(g.owner, g.name)
	if err != nil {
		return "", fmt.Errorf("read %s/%s: %w; fix: the token needs read:repository and write:repository", g.owner, g.name, err)
	}
	if p := repo.Permissions; p == nil || !p.Push {
		return "", fmt.Errorf("the token may read %s but not push; fix: make its user a collaborator with write access", repo.FullName)
	}
	return "can push to " + repo.FullName + " and open pull requests", nil
}

func hasScope(list, scope string) bool {
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == scope {
			return true
		}
	}
	return false
}
