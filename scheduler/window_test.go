package scheduler

import (
	"strings"
	"testing"
	"time"
)

func TestParseWindow(t *testing.T) {
	tests := []struct {
		in      string
		want    Window
		wantErr string
	}{
		{in: "01:00-05:00", want: Window{Start: time.Hour, End: 5 * time.Hour}},
		{in: "22:00-02:00", want: Window{Start: 22 * time.Hour, End: 2 * time.Hour}},
		{in: "00:00-24:00", want: Window{Start: 0, End: 24 * time.Hour}},
		{in: "01:30 - 04:45", want: Window{Start: 90 * time.Minute, End: 4*time.Hour + 45*time.Minute}},
		{in: "23:59-00:01", want: Window{Start: 23*time.Hour + 59*time.Minute, End: time.Minute}},
		{in: "01:00-01:00", wantErr: "starts and ends at the same time"},
		{in: "00:00-00:00", wantErr: "starts and ends at the same time"},
		{in: "1:00-5:00", wantErr: "start is not a time of day"},
		{in: "01:00", wantErr: `has no "-"`},
		{in: "", wantErr: `has no "-"`},
		{in: "25:00-02:00", wantErr: "start is not a time of day"},
		{in: "24:00-02:00", wantErr: "start is not a time of day"},
		{in: "01:00-24:30", wantErr: "end is not a time of day"},
		{in: "01:60-02:00", wantErr: "start is not a time of day"},
		{in: "01:00-05:00-07:00", wantErr: "end is not a time of day"},
		{in: "01h00-05h00", wantErr: "start is not a time of day"},
		{in: "０１:00-05:00", wantErr: "start is not a time of day"}, // fullwidth digits are not digits here
		{in: "-1:00-05:00", wantErr: "start is not a time of day"},
		{in: strings.Repeat("01:00-", 1<<16), wantErr: "characters long"},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		t.Run(name, func(t *testing.T) {
			got, err := ParseWindow(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseWindow(%q) = %v, %v; want an error with %q", name, got, err, tt.wantErr)
				}
				if len(err.Error()) > 300 {
					t.Errorf("the error is %d bytes long: it must not quote a long input", len(err.Error()))
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseWindow(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if back, err := ParseWindow(got.String()); err != nil || back != got {
				t.Errorf("String() = %q reads back as %v, %v", got.String(), back, err)
			}
		})
	}
}

func TestWindowOn(t *testing.T) {
	loc := berlin(t)
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 12, 0, 0, 0, loc) }
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, loc) }
	tests := []struct {
		name       string
		window     string
		day        time.Time
		start, end time.Time
		length     time.Duration
	}{
		{"a plain night", "01:00-05:00", day(2026, 6, 10), at(2026, 6, 10, 1, 0), at(2026, 6, 10, 5, 0), 4 * time.Hour},
		{"past midnight: the day it starts on", "22:00-02:00", day(2026, 6, 10), at(2026, 6, 10, 22, 0), at(2026, 6, 11, 2, 0), 4 * time.Hour},
		{"past midnight at the end of a month", "23:00-01:30", day(2026, 6, 30), at(2026, 6, 30, 23, 0), at(2026, 7, 1, 1, 30), 150 * time.Minute},
		{"a whole day", "00:00-24:00", day(2026, 6, 10), at(2026, 6, 10, 0, 0), at(2026, 6, 11, 0, 0), 24 * time.Hour},
		{"the clock springs forward inside it", "01:00-05:00", day(2026, 3, 29), at(2026, 3, 29, 1, 0), at(2026, 3, 29, 5, 0), 3 * time.Hour},
		{"the clock falls back inside it", "01:00-05:00", day(2026, 10, 25), at(2026, 10, 25, 1, 0), at(2026, 10, 25, 5, 0), 5 * time.Hour},
		{"past midnight into the spring-forward night", "22:00-04:00", day(2026, 3, 28), at(2026, 3, 28, 22, 0), at(2026, 3, 29, 4, 0), 5 * time.Hour},
		{"wholly inside the skipped hour", "02:10-02:50", day(2026, 3, 29), time.Date(2026, 3, 29, 1, 10, 0, 0, time.UTC), time.Date(2026, 3, 29, 1, 50, 0, 0, time.UTC), 40 * time.Minute},
		{"ending where the skipped hour ends: as long as usual, after the jump", "02:10-03:00", day(2026, 3, 29), time.Date(2026, 3, 29, 1, 10, 0, 0, time.UTC), time.Date(2026, 3, 29, 2, 0, 0, 0, time.UTC), 50 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWindow(tt.window)
			if err != nil {
				t.Fatal(err)
			}
			start, end := w.On(tt.day)
			if !start.Equal(tt.start) || !end.Equal(tt.end) {
				t.Errorf("On(%s) = %v to %v; want %v to %v", tt.day.Format(time.DateOnly), start, end, tt.start, tt.end)
			}
			if got := end.Sub(start); got != tt.length {
				t.Errorf("lasts %v, want %v", got, tt.length)
			}
		})
	}
}
