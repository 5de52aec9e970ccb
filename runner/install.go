package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hc-install/httpclient"
	"github.com/hashicorp/hc-install/product"
	"github.com/hashicorp/hc-install/releases"
)

// Install says where and from what terraform releases are installed when
// no local binary satisfies a constraint. hc-install checks each archive
// against SHA256SUMS and SHA256SUMS against its detached OpenPGP signature
// before anything is unpacked.
type Install struct {
	// Dir receives <Dir>/terraform/<version>/terraform; pass it in
	// FindOptions.ToolsDir too, so later runs find what was installed.
	Dir string
	// ReleasesURL is a server laid out like HashiCorp's releases site
	// (<url>/terraform/index.json, <url>/terraform/<version>/...); empty:
	// that site.
	ReleasesURL string
	// PublicKey is the armored OpenPGP key that signs SHA256SUMS; empty:
	// HashiCorp's, as built into hc-install.
	PublicKey  string
	HTTPClient *http.Client  // nil: hc-install's client, which retries
	Timeout    time.Duration // for one install; zero: 10 minutes
}

// Limits on what a releases server may send: the product index holds every
// release (HashiCorp's terraform index is a few MB), and an archive is
// about 30 MB.
const (
	maxIndexBytes   = 64 << 20
	maxArchiveBytes = 1 << 30
	maxErrorChars   = 400
)

// terraform installs the newest terraform release that satisfies
// constraints (no prerelease unless a constraint names one) and returns
// its path.
func (in *Install) terraform(ctx context.Context, prod product.Product, constraints version.Constraints) (string, error) {
	if in.Dir == "" {
		return "", errors.New("installing terraform needs an install directory")
	}
	where := in.ReleasesURL
	if where == "" {
		where = "the HashiCorp releases site"
	}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	client := in.HTTPClient
	if client == nil {
		client = httpclient.New()
	}
	limited := *client
	limited.Transport = limitBodies{next: client.Transport}

	list := &releases.Versions{
		Product:     prod,
		Constraints: constraints,
		ApiBaseURL:  strings.TrimSuffix(in.ReleasesURL, "/"),
		HTTPClient:  &limited,
		ListTimeout: timeout,
		Install:     releases.InstallationOptions{Timeout: timeout, ArmoredPublicKey: in.PublicKey},
	}
	srcs, err := list.List(ctx)
	if err != nil {
		return "", fmt.Errorf("list terraform releases at %s: %w", where, short(err))
	}
	var ev *releases.ExactVersion
	for i := len(srcs) - 1; i >= 0; i-- { // oldest first
		e, ok := srcs[i].(*releases.ExactVersion)
		if ok && (e.Version.Prerelease() == "" || constraints != nil) {
			ev = e
			break
		}
	}
	if ev == nil {
		return "", fmt.Errorf("no terraform release at %s satisfies %q", where, constraints)
	}

	root := filepath.Join(in.Dir, "terraform")
	final := filepath.Join(root, ev.Version.String())
	if exists(filepath.Join(final, "terraform")) { // another process was first
		return filepath.Join(final, "terraform"), nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("install terraform %s: %w", ev.Version, err)
	}
	// Unpacked beside its final place and renamed, so no run ever sees half
	// a binary; the name is no version, so lookups pass it by.
	tmp, err := os.MkdirTemp(root, ".install-")
	if err != nil {
		return "", fmt.Errorf("install terraform %s: %w", ev.Version, err)
	}
	defer func() { _ = os.RemoveAll(tmp) }() // empty after the rename; a failed install's leftovers
	ev.InstallDir = tmp
	if _, err := ev.Install(ctx); err != nil {
		return "", fmt.Errorf("install terraform %s from %s: %w; nothing was installed", ev.Version, where, short(err))
	}
	if err := os.Rename(tmp, final); err != nil && !exists(filepath.Join(final, "terraform")) {
		return "", fmt.Errorf("install terraform %s: %w", ev.Version, err)
	}
	return filepath.Join(final, "terraform"), nil
}

// limitBodies fails a response larger than its kind allows, so a hostile
// or broken releases server cannot fill memory or disk.
type limitBodies struct{ next http.RoundTripper }

func (l limitBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	next := l.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	limit := int64(maxIndexBytes)
	if strings.HasSuffix(req.URL.Path, ".zip") {
		limit = maxArchiveBytes
	}
	if resp.ContentLength > limit {
		_ = resp.Body.Close() // refused unread
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed", req.URL.Path, resp.ContentLength, limit)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: limit, limit: limit, path: req.URL.Path}
	return resp, nil
}

type limitedBody struct {
	rc          io.ReadCloser
	left, limit int64
	path        string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		if n, _ := b.rc.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%s: more than the %d bytes allowed", b.path, b.limit)
		}
		return b.rc.Read(p)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// short cuts an error's message: hc-install quotes a whole index it cannot
// parse. It keeps errors.Is for the error's chain.
func short(err error) error {
	msg := err.Error()
	if len(msg) <= maxErrorChars {
		return err
	}
	return &shortened{msg: msg[:maxErrorChars] + "…", err: err}
}

type shortened struct {
	msg string
	err error
}

func (e *shortened) Error() string { return e.msg }
func (e *shortened) Unwrap() error { return e.err }
