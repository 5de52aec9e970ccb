package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/trueline/trueline/config"
)

func TestPrepareDataDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode os.FileMode // of a directory there before; 0: none
	}{
		{"new", 0},
		{"existing 0755", 0o755},
		{"existing 0777", 0o777},
		{"existing 0700", 0o700},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if tc.mode != 0 {
				if err := os.Mkdir(dir, tc.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, tc.mode); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			if err := prepareDataDir(dir); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o700 {
				t.Errorf("data directory is %v, want drwx------", fi.Mode())
			}
		})
	}
}

func TestInheritedSecrets(t *testing.T) {
	env := func(name string) config.Secret { return config.NewSecret("s3cr3t", "env "+name) }
	for _, tc := range []struct {
		name string
		cfg  config.Config
		want []string
	}{
		{"outside the allowlist", config.Config{
			Repositories: []config.Repository{{Token: env("GITHUB_TOKEN"), WebhookSecret: env("GITHUB_WEBHOOK_SECRET")}},
			Notify:       []config.Notify{{WebhookURL: env("SLACK_WEBHOOK_URL")}, {Token: env("SLACK_TOKEN")}},
		}, nil},
		{"from files", config.Config{
			Repositories: []config.Repository{{Token: config.NewSecret("x", "file /run/secrets/token")}},
		}, nil},
		{"names terraform inherits", config.Config{
			Repositories: []config.Repository{{Token: env("TF_TOKEN_github_com"), WebhookSecret: env("HOOK")}},
			Notify:       []config.Notify{{WebhookURL: env("AWS_SLACK_URL")}},
		}, []string{"TF_TOKEN_github_com", "AWS_SLACK_URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := inheritedSecrets(tc.cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("inheritedSecrets = %v, want %v", got, tc.want)
			}
		})
	}
}
