// Package notify tells people what trueline found and did, on Slack
// (slack-go): through an incoming webhook, or with a bot token and a channel,
// where every incident (a workspace from drift found to drift cleared) gets
// one thread whose first message is kept up to date. Sending is retried with
// backoff on 429 and 5xx, honouring Retry-After, and happens off the run's
// path: a Slack outage never blocks or fails a run.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/ctxtime"
	"github.com/trueline/trueline/internal/redact"
)

// Kind of event.
type Kind string

const (
	DriftFound  Kind = "drift_found"  // drift or pending code, reported
	Applied     Kind = "applied"      // applied and converged
	PullRequest Kind = "pull_request" // a remediation pull request was opened or updated
	Escalated   Kind = "escalated"    // a guardrail said no
	Failed      Kind = "error"        // the run or the apply failed
	Cleared     Kind = "cleared"      // back in sync: the incident is over
	Report      Kind = "report"       // the scheduled drift report: Reason holds its summary, URL the full report
)

// Event is one thing worth telling. Findings must already be masked (the
// drift package masks them); Send also scrubs known secrets from all text.
type Event struct {
	Kind       Kind
	Repository string
	Stack      string
	Workspace  string
	Commit     string
	Verdict    string
	Result     drift.Result
	Action     string
	Reason     string
	Error      string
	URL        string // a link to the run
	PRURL      string
}

// Key identifies the incident an event belongs to.
func (e Event) Key() string { return e.Repository + "/" + e.Stack + "/" + e.Workspace }

// Threads remembers the thread of each open incident.
type Threads interface {
	Thread(ctx context.Context, key string) (channel, ts string, err error)
	SetThread(ctx context.Context, key, channel, ts string) error
	DeleteThread(ctx context.Context, key string) error
}

// Slack sends events to one Slack target.
type Slack struct {
	Name       string // as policies name it: "slack.<name>"
	WebhookURL string // incoming webhook; or Token and Channel
	Token      string
	Channel    string
	APIURL     string // default https://slack.com/api/
	HTTP       *http.Client
	// Timeout bounds each request to Slack when HTTP is nil; default 30s.
	Timeout time.Duration
	Threads Threads // with a token: one thread per incident
	// Secrets are scrubbed from every text sent.
	Secrets     []string
	MaxAttempts int                                              // default 5
	Sleep       func(ctx context.Context, d time.Duration) error // default: a timer
	Logger      *slog.Logger
}

func (s *Slack) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	return ctxtime.Sleep(ctx, d)
}

