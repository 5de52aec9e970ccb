package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Window is a daily span of wall-clock time in a schedule's timezone, such
// as 01:00-05:00. A window whose end is not after its start crosses
// midnight (22:00-02:00): it belongs to the day it starts on.
type Window struct {
	Start, End time.Duration // after midnight, whole minutes; End may be 24h
}

// maxWindowText bounds what ParseWindow reads: the text comes from
// stack.hcl, and errors quote it.
const maxWindowText = 32

// ParseWindow reads "HH:MM-HH:MM" (24-hour clock; the end may be 24:00).
func ParseWindow(s string) (Window, error) {
	if len(s) > maxWindowText {
		return Window{}, fmt.Errorf("window is %d characters long; write it as \"HH:MM-HH:MM\", e.g. \"01:00-05:00\"", len(s))
	}
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return Window{}, fmt.Errorf("window %q has no \"-\"; write it as \"HH:MM-HH:MM\", e.g. \"01:00-05:00\"", s)
	}
	start, err := clockTime(strings.TrimSpace(from), false)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: start %w", s, err)
	}
	end, err := clockTime(strings.TrimSpace(to), true)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: end %w", s, err)
	}
	if start == end {
		return Window{}, fmt.Errorf("window %q starts and ends at the same time; for the whole day write \"00:00-24:00\"", s)
	}
	return Window{Start: start, End: end}, nil
}

var errClock = errors.New(`is not a time of day: write two-digit hours and minutes, "00:00" to "23:59" (an end may be "24:00")`)

// clockTime reads "HH:MM"; end allows 24:00.
func clockTime(s string, end bool) (time.Duration, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, errClock
	}
	digits := func(a, b byte) (int, bool) {
		if a < '0' || a > '9' || b < '0' || b > '9' {
			return 0, false
		}
		return int(a-'0')*10 + int(b-'0'), true
	}
	h, okh := digits(s[0], s[1])
	m, okm := digits(s[3], s[4])
	switch {
	case !okh || !okm || m > 59 || h > 24:
		return 0, errClock
	case h == 24 && (m != 0 || !end):
		return 0, errClock
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, nil
}

// String is the window as ParseWindow reads it.
func (w Window) String() string {
	f := func(d time.Duration) string { return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60) }
	return f(w.Start) + "-" + f(w.End)
}

// Length is the window's length on a day without a clock change.
func (w Window) Length() time.Duration {
	if w.End > w.Start {
		return w.End - w.Start
	}
	return w.End + 24*time.Hour - w.Start
}

// On is the window that starts on day's date, in day's location. On the
// days the clock changes it is as long as the wall clock says: 01:00-05:00
// in Europe/Berlin lasts three hours on the last Sunday of March and five
// on the last Sunday of October.
func (w Window) On(day time.Time) (start, end time.Time) {
	y, m, d := day.Date()
	at := func(d int, off time.Duration) time.Time {
		return time.Date(y, m, d, int(off/time.Hour), int(off%time.Hour/time.Minute), 0, 0, day.Location())
	}
	start = at(d, w.Start)
	if w.End > w.Start {
		end = at(d, w.End)
	} else {
		end = at(d+1, w.End)
	}
	if !end.After(start) {
		// The whole window fell into the hour the clock skipped: it runs
		// after the jump, as long as usual.
		end = start.Add(w.Length())
	}
	return start, end
}
