package runner_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/trueline/trueline/internal/testenv"
	"github.com/trueline/trueline/runner"
)

// release is what a releases server serves for terraform 1.5.7: a zip of
// the real binary `make tools` built, its SHA256SUMS and their detached
// signature.
type release struct {
	zip, sums, sig []byte
	archive        string
}

func newRelease(t *testing.T) release {
	t.Helper()
	bin, err := os.ReadFile(testenv.Binary(t, testenv.TerraformCompat).Path)
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	// Stored, not deflated: the binary is large and the test is about
	// verification, not compression.
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "terraform", Method: zip.Store})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	r := release{zip: z.Bytes(), archive: fmt.Sprintf("terraform_1.5.7_%s_%s.zip", runtime.GOOS, runtime.GOARCH)}
	r.sums = fmt.Appendf(nil, "%x  %s\n", sha256.Sum256(r.zip), r.archive)
	return r
}

// signingKey is an OpenPGP key made for the test, and its armored public
// half.
func signingKey(t *testing.T, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@example.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	aw, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(aw); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return e, buf.String()
}

func sign(t *testing.T, e *openpgp.Entity, data []byte) []byte {
	t.Helper()
	var sig bytes.Buffer
	if err := openpgp.DetachSign(&sig, e, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	return sig.Bytes()
}

// releasesServer serves rel laid out like the HashiCorp releases site, and
// counts the requests it answers. index, when set, replaces the product
// index.
func releasesServer(t *testing.T, rel release, index http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	version := map[string]any{
		"name": "terraform", "version": "1.5.7",
		"shasums": "terraform_1.5.7_SHA256SUMS", "shasums_signature": "terraform_1.5.7_SHA256SUMS.sig",
		"builds": []map[string]string{{
			"name": "terraform", "version": "1.5.7", "os": runtime.GOOS, "arch": runtime.GOARCH,
			"filename": rel.archive, "url": "https://releases.example.invalid/terraform/1.5.7/" + rel.archive,
		}},
	}
	// An older release, so that the newest satisfying is the one chosen.
	older := map[string]any{"name": "terraform", "version": "1.4.0", "builds": []any{}}
	// A prerelease, which no plain constraint selects.
	pre := map[string]any{"name": "terraform", "version": "1.6.0-beta1", "builds": []any{}}
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("/terraform/index.json", func(w http.ResponseWriter, r *http.Request) {
		if index != nil {
			index(w, r)
			return
		}
		writeJSON(w, map[string]any{"name": "terraform", "versions": map[string]any{"1.5.7": version, "1.4.0": older, "1.6.0-beta1": pre}})
	})
	mux.HandleFunc("/terraform/1.5.7/index.json", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, version) })
	file := func(body []byte, ctype string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", ctype)
			_, _ = w.Write(body)
		}
	}
	mux.HandleFunc("/terraform/1.5.7/terraform_1.5.7_SHA256SUMS", file(rel.sums, "text/plain"))
	mux.HandleFunc("/terraform/1.5.7/terraform_1.5.7_SHA256SUMS.sig", file(rel.sig, "application/octet-stream"))
	mux.HandleFunc("/terraform/1.5.7/"+rel.archive, file(rel.zip, "application/zip"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestInstallTerraform installs a missing terraform from a releases server
// only when the archive matches SHA256SUMS and SHA256SUMS carries a good
// signature by the configured key; anything else installs nothing and says
// why.
func TestInstallTerraform(t *testing.T) {
	key, pub := signingKey(t, "releases")
	other, _ := signingKey(t, "someone else")
	good := newRelease(t)
	good.sig = sign(t, key, good.sums)

	badSum := good
	badSum.sums = fmt.Appendf(nil, "%x  %s\n", sha256.Sum256([]byte("another archive")), good.archive)
	badSum.sig = sign(t, key, badSum.sums)

	badSig := good
	badSig.sig = sign(t, other, good.sums)

	tampered := good
	tampered.sig = sign(t, key, good.sums)
	tampered.sums = append(append([]byte{}, good.sums...), "0000  extra.zip\n"...)

	endless := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		chunk := bytes.Repeat([]byte(" "), 1<<20)
		_, _ = w.Write([]byte("{"))
		for range 100 { // 100 MiB of nothing
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}

	for _, tc := range []struct {
		name       string
		rel        release
		index      http.HandlerFunc
		constraint string
		wantErr    []string
	}{
		{name: "signed and matching", rel: good, constraint: "~> 1.5.0"},
		{name: "no constraint: the newest release, not a prerelease", rel: good},
		{name: "an archive that does not match SHA256SUMS", rel: badSum, constraint: "~> 1.5.0",
			wantErr: []string{"install terraform 1.5.7 from http://", "does not match its signed SHA256SUMS", "nothing was installed"}},
		{name: "SHA256SUMS signed by another key", rel: badSig, constraint: "~> 1.5.0",
			wantErr: []string{"install terraform 1.5.7 from http://", "unable to verify checksums signature", "nothing was installed"}},
		{name: "SHA256SUMS changed after signing", rel: tampered, constraint: "~> 1.5.0",
			wantErr: []string{"unable to verify checksums signature", "nothing was installed"}},
		{name: "no release satisfies", rel: good, constraint: ">= 2",
			wantErr: []string{`no terraform release at http://`, `satisfies ">= 2"`}},
		{name: "an endless index", rel: good, index: endless, constraint: "~> 1.5.0",
			wantErr: []string{"list terraform releases at http://", "/terraform/index.json: more than the 67108864 bytes allowed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			onPath(t, "")
			srv, hits := releasesServer(t, tc.rel, tc.index)
			dir := t.TempDir()
			tch := &runner.Toolchain{Install: &runner.Install{Dir: dir, ReleasesURL: srv.URL + "/", PublicKey: pub}}
			b, err := tch.Binary(context.Background(), "terraform", tc.constraint)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("installed %s, want an error", b)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				if len(err.Error()) > 2000 {
					t.Errorf("error is %d characters long", len(err.Error()))
				}
				if entries, _ := os.ReadDir(filepath.Join(dir, "terraform")); len(entries) != 0 {
					t.Errorf("a refused install left %v", entries)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(dir, "terraform", "1.5.7", "terraform")
			if b.Version.String() != "1.5.7" || b.Path != want {
				t.Fatalf("installed %s, want terraform 1.5.7 at %s", b, want)
			}
			// A new toolchain (a restart) finds the install and asks the
			// server nothing.
			before := hits.Load()
			again, err := (&runner.Toolchain{Install: &runner.Install{Dir: dir, ReleasesURL: srv.URL, PublicKey: pub}}).
				Binary(context.Background(), "terraform", tc.constraint)
			if err != nil || again.Path != want {
				t.Fatalf("second lookup: %v %v", again, err)
			}
			if n := hits.Load() - before; n != 0 {
				t.Errorf("the second lookup made %d requests", n)
			}
		})
	}
}

// TestNoTofuInstall: a missing OpenTofu version is never installed; the
// error says what is installed and how to add one.
func TestNoTofuInstall(t *testing.T) {
	onPath(t, "")
	dir := tools(t, map[string]string{"tofu/1.10.10": ""})
	tch := &runner.Toolchain{ToolsDir: dir, Install: &runner.Install{Dir: t.TempDir(), ReleasesURL: "http://127.0.0.1:1"}}
	_, err := tch.Binary(context.Background(), "tofu", "~> 1.11")
	if err == nil {
		t.Fatal("found a tofu 1.11")
	}
	for _, w := range []string{`no tofu satisfies "~> 1.11"`, "installed: 1.10.10 (", dir + "/tofu/<version>/tofu", "trueline installs no OpenTofu"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}