// retry calls fn until it succeeds, fails for good, or attempts run out.
// 429 waits Retry-After; 5xx and network errors back off exponentially.
func (s *Slack) retry(ctx context.Context, what string, fn func() error) error {
	attempts := s.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	backoff := 500 * time.Millisecond
	var err error
	for i := 1; ; i++ {
		err = fn()
		if err == nil {
			return nil
		}
		var wait time.Duration
		var limited *slack.RateLimitedError
		var status slack.StatusCodeError
		switch {
		case errors.As(err, &limited):
			wait = limited.RetryAfter
		case errors.As(err, &status) && status.Code >= 500:
			wait = backoff
			backoff *= 2
		case errors.As(err, &status):
			return fmt.Errorf("slack %s %s: %w", s.Name, what, err) // 4xx: retrying will not help
		default:
			var se slack.SlackErrorResponse
			if errors.As(err, &se) {
				return fmt.Errorf("slack %s %s: %w", s.Name, what, err)
			}
			wait = backoff
			backoff *= 2
		}
		if i >= attempts {
			return fmt.Errorf("slack %s %s: giving up after %d attempts: %w", s.Name, what, i, err)
		}
		if s.Logger != nil {
			s.Logger.Warn("slack: retrying", "target", s.Name, "what", what, "wait", wait, "error", s.redact(err))
		}
		if err := s.sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// Send delivers one event. Its errors name no secret: slack-go's quote the
// request URL, and a webhook URL is itself the credential.
func (s *Slack) Send(ctx context.Context, e Event) error {
	return s.redact(s.send(ctx, e))
}

// redact removes the webhook URL, the token and Secrets from an error.
func (s *Slack) redact(err error) error {
	if err == nil {
		return nil
	}
	values := append([]string{s.Token}, s.Secrets...)
	if s.WebhookURL != "" {
		values = append(values, redact.URL(s.WebhookURL)...)
	}
	return redact.Error(err, drift.SecretsFrom(values...))
}

func (s *Slack) send(ctx context.Context, e Event) error {
	text, blocks := s.message(e)
	if s.WebhookURL != "" {
		msg := &slack.WebhookMessage{Text: text, Blocks: &slack.Blocks{BlockSet: blocks}}
		return s.retry(ctx, "webhook", func() error {
			return slack.PostWebhookCustomHTTPContext(ctx, s.WebhookURL, s.client(), msg)
		})
	}
	if s.Token == "" || s.Channel == "" {
		return fmt.Errorf("slack %s: set webhook_url_env, or token_env and channel", s.Name)
	}
	opts := []slack.Option{slack.OptionHTTPClient(s.client())}
	if s.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(s.APIURL))
	}
	api := slack.New(s.Token, opts...)
	msg := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)}

	if e.Kind == Report {
		// A report is its own message, never part of an incident's thread.
		return s.retry(ctx, "post", func() error {
			_, _, err := api.PostMessageContext(ctx, s.Channel, msg...)
			return err
		})
	}
	var channel, ts string
	if s.Threads != nil {
		var err error
		if channel, ts, err = s.Threads.Thread(ctx, s.threadKey(e)); err != nil {
			// Without the thread the message still goes out, as a new one.
			if s.Logger != nil {
				s.Logger.Warn("slack: cannot read the thread; posting a new message", "target", s.Name, "error", err)
			}
			channel, ts = "", ""
		}
	}
	if ts == "" {
		// The first message of an incident (or no thread store): post it.
		if e.Kind == Cleared {
			return nil // nothing was announced, nothing to clear
		}
		return s.retry(ctx, "post", func() error {
			ch, t, err := api.PostMessageContext(ctx, s.Channel, msg...)
			if err == nil && s.Threads != nil {
				if terr := s.Threads.SetThread(ctx, s.threadKey(e), ch, t); terr != nil {
					// The message is out; only its thread is lost, so a
					// later update starts a new one.
					if s.Logger != nil {
						s.Logger.Warn("slack: cannot keep the thread", "target", s.Name, "error", terr)
					}
				}
			}
			return err
		})
	}
	// Later events reply in the thread and bring the first message up to date.
	if err := s.retry(ctx, "reply", func() error {
		_, _, err := api.PostMessageContext(ctx, channel, append(msg, slack.MsgOptionTS(ts))...)
		return err
	}); err != nil {
		return err
	}
	if err := s.retry(ctx, "update", func() error {
		_, _, _, err := api.UpdateMessageContext(ctx, channel, ts, msg...)
		return err
	}); err != nil {
		return err
	}
	if e.Kind == Cleared {
		return s.Threads.DeleteThread(ctx, s.threadKey(e))
	}
	return nil
}

func (s *Slack) threadKey(e Event) string { return s.Name + ":" + e.Key() }

