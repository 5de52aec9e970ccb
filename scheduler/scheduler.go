// Package scheduler fires each registered workspace on its cron schedule, in
// its timezone, with a deterministic per-workspace jitter so that hundreds
// of stacks at "0 2 * * *" do not all start in the same second.
package scheduler

import (
	"container/heap"
	"context"
	"hash/fnv"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// Scheduler holds the schedules of all workspaces. It is safe for
// concurrent use; Set and Remove may be called while Run runs.
//
// A schedule with no next time (robfig/cron's Next returns the zero time
// for a cron that matches nothing, such as "0 0 30 2 *") is parked: it
// stays registered but is not queued, so it can never be due and never
// holds up the others. Setting another schedule for it queues it again.
type Scheduler struct {
	// MaxJitter bounds the delay added to a workspace's times. The delay
	// is also at most a tenth of the schedule's period, so a schedule of
	// every few seconds stays one.
	MaxJitter time.Duration
	// Fire is called (from Run's goroutine) when a workspace is due.
	Fire func(key string)
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
	queue   entryHeap
	wake    chan struct{}
}

type entry struct {
	key      string
	spec     string
	schedule cron.Schedule
	loc      *time.Location
	next     time.Time // zero: never, parked
	index    int       // in queue; -1 while parked
}

// New returns an empty scheduler.
func New(maxJitter time.Duration, fire func(key string)) *Scheduler {
	return &Scheduler{MaxJitter: maxJitter, Fire: fire, now: time.Now,
		entries: map[string]*entry{}, wake: make(chan struct{}, 1)}
}

// Set registers or replaces a workspace's schedule; spec is its source
// text. Setting the same spec and timezone again keeps the next time. A nil
// schedule removes the workspace.
func (s *Scheduler) Set(key, spec string, schedule cron.Schedule, loc *time.Location) {
	if schedule == nil {
		s.Remove(key)
		return
	}
	if loc == nil {
		loc = time.UTC
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if ok && e.spec == spec && e.loc.String() == loc.String() {
		return
	}
	if !ok {
		e = &entry{key: key}
		s.entries[key] = e
	}
	e.spec, e.schedule, e.loc = spec, schedule, loc
	e.next = s.nextAfter(e, s.now())
	queued := ok && e.index >= 0
	switch {
	case e.next.IsZero() && queued:
		heap.Remove(&s.queue, e.index)
		e.index = -1
	case e.next.IsZero():
		e.index = -1
	case queued:
		heap.Fix(&s.queue, e.index)
	default:
		heap.Push(&s.queue, e)
	}
	s.poke()
}

// Remove forgets a workspace.
func (s *Scheduler) Remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok {
		if e.index >= 0 {
			heap.Remove(&s.queue, e.index)
		}
		delete(s.entries, key)
	}
}

// Keys lists the registered workspaces.
func (s *Scheduler) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.entries))
	for k := range s.entries {
		keys = append(keys, k)
	}
	return keys
}

// Len is the number of registered workspaces.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Next returns when a workspace runs next (zero if unknown or never).
func (s *Scheduler) Next(key string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok {
		return e.next
	}
	return time.Time{}
}

// Run fires due workspaces until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := s.now()
		var due []string
		for len(s.queue) > 0 && !s.queue[0].next.After(now) {
			e := s.queue[0]
			due = append(due, e.key)
			if e.next = s.nextAfter(e, now); e.next.IsZero() {
				heap.Pop(&s.queue)
				e.index = -1
			} else {
				heap.Fix(&s.queue, 0)
			}
		}
		wait := time.Hour
		if len(s.queue) > 0 {
			wait = s.queue[0].next.Sub(now)
		}
		s.mu.Unlock()
		for _, k := range due {
			s.Fire(k)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
	}
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// nextAfter is the schedule's next time after t, plus the workspace's
// jitter; zero if the schedule has none.
func (s *Scheduler) nextAfter(e *entry, t time.Time) time.Time {
	jitter := s.jitter(e, t)
	// Step back by the jitter so a time already delayed is not skipped.
	base := e.schedule.Next(t.Add(-jitter).In(e.loc))
	for !base.IsZero() && !base.Add(jitter).After(t) {
		next := e.schedule.Next(base)
		if !next.After(base) {
			return time.Time{} // zero, or a schedule that does not move on: never
		}
		base = next
	}
	if base.IsZero() {
		return base
	}
	return base.Add(jitter)
}

// jitter is a fixed fraction of the allowed window, from a hash of the key.
func (s *Scheduler) jitter(e *entry, t time.Time) time.Duration {
	window := s.MaxJitter
	first := e.schedule.Next(t.In(e.loc))
	if first.IsZero() {
		return 0
	}
	if period := e.schedule.Next(first).Sub(first); period/10 < window {
		window = period / 10
	}
	if window <= 0 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(e.key))
	return time.Duration(float64(h.Sum32()) / (1 << 32) * float64(window))
}

type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
