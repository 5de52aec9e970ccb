package forge

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-github/v75/github"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/redact"
	"golang.org/x/sync/singleflight"
)

// AppAuth is a GitHub App installation and the app's private key.
type AppAuth struct {
	AppID          int64
	InstallationID int64
	PrivateKeyPEM  []byte
	// KeySource says where the key came from ("file /run/secrets/app.pem"),
	// for errors; never the key itself.
	KeySource string
}

// String keeps the key out of anything that formats an AppAuth.
func (a AppAuth) String() string {
	return fmt.Sprintf("github app %d installation %d (key from %s)", a.AppID, a.InstallationID, a.KeySource)
}

// LogValue keeps the key out of slog.
func (a AppAuth) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("app_id", a.AppID), slog.Int64("installation_id", a.InstallationID), slog.String("key", a.KeySource))
}

const (
	// jwtBackdate and jwtLifetime place the app's JWT: GitHub refuses one
	// issued in its future or expiring more than 10 minutes after it was
	// issued, so iat is backdated for clock drift and exp stays well inside.
	jwtBackdate = 60 * time.Second
	jwtLifetime = 5 * time.Minute
	// refreshMargin is how long before expires_at a token is replaced: at
	// least the longest Git operation (source.DefaultTimeout), so a token
	// handed to a fetch or push outlives it.
	refreshMargin = 5 * time.Minute
	// fallbackMargin: when a refresh fails, a token with this much left is
	// still handed out rather than failing the call.
	fallbackMargin = time.Minute
	// maxTokenAnswer bounds the exchange's answer.
	maxTokenAnswer = 1 << 20
)

// App is a GitHub App installation's token source. It signs a JWT with the
// app's key (RS256, golang-jwt), exchanges it for an installation token
// (POST /app/installations/{id}/access_tokens, go-github) and keeps the
// token until refreshMargin before it expires; concurrent callers share one
// exchange. ghinstallation does the same, but its one-minute refresh margin
// is shorter than a Git fetch may last and is not configurable.
type App struct {
	appID, installationID int64
	key                   *rsa.PrivateKey
	keySource             string
	client                *github.Client // sends the JWT
	timeout               time.Duration
	log                   *slog.Logger
	keySecrets            drift.Secrets

	flight  singleflight.Group
	mu      sync.Mutex
	token   string
	expires time.Time
	issued  []string // tokens handed out, newest last (at most 4), for redaction
	lastJWT string
}

// NewApp returns the installation token source for the repository o.URL
// names: the same API base as New's (o.APIURL, or derived from o.URL), each
// exchange bounded by o.Timeout. A nil logger discards.
func NewApp(o Options, auth AppAuth, logger *slog.Logger) (*App, error) {
	if auth.AppID <= 0 || auth.InstallationID <= 0 {
		return nil, fmt.Errorf("github app %d, installation %d: both must be positive; fix: app_id is on the app's settings page (About), installation_id ends the URL of the installation's Configure page", auth.AppID, auth.InstallationID)
	}
	src := auth.KeySource
	if src == "" {
		src = "the configuration"
	}
	key, err := jwt.ParseRSAPrivateKeyFromPEM(auth.PrivateKeyPEM)
	if err != nil {
		// The parser's errors say what is wrong with the key, not what is in it.
		return nil, fmt.Errorf("github app %d: the private key from %s is not a PEM RSA private key (%v); fix: point private_key_file at the .pem file GitHub generated under the app's settings, Private keys", auth.AppID, src, err)
	}
	host, _, _, err := splitURL(o.URL)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &App{appID: auth.AppID, installationID: auth.InstallationID, key: key, keySource: src,
		timeout: o.Timeout, log: logger, keySecrets: keySecrets(auth.PrivateKeyPEM)}
	a.client = github.NewClient(&http.Client{Timeout: o.Timeout, Transport: &jwtTransport{app: a}})
	if api := githubAPI(host, o.APIURL); api != "" {
		if a.client, err = a.client.WithEnterpriseURLs(api, api); err != nil {
			return nil, fmt.Errorf("github API URL %q: %w", api, err)
		}
	}
	return a, nil
}

// keySecrets are the key's forms a message might quote: the whole PEM and
// each of its lines.
func keySecrets(pem []byte) drift.Secrets {
	values := []string{string(pem), strings.TrimSpace(string(pem))}
	for _, l := range strings.Split(string(pem), "\n") {
		if l = strings.TrimSpace(l); len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			values = append(values, l)
		}
	}
	return drift.SecretsFrom(values...)
}

