// Package scheduler fires each registered workspace on its cron schedule, in
// its timezone, with a deterministic per-workspace jitter so that hundreds
// of stacks at "0 2 * * *" do not all start in the same second; or, for a
// schedule with a window, once on each day the cron picks, at the
// workspace's slot in the window (Slots), so a nightly pass over many
// stacks spreads across the night.
package scheduler

import (
	"container/heap"
	"context"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
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
	Fire  func(key string)
	clock clockwork.Clock

	mu      sync.Mutex
	entries map[string]*entry
	queue   entryHeap
	wake    chan struct{}
	// groups are the workspaces sharing a window and timezone, whose
	// slots are spread together; dirty ones have their next times
	// computed again before anything reads them.
	groups map[groupKey]*group
	dirty  map[groupKey]bool
}

type entry struct {
	key      string
	spec     string
	schedule cron.Schedule
	loc      *time.Location
	window   *Window
	item     Item      // with a window: what its slot is made of
	next     time.Time // zero: never, parked
	index    int       // in queue; -1 while parked
	// With a window: the start of the window instance next lies in, and
	// of the one it last fired in (it fires once in each).
	inst, fired time.Time
}

type groupKey struct {
	window Window
	loc    string
}

type group struct {
	members map[string]*entry
	slots   map[time.Duration]map[string]time.Duration // by the window's length that day
}

// New returns an empty scheduler.
func New(maxJitter time.Duration, fire func(key string)) *Scheduler {
	return &Scheduler{MaxJitter: maxJitter, Fire: fire, clock: clockwork.NewRealClock(),
		entries: map[string]*entry{}, wake: make(chan struct{}, 1),
		groups: map[groupKey]*group{}, dirty: map[groupKey]bool{}}
}

// SetClock replaces the clock the scheduler reads and waits on, for tests
// of its users; call it before registering workspaces.
func (s *Scheduler) SetClock(c clockwork.Clock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = c
}

// Spec is how a workspace is scheduled.
type Spec struct {
	// Text is the schedule's source text: setting the same text, window,
	// timezone and slot inputs again keeps the next time.
	Text string
	// Schedule gives the times; with a Window, the days: a day on which it
	// has a time. Nil removes the workspace.
	Schedule cron.Schedule
	Location *time.Location // nil: UTC
	// Window, when set, runs the workspace once on each day Schedule picks,
	// at its slot in the window. Slots are spread among the workspaces with
	// the same window and timezone; Expected, Account and Weight are the
	// workspace's Item there.
	Window   *Window
	Expected time.Duration
	Account  string
	Weight   float64
}

// Set registers or replaces a workspace's cron schedule; spec is its
// source text. Setting the same spec and timezone again keeps the next
// time. A nil schedule removes the workspace.
func (s *Scheduler) Set(key, spec string, schedule cron.Schedule, loc *time.Location) {
	s.SetSpec(key, Spec{Text: spec, Schedule: schedule, Location: loc})
}

// SetSpec registers or replaces a workspace's schedule.
func (s *Scheduler) SetSpec(key string, sp Spec) {
	if sp.Schedule == nil {
		s.Remove(key)
		return
	}
	loc := sp.Location
	if loc == nil {
		loc = time.UTC
	}
	item := Item{Key: key, Expected: sp.Expected, Account: sp.Account, Weight: sp.Weight}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if ok && e.spec == sp.Text && e.loc.String() == loc.String() && sameWindow(e.window, sp.Window) &&
		(sp.Window == nil || e.item == item) {
		return
	}
	if !ok {
		e = &entry{key: key, index: -1}
		s.entries[key] = e
	}
	s.leaveGroup(e)
	e.spec, e.schedule, e.loc, e.window, e.item = sp.Text, sp.Schedule, loc, nil, item
	if sp.Window != nil {
		w := *sp.Window
		e.window = &w
		gk := groupKey{w, loc.String()}
		g := s.groups[gk]
		if g == nil {
			g = &group{members: map[string]*entry{}}
			s.groups[gk] = g
		}
		g.members[key] = e
		s.dirty[gk] = true
	} else {
		e.inst, e.fired = time.Time{}, time.Time{}
		s.requeue(e, s.nextAfter(e, s.clock.Now()))
	}
	s.poke()
}

// SetExpected updates how long a workspace with a window is expected to
// run, which moves the slots of its window; a workspace without a window,
// or not registered, is left alone.
func (s *Scheduler) SetExpected(key string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || e.window == nil || e.item.Expected == d {
		return
	}
	e.item.Expected = d
	gk := groupKey{*e.window, e.loc.String()}
	s.groups[gk].slots = nil
	s.dirty[gk] = true
	s.poke()
}

