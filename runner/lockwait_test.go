package runner

import (
	"fmt"
	"io"
	"testing"
	"time"
)

func TestLockWatch(t *testing.T) {
	msg := string(lockMessage)
	tests := []struct {
		name   string
		chunks []string
		want   string // events
	}{
		{name: "no lock message", chunks: []string{"Refreshing state...\n", "No changes.\n"}, want: "[]"},
		{name: "waits, then goes on", chunks: []string{msg + "\n", "Refreshing state...\n"}, want: "[true false]"},
		{name: "message with output after it in one chunk", chunks: []string{msg + "\nRefreshing state...\n"}, want: "[]"},
		{name: "message after other output", chunks: []string{"Initializing...\n" + msg + "\n\n", "Error acquiring the state lock\n"}, want: "[true false]"},
		{name: "two waits", chunks: []string{msg + "\n", "plan\n", msg + "\n", "apply\n"}, want: "[true false true false]"},
		{name: "still waiting at the end", chunks: []string{msg + "\n"}, want: "[true false]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var events []bool
			l := &lockWatch{w: io.Discard, notify: func(w bool) { events = append(events, w) }}
			for _, c := range tc.chunks {
				if _, err := l.Write([]byte(c)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
			}
			total := l.waited()
			if got := fmt.Sprint(events); got != tc.want && !(tc.want == "[]" && got == "[]") {
				t.Errorf("events = %s, want %s", got, tc.want)
			}
			if (tc.want == "[]") != (total == 0) {
				t.Errorf("waited %v with events %v", total, events)
			}
		})
	}
}