// Token returns an installation token, exchanging a new one when there is
// none or the one held expires within refreshMargin. Use it as the API's
// bearer token or, with username x-access-token, as Git's password over
// HTTPS.
func (a *App) Token(ctx context.Context) (string, error) {
	if tok, ok := a.cached(refreshMargin); ok {
		return tok, nil
	}
	// The exchange outlives a caller that gives up: others may wait on it.
	ch := a.flight.DoChan("token", func() (any, error) { return a.refresh(context.WithoutCancel(ctx)) })
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("github app %d: installation token: %w", a.appID, context.Cause(ctx))
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

func (a *App) cached(margin time.Duration) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token, a.token != "" && time.Until(a.expires) > margin
}

func (a *App) refresh(ctx context.Context) (string, error) {
	// A caller that read the cache just before the previous exchange ended.
	if tok, ok := a.cached(refreshMargin); ok {
		return tok, nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	tok, err := a.exchange(ctx)
	if err != nil {
		err = a.redact(err)
		if old, ok := a.cached(fallbackMargin); ok {
			a.log.Warn("github app: installation token not refreshed; using the current one until it expires",
				"app_id", a.appID, "installation_id", a.installationID, "err", err)
			return old, nil
		}
		a.log.Error("github app: no installation token", "app_id", a.appID, "installation_id", a.installationID, "err", err)
		return "", err
	}
	a.mu.Lock()
	a.token, a.expires = tok.GetToken(), tok.GetExpiresAt().Time
	a.issued = append(a.issued, a.token)
	if len(a.issued) > 4 {
		a.issued = a.issued[1:]
	}
	a.mu.Unlock()
	a.log.Info("github app: installation token refreshed", "app_id", a.appID, "installation_id", a.installationID,
		"expires_at", tok.GetExpiresAt().Time)
	return tok.GetToken(), nil
}

func (a *App) exchange(ctx context.Context) (*github.InstallationToken, error) {
	tok, resp, err := a.client.Apps.CreateInstallationToken(ctx, a.installationID, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		var fix string
		switch status {
		case http.StatusUnauthorized:
			fix = fmt.Sprintf("the private key from %s must be a current key of app %d (the app's settings, Private keys) and app_id its App ID; this host's clock must be right to the minute", a.keySource, a.appID)
		case http.StatusNotFound:
			fix = fmt.Sprintf("installation_id %d must be an installation of app %d: the number ending the URL of the installation's Configure page (organization or user settings, GitHub Apps)", a.installationID, a.appID)
		case http.StatusForbidden:
			fix = fmt.Sprintf("the installation %d may be suspended, or the app lacks the permissions it asks for; see its Configure page", a.installationID)
		default:
			fix = "check the API URL and that GitHub answers"
		}
		return nil, fmt.Errorf("github app %d: installation token for installation %d: %w; fix: %s", a.appID, a.installationID, err, fix)
	}
	if tok.GetToken() == "" || tok.ExpiresAt == nil {
		return nil, fmt.Errorf("github app %d: the answer for installation %d has no token or no expires_at; fix: check the API URL points at GitHub's API", a.appID, a.installationID)
	}
	return tok, nil
}

// jwt signs the app's JWT.
func (a *App) jwt() (string, error) {
	now := time.Now()
	claims := jwt.RegisteredClaims{
		Issuer:    strconv.FormatInt(a.appID, 10),
		IssuedAt:  jwt.NewNumericDate(now.Add(-jwtBackdate)),
		ExpiresAt: jwt.NewNumericDate(now.Add(jwtLifetime)),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(a.key)
	if err != nil {
		return "", fmt.Errorf("github app %d: sign the JWT: %w", a.appID, err)
	}
	a.mu.Lock()
	a.lastJWT = s
	a.mu.Unlock()
	return s, nil
}

// secrets are what an error must not show: the key and the tokens.
func (a *App) secrets() drift.Secrets {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.keySecrets.Merge(drift.SecretsFrom(append([]string{a.lastJWT}, a.issued...)...))
}

func (a *App) redact(err error) error { return redact.Error(err, a.secrets()) }

// jwtTransport authenticates the token exchange as the app, and bounds the
// answer.
type jwtTransport struct{ app *App }

func (t *jwtTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s, err := t.app.jwt()
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+s)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitBody(resp.Body, maxTokenAnswer)
	return resp, nil
}

// tokenTransport authenticates API calls with the installation token.
type tokenTransport struct{ app *App }

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.app.Token(req.Context())
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // the RoundTripper contract: the body is ours to close
		}
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+tok)
	return http.DefaultTransport.RoundTrip(req)
}

// limitBody reads at most n bytes of body, then reports an error.
func limitBody(body io.ReadCloser, n int64) io.ReadCloser {
	return &limited{r: io.LimitReader(body, n+1), c: body, n: n}
}

type limited struct {
	r    io.Reader
	c    io.Closer
	n    int64
	read int64
}

var errTooLong = errors.New("the answer is too long")

func (l *limited) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.read > l.n {
		return n - int(l.read-l.n), fmt.Errorf("%w (over %d bytes)", errTooLong, l.n)
	}
	return n, err
}

func (l *limited) Close() error { return l.c.Close() }
