package runner

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// lockMessage is what terraform and tofu print when taking the state lock
// is slow: they print it only after 400 ms, so from then until their next
// output the command is waiting, most likely for a lock someone else holds
// (a CI apply), for as long as the job's LockTimeout allows.
var lockMessage = []byte("Acquiring state lock. This may take a few moments...")

// lockWatch passes a command's output through and times the waits for a
// state lock, telling notify when one starts and ends.
type lockWatch struct {
	w      io.Writer
	notify func(waiting bool)

	mu    sync.Mutex
	since time.Time // zero: not waiting
	total time.Duration
}

func (l *lockWatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	if !l.since.IsZero() {
		l.total += time.Since(l.since)
		l.since = time.Time{}
		l.tell(false)
	}
	if i := bytes.Index(p, lockMessage); i >= 0 && len(bytes.TrimSpace(p[i+len(lockMessage):])) == 0 {
		// The message ends what was written: the command now waits.
		l.since = time.Now()
		l.tell(true)
	}
	l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockWatch) tell(waiting bool) {
	if l.notify != nil {
		l.notify(waiting)
	}
}

// waited ends a wait still open (the command failed or was stopped while
// waiting) and returns the time spent waiting.
func (l *lockWatch) waited() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.since.IsZero() {
		l.total += time.Since(l.since)
		l.since = time.Time{}
		l.tell(false)
	}
	return l.total
}
