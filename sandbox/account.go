package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// An account is what a real cloud rate-limits: every provider process that
// uses the same root and account shares one token bucket and one set of
// counters, kept in <root>/.accounts/<account>/ (bucket.json, counters.json)
// and changed only under an flock on the directory's lock file. Many
// terraform plans running at once therefore share one limit, as they would
// share an AWS account's.

// DefaultAccount is the account of a provider block that names none.
const DefaultAccount = "default"

// accountsDir is where the accounts live under the root; the dot keeps it
// apart from the object types, which are resource type names.
const accountsDir = ".accounts"

// maxAccountFile bounds what is read of an account file: they are tiny, and
// a root is a directory anyone with a shell may have written to.
const maxAccountFile = 64 << 10

var accountName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// checkAccount keeps an account name usable as one directory name.
func checkAccount(account string) error {
	if !accountName.MatchString(account) {
		return fmt.Errorf("account %q must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or a digit", account)
	}
	return nil
}

// Limit is an account's API rate limit: a token bucket holding at most Burst
// requests, refilled at PerSecond requests a second. A PerSecond of 0 is no
// limit.
type Limit struct {
	PerSecond float64
	Burst     int
}

func (l Limit) String() string {
	if l.PerSecond <= 0 {
		return "no limit"
	}
	return fmt.Sprintf("%g requests/s, burst %d", l.PerSecond, l.Burst)
}

// bucket is an account's token bucket as bucket.json holds it.
type bucket struct {
	Tokens float64 `json:"tokens"`
	// Updated is when Tokens was last refilled, in Unix nanoseconds; 0 for
	// an account that has never been called.
	Updated int64 `json:"updated_unix_nano"`
}

// take refills the bucket for the time since its last update and takes one
// token if a whole one is there.
func (b *bucket) take(now time.Time, l Limit) bool {
	n := now.UnixNano()
	burst := float64(l.Burst)
	switch {
	case b.Updated == 0:
		b.Tokens = burst // a new account starts full, like a real one
	case n > b.Updated:
		b.Tokens += float64(n-b.Updated) / float64(time.Second) * l.PerSecond
	}
	// A hand-edited file, or a caller configured with a smaller burst than
	// the last one, must not lend tokens the limit does not allow.
	if math.IsNaN(b.Tokens) || b.Tokens < 0 {
		b.Tokens = 0
	}
	b.Tokens = min(b.Tokens, burst)
	// A clock that went back must not refill the same interval twice.
	b.Updated = max(b.Updated, n)
	if b.Tokens < 1 {
		return false
	}
	b.Tokens--
	return true
}

// Stats counts the API requests of one account since its last ResetStats.
type Stats struct {
	// Requests is every request the account answered, throttled ones and
	// retries included.
	Requests int64 `json:"requests"`
	// Throttled is the requests refused with a ThrottlingException.
	Throttled int64 `json:"throttled"`
	// Retries is the requests that repeated a throttled one.
	Retries int64 `json:"retries"`
	// Calls is the requests served, by kind: read, create, update, delete
	// and data (a data source's read).
	Calls map[string]int64 `json:"calls,omitempty"`
}

// Stats returns the account's counters; an account never called has none.
func (s Store) Stats(account string) (Stats, error) {
	if err := checkAccount(account); err != nil {
		return Stats{}, err
	}
	// counters.json is only ever replaced by a rename, so it reads whole
	// without the lock.
	var st Stats
	err := readAccountFile(filepath.Join(s.accountDir(account), "counters.json"), &st)
	return st, err
}

// ResetStats zeroes the account's counters. Its bucket is left alone: it
// refills by itself.
func (s Store) ResetStats(account string) error {
	return s.withAccount(account, func(dir string) error {
		err := os.Remove(filepath.Join(dir, "counters.json"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reset sandbox account %s: %w", account, err)
		}
		return nil
	})
}

// admit is one API request reaching the account: it takes a token when the
// account has a limit, and counts the request, the retry and the throttle.
// It reports whether the request is served.
func (s Store) admit(account string, l Limit, op string, retry bool) (bool, error) {
	served := true
	err := s.withAccount(account, func(dir string) error {
		if l.PerSecond > 0 {
			var b bucket
			p := filepath.Join(dir, "bucket.json")
			if err := readAccountFile(p, &b); err != nil {
				return err
			}
			served = b.take(time.Now(), l)
			if err := writeAccountFile(p, b); err != nil {
				return err
			}
		}
		var st Stats
		p := filepath.Join(dir, "counters.json")
		if err := readAccountFile(p, &st); err != nil {
			return err
		}
		st.Requests++
		if retry {
			st.Retries++
		}
		if served {
			if st.Calls == nil {
				st.Calls = map[string]int64{}
			}
			st.Calls[op]++
		} else {
			st.Throttled++
		}
		return writeAccountFile(p, st)
	})
	return served, err
}

func (s Store) accountDir(account string) string {
	return filepath.Join(s.Root, accountsDir, account)
}

// withAccount runs fn on the account's directory under its exclusive lock.
// flock excludes other open files in this process as well as other
// processes, so goroutines need nothing more.
func (s Store) withAccount(account string, fn func(dir string) error) error {
	if err := checkAccount(account); err != nil {
		return err
	}
	dir := s.accountDir(account)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sandbox account %s: %w", account, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("sandbox account %s: %w", account, err)
	}
	// Closing releases the lock too; nothing was written to the file.
	defer func() { _ = f.Close() }()
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock sandbox account %s: %w", account, err)
	}
	return fn(dir)
}

// readAccountFile decodes an account file into v; a missing file leaves v
// as it is.
func readAccountFile(path string, v any) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read only: nothing to lose
	b, err := io.ReadAll(io.LimitReader(f, maxAccountFile+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxAccountFile {
		return fmt.Errorf("%s is larger than %d bytes: delete it to reset the account", path, maxAccountFile)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w: delete it to reset the account", path, err)
	}
	return nil
}

// writeAccountFile replaces an account file. It is rewritten on every
// request, so it is not synced: a power cut costs counts, never a torn file.
func writeAccountFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFile(path, append(b, '\n'), false)
}
