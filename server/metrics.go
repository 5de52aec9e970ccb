package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/run"
)

// Metrics are trueline's Prometheus metrics. Counters are counted as things
// happen; the gauges are read from the ledger on each scrape, so they agree
// with the dashboard and survive restarts.
type Metrics struct {
	reg      *prometheus.Registry
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	applies  *prometheus.CounterVec
	failures *prometheus.CounterVec
	webhooks *prometheus.CounterVec

	throttled *prometheus.CounterVec
	mu        sync.Mutex
	accounts  map[string]bool // the accounts that have a series of throttled
}

// maxThrottledAccounts bounds the series of trueline_run_throttled_total:
// accounts come from stack.hcl, which anyone who can push writes; past
// the bound they count as "other".
const maxThrottledAccounts = 64

func failureKind(f *run.Failure) string {
	switch {
	case f.TimedOut:
		return "timeout"
	case f.Interrupted:
		return "interrupted"
	}
	return "error"
}

// NewMetrics registers trueline's metrics, reading gauges from led.
func NewMetrics(led gaugeSource) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trueline_runs_total",
		Help: "Finished runs by verdict and trigger."}, []string{"verdict", "trigger"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "trueline_run_duration_seconds",
		Help: "Wall time of a run, plan and any apply included.", Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800}},
		[]string{"verdict"})
	m.applies = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trueline_applies_total",
		Help: "Auto-applies by outcome: converged, not_converged, failed."}, []string{"result"})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trueline_run_failures_total",
		Help: "Failed runs by the stage they failed at and how: error, timeout, interrupted."}, []string{"stage", "kind"})
	// Every failure series exists from the start (and no other is made).
	for _, st := range run.Stages {
		for _, k := range []string{"error", "timeout", "interrupted"} {
			m.failures.WithLabelValues(string(st), k)
		}
	}
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trueline_webhook_deliveries_total",
		Help: "Webhook deliveries by forge and result: accepted, ignored, rejected, malformed."}, []string{"forge", "result"})
	// Every webhook series exists from the start, so rates need no first
	// delivery; no other label values are ever made (see handleWebhook).
	for _, forge := range webhookForges {
		for _, res := range webhookResults {
			m.webhooks.WithLabelValues(forge, string(res))
		}
	}
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trueline_run_throttled_total",
		Help: "Throttling runs' output showed (requests over a cloud account's rate limit), by the account the runs named (\"none\": none)."},
		[]string{"account"})
	m.accounts = map[string]bool{}
	m.reg.MustRegister(m.runs, m.duration, m.applies, m.failures, m.webhooks, m.throttled, &ledgerCollector{led: led},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRun counts a finished run.
func (m *Metrics) ObserveRun(run ledger.Run, res ledger.Result) {
	verdict := string(res.Verdict)
	if verdict == "" {
		verdict = string(drift.Error)
	}
	m.runs.WithLabelValues(verdict, run.Trigger).Inc()
	m.duration.WithLabelValues(verdict).Observe(float64(res.DurationMS) / 1000)
	if res.Action.Applied() {
		m.applies.WithLabelValues(string(res.Action.Result)).Inc()
	}
	if f := res.Failure; f != nil && f.Stage != "" {
		m.failures.WithLabelValues(string(f.Stage), failureKind(f)).Inc()
	}
}

// ObserveThrottled counts the throttling one run's output showed, by its
// account.
func (m *Metrics) ObserveThrottled(account string, n int) {
	if n <= 0 {
		return
	}
	if account == "" {
		account = "none"
	}
	m.mu.Lock()
	if !m.accounts[account] {
		if len(m.accounts) >= maxThrottledAccounts {
			account = "other"
		}
		m.accounts[account] = true
	}
	m.mu.Unlock()
	m.throttled.WithLabelValues(account).Add(float64(n))
}

func (m *Metrics) observeWebhook(forge string, res WebhookResult) {
	m.webhooks.WithLabelValues(forge, string(res)).Inc()
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	workspacesDesc = prometheus.NewDesc("trueline_workspaces", "Workspaces by the verdict of their latest run.", []string{"verdict"}, nil)
	oldestDesc     = prometheus.NewDesc("trueline_oldest_drift_age_seconds", "How long the longest-drifted workspace has been drifted (0: none).", nil, nil)
	queueDesc      = prometheus.NewDesc("trueline_queue_depth", "Runs waiting to start.", nil, nil)
	runningDesc    = prometheus.NewDesc("trueline_runs_running", "Runs in progress.", nil, nil)
)

// gaugeSource is what the gauges read of the ledger on each scrape.
type gaugeSource interface {
	Summaries(ctx context.Context) ([]ledger.Summary, error)
	List(ctx context.Context, f ledger.Filter) ([]ledger.Run, error)
}

type ledgerCollector struct{ led gaugeSource }

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- workspacesDesc
	ch <- oldestDesc
	ch <- queueDesc
	ch <- runningDesc
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts := map[drift.Verdict]float64{drift.InSync: 0, drift.Drifted: 0, drift.Pending: 0, drift.DriftedAndPending: 0, drift.Error: 0}
	var oldest time.Duration
	// The same summaries the dashboard and the report read. A ledger that
	// cannot answer makes the scrape fail, rather than report zeros.
	all, err := c.led.Summaries(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(workspacesDesc, err)
		return
	}
	for _, sm := range all {
		if st := sm.State(); st != "" {
			counts[st]++
		}
		if !sm.DriftedSince.IsZero() {
			oldest = max(oldest, time.Since(sm.DriftedSince))
		}
	}
	for v, n := range counts {
		ch <- prometheus.MustNewConstMetric(workspacesDesc, prometheus.GaugeValue, n, string(v))
	}
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, oldest.Seconds())
	queued, err := c.led.List(ctx, ledger.Filter{Status: ledger.Queued, Limit: 1000})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(len(queued)))
	running, err := c.led.List(ctx, ledger.Filter{Status: ledger.Running, Limit: 1000})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(runningDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(len(running)))
}
