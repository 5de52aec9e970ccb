package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/trueline/trueline/internal/pgtest"
	"github.com/trueline/trueline/sandbox"
)

// serve with trueline.hcl's database block keeps its ledger in PostgreSQL:
// runs land there, not in a SQLite file, and the URL's password shows in
// no log line; a database that cannot be reached stops serve with the
// block named and the password not.
func TestServeLedgerOnPostgres(t *testing.T) {
	ctx := context.Background()
	cluster, err := pgtest.Start(ctx, pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cluster.Stop(); err != nil {
			t.Error(err)
		}
	})
	const password = "pg-Pa55-in-url"
	admin, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`CREATE ROLE trueline LOGIN PASSWORD '` + password + `'`, `CREATE DATABASE ledger OWNER trueline`} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close(ctx)
	dbURL := fmt.Sprintf("postgres://trueline:%s@127.0.0.1:%d/ledger?sslmode=disable", password, cluster.Port)

	conf := filepath.Join(t.TempDir(), "trueline.hcl")
	if err := os.WriteFile(conf, []byte("database {\n  url_env = \"TRUELINE_DATABASE_URL\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("runs land in postgres", func(t *testing.T) {
		r := newDaemonRepo(t)
		commit := r.git.Commit("stack", merge(map[string]string{".gitignore": ".terraform.lock.hcl\n"},
			r.stack("web", "\nresource \"sandbox_load_balancer\" \"web\" {\n  name = \"web\"\n}\n", "stack {}\n")))
		r.apply(t, "web")
		data := t.TempDir()
		p := startServe(t, data, []string{sandbox.RootEnv + "=" + r.cloud.Root, "TRUELINE_DATABASE_URL=" + dbURL},
			"--config", conf, "--repo", r.git.Serve(), "--poll", "1h")
		waitFor(t, 60*time.Second, "the first run to finish", func() bool {
			runs := p.runs(t)
			return len(runs) == 1 && runs[0].Status == "finished"
		})
		if run := p.runs(t)[0]; run.Verdict != "in_sync" || run.Commit != commit {
			t.Errorf("run = %+v (%s)", run, errOf(run))
		}
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var stack, status string
		if err := conn.QueryRow(ctx, `SELECT stack, status FROM runs`).Scan(&stack, &status); err != nil || stack != "stacks/web" || status != "finished" {
			t.Errorf("the run in postgres: %q %q, %v", stack, status, err)
		}
		if _, err := os.Stat(filepath.Join(data, "trueline.db")); !os.IsNotExist(err) {
			t.Errorf("serve wrote a SQLite ledger too: %v", err)
		}
		if strings.Contains(p.logs.String(), password) {
			t.Errorf("the serve log shows the database password:\n%s", p.logs.String())
		}
	})

	t.Run("unreachable database", func(t *testing.T) {
		down := fmt.Sprintf("postgres://trueline:%s@127.0.0.1:1/ledger?sslmode=disable&connect_timeout=5", password)
		cmd := exec.Command(trueline, "serve", "--config", conf, "--repo", "https://example.invalid/infra.git",
			"--listen", freePort(t), "--data-dir", t.TempDir(), "--binary", "tofu", "--binary-path", "/nonexistent/tofu")
		cmd.Env = append(os.Environ(), "TRUELINE_DATABASE_URL="+down)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("serve ran without its database:\n%s", out)
		}
		if !strings.Contains(string(out), "database block (env TRUELINE_DATABASE_URL)") || !strings.Contains(string(out), "127.0.0.1:1/ledger") {
			t.Errorf("serve's error does not name the database and the block:\n%s", out)
		}
		if strings.Contains(string(out), password) {
			t.Errorf("serve's error shows the database password:\n%s", out)
		}
	})
}
