package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/trueline/trueline/ledger"
)

// Metrics are trueline's Prometheus metrics. Counters are counted as things
// happen; the gauges are read from the ledger on each scrape, so they agree
// with the dashboard and survive restarts.
type Metrics struct {
	reg      *prometheus.Registry
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	applies  *prometheus.CounterVec
	webhooks *prometheus.CounterVec
}

// NewMetrics registers trueline's metrics, reading gauges from led.
func NewMetrics(led ledger.Ledger) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trueline_runs_total",
		Help: "Finished runs by verdict and trigger."}, []string{"verdict", "trigger"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "trueline_run_duration_seconds",
		Help: "Wall time of a run, plan and any apply included.", Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800}},
		[]string{"verdict"})
	m.applies = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trueline_applies_total",
		Help: "Auto-applies by outcome: converged, not_converged, failed."}, []string{"result"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trueline_webhook_deliveries_total",
		Help: "Webhook deliveries by forge and result: accepted, ignored, rejected, malformed."}, []string{"forge", "result"})
	// Every webhook series exists from the start, so rates need no first
	// delivery; no other label values are ever made (see handleWebhook).
	for _, forge := range webhookForges {
		for _, res := range []WebhookResult{HookAccepted, HookIgnored, HookRejected, HookMalformed} {
			m.webhooks.WithLabelValues(forge, string(res))
		}
	}
	m.reg.MustRegister(m.runs, m.duration, m.applies, m.webhooks, &ledgerCollector{led: led},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRun counts a finished run.
func (m *Metrics) ObserveRun(run ledger.Run, res ledger.Result) {
	verdict := res.Verdict
	if verdict == "" {
		verdict = "error"
	}
	m.runs.WithLabelValues(verdict, run.Trigger).Inc()
	m.duration.WithLabelValues(verdict).Observe(float64(res.DurationMS) / 1000)
	if a, ok := strings.CutPrefix(res.Action, "apply:"); ok && a != "dry_run" {
		m.applies.WithLabelValues(a).Inc()
	}
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

type ledgerCollector struct{ led ledger.Ledger }

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- workspacesDesc
	ch <- oldestDesc
	ch <- queueDesc
	ch <- runningDesc
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts := map[string]float64{"in_sync": 0, "drifted": 0, "pending": 0, "drifted_and_pending": 0, "error": 0}
	var oldest time.Duration
	if latest, err := c.led.Latest(ctx); err == nil {
		for _, r := range latest {
			counts[r.Verdict]++
		}
	}
	if starts, err := c.led.DriftStarts(ctx); err == nil {
		for _, since := range starts {
			oldest = max(oldest, time.Since(since))
		}
	}
	for v, n := range counts {
		ch <- prometheus.MustNewConstMetric(workspacesDesc, prometheus.GaugeValue, n, v)
	}
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, oldest.Seconds())
	queued, _ := c.led.List(ctx, ledger.Filter{Status: ledger.Queued, Limit: 1000})
	ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(len(queued)))
	running, _ := c.led.List(ctx, ledger.Filter{Status: ledger.Running, Limit: 1000})
	ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(len(running)))
}