func (s *Slack) client() *http.Client {
	if s.HTTP != nil {
		return s.HTTP
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &http.Client{Timeout: timeout}
}

var titles = map[Kind]string{
	DriftFound:  ":warning: %s in %s",
	Applied:     ":white_check_mark: Reverted and converged: %[2]s",
	PullRequest: ":arrows_counterclockwise: Pull request for %[2]s",
	Escalated:   ":raised_hand: Escalated: %[2]s",
	Failed:      ":x: Run failed: %[2]s",
	Cleared:     ":large_green_circle: Back in sync: %[2]s",
}

// message renders an event as fallback text and Block Kit blocks.
func (s *Slack) message(e Event) (string, []slack.Block) {
	if e.Kind == Report {
		title := ":bar_chart: trueline drift report"
		blocks := []slack.Block{
			slack.NewHeaderBlock(slack.NewTextBlockObject("plain_text", title, true, false)),
			slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", truncate(s.scrub(e.Reason), 2900), false, false), nil, nil),
		}
		if e.URL != "" {
			blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject("mrkdwn", "<"+e.URL+"|the full report>", false, false)))
		}
		return title + ": " + s.scrub(e.Reason), blocks
	}
	where := fmt.Sprintf("%s (%s)", e.Stack, e.Workspace)
	what := map[string]string{"drifted": "Drift", "pending": "Pending code", "drifted_and_pending": "Drift and pending code"}[e.Verdict]
	if what == "" {
		what = "Changes"
	}
	title := fmt.Sprintf(titles[e.Kind], what, where)
	commit := e.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	fields := []*slack.TextBlockObject{
		slack.NewTextBlockObject("mrkdwn", "*Repository*\n"+s.scrub(e.Repository), false, false),
		slack.NewTextBlockObject("mrkdwn", "*Commit*\n`"+commit+"`", false, false),
		slack.NewTextBlockObject("mrkdwn", "*Verdict*\n"+verdictLine(e), false, false),
	}
	if e.Action != "" {
		fields = append(fields, slack.NewTextBlockObject("mrkdwn", "*Action*\n"+e.Action, false, false))
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject("plain_text", truncate(s.scrub(title), 150), true, false)),
		slack.NewSectionBlock(nil, fields, nil),
	}
	if lines := findingLines(e.Result); lines != "" {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", truncate(s.scrub(lines), 2900), false, false), nil, nil))
	}
	if e.Error != "" {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "```"+truncate(s.scrub(e.Error), 2800)+"```", false, false), nil, nil))
	}
	var ctxParts []slack.MixedElement
	if e.Reason != "" {
		ctxParts = append(ctxParts, slack.NewTextBlockObject("mrkdwn", truncate(s.scrub(e.Reason), 1000), false, false))
	}
	if e.PRURL != "" {
		ctxParts = append(ctxParts, slack.NewTextBlockObject("mrkdwn", "<"+e.PRURL+"|pull request>", false, false))
	}
	if e.URL != "" {
		ctxParts = append(ctxParts, slack.NewTextBlockObject("mrkdwn", "<"+e.URL+"|run>", false, false))
	}
	if len(ctxParts) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", ctxParts...))
	}
	return s.scrub(title), blocks
}

// verdictLine is the verdict as people read it: a refresh-only run's says
// that the code was not compared (its in_sync means no drift, and pending
// code is unknown).
func verdictLine(e Event) string {
	if e.Result.Mode == drift.RefreshOnly {
		return e.Verdict + " (refresh-only: the code was not compared)"
	}
	return e.Verdict
}

func findingLines(r drift.Result) string {
	var b strings.Builder
	n := 0
	for _, l := range []struct {
		kind string
		fs   []drift.Finding
	}{{"drift", r.Drift}, {"pending", r.Pending}} {
		for _, f := range l.fs {
			fmt.Fprintf(&b, "*%s* `%s` (%s)\n", l.kind, f.Address, f.Action)
			for _, a := range f.Attributes {
				if n++; n > 20 {
					b.WriteString("… more in the run\n")
					return b.String()
				}
				fmt.Fprintf(&b, "    %s: git `%v` → live `%v`\n", a.Path, show(a.Git), show(a.Live))
			}
		}
	}
	return b.String()
}

func show(v any) any {
	if v == nil {
		return "null"
	}
	return v
}

func (s *Slack) scrub(text string) string {
	for _, sec := range s.Secrets {
		if len(sec) >= 4 {
			text = strings.ReplaceAll(text, sec, "***")
		}
	}
	return text
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
