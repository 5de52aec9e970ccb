// Package server is trueline's HTTP side: webhooks from forges, health and
// readiness, and the JSON API over the run ledger.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/trueline/trueline/ledger"
	"github.com/trueline/trueline/report"
)

// Triggerer queues runs on request.
type Triggerer interface {
	// Trigger queues a run of one workspace, or of every workspace of the
	// stack when workspace is empty.
	Trigger(ctx context.Context, repo, stack, workspace, trigger string) ([]ledger.Run, error)
}

// Store is what the server reads of the ledger: runs, the workspaces'
// summaries, and what the report needs.
type Store interface {
	Get(ctx context.Context, id int64) (ledger.Run, error)
	List(ctx context.Context, f ledger.Filter) ([]ledger.Run, error)
	Summaries(ctx context.Context) ([]ledger.Summary, error)
	Converged(ctx context.Context, since time.Time) ([]ledger.Run, error)
}

// StatusReporter describes the daemon for /api/v1/status.
type StatusReporter interface {
	Status() map[string]any
}

// Options configure a Server.
type Options struct {
	Ledger  Store
	Hooks   Hooks
	Trigger Triggerer
	Status  StatusReporter
	Metrics *Metrics // nil: no /metrics
	// Auth decides who may read and change; nil: reading is open and
	// nothing can be changed.
	Auth *Auth
	// Ready is asked on each /readyz (e.g. "every repository fetched").
	Ready  func() bool
	Logger *slog.Logger
}

// Server serves trueline's HTTP endpoints.
type Server struct {
	ledger  Store
	hooks   Hooks
	trigger Triggerer
	status  StatusReporter
	metrics *Metrics
	auth    *Auth
	log     *slog.Logger
	ready   func() bool // the daemon's own readiness; nil: ready
	serving atomic.Bool // false while starting and while stopping
	mux     *http.ServeMux
}

// New returns a server; it is not ready until SetServing(true).
func New(opts Options) *Server {
	s := &Server{ledger: opts.Ledger, hooks: opts.Hooks, trigger: opts.Trigger, status: opts.Status, metrics: opts.Metrics, auth: opts.Auth,
		log: opts.Logger, ready: opts.Ready, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.auth == nil {
		s.auth = &Auth{}
	}
	// Forms are also refused when a browser says they come from another site.
	forms := http.NewCrossOriginProtection()
	s.mux.HandleFunc("GET /{$}", s.handleStacks)
	s.mux.HandleFunc("GET /workspace", s.handleWorkspace)
	s.mux.HandleFunc("GET /runs/{id}", s.handleRunPage)
	s.mux.HandleFunc("GET /login", s.handleLoginPage)
	s.mux.Handle("POST /login", forms.Handler(bounded(maxFormBody, s.handleLogin)))
	s.mux.Handle("POST /logout", forms.Handler(bounded(maxFormBody, s.handleLogout)))
	s.mux.Handle("POST /workspace/plan", forms.Handler(bounded(maxFormBody, s.handlePlanForm)))
	s.mux.Handle("POST /runs/{id}/approve", forms.Handler(bounded(maxFormBody, s.handleApproveForm)))
	s.mux.HandleFunc("GET /api/v1/workspaces", s.handleAPIWorkspaces)
	s.mux.HandleFunc("GET /api/v1/stacks", s.handleAPIStacks)
	s.mux.HandleFunc("POST /api/v1/runs/{id}/approve", bounded(maxFormBody, s.handleAPIApprove))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.HandleFunc("POST /hooks/{forge}/{repo}", s.handleWebhook)
	s.mux.HandleFunc("GET /api/v1/runs", s.handleRuns)
	s.mux.HandleFunc("GET /api/v1/runs/{id}", s.handleRun)
	s.mux.HandleFunc("POST /api/v1/runs", bounded(maxFormBody, s.handleTrigger))
	s.mux.HandleFunc("GET /api/v1/status", s.handleStatus)
	s.mux.HandleFunc("GET /report", s.handleReport)
	if s.metrics != nil {
		s.mux.Handle("GET /metrics", s.metrics.Handler())
	}
	return s
}

// SetServing says whether the process is up (and not stopping); /readyz
// is ready only while it is and Options.Ready agrees.
func (s *Server) SetServing(ok bool) { s.serving.Store(ok) }

func (s *Server) isReady() bool { return s.serving.Load() && (s.ready == nil || s.ready()) }

// Handle adds a handler, for other packages' pages.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// openPaths may be read without a token even when reading needs one: the
// probes of load balancers and orchestrators, and the sign-in page.
var openPaths = map[string]bool{"/healthz": true, "/readyz": true, "/login": true}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Read protection is decided here, once for every read, so no page,
	// endpoint or handler added later can forget it. Writes check their own.
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !openPaths[r.URL.Path] && !s.auth.canRead(r) {
		s.refuseRead(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// refuseRead sends people to sign in; the API, metrics and callers that
// sent a token (a wrong one) get a 401 instead.
func (s *Server) refuseRead(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/metrics" || r.Header.Get("Authorization") != "" {
		unauthorized(w)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// maxFormBody bounds the bodies of forms and API calls; webhooks have
// MaxWebhookBody.
const maxFormBody = 64 << 10

func bounded(n int64, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, n)
		h(w, r)
	}
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if !s.isReady() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) observeWebhook(forge string, res WebhookResult) {
	if s.metrics != nil {
		s.metrics.observeWebhook(forge, res)
	}
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"ready": s.isReady()}
	if s.status != nil {
		for k, v := range s.status.Status() {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleReport serves the drift report: ?format=html (default), markdown
// or json, and ?since=24h.
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	since := 24 * time.Hour
	if v := r.URL.Query().Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "since must be a duration such as 24h")
			return
		}
		since = d
	}
	rep, err := report.Build(r.Context(), s.ledger, time.Now(), since)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	switch r.URL.Query().Get("format") {
	case "", "html":
		page, err := rep.HTML()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(page))
	case "markdown":
		md, err := rep.Markdown()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		w.Write([]byte(md))
	case "json":
		writeJSON(w, http.StatusOK, rep)
	default:
		writeError(w, http.StatusBadRequest, "format must be html, markdown or json")
	}
}

