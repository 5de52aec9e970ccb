package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func mustParse(t *testing.T, spec string) cron.Schedule {
	s, err := parser.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJitterSpreadsNightlyRuns(t *testing.T) {
	s := New(5*time.Minute, func(string) {})
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	nightly := mustParse(t, "0 2 * * *")
	seconds := map[int64]bool{}
	for i := 0; i < 500; i++ {
		key := fmt.Sprintf("infra/stacks/s%03d/default", i)
		s.Set(key, "0 2 * * *", nightly, time.UTC)
		next := s.Next(key)
		base := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
		if next.Before(base) || next.After(base.Add(5*time.Minute)) {
			t.Fatalf("%s next = %v, want within 5m after %v", key, next, base)
		}
		seconds[next.Unix()] = true
		// Deterministic: the same key gets the same time.
		s.Remove(key)
		s.Set(key, "0 2 * * *", nightly, time.UTC)
		if again := s.Next(key); !again.Equal(next) {
			t.Fatalf("jitter is not deterministic: %v then %v", next, again)
		}
	}
	if len(seconds) < 200 {
		t.Errorf("500 nightly workspaces start in only %d distinct seconds", len(seconds))
	}
}

func TestTimezone(t *testing.T) {
	s := New(0, func(string) {})
	now := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	berlin, _ := time.LoadLocation("Europe/Berlin")
	s.Set("k", "0 2 * * *", mustParse(t, "0 2 * * *"), berlin)
	// 02:00 in Berlin in summer is 00:00 UTC: the next one is the day after.
	if got, want := s.Next("k").UTC(), time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next = %v, want %v", got, want)
	}
}

func TestRunFiresDueWorkspaces(t *testing.T) {
	var mu sync.Mutex
	fired := map[string]int{}
	s := New(time.Minute, func(k string) {
		mu.Lock()
		fired[k]++
		mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	s.Set("fast", "@every 1s", mustParse(t, "@every 1s"), nil)
	s.Set("slow", "@every 1h", mustParse(t, "@every 1h"), nil)
	time.Sleep(3500 * time.Millisecond)
	s.Remove("fast")
	mu.Lock()
	n := fired["fast"]
	mu.Unlock()
	// Three in 3.5 s; a loaded machine may delay one past the end.
	if n < 2 || n > 4 {
		t.Errorf("an @every 1s schedule fired %d times in 3.5s", n)
	}
	if fired["slow"] != 0 {
		t.Errorf("an hourly schedule fired")
	}
	if s.Len() != 1 {
		t.Errorf("len = %d after remove", s.Len())
	}
}
