// Package forge opens, finds, updates and closes remediation pull requests
// on GitHub (go-github), GitLab (client-go) and Gitea/Forgejo (the Gitea
// SDK). trueline keeps one pull request per stack workspace, on branch
// trueline/<stack>/<workspace>, found again by that branch on later runs.
// A forge is reached with a token or, on GitHub, as a GitHub App
// installation (App), whose token also serves Git over HTTPS. For plans of
// other people's pull requests, Reviews lists them, keeps one comment on
// each, sets commit statuses and tells who may push.
package forge

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/redact"
)

// DefaultTimeout bounds each call to a forge when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// MaxBody is the longest pull request body or comment a forge takes, in
// characters: GitHub refuses more than 65,536, GitLab more than 1,000,000.
// Gitea documents no limit; it is given GitHub's.
func MaxBody(kind string) int {
	if kind == "gitlab" {
		return 1000000
	}
	return 65536
}

// fitBody cuts a body the forge would refuse, saying so. remediate.Body
// folds its sections to fit; this is the backstop for anything else.
func fitBody(body string, max int) string {
	if utf8.RuneCountInString(body) <= max {
		return body
	}
	note := fmt.Sprintf("\n\n… (cut at the forge's limit of %d characters)\n", max)
	return string([]rune(body)[:max-utf8.RuneCountInString(note)]) + note
}

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
	// App authenticates to GitHub as an app installation instead of Token
	// (see NewApp).
	App *App
	// Timeout bounds each call (FindOpen, Create, Update, Close, and
	// those of Reviews), every request and retry in it included; zero
	// means DefaultTimeout.
	Timeout time.Duration
}

// New returns the driver for a repository. Every call it makes has a
// deadline, and no error it returns names the token.
func New(o Options) (Forge, error) {
	host, owner, name, err := splitURL(o.URL)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.App != nil && (o.Kind != "github" || o.Token != "") {
		return nil, fmt.Errorf("a GitHub App authenticates to GitHub only, and instead of a token: use forge github and no token")
	}
	// The SDKs take an http.Client: its Timeout bounds each request, the
	// context deadline below each call with its pages and retries.
	hc := &http.Client{Timeout: o.Timeout}
	var f Forge
	switch o.Kind {
	case "github":
		f, err = newGitHub(o, host, owner, name, hc)
	case "gitlab":
		f, err = newGitLab(o, host, owner, name, hc)
	case "gitea":
		f, err = newGitea(o, host, owner, name, hc)
	default:
		return nil, fmt.Errorf("forge %q has no pull requests: use github, gitlab or gitea", o.Kind)
	}
	if err != nil {
		return nil, err
	}
	secrets := []string{o.Token}
	if u, err := url.Parse(o.URL); err == nil {
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw)
		}
	}
	return &bounded{f: f, timeout: o.Timeout, maxBody: MaxBody(o.Kind), secrets: drift.SecretsFrom(secrets...), app: o.App}, nil
}

// bounded gives every call of a driver a deadline, cuts bodies to the
// forge's limit and redacts errors: SDK errors quote request URLs and what
// the server answered.
type bounded struct {
	f       Forge
	timeout time.Duration
	maxBody int
	secrets drift.Secrets
	app     *App // its key and tokens are secrets too
}

func (b *bounded) redact(err error) error {
	if err == nil {
		return nil
	}
	if b.app != nil {
		err = b.app.redact(err)
	}
	return redact.Error(err, b.secrets)
}

func (b *bounded) FindOpen(ctx context.Context, head string) (*PR, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	pr, err := b.f.FindOpen(ctx, head)
	return pr, b.redact(err)
}

func (b *bounded) Create(ctx context.Context, pr NewPR) (*PR, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	pr.Body = fitBody(pr.Body, b.maxBody)
	p, err := b.f.Create(ctx, pr)
	return p, b.redact(err)
}

func (b *bounded) Update(ctx context.Context, number int64, title, body string) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.redact(b.f.Update(ctx, number, title, fitBody(body, b.maxBody)))
}

func (b *bounded) Close(ctx context.Context, number int64, comment string) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.redact(b.f.Close(ctx, number, fitBody(comment, b.maxBody)))
}

// scpURL is Git's scp-like syntax: [user@]host:path.
var scpURL = regexp.MustCompile(`^(?:[^@/]+@)?([^:/]+):([^/].*)$`)

// splitURL takes a repository URL apart into the forge's web address, the
// owner and the name: https://host[:port]/owner/name(.git), and over SSH
// ssh://[user@]host[:port]/owner/name or git@host:owner/name, whose forge
// answers HTTPS on the same host. GitLab groups may nest: everything before
// the last element is the owner.
func splitURL(raw string) (host, owner, name string, err error) {
	bad := fmt.Errorf("repository URL %q: want https://host/owner/name, ssh://git@host/owner/name or git@host:owner/name", raw)
	var p string
	if m := scpURL.FindStringSubmatch(raw); m != nil && !strings.Contains(raw, "://") {
		host, p = "https://"+m[1], m[2]
	} else {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "", "", "", bad
		}
		host, p = u.Scheme+"://"+u.Host, u.Path
		if u.Scheme == "ssh" || u.Scheme == "git+ssh" {
			host = "https://" + u.Hostname() // the SSH port is not the web's
		}
	}
	p = strings.Trim(strings.TrimSuffix(p, ".git"), "/")
	i := strings.LastIndex(p, "/")
	if i <= 0 {
		return "", "", "", bad
	}
	return host, p[:i], p[i+1:], nil
}

// Branch is the pull request branch of a stack workspace.
func Branch(stack, workspace string) string { return "trueline/" + stack + "/" + workspace }
