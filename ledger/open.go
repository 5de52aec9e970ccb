package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/redact"
	_ "modernc.org/sqlite" // the "sqlite" driver
)

// Open opens the ledger a URL names and migrates it:
// "postgres://user:password@host:5432/database" (or "postgresql://") is a
// PostgreSQL database, "sqlite:///path/to/trueline.db" or a plain path an
// SQLite file. Its errors never quote the URL, which holds a password.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return OpenPostgres(ctx, rawURL)
	case strings.HasPrefix(rawURL, "sqlite://"):
		path := strings.TrimPrefix(rawURL, "sqlite://")
		if path == "" {
			return nil, errors.New(`ledger: "sqlite://" names no file; write sqlite:///var/lib/trueline/trueline.db`)
		}
		return OpenSQLite(ctx, path)
	case rawURL == "":
		return nil, errors.New("ledger: no database URL; give postgres://user:password@host:5432/database or a file path")
	}
	if scheme, _, ok := strings.Cut(rawURL, "://"); ok {
		shown := "this URL's scheme"
		if schemeName.MatchString(scheme) {
			shown = fmt.Sprintf("%q", scheme)
		}
		return nil, fmt.Errorf("ledger: %s is no database trueline keeps its ledger in; write postgres://user:password@host:5432/database, "+
			"sqlite:///path/to/trueline.db or a file path", shown)
	}
	return OpenSQLite(ctx, rawURL)
}

// schemeName is a URL scheme as RFC 3986 spells it, short: only such a
// scheme is quoted in an error (what precedes "://" in a mistyped URL may
// be a password).
var schemeName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]{0,15}$`)

// OpenSQLite opens (creating if needed) the SQLite ledger at path and
// migrates it.
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	// One connection: writes are serialised in-process, and a claim's
	// read-then-write cannot interleave with another's.
	db.SetMaxOpenConns(1)
	l := &DB{db: db, d: sqliteDialect, now: time.Now}
	if err := l.migrate(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("ledger %s: %w", path, err), db.Close())
	}
	// The ledger holds run logs and who approved what: this user's only,
	// whatever mode an earlier version or a copy left. SQLite gives the -wal
	// and -shm files the database file's mode when it creates them.
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(f, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, errors.Join(fmt.Errorf("ledger %s: %w", path, err), db.Close())
		}
	}
	return l, nil
}

// OpenPostgres opens the PostgreSQL ledger at a postgres:// URL and
// migrates it. The URL's parameters are pgx's (sslmode, pool_max_conns,
// ...); its errors name the host and the database, never the password.
func OpenPostgres(ctx context.Context, rawURL string) (*DB, error) {
	secrets := urlSecrets(rawURL)
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, redact.Error(fmt.Errorf("ledger: the postgres URL does not parse: %w; write postgres://user:password@host:5432/database", err), secrets)
	}
	where := fmt.Sprintf("ledger on postgres %s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg) // connects on first use
	if err != nil {
		return nil, redact.Error(fmt.Errorf("%s: %w", where, err), secrets)
	}
	l := &DB{db: stdlib.OpenDBFromPool(pool), pool: pool, d: postgresDialect, now: time.Now}
	if err := l.migrate(ctx); err != nil {
		return nil, errors.Join(redact.Error(fmt.Errorf("%s: %w", where, err), secrets), l.Close())
	}
	return l, nil
}

// urlSecrets are the forms in which a database URL's credentials could
// show in an error: the URL and its password, as written and decoded.
func urlSecrets(rawURL string) drift.Secrets {
	values := []string{rawURL}
	if u, err := url.Parse(rawURL); err == nil {
		if pw, ok := u.User.Password(); ok {
			values = append(values, pw, u.User.String())
		}
		values = append(values, u.Query()["password"]...)
	}
	return drift.SecretsFrom(values...)
}
