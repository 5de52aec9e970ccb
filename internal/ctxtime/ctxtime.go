// Package ctxtime waits the way every retry and budget in trueline does:
// for a duration, or until the context ends, whichever comes first.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits d, or returns ctx's error as soon as ctx ends. A d of zero
// or less returns nil at once: nothing was waited for.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
