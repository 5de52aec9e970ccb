package notify

import (
	"context"
	"log/slog"
	"time"
)

// Sender delivers events to one target.
type Sender interface {
	Send(ctx context.Context, e Event) error
}

// Dispatcher queues events and sends them in the background, so that
// notifying never blocks a run. When the queue is full, events are dropped
// (and logged) rather than waited for.
type Dispatcher struct {
	Targets map[string]Sender // by name, e.g. "slack.infra"
	Logger  *slog.Logger
	Timeout time.Duration // per event and target, retries included; default 2m

	queue chan queued
}

type queued struct {
	targets []string
	event   Event
}

// Notify queues an event for the named targets and returns at once.
func (d *Dispatcher) Notify(targets []string, e Event) {
	if len(targets) == 0 {
		return
	}
	select {
	case d.queue <- queued{targets: targets, event: e}:
	default:
		d.log().Error("notification queue full; event dropped", "kind", e.Kind, "workspace", e.Key())
	}
}

// Run sends queued events until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-d.queue:
			for _, name := range q.targets {
				t, ok := d.Targets[name]
				if !ok {
					d.log().Error("unknown notify target; check the policy's notify list", "target", name)
					continue
				}
				timeout := d.Timeout
				if timeout == 0 {
					timeout = 2 * time.Minute
				}
				sctx, cancel := context.WithTimeout(ctx, timeout)
				if err := t.Send(sctx, q.event); err != nil {
					d.log().Error("notification failed", "target", name, "kind", q.event.Kind, "error", err)
				}
				cancel()
			}
		}
	}
}

// NewDispatcher returns a dispatcher with a queue of the given size.
func NewDispatcher(targets map[string]Sender, size int, logger *slog.Logger) *Dispatcher {
	return &Dispatcher{Targets: targets, Logger: logger, queue: make(chan queued, size)}
}

func (d *Dispatcher) log() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}
