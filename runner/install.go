package runner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
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
	limited.Transport = &releaseTransport{next: client.Transport}

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

// releaseTransport bounds what a releases server may send, so a hostile
// or broken one cannot fill memory or disk, and checks each archive
// against the SHA256SUMS read before it. hc-install checks it too, but
// (v0.10.0) loses every error that happens once the archive's download has
// begun: a deferred cleanup overwrites it, and the install then fails on a
// missing binary with no word of the checksum. An error here comes before
// that. Spooling the archive also gives it the length hc-install insists
// on, which a server answering in chunks does not send.
type releaseTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	sums map[string]string // archive name → hex SHA-256, from SHA256SUMS
}

func (t *releaseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	name := path.Base(req.URL.Path)
	limit := int64(maxIndexBytes)
	if strings.HasSuffix(name, ".zip") {
		limit = maxArchiveBytes
	}
	if resp.ContentLength > limit {
		_ = resp.Body.Close() // refused unread
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed", req.URL.Path, resp.ContentLength, limit)
	}
	body := &limitedBody{rc: resp.Body, left: limit, limit: limit, path: req.URL.Path}
	switch {
	case strings.HasSuffix(name, ".zip"):
		return t.archive(resp, body, name)
	case strings.HasSuffix(name, "_SHA256SUMS"):
		b, err := io.ReadAll(body)
		_ = resp.Body.Close() // read whole; a close error changes nothing
		if err != nil {
			return nil, err
		}
		t.mu.Lock()
		t.sums = map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				t.sums[f[1]] = strings.ToLower(f[0])
			}
		}
		t.mu.Unlock()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		return resp, nil
	}
	resp.Body = body
	return resp, nil
}

// archive spools an archive to a temporary file, hashing it on the way,
// and refuses it unless it matches SHA256SUMS.
func (t *releaseTransport) archive(resp *http.Response, body io.Reader, name string) (*http.Response, error) {
	orig := resp.Body
	defer func() { _ = orig.Close() }() // read whole or refused
	f, err := os.CreateTemp("", "trueline-release-*.zip")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), body)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	got := hex.EncodeToString(h.Sum(nil))
	t.mu.Lock()
	want, listed := t.sums[name]
	t.mu.Unlock()
	if err == nil && listed && got != want {
		err = fmt.Errorf("%s does not match its signed SHA256SUMS (its SHA-256 is %s, SHA256SUMS says %s)", name, got, want)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name()) // a refused archive
		return nil, err
	}
	resp.Body = &tempFile{File: f}
	resp.ContentLength = n
	resp.Header.Del("Content-Length")
	resp.Uncompressed = true
	return resp, nil
}

// tempFile is removed when closed.
type tempFile struct{ *os.File }

func (f *tempFile) Close() error {
	err := f.File.Close()
	if rerr := os.Remove(f.Name()); err == nil {
		err = rerr
	}
	return err
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
