package server

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/ledger"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"ms": func(ms int64) string {
		return (time.Duration(ms) * time.Millisecond).Round(10 * time.Millisecond).String()
	},
	"json": func(v any) string { b, _ := json.Marshal(v); return string(b) },
}).ParseFS(templateFS, "templates/*.html"))

// Approver approves an escalated run's plan. Approvable is the one rule
// for which runs may be approved; Approve applies it too.
type Approver interface {
	Approvable(ctx context.Context, run ledger.Run) error
	Approve(ctx context.Context, id int64, by string) (ledger.Run, error)
}

// Scheduled tells when a workspace runs next.
type Scheduled interface {
	Next(key string) time.Time
}

// Workspace is a workspace as the dashboard and the API show it.
type Workspace struct {
	Key          string    `json:"key"`
	Repository   string    `json:"repository"`
	Stack        string    `json:"stack"`
	Workspace    string    `json:"workspace"`
	Schedule     string    `json:"schedule,omitempty"`
	Verdict      string    `json:"verdict,omitempty"`
	RunID        int64     `json:"last_run_id,omitempty"`
	LastRun      time.Time `json:"last_run_at,omitzero"`
	DriftedSince time.Time `json:"drifted_since,omitzero"`
	Age          string    `json:"drift_age,omitempty"`
	Next         time.Time `json:"next_run_at,omitzero"`
	PR           string    `json:"pull_request,omitempty"`
}

// workspaces reads every workspace's summary (ledger.Summaries, the one
// the report and the metrics read too) for the dashboard and the API.
func (s *Server) workspaces(ctx context.Context) ([]Workspace, error) {
	all, err := s.ledger.Summaries(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Workspace, 0, len(all))
	for _, sm := range all {
		w := Workspace{Key: sm.Workspace.Key(), Repository: sm.Workspace.Repository, Stack: sm.Workspace.Stack,
			Workspace: sm.Workspace.Name, Schedule: sm.Schedule, Verdict: string(sm.State()), PR: sm.PullRequest}
		if sm.Latest != nil {
			w.RunID, w.LastRun = sm.Latest.ID, sm.Latest.FinishedAt
		}
		if !sm.DriftedSince.IsZero() {
			w.DriftedSince = sm.DriftedSince
			w.Age = time.Since(sm.DriftedSince).Round(time.Second).String()
		}
		if sch, ok := s.status.(Scheduled); ok && w.Schedule != "" {
			w.Next = sch.Next(w.Key)
		}
		out = append(out, w)
	}
	return out, nil
}

type page struct {
	Title, Flash, CSRF string
	Who                string
}

func (s *Server) page(r *http.Request, title string) page {
	p := page{Title: title, Flash: r.URL.Query().Get("flash"), Who: s.auth.who(r)}
	p.CSRF = s.auth.csrfToken(r)
	return p
}

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	s.renderStatus(w, http.StatusOK, name, data)
}

// renderStatus sets the headers before the status, so refusals carry them too.
func (s *Server) renderStatus(w http.ResponseWriter, code int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(code)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		s.log.Error("render", "page", name, "error", err)
	}
}

func (s *Server) handleStacks(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	all, err := s.workspaces(r.Context())
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	q := r.URL.Query()
	query, verdict, sortBy := q.Get("q"), q.Get("verdict"), q.Get("sort")
	var rows []Workspace
	for _, ws := range all {
		if query != "" && !strings.Contains(ws.Key, query) {
			continue
		}
		if verdict != "" && ws.Verdict != verdict {
			continue
		}
		rows = append(rows, ws)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		switch sortBy {
		case "age":
			a, b := rows[i].DriftedSince, rows[j].DriftedSince
			if a.IsZero() != b.IsZero() {
				return !a.IsZero()
			}
			return a.Before(b)
		case "last":
			return rows[i].LastRun.After(rows[j].LastRun)
		}
		return rows[i].Key < rows[j].Key
	})
	s.render(w, "stacks.html", struct {
		page
		Rows                 []Workspace
		Total                int
		Query, Verdict, Sort string
		Verdicts             []string
	}{s.page(r, "Stacks"), rows, len(all), query, verdict, sortBy,
		[]string{"", "in_sync", "drifted", "pending", "drifted_and_pending", "error"}})
}

func (s *Server) handleWorkspace(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	all, err := s.workspaces(r.Context())
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	var ws *Workspace
	for i := range all {
		if all[i].Key == key {
			ws = &all[i]
		}
	}
	if ws == nil {
		http.Error(w, "no workspace "+key, http.StatusNotFound)
		return
	}
	runs, err := s.ledger.List(r.Context(), ledger.Filter{Repository: ws.Repository, Stack: ws.Stack, Workspace: ws.Workspace, Limit: 50})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var cur drift.Result
	record, recordErr := "", ""
	for _, run := range runs {
		if run.Status == ledger.Finished {
			cur = run.Findings
			record, recordErr = run.Record, run.RecordError
			break
		}
	}
	s.render(w, "workspace.html", struct {
		page
		W           Workspace
		Runs        []ledger.Run
		Drift       []drift.Finding
		Record      string
		RecordError string
	}{s.page(r, ws.Stack), *ws, runs, cur.Drift, record, recordErr})
}

