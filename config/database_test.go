package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trueline/trueline/internal/hcldiag"
)

// The database block: the URL from the environment or a file, a secret
// (never printed, scrubbed), and no block at all means SQLite.
func TestDatabase(t *testing.T) {
	const url = "postgres://trueline:pg-Pa55word@db.internal:5432/trueline?sslmode=verify-full"
	file := filepath.Join(t.TempDir(), "db-url")
	if err := os.WriteFile(file, []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("pg-Pa55word\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := env(map[string]string{"TRUELINE_DATABASE_URL": url, "JUST_A_PASSWORD": "pg-Pa55word"})
	for _, tc := range []struct {
		name, src string
		want      string // the URL; "" with wantErr: a diagnostic containing wantErr
		wantErr   string
	}{
		{"none: SQLite in data_dir", ``, "", ""},
		{"from the environment", "database {\n  url_env = \"TRUELINE_DATABASE_URL\"\n}\n", url, ""},
		{"from a file", fmt.Sprintf("database {\n  url_file = %q\n}\n", file), url, ""},
		{"inline", "database {\n  url = \"" + url + "\"\n}\n", "", "trueline.hcl:2,9: Inline secret"},
		{"both", fmt.Sprintf("database {\n  url_env = \"TRUELINE_DATABASE_URL\"\n  url_file = %q\n}\n", file), "", "Two sources for one secret"},
		{"neither", "database {\n}\n", "", "trueline.hcl:1,1: Database without a URL"},
		{"unset variable", "database {\n  url_env = \"NOPE\"\n}\n", "", "trueline.hcl:2,13: Secret not set"},
		{"not a URL", "database {\n  url_env = \"JUST_A_PASSWORD\"\n}\n", "", "trueline.hcl:2,13: Not a database URL: The env JUST_A_PASSWORD holds no postgres:// URL"},
		{"not a URL in a file", fmt.Sprintf("database {\n  url_file = %q\n}\n", wrong), "", "trueline.hcl:2,14: Not a database URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse("trueline.hcl", []byte(tc.src), environ)
			if tc.wantErr != "" {
				got := (&hcldiag.Error{Diags: diags}).Error()
				if !strings.Contains(got, tc.wantErr) {
					t.Errorf("error %q does not contain %q", got, tc.wantErr)
				}
				if strings.Contains(got, "pg-Pa55word") {
					t.Errorf("the error shows the password: %q", got)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if cfg.Database.Value() != tc.want {
				t.Errorf("database URL = %q, want %q", cfg.Database.Value(), tc.want)
			}
			if tc.want == "" {
				return
			}
			if s := fmt.Sprintf("%v %+v", cfg.Database, cfg); strings.Contains(s, "pg-Pa55word") {
				t.Errorf("the configuration prints the password: %s", s)
			}
			found := false
			for _, s := range cfg.Secrets() {
				found = found || s == url
			}
			if !found {
				t.Error("Secrets() leaves the database URL out: it would not be scrubbed")
			}
		})
	}
}
