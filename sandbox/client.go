package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/terraform-plugin-log/tflog"
	"github.com/trueline/trueline/internal/ctxtime"
)

// The kinds of API call, as Stats.Calls counts them.
const (
	OpRead   = "read"
	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
	OpData   = "data" // a data source's read; it takes read_latency
)

// operations names each kind of call in errors, as AWS names its operations.
var operations = map[string]string{
	OpRead: "ReadObject", OpCreate: "CreateObject", OpUpdate: "UpdateObject",
	OpDelete: "DeleteObject", OpData: "ReadDataSource",
}

// ThrottlingError is the cloud's answer to a request over its account's
// rate limit. It is shaped like AWS's (code ThrottlingException, message
// "Rate exceeded", retryable), so the AWS SDK's own classifiers take it for
// a throttle.
type ThrottlingError struct {
	Account string
	Limit   Limit
}

func (e *ThrottlingError) Error() string { return "api error ThrottlingException: Rate exceeded" }

// ErrorCode is the AWS error code.
func (e *ThrottlingError) ErrorCode() string { return "ThrottlingException" }

// ErrorMessage is the AWS error message.
func (e *ThrottlingError) ErrorMessage() string { return "Rate exceeded" }

// ErrorFault says whose fault it is: the caller's, as in AWS.
func (e *ThrottlingError) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }

// RetryableError marks the error retryable.
func (e *ThrottlingError) RetryableError() bool { return true }

// client makes the API calls of one configured provider: each call waits
// for its account to admit it, retrying throttled requests with the AWS
// SDK's capped exponential backoff with jitter, then takes its latency.
type client struct {
	store   Store
	account string
	limit   Limit
	latency map[string]time.Duration
	// maxAttempts is max_retries + 1: the first request and its retries.
	maxAttempts int
	backoff     retry.BackoffDelayer
	// sleep waits d or until ctx ends; tests replace it to see the schedule.
	sleep func(ctx context.Context, d time.Duration) error
}

func newClient(store Store, s settings) *client {
	return &client{
		store:       store,
		account:     s.Account,
		limit:       s.Limit,
		latency:     s.Latency,
		maxAttempts: s.MaxRetries + 1,
		// The legacy formula of the SDK's standard retryer, which the AWS
		// provider uses: a uniform delay below 2^attempt seconds, and the
		// cap itself once 2^attempt passes it.
		backoff: retry.NewExponentialJitterBackoff(s.MaxBackoff),
		sleep:   ctxtime.Sleep,
	}
}

// retryable is the SDK's default classification of retryable errors.
var retryable = retry.IsErrorRetryables(retry.DefaultRetryables)

// request is one API call of kind op: it returns once the account served it
// and its latency passed, or with the throttling error once max_retries
// retries were throttled too, or with ctx's error.
func (c *client) request(ctx context.Context, op string) error {
	for attempt := 1; ; attempt++ {
		served, err := c.store.admit(c.account, c.limit, op, attempt > 1)
		if err != nil {
			return err
		}
		if served {
			return c.sleep(ctx, c.latency[op])
		}
		var terr error = &ThrottlingError{Account: c.account, Limit: c.limit}
		if !retryable.IsErrorRetryable(terr).Bool() {
			return c.opError(op, terr)
		}
		if attempt >= c.maxAttempts {
			return c.opError(op, &retry.MaxAttemptsError{Attempt: attempt, Err: terr})
		}
		d, err := c.backoff.BackoffDelay(attempt, terr)
		if err != nil {
			return c.opError(op, err)
		}
		tflog.Debug(ctx, "sandbox request throttled; retrying", map[string]any{
			"account": c.account, "operation": operations[op], "attempt": attempt, "delay": d.String()})
		if err := c.sleep(ctx, d); err != nil {
			return err
		}
	}
}

func (c *client) opError(op string, err error) error {
	return &smithy.OperationError{ServiceID: "Sandbox", OperationName: operations[op], Err: err}
}

// describe turns a failed request into a diagnostic's detail: a throttle
// says which limit it hit and what to change.
func (c *client) describe(err error) string {
	var terr *ThrottlingError
	if !errors.As(err, &terr) {
		return err.Error()
	}
	return fmt.Sprintf("%v\n\nSandbox account %q allows %s. Raise requests_per_second or max_retries in the provider \"sandbox\" block (or %s, %s), or plan with a lower -parallelism.",
		err, terr.Account, terr.Limit, RequestsPerSecondEnv, MaxRetriesEnv)
}
