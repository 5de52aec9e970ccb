package ledger

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trueline/trueline/internal/pgtest"
)

// Open picks the database by the URL's form.
func TestOpenPicksTheDatabase(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, url, dialect string
		file               string // the SQLite file it must create
	}{
		{"sqlite URL", "sqlite://" + filepath.Join(dir, "a", "trueline.db"), "sqlite", filepath.Join(dir, "a", "trueline.db")},
		{"plain path", filepath.Join(dir, "b.db"), "sqlite", filepath.Join(dir, "b.db")},
		{"postgres URL", "postgres" + strings.TrimPrefix(pgtest.New(t), "postgres"), "postgres", ""},
		{"postgresql URL", "postgresql" + strings.TrimPrefix(pgtest.New(t), "postgres"), "postgres", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Open(context.Background(), tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if l.Dialect() != tc.dialect {
				t.Errorf("Open(%q) is %s, want %s", tc.url, l.Dialect(), tc.dialect)
			}
			if tc.file != "" {
				if _, err := os.Stat(tc.file); err != nil {
					t.Errorf("no ledger file: %v", err)
				}
			}
			if _, _, err := l.Enqueue(context.Background(), req("infra", "stacks/web", "default", "manual")); err != nil {
				t.Error(err)
			}
		})
	}
}

// A database URL holds a password: no error of Open shows it, whatever is
// wrong with the URL or the server.
func TestOpenErrorsHideThePassword(t *testing.T) {
	const pw = "s3cr3t-Pa55"
	for _, tc := range []struct {
		name, url string
		want      string // what the error says instead
	}{
		{"refused", "postgres://trueline:" + pw + "@127.0.0.1:1/ledger?sslmode=disable&connect_timeout=5", "127.0.0.1:1/ledger"},
		{"bad port", "postgres://trueline:" + pw + "@127.0.0.1:notaport/ledger", "does not parse"},
		{"bad parameter", "postgres://trueline:" + pw + "@127.0.0.1/ledger?sslmode=" + pw, "does not parse"},
		{"password parameter", "postgres://127.0.0.1:1/ledger?sslmode=disable&connect_timeout=5&password=" + pw, "127.0.0.1:1/ledger"},
		{"encoded password", "postgres://trueline:" + strings.ReplaceAll(pw, "5", "%35") + "@127.0.0.1:1/ledger?sslmode=disable&connect_timeout=5", "127.0.0.1:1/ledger"},
		{"other scheme", "mysql://trueline:" + pw + "@127.0.0.1/ledger", `"mysql" is no database`},
		{"mangled scheme", "trueline:" + pw + "@127.0.0.1://ledger", "this URL's scheme is no database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l, err := Open(ctx, tc.url)
			if err == nil {
				l.Close()
				t.Fatalf("Open(%s) succeeded", tc.name)
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "%35") {
				t.Errorf("the error shows the password: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v; want it to say %q", err, tc.want)
			}
		})
	}
}

// An empty or fileless URL says how to write one.
func TestOpenRejectsNoDatabase(t *testing.T) {
	for _, url := range []string{"", "sqlite://"} {
		if l, err := Open(context.Background(), url); err == nil {
			l.Close()
			t.Errorf("Open(%q) opened something", url)
		} else if !strings.Contains(err.Error(), "sqlite:///") && !strings.Contains(err.Error(), "postgres://") {
			t.Errorf("Open(%q) = %v; want it to show the forms a URL takes", url, err)
		}
	}
}
