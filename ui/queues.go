package ui

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/queue"
)

// peekRows is how many messages the queues page shows of each kind.
const peekRows = 20

type queuesData struct {
	Enabled     bool
	Stats       queue.Stats
	DeadLetters []queue.PeekedMessage
	Active      []queue.PeekedMessage
	Monitor     *drift.Stats
	CanRedrive  bool
	// Audit is shown to admins (bindings.write): who was refused what,
	// and who changed what, by name.
	ShowAudit bool
	Audit     []auth.AuditRecord
}

func (h *Handler) queuesData(r *http.Request) (string, any, error) {
	d := &queuesData{}
	if h.cfg.Audit != nil && len(auth.From(r.Context()).Has(auth.BindingsWrite)) > 0 {
		d.ShowAudit, d.Audit = true, h.cfg.Audit()
	}
	if h.cfg.Monitor != nil {
		st, _ := h.cfg.Monitor()
		d.Monitor = &st
	}
	if h.cfg.Queue == nil {
		return "Queues and audit", d, nil
	}
	d.Enabled = true
	var err error
	if d.Stats, err = h.cfg.Queue.Stats(); err != nil {
		return "Queues and audit", d, err
	}
	if d.DeadLetters, err = h.cfg.Queue.Peek(0, peekRows, true); err != nil {
		return "Queues and audit", d, err
	}
	if d.Active, err = h.cfg.Queue.Peek(0, peekRows, false); err != nil {
		return "Queues and audit", d, err
	}
	d.CanRedrive = d.Stats.DeadLettered > 0 && len(auth.From(r.Context()).Has(auth.QueuesManage)) > 0
	return "Queues and audit", d, nil
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
