package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	"github.com/trueline/trueline/internal/ctxtime"
)

func TestThrottlingErrorIsAWSShaped(t *testing.T) {
	err := error(&ThrottlingError{Account: "default", Limit: Limit{PerSecond: 5, Burst: 5}})
	if err.Error() != "api error ThrottlingException: Rate exceeded" {
		t.Errorf("message = %q", err)
	}
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "ThrottlingException" || api.ErrorFault() != smithy.FaultClient {
		t.Errorf("not a smithy API error with AWS's code: %#v", api)
	}
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) != aws.TrueTernary {
		t.Error("the AWS SDK does not take it for a throttle")
	}
	if !retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err).Bool() {
		t.Error("the AWS SDK does not take it for retryable")
	}
}

// recorder is a client's sleep that waits for nothing and keeps the delays.
type recorder struct{ delays []time.Duration }

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.delays = append(r.delays, d)
	return ctx.Err()
}

func TestRequestRetriesWithCappedJitteredBackoff(t *testing.T) {
	// An account out of tokens for good: every retry is throttled, so the
	// delays are the whole schedule.
	const maxBackoff = 20 * time.Second
	var samples [][]time.Duration
	s := Store{Root: t.TempDir()}
	for i := range 100 {
		rec := &recorder{}
		account := fmt.Sprintf("a%d", i)
		c := newClient(s, settings{Account: account, Limit: Limit{PerSecond: 1e-9, Burst: 1}, MaxRetries: 7, MaxBackoff: maxBackoff,
			Latency: map[string]time.Duration{OpRead: time.Second}})
		c.sleep = rec.sleep
		if err := c.request(context.Background(), OpRead); err != nil {
			t.Fatalf("the first request of a full bucket: %v", err)
		}
		rec.delays = nil
		err := c.request(context.Background(), OpRead)
		if i == 0 {
			want := "operation error Sandbox: ReadObject, exceeded maximum number of attempts, 8, api error ThrottlingException: Rate exceeded"
			var terr *ThrottlingError
			if err == nil || err.Error() != want || !errors.As(err, &terr) {
				t.Fatalf("err = %v, want %q wrapping a ThrottlingError", err, want)
			}
			st, _ := s.Stats(account)
			if st.Requests != 9 || st.Throttled != 8 || st.Retries != 7 || st.Calls[OpRead] != 1 {
				t.Errorf("stats = %+v, want 9 requests, 8 throttled, 7 retries, 1 read served", st)
			}
		}
		if len(rec.delays) != 7 {
			t.Fatalf("delays = %v, want one before each of the 7 retries (and no latency: nothing was served)", rec.delays)
		}
		samples = append(samples, rec.delays)
	}
	// The SDK's schedule: below 2^attempt seconds, uniformly, until that
	// passes the cap; the cap itself after.
	for attempt := 1; attempt <= 7; attempt++ {
		bound := min(time.Duration(1<<attempt)*time.Second, maxBackoff)
		capped := attempt > 4 // 2^5 s > 20 s
		var lo, hi time.Duration = bound, 0
		for _, s := range samples {
			d := s[attempt-1]
			lo, hi = min(lo, d), max(hi, d)
		}
		switch {
		case capped && (lo != maxBackoff || hi != maxBackoff):
			t.Errorf("retry %d waited %v to %v, want exactly the cap %v", attempt, lo, hi, maxBackoff)
		case !capped && (lo < 0 || hi >= bound):
			t.Errorf("retry %d waited %v to %v, want below %v", attempt, lo, hi, bound)
		case !capped && (hi < bound*8/10 || lo > bound*2/10):
			// 100 uniform samples all in one 80% of the range: p < 1e-9.
			t.Errorf("retry %d waited %v to %v over 100 requests: no jitter across [0, %v)", attempt, lo, hi, bound)
		}
	}
}

func TestRequest(t *testing.T) {
	cases := []struct {
		name    string
		limit   Limit
		retries int
		calls   int
		// want: what the last call returns ("" for success), the stats
		// after all calls, and the sleeps of the last call.
		want      string
		requests  int64
		throttled int64
		sleeps    []time.Duration
	}{
		{"no limit: served with its latency", Limit{}, 25, 3, "", 3, 0, []time.Duration{300 * time.Millisecond}},
		{"within the burst", Limit{PerSecond: 1e-9, Burst: 3}, 25, 3, "", 3, 0, []time.Duration{300 * time.Millisecond}},
		{"max_retries 0 fails at the first throttle", Limit{PerSecond: 1e-9, Burst: 1}, 0, 2,
			"exceeded maximum number of attempts, 1, api error ThrottlingException: Rate exceeded", 2, 1, nil},
		{"retried until the bucket refills", Limit{PerSecond: 20, Burst: 1}, 25, 2, "", 0, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Store{Root: t.TempDir()}
			c := newClient(s, settings{Account: "default", Limit: tc.limit, MaxRetries: tc.retries, MaxBackoff: 10 * time.Millisecond,
				Latency: map[string]time.Duration{OpCreate: 300 * time.Millisecond}})
			rec := &recorder{}
			var err error
			for range tc.calls {
				rec.delays = nil
				if tc.requests == 0 {
					c.sleep = ctxtime.Sleep // a real wait, for the bucket to refill
				} else {
					c.sleep = rec.sleep
				}
				op := OpCreate
				if tc.requests == 0 {
					op = OpRead // no latency: the calls come as fast as they can
				}
				err = c.request(context.Background(), op)
			}
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("last call: %v, want %q", err, tc.want)
			}
			st, err := s.Stats("default")
			if err != nil {
				t.Fatal(err)
			}
			if tc.requests == 0 {
				// Refilling takes 50 ms, each retry waits 10 ms: some
				// retries, each one throttled but the last.
				if st.Throttled < 1 || st.Retries != st.Throttled || st.Calls[OpRead] != 2 || st.Requests != 2+st.Retries {
					t.Errorf("stats = %+v, want throttles each followed by a retry, and both calls served", st)
				}
				return
			}
			if st.Requests != tc.requests || st.Throttled != tc.throttled {
				t.Errorf("stats = %+v, want %d requests, %d throttled", st, tc.requests, tc.throttled)
			}
			if len(rec.delays) != len(tc.sleeps) || (len(tc.sleeps) > 0 && rec.delays[0] != tc.sleeps[0]) {
				t.Errorf("the last call slept %v, want %v", rec.delays, tc.sleeps)
			}
		})
	}
}

func TestRequestStopsWhenCancelled(t *testing.T) {
	c := newClient(Store{Root: t.TempDir()}, settings{Account: "default", MaxRetries: 25, MaxBackoff: time.Minute,
		Latency: map[string]time.Duration{OpDelete: time.Hour}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.request(ctx, OpDelete); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("the latency did not end with the context")
	}
	// A throttled request's backoff ends with its context too.
	c = newClient(Store{Root: t.TempDir()}, settings{Account: "default", Limit: Limit{PerSecond: 1e-9, Burst: 1}, MaxRetries: 25, MaxBackoff: time.Hour})
	if err := c.request(context.Background(), OpRead); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.request(ctx, OpRead); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("throttled: err = %v, want the context's", err)
	}
}
