package ui

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/queue"
)

// peekRows is how many messages the queues page shows of each kind.
const peekRows = 20

// bodyPreview is how much of a message's body the page shows: enough to
// see what a poison message is, not a page of JSON.
const bodyPreview = 400

type queuesData struct {
	Enabled     bool
	Stats       queue.Stats
	DeadLetters []peekedRow
	Active      []peekedRow
	// DeadFrom is the first dead letter's sequence number shown; NextDead
	// the link to the next page of them, FirstDead back to the start.
	DeadFrom            int64
	NextDead, FirstDead string
	Monitor             *drift.Stats
	CanRedrive          bool
	// Audit is shown to admins (bindings.write): who was refused what,
	// and who changed what, by name. AuditView filters it: "controls"
	// (the default: denials and people's changes), "denied", or "all"
	// (also reads and the sites' and the worker's routine traffic).
	ShowAudit bool
	AuditView string
	Audit     []auth.AuditRecord
	// AuditViews are the other views' links.
	AuditViews []auditView
}

type auditView struct{ Name, Label, URL string }

// The audit views.
var auditViews = []auditView{
	{"controls", "controls and denials", Prefix + "queues"},
	{"denied", "denials only", Prefix + "queues?audit=denied"},
	{"all", "everything", Prefix + "queues?audit=all"},
}

// auditShown reports whether view shows record a. Sites and the cloud
// worker pass the guard many times a minute (reports, signals, steps):
// under "controls" their allowed requests, and every allowed read, are
// left out.
func auditShown(view string, a auth.AuditRecord) bool {
	switch view {
	case "all":
		return true
	case "denied":
		return !a.Allowed
	}
	return !a.Routine()
}

// peekedRow is a message as the page shows it: its properties in one
// line, the start of its body as text.
type peekedRow struct {
	queue.PeekedMessage
	Props   string
	Preview string
	More    bool // the body is longer than Preview
}

func newPeekedRow(m queue.PeekedMessage) peekedRow {
	r := peekedRow{PeekedMessage: m}
	var props []string
	for _, k := range slices.Sorted(maps.Keys(m.Properties)) {
		props = append(props, k+"="+m.Properties[k])
	}
	r.Props = truncate(strings.Join(props, " "), 200)
	body := m.Body
	if len(body) > bodyPreview {
		body, r.More = body[:bodyPreview], true
	}
	if utf8.Valid(body) || r.More {
		r.Preview = strings.ToValidUTF8(string(body), "�")
	} else {
		r.Preview = fmt.Sprintf("(%d bytes, not text)", len(m.Body))
	}
	return r
}

func (h *Handler) queuesData(r *http.Request) (string, any, error) {
	const title = "Queues and audit"
	d := &queuesData{}
	q := r.URL.Query()
	d.AuditView = cmp.Or(q.Get("audit"), "controls")
	if !slices.ContainsFunc(auditViews, func(v auditView) bool { return v.Name == d.AuditView }) {
		return title, d, modelfleet.Errorf(modelfleet.EINVALID, "audit %q: want controls, denied or all", truncate(d.AuditView, 40))
	}
	for _, v := range auditViews {
		if v.Name != d.AuditView {
			d.AuditViews = append(d.AuditViews, v)
		}
	}
	if v := q.Get("dead_from"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return title, d, modelfleet.Errorf(modelfleet.EINVALID, "dead_from %q: want a sequence number from 0", truncate(v, 40))
		}
		d.DeadFrom = n
	}
	p := auth.From(r.Context())
	if h.cfg.Audit != nil && len(p.Has(auth.BindingsWrite)) > 0 {
		d.ShowAudit = true
		for _, a := range h.cfg.Audit() {
			if auditShown(d.AuditView, a) {
				d.Audit = append(d.Audit, a)
			}
		}
	}
	if h.cfg.Monitor != nil {
		st, _ := h.cfg.Monitor()
		d.Monitor = &st
	}
	if h.cfg.Queue == nil {
		return title, d, nil
	}
	d.Enabled = true
	var err error
	if d.Stats, err = h.cfg.Queue.Stats(); err != nil {
		return title, d, err
	}
	dead, err := h.cfg.Queue.Peek(d.DeadFrom, peekRows, true)
	if err != nil {
		return title, d, err
	}
	active, err := h.cfg.Queue.Peek(0, peekRows, false)
	if err != nil {
		return title, d, err
	}
	for _, m := range dead {
		d.DeadLetters = append(d.DeadLetters, newPeekedRow(m))
	}
	for _, m := range active {
		d.Active = append(d.Active, newPeekedRow(m))
	}
	link := func(from int64) string {
		v := url.Values{}
		if d.AuditView != "controls" {
			v.Set("audit", d.AuditView)
		}
		if from > 0 {
			v.Set("dead_from", strconv.FormatInt(from, 10))
		}
		if len(v) == 0 {
			return Prefix + "queues"
		}
		return Prefix + "queues?" + v.Encode()
	}
	if len(dead) == peekRows {
		d.NextDead = link(dead[len(dead)-1].SequenceNumber + 1)
	}
	if d.DeadFrom > 0 {
		d.FirstDead = link(0)
	}
	d.CanRedrive = d.Stats.DeadLettered > 0 && len(p.Has(auth.QueuesManage)) > 0
	return title, d, nil
}

// redrive moves dead letters back to the queue (queues.manage).
func (h *Handler) redrive(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Queue == nil {
		h.Refuse(w, r, modelfleet.Errorf(modelfleet.ENOTFOUND, "no embedded queue here"))
		return
	}
	n, err := h.cfg.Queue.Redrive(r.Context(), 1000)
	if err != nil {
		h.Refuse(w, r, err)
		return
	}
	h.cfg.Logger.Info("ui: dead letters re-driven", "who", auth.From(r.Context()).Subject, "messages", n)
	http.Redirect(w, r, Prefix+"queues?flash="+url.QueryEscape(fmt.Sprintf("%d messages re-driven", n)), http.StatusSeeOther)
}
