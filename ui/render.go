package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
)

// The pages: each is layout.html with its own file, which defines
// "main", the live region the page's stream replaces.
var pageNames = []string{"login", "fleet", "releases", "release", "drift", "queues", "refused"}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"join":    strings.Join,
		"pct":     func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
		"num":     func(f float64) string { return fmt.Sprintf("%.4g", f) },
		"query":   func(v url.Values) string { return v.Encode() },
		"inc":     func(i int) int { return i + 1 },
		"dec":     func(i int) int { return i - 1 },
		"verdict": verdictClass,
		"list":    func(s ...string) []string { return s },
		"budgetWidth": func(failed, budget int) string {
			return fmt.Sprintf("%.1f", clamp(float64(failed)/float64(max(budget, 1)))*120)
		},
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/svg.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// Page is what every page's template gets beside its own data.
type Page struct {
	Title string
	Nav   string // the page's name, for the menu
	User  string
	Roles string
	CSRF  string
	// Live: the page opens a stream of its live region.
	Live  bool
	Now   time.Time
	Error string
	// Code is Error's code (forbidden, invalid, ...), for scripts and tests.
	Code  string
	Flash string
	Data  any
}

// pageData builds a page's data from its request; an error is shown in
// the page, with its status code.
type pageData func(r *http.Request) (title string, data any, err error)

// page serves a page, or with ?live=1 its stream.
func (h *Handler) page(name string, build pageData) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("live") == "1" {
			h.stream(w, r, name, build)
			return
		}
		title, data, err := build(r)
		pg := h.newPage(r, name, title, data)
		pg.Live = true
		status := http.StatusOK
		if err != nil {
			pg.Error, pg.Code, status = modelfleet.ErrorMessage(err), modelfleet.ErrorCode(err), statusOf(err)
		}
		pg.Flash = r.URL.Query().Get("flash")
		h.render(w, status, name, pg)
	}
}

func (h *Handler) newPage(r *http.Request, nav, title string, data any) *Page {
	pg := &Page{Title: title, Nav: nav, Now: h.cfg.Now().UTC(), Data: data}
	if p := auth.From(r.Context()); p != nil {
		pg.User, pg.Roles = p.Subject, strings.Join(p.RoleNames(), ", ")
	}
	if c, err := r.Cookie(auth.SessionCookie); err == nil {
		pg.CSRF = auth.CSRFToken(c.Value)
	}
	return pg
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, pg *Page) {
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, pg); err != nil {
		h.cfg.Logger.Error("ui: render", "page", name, "error", err)
		http.Error(w, "the page failed to render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderMain renders only a page's live region.
func (h *Handler) renderMain(name string, pg *Page) ([]byte, error) {
	var buf bytes.Buffer
	err := h.pages[name].ExecuteTemplate(&buf, "main", pg)
	return buf.Bytes(), err
}

func statusOf(err error) int {
	switch modelfleet.ErrorCode(err) {
	case modelfleet.EINVALID:
		return http.StatusBadRequest
	case modelfleet.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case modelfleet.EFORBIDDEN:
		return http.StatusForbidden
	case modelfleet.ENOTFOUND:
		return http.StatusNotFound
	case modelfleet.ECONFLICT:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// Refuse writes the guard's refusal of a dashboard request: a person
// without a session is sent to sign in, one without the permission gets
// a 403 page saying which.
func (h *Handler) Refuse(w http.ResponseWriter, r *http.Request, err error) {
	// A browser (it asks for HTML) goes to the sign-in page; any other
	// client gets the 401 itself.
	if modelfleet.ErrorCode(err) == modelfleet.EUNAUTHORIZED && r.Method == http.MethodGet && r.URL.Query().Get("live") != "1" &&
		strings.Contains(r.Header.Get("Accept"), "text/html") {
		http.Redirect(w, r, Prefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	hdr.Set("Cache-Control", "no-store")
	pg := h.newPage(r, "refused", "Refused", nil)
	pg.Error, pg.Code = modelfleet.ErrorMessage(err), modelfleet.ErrorCode(err)
	h.render(w, statusOf(err), "refused", pg)
}

func verdictClass(v string) string {
	switch v {
	case modelfleet.VerdictPass, modelfleet.SiteHealthy, modelfleet.SiteServing, "online", "succeeded", "ok":
		return "ok"
	case modelfleet.VerdictFail, modelfleet.SiteFailed, modelfleet.SiteRolledBack, "offline", "breached", "drifting", modelfleet.StateAborted:
		return "bad"
	case modelfleet.VerdictInconclusive, modelfleet.StateAwaitingApproval, "never", "closed":
		return "warn"
	}
	return "info"
}
