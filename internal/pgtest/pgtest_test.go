package pgtest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Each test has a database of its own on the one cluster, and can write
// to it while others write to theirs.
func TestNewGivesEachTestItsOwnDatabase(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{}
	for _, name := range []string{"a", "b", "c"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, New(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var db string
			if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `CREATE TABLE x (v TEXT); INSERT INTO x VALUES ('`+name+`')`); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := conn.QueryRow(ctx, `SELECT COUNT(*) FROM x`).Scan(&n); err != nil || n != 1 {
				t.Errorf("rows in %s = %d, %v; want this test's one", db, n, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if other, ok := seen[db]; ok {
				t.Errorf("tests %s and %s share database %s", other, name, db)
			}
			seen[db] = name
		})
	}
}

// A test's database is dropped when it ends, even with a connection open.
func TestDatabaseDroppedAtTheEnd(t *testing.T) {
	ctx := context.Background()
	var name string
	t.Run("user", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, New(t))
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose: the drop ends it.
		if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	var n int
	if err := cluster(t).admin.QueryRow(ctx, `SELECT COUNT(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if name == "" || n != 0 {
		t.Errorf("database %q still exists after its test", name)
	}
}

// As root, the server runs as the unprivileged user: PostgreSQL refuses root.
func TestServerIsNotRoot(t *testing.T) {
	New(t)
	c := cluster(t)
	status, err := os.ReadFile("/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			if want := strconv.Itoa(os.Geteuid()); os.Geteuid() != 0 && f[1] != want {
				t.Errorf("server runs as uid %s, want this user's %s", f[1], want)
			}
			if f[1] == "0" {
				t.Errorf("the server runs as root")
			}
			return
		}
	}
	t.Fatalf("no Uid line in %s", status)
}

// A server that cannot start says why, from its log.
func TestStartFailsWithTheServerLog(t *testing.T) {
	c, err := Start(context.Background(), Options{Settings: []string{"max_connections=-5"}})
	if err == nil {
		c.Stop()
		t.Fatal("a server with max_connections=-5 started")
	}
	if !strings.Contains(err.Error(), "max_connections") || !strings.Contains(err.Error(), "postgres exited") {
		t.Errorf("error = %v; want the server log's complaint about max_connections", err)
	}
}