type section struct {
	Name     string
	Findings []drift.Finding
}

func (s *Server) handleRunPage(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "run id must be a number", http.StatusBadRequest)
		return
	}
	run, err := s.ledger.Get(r.Context(), id)
	if errors.Is(err, ledger.ErrNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	res := run.Findings
	approvable := false
	if a, ok := s.trigger.(Approver); ok {
		approvable = a.Approvable(r.Context(), run) == nil
	}
	s.render(w, "run.html", struct {
		page
		Run        ledger.Run
		Key        string
		Sections   []section
		Approvable bool
	}{s.page(r, fmt.Sprintf("Run %d", id)), run, run.Workspace.Key(),
		[]section{{"Drift", res.Drift}, {"Pending", res.Pending}, {"Noise", res.Noise}}, approvable})
}

func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, "login.html", s.page(r, "Sign in"))
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if wait, ok := s.auth.allowSignIn(s.auth.clientAddr(r)); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		p := s.page(r, "Sign in")
		p.Flash = fmt.Sprintf("Too many sign-in attempts from your address: try again in %d seconds.", secs)
		s.renderStatus(w, http.StatusTooManyRequests, "login.html", p)
		return
	}
	if !s.auth.login(w, r.PostFormValue("token")) {
		p := s.page(r, "Sign in")
		p.Flash = "That token is not valid."
		s.renderStatus(w, http.StatusUnauthorized, "login.html", p)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if s.auth.checkCSRF(r) {
		s.auth.logout(w, r)
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// formAllowed checks a dashboard form: a signed-in caller and the form's
// CSRF token. It answers the refusal itself.
func (s *Server) formAllowed(w http.ResponseWriter, r *http.Request) bool {
	if !s.auth.canWrite(r) {
		p := s.page(r, "Sign in")
		p.Flash = "Sign in to do that."
		s.renderStatus(w, http.StatusUnauthorized, "login.html", p)
		return false
	}
	if s.auth.who(r) == "session" && !s.auth.checkCSRF(r) {
		http.Error(w, "the form's CSRF token is missing or wrong: reload the page and try again", http.StatusForbidden)
		return false
	}
	return true
}

func (s *Server) handlePlanForm(w http.ResponseWriter, r *http.Request) {
	if !s.formAllowed(w, r) {
		return
	}
	key := r.PostFormValue("key")
	all, _ := s.workspaces(r.Context())
	for _, ws := range all {
		if ws.Key == key {
			runs, err := s.trigger.Trigger(r.Context(), ws.Repository, ws.Stack, ws.Workspace, "manual")
			if err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			http.Redirect(w, r, "/workspace?key="+url.QueryEscape(key)+"&flash="+url.QueryEscape(fmt.Sprintf("Run #%d queued.", runs[0].ID)), http.StatusSeeOther)
			return
		}
	}
	http.Error(w, "no workspace "+key, http.StatusNotFound)
}

func (s *Server) handleApproveForm(w http.ResponseWriter, r *http.Request) {
	if !s.formAllowed(w, r) {
		return
	}
	run, err := s.approve(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/runs/%d?flash=%s", run.ID, url.QueryEscape("Approved: this run applies the plan if it still has exactly the approved changes.")), http.StatusSeeOther)
}

func (s *Server) approve(r *http.Request) (ledger.Run, error) {
	a, ok := s.trigger.(Approver)
	if !ok {
		return ledger.Run{}, errors.New("approving is not available")
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return ledger.Run{}, errors.New("run id must be a number")
	}
	return a.Approve(r.Context(), id, s.auth.who(r))
}

func (s *Server) handleAPIApprove(w http.ResponseWriter, r *http.Request) {
	if !s.auth.canWriteAPI(r) {
		unauthorized(w)
		return
	}
	run, err := s.approve(r)
	if err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"run": run})
}

// apiWorkspaces reads the workspaces for an API call, answering the caller
// itself when the ledger fails.
func (s *Server) apiWorkspaces(w http.ResponseWriter, r *http.Request) ([]Workspace, bool) {
	all, err := s.workspaces(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return nil, false
	}
	return all, true
}

func (s *Server) handleAPIWorkspaces(w http.ResponseWriter, r *http.Request) {
	if all, ok := s.apiWorkspaces(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"workspaces": all})
	}
}

func (s *Server) handleAPIStacks(w http.ResponseWriter, r *http.Request) {
	all, ok := s.apiWorkspaces(w, r)
	if !ok {
		return
	}
	type stack struct {
		Repository string      `json:"repository"`
		Stack      string      `json:"stack"`
		Workspaces []Workspace `json:"workspaces"`
	}
	var out []*stack
	idx := map[string]*stack{}
	for _, ws := range all {
		k := ws.Repository + "/" + ws.Stack
		st, ok := idx[k]
		if !ok {
			st = &stack{Repository: ws.Repository, Stack: ws.Stack}
			idx[k] = st
			out = append(out, st)
		}
		st.Workspaces = append(st.Workspaces, ws)
	}
	writeJSON(w, http.StatusOK, map[string]any{"stacks": out})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="trueline"`)
	writeError(w, http.StatusUnauthorized, "a valid bearer token is required (Authorization: Bearer $TRUELINE_API_TOKEN)")
}