type runsPage struct {
	Runs []ledger.Run `json:"runs"`
	// Next is the cursor for the following page (pass as ?before=), 0 at the end.
	Next int64 `json:"next"`
}

func (s *Server) handleRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := ledger.Filter{Repository: q.Get("repository"), Stack: q.Get("stack"), Workspace: q.Get("workspace"),
		Status: ledger.Status(q.Get("status"))}
	var err error
	if v := q.Get("before"); v != "" {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "before must be a run id")
			return
		}
	}
	f.Limit = 50
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 500 {
			writeError(w, http.StatusBadRequest, "limit must be between 1 and 500")
			return
		}
	}
	runs, err := s.ledger.List(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	page := runsPage{Runs: runs}
	if page.Runs == nil {
		page.Runs = []ledger.Run{}
	}
	if len(runs) == f.Limit {
		page.Next = runs[len(runs)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "run id must be a number")
		return
	}
	run, err := s.ledger.Get(r.Context(), id)
	if errors.Is(err, ledger.ErrNotFound) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	// The run's wire form has its findings and, read by Get, its log.
	writeJSON(w, http.StatusOK, run)
}

type triggerRequest struct {
	Repository string `json:"repository"`
	Stack      string `json:"stack"`
	Workspace  string `json:"workspace"`
}

func (s *Server) handleTrigger(w http.ResponseWriter, r *http.Request) {
	if !s.auth.canWriteAPI(r) {
		unauthorized(w)
		return
	}
	var req triggerRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		if tooBig, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooBig.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, "body must be JSON: {\"repository\": ..., \"stack\": ..., \"workspace\": ...}")
		return
	}
	if req.Stack == "" {
		writeError(w, http.StatusBadRequest, "stack is required")
		return
	}
	runs, err := s.trigger.Trigger(r.Context(), req.Repository, req.Stack, req.Workspace, "manual")
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"runs": runs})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// The status is sent: a failure here is the client gone, or a value
	// that cannot be encoded, which tests would show.
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
