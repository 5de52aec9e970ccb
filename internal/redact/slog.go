package redact

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/trueline/trueline/drift"
)

// Handler returns a slog handler that scrubs secrets from every message and
// attribute before h sees them: the last line of defence for an error that
// quotes a credential on its way to a log.
func Handler(h slog.Handler, secrets drift.Secrets) slog.Handler {
	if secrets.Len() == 0 {
		return h
	}
	return &handler{h: h, s: secrets}
}

type handler struct {
	h slog.Handler
	s drift.Secrets
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.s.Scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = h.attr(a)
	}
	return &handler{h: h.h.WithAttrs(clean), s: h.s}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h: h.h.WithGroup(name), s: h.s}
}

func (h *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.s.Scrub(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, e := range g {
			clean[i] = h.attr(e)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, h.s.Scrub(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, h.s.Scrub(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
