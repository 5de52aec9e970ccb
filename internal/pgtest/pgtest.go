// Package pgtest runs a real, throwaway PostgreSQL cluster for tests:
// Debian's initdb and postgres (scripts/tools.sh installs them), one
// cluster per test binary in a temporary directory, on 127.0.0.1 and a
// free port, and a database of its own for each test, so tests run in
// parallel on one cluster. PostgreSQL refuses to run as root: as root, the
// cluster runs as the unprivileged system user trueline-pg, created once.
//
// A package whose tests call New runs them through Main:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// A cluster that cannot start fails the test with its server log; nothing
// is ever skipped.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-version"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// User is the system user the cluster runs as when the tests run as root.
const User = "trueline-pg"

var (
	mu       sync.Mutex
	viaMain  bool     // Main is running the tests
	shared   *Cluster // started by the first New
	startErr error    // why it could not start; every New reports it
	seq      atomic.Int64
)

// Main runs the tests and then stops the cluster New started, removing its
// directory; it returns m.Run's exit code.
func Main(m *testing.M) int {
	mu.Lock()
	viaMain = true
	mu.Unlock()
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// New creates an empty database on the test binary's cluster (starting it
// on first use) and returns its URL, postgres://postgres@127.0.0.1:port/
// name: the superuser, trusted on loopback. The database is dropped when
// the test ends, with whatever connections it still has.
func New(t testing.TB) string {
	t.Helper()
	c := cluster(t)
	name := dbName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.admin.Exec(ctx, `DROP DATABASE `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.URL(name)
}

func cluster(t testing.TB) *Cluster {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if !viaMain {
		t.Fatal("pgtest: the package's tests do not run through pgtest.Main, which stops the cluster after them: " +
			"add func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }")
	}
	if shared == nil && startErr == nil {
		shared, startErr = Start(context.Background(), Options{})
	}
	if startErr != nil {
		t.Fatal(startErr)
	}
	return shared
}

// dbName is a database name for a test: a sequence number, then as much
// of the test's name as is plain.
func dbName(test string) string {
	s := strings.ToLower(nonWord.ReplaceAllString(test, "_"))
	if len(s) > 40 {
		s = s[:40]
	}
	return fmt.Sprintf("t%d_%s", seq.Add(1), s)
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]+`)

// Options adjust a cluster.
type Options struct {
	// Settings are extra server settings (name=value, as postgres -c takes
	// them), after pgtest's own.
	Settings []string
}

// Cluster is a running PostgreSQL server and its directory.
type Cluster struct {
	Dir  string // holds data/, the socket and server.log
	Port int
	Bin  string // the directory of initdb, pg_ctl and postgres

	admin   *pgxpool.Pool
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// URL is the address of database name on the cluster.
func (c *Cluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, name)
}

// Log is the server's log so far.
func (c *Cluster) Log() string { return logTail(filepath.Join(c.Dir, "server.log")) }

// Start initialises a cluster in a new temporary directory and starts its
// server. Its errors carry the output of initdb or the server's log.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{Dir: dir, Bin: bin}
	fail := func(err error) (*Cluster, error) {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	if cred != nil {
		// The server user owns the directory; nobody else reads it.
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("pgtest: %w", err))
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Env = serverEnv()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("pgtest: initdb in %s as %s: %w\n%s", dir, runAs(cred), err, out))
	}
	// A port taken between choosing it and the server binding it is
	// another process's luck: choose again.
	for attempt := 1; ; attempt++ {
		if c.Port, err = freePort(); err != nil {
			return fail(err)
		}
		err = c.run(ctx, cred, opts)
		if err == nil {
			return c, nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "could not bind") {
			return fail(err)
		}
	}
}

// run starts the server and waits until it takes connections.
func (c *Cluster) run(ctx context.Context, cred *syscall.Credential, opts Options) error {
	logPath := filepath.Join(c.Dir, "server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	// The server writes through its own descriptor; this one only hands it on.
	defer func() { _ = logFile.Close() }()
	args := []string{"-D", filepath.Join(c.Dir, "data"), "-p", strconv.Itoa(c.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + c.Dir,
		// Throwaway data: no durability, room for parallel tests' pools.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=32MB"}
	for _, s := range opts.Settings {
		args = append(args, "-c", s)
	}
	// postgres itself, not pg_ctl start: a child of this process, it is
	// stopped (SIGINT: a fast shutdown) when the test binary dies, however
	// it dies. The parent-death signal belongs to the thread that started
	// it, so that thread stays locked to this goroutine until it exits.
	c.cmd = exec.Command(filepath.Join(c.Bin, "postgres"), args...)
	c.cmd.Env = serverEnv()
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT}
	c.exited = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := c.cmd.Start(); err != nil {
			started <- err
			close(c.exited)
			return
		}
		started <- nil
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("pgtest: postgres exited (%v) on port %d:\n%s", c.waitErr, c.Port, logTail(logPath))
		default:
		}
		cfg, err := pgxpool.ParseConfig(c.URL("postgres"))
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		cfg.MaxConns = 4
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err == nil {
			if err = pool.Ping(ctx); err == nil {
				c.admin = pool
				return nil
			}
			pool.Close()
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("pgtest: postgres on port %d took no connection in 60s: %w\n%s", c.Port, err, logTail(logPath)), c.Stop())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast: connections are ended) and removes its
// directory.
func (c *Cluster) Stop() error {
	if c.admin != nil {
		c.admin.Close()
	}
	var errs []error
	select {
	case <-c.exited:
	default:
		if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: stop postgres: %w", err))
		}
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			errs = append(errs, fmt.Errorf("pgtest: postgres did not stop in 30s; killed it\n%s", c.Log()))
			_ = c.cmd.Process.Kill() // reported above
			<-c.exited
		}
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("pgtest: %w", err))
	}
	return errors.Join(errs...)
}

// BinDir finds Debian's PostgreSQL programs: initdb on PATH (Debian links
// none there; an installation may), else the newest
// /usr/lib/postgresql/<version>/bin.
func BinDir() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb") // the pattern is well-formed
	slices.SortFunc(found, func(a, b string) int {
		va, erra := version.NewVersion(filepath.Base(filepath.Dir(filepath.Dir(a))))
		vb, errb := version.NewVersion(filepath.Base(filepath.Dir(filepath.Dir(b))))
		if erra != nil || errb != nil {
			return strings.Compare(b, a)
		}
		return vb.Compare(va)
	})
	for _, f := range found {
		dirs = append(dirs, filepath.Dir(f))
	}
	for _, d := range dirs {
		ok := true
		for _, prog := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(d, prog)); err != nil || fi.Mode()&0o111 == 0 {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): " +
		"run scripts/tools.sh as root, which installs Debian's postgresql, or apt-get install postgresql")
}

// credential is whom the server runs as: as root, User (created if
// missing); otherwise this process's user (nil).
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := systemUser()
	if err != nil {
		return nil, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtest: user %s: %w", User, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// systemUser looks User up and creates it when it is missing. Test
// binaries start clusters at the same time: a useradd that loses the race
// (the user exists, or /etc/passwd is locked) is followed by a look-up.
func systemUser() (*user.User, error) {
	var out []byte
	for attempt := 0; attempt < 20; attempt++ {
		if u, err := user.Lookup(User); err == nil {
			return u, nil
		}
		var err error
		out, err = exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", User).CombinedOutput()
		if err == nil {
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("pgtest: PostgreSQL does not run as root, and the system user %s could not be created (useradd --system %s): %s",
		User, User, strings.TrimSpace(string(out)))
}

func runAs(cred *syscall.Credential) string {
	if cred == nil {
		return "this user"
	}
	return User
}

// serverEnv is the programs' whole environment: the C locale, and no
// variable of the tests' (PGDATA, PGPORT, ...) steering them.
func serverEnv() []string {
	return []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"}
}

// freePort is a loopback port nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

// logTail is the end of a server log, enough to see why it stopped.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	const max = 16 << 10
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	return string(b)
}