// Remove forgets a workspace.
func (s *Scheduler) Remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok {
		s.leaveGroup(e)
		if e.index >= 0 {
			heap.Remove(&s.queue, e.index)
		}
		delete(s.entries, key)
	}
}

func sameWindow(a, b *Window) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// leaveGroup takes a workspace out of its window's group; the others'
// slots are spread again.
func (s *Scheduler) leaveGroup(e *entry) {
	if e.window == nil {
		return
	}
	gk := groupKey{*e.window, e.loc.String()}
	if g := s.groups[gk]; g != nil {
		delete(g.members, e.key)
		g.slots = nil
		if len(g.members) == 0 {
			delete(s.groups, gk)
			delete(s.dirty, gk)
		} else {
			s.dirty[gk] = true
		}
	}
}

// requeue sets a workspace's next time and its place in the queue; a
// zero time parks it.
func (s *Scheduler) requeue(e *entry, next time.Time) {
	e.next = next
	queued := e.index >= 0
	switch {
	case next.IsZero() && queued:
		heap.Remove(&s.queue, e.index)
		e.index = -1
	case next.IsZero():
		e.index = -1
	case queued:
		heap.Fix(&s.queue, e.index)
	default:
		heap.Push(&s.queue, e)
	}
}

// settle computes again the next times of the workspaces whose window's
// group changed. It runs before anything reads them, so registering a
// thousand workspaces spreads their slots once, not a thousand times.
func (s *Scheduler) settle(now time.Time) {
	for gk := range s.dirty {
		g := s.groups[gk]
		delete(s.dirty, gk)
		if g == nil {
			continue
		}
		g.slots = nil
		for _, e := range g.members {
			next, inst := s.windowNext(g, e, now)
			e.inst = inst
			s.requeue(e, next)
		}
	}
}

// slotIn is a workspace's slot in a window of the given length.
func (g *group) slotIn(key string, length time.Duration) time.Duration {
	if g.slots == nil {
		g.slots = map[time.Duration]map[string]time.Duration{}
	}
	slots, ok := g.slots[length]
	if !ok {
		items := make([]Item, 0, len(g.members))
		for _, m := range g.members {
			items = append(items, m.item)
		}
		slots = Slots(length, items)
		g.slots[length] = slots
	}
	return slots[key]
}

// maxWindowDays bounds the search for a window's next day: a schedule
// read by stacks.ParseCron fires within a year, every year.
const maxWindowDays = 4 * 366

// windowNext is when a workspace with a window runs next after now: its
// slot in the first window the cron picks that has not ended and that it
// has not fired in. A slot already past is not caught up (as a cron time
// missed while stopped is not), except in the window the workspace was
// waiting in: when the slots moved in it, it runs now, still inside it.
func (s *Scheduler) windowNext(g *group, e *entry, now time.Time) (next, inst time.Time) {
	local := now.In(e.loc)
	y, m, d := local.Date()
	day := time.Date(y, m, d-1, 0, 0, 0, 0, e.loc) // a window past midnight may have started yesterday
	for range maxWindowDays {
		at := e.schedule.Next(day.Add(-time.Second))
		if at.IsZero() {
			return time.Time{}, time.Time{}
		}
		y, m, d := at.In(e.loc).Date()
		start, end := e.window.On(time.Date(y, m, d, 12, 0, 0, 0, e.loc))
		day = time.Date(y, m, d+1, 0, 0, 0, 0, e.loc)
		if !end.After(now) || start.Equal(e.fired) {
			continue
		}
		slot := start.Add(g.slotIn(e.key, end.Sub(start)))
		switch {
		case !slot.Before(now):
			return slot, start
		case start.Equal(e.inst) && !e.next.IsZero():
			return now, start
		}
	}
	return time.Time{}, time.Time{}
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
	s.settle(s.clock.Now())
	if e, ok := s.entries[key]; ok {
		return e.next
	}
	return time.Time{}
}

// Run fires due workspaces until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	timer := s.clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := s.clock.Now()
		s.settle(now)
		var due []string
		for len(s.queue) > 0 && !s.queue[0].next.After(now) {
			e := s.queue[0]
			due = append(due, e.key)
			if e.window != nil {
				e.fired = e.inst
				next, inst := s.windowNext(s.groups[groupKey{*e.window, e.loc.String()}], e, now)
				e.inst = inst
				s.requeue(e, next)
				continue
			}
			s.requeue(e, s.nextAfter(e, now))
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
		case <-timer.Chan():
		case <-s.wake:
			if !timer.Stop() {
				select {
				case <-timer.Chan():
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
