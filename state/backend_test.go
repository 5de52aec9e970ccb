package state

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Nested settings read the same as a block or an object attribute, from the
// stack, a backend config file or a key=value entry, and keep where they
// were written.
func TestDetectNested(t *testing.T) {
	fsys := os.DirFS("testdata")
	role := "arn:aws:iam::111111111111:role/records"
	tests := []struct {
		name, dir string
		config    []string
		want      map[string]any // settings that must read so
		origin    map[string]string
		role      *roleToAssume // assumeRoleOf, nil for none
		sts, s3   string
		credFiles []string
		bad       string // an assumeRoleOf error
	}{
		{name: "blocks", dir: "backend/block",
			want: map[string]any{"region": "eu-central-1"},
			origin: map[string]string{"assume_role": "backend/block/main.tf:7", "endpoints": "backend/block/main.tf:18",
				"region": "backend/block/main.tf:5"},
			role: &roleToAssume{arn: role, session: "trueline", externalID: "ext-1", duration: time.Hour, sourceIdentity: "ops",
				tags: map[string]string{"team": "platform"}},
			sts: "http://127.0.0.1:7071", s3: "http://127.0.0.1:7070", credFiles: []string{"~/creds", "/etc/creds"}},
		{name: "a backend config file's block replaces the stack's", dir: "backend/block", config: []string{"backend.hcl"},
			want:   map[string]any{"profile": "ops"},
			origin: map[string]string{"assume_role": "backend/block/backend.hcl:2", "profile": "backend/block/backend.hcl:1"},
			role:   &roleToAssume{arn: "arn:aws:iam::222222222222:role/from-file", tags: map[string]string{}},
			sts:    "http://127.0.0.1:7071", s3: "http://127.0.0.1:7070", credFiles: []string{"~/creds", "/etc/creds"}},
		{name: "object attributes", dir: "backend/attr",
			role: &roleToAssume{arn: role, externalID: "ext-1", tags: map[string]string{}}, sts: "http://127.0.0.1:7071"},
		{name: "legacy top-level settings", dir: "backend/legacy",
			role: &roleToAssume{arn: role, session: "trueline", externalID: "ext-1", tags: map[string]string{}},
			sts:  "http://127.0.0.1:7071", s3: "http://127.0.0.1:7070", credFiles: []string{"/etc/creds"}},
		{name: "key=value entries in HCL syntax", dir: "backend/pairs",
			config: []string{`assume_role={role_arn="` + role + `", duration="30m"}`, `shared_credentials_files=["/a", "/b"]`, "profile=ops"},
			want:   map[string]any{"profile": "ops"},
			origin: map[string]string{"assume_role": `backend_config "assume_role=..."`},
			role:   &roleToAssume{arn: role, duration: 30 * time.Minute, tags: map[string]string{}}, credFiles: []string{"/a", "/b"}},
		{name: "legacy duration in seconds", dir: "backend/pairs",
			config: []string{"role_arn=" + role, "assume_role_duration_seconds=900", "sts_region=eu-west-1"},
			role:   &roleToAssume{arn: role, duration: 15 * time.Minute, tags: map[string]string{}}},
		{name: "no role", dir: "backend/pairs", config: []string{"bucket=state"}, want: map[string]any{"bucket": "state"}},
		{name: "hostile: assume_role not an object", dir: "backend/pairs", config: []string{`assume_role={role_arn=`},
			bad: `backend_config "assume_role=...": s3 backend: assume_role is not a block`},
		{name: "hostile: no role_arn", dir: "backend/pairs", config: []string{`assume_role={session_name="x"}`},
			bad: "assume_role without role_arn: set role_arn"},
		{name: "hostile: bad duration", dir: "backend/pairs", config: []string{`assume_role={role_arn="` + role + `", duration="-1h"}`},
			bad: `assume_role duration "-1h" is not a duration: write it like "1h"`},
		{name: "hostile: bad legacy duration", dir: "backend/pairs", config: []string{"role_arn=" + role, "assume_role_duration_seconds=1h"},
			bad: `assume_role_duration_seconds "1h" is not a number of seconds`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Detect(fsys, tc.dir, tc.config)
			if err != nil {
				t.Fatal(err)
			}
			if b.Type != "s3" {
				t.Errorf("type = %q", b.Type)
			}
			for k, v := range tc.want {
				if !reflect.DeepEqual(b.Config[k], v) {
					t.Errorf("%s = %#v, want %#v", k, b.Config[k], v)
				}
			}
			for k, v := range tc.origin {
				if b.Origin[k] != v {
					t.Errorf("origin of %s = %q, want %q", k, b.Origin[k], v)
				}
			}
			got, err := assumeRoleOf(b)
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("assumeRoleOf = %+v, %v; want an error with %q", got, err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.role) {
				t.Errorf("role = %+v, want %+v", got, tc.role)
			}
			if e := endpointOf(b, "sts", "sts_endpoint"); e != tc.sts {
				t.Errorf("sts endpoint = %q, want %q", e, tc.sts)
			}
			if e := endpointOf(b, "s3", "endpoint"); e != tc.s3 {
				t.Errorf("s3 endpoint = %q, want %q", e, tc.s3)
			}
			files := b.Strings("shared_credentials_files")
			if files == nil {
				files = b.Strings("shared_credentials_file")
			}
			if !reflect.DeepEqual(files, tc.credFiles) {
				t.Errorf("shared credentials files = %q, want %q", files, tc.credFiles)
			}
		})
	}
}
