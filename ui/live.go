package ui

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	"github.com/modelfleet/modelfleet"
)

// stream serves a page's live region as Server-Sent Events: rendered
// again every LiveInterval and sent when it changed ("page" events),
// with a comment now and then so a closed connection is noticed. It ends
// after streamLifetime; the browser's EventSource reconnects, through
// the guard again.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, name string, build pageData) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: %d\n\n", (2 * time.Second).Milliseconds())
	flusher.Flush()
	next := time.NewTimer(h.cfg.LiveInterval)
	defer next.Stop()
	end := time.NewTimer(streamLifetime)
	defer end.Stop()
	var last []byte
	var quietFor time.Duration
	for {
		began := time.Now()
		title, data, err := build(r)
		pg := h.newPage(r, name, title, data)
		if err != nil {
			pg.Error, pg.Code = modelfleet.ErrorMessage(err), modelfleet.ErrorCode(err)
		}
		pg.Flash = r.URL.Query().Get("flash")
		body, err := h.renderMain(name, pg)
		if err != nil {
			h.cfg.Logger.Error("ui: render live", "page", name, "error", err)
			return
		}
		// Each open page may cost the gateway at most liveBudget of a
		// core: a page that takes long to build (a fleet of 10,000 sites)
		// is rendered less often than LiveInterval.
		wait := max(h.cfg.LiveInterval, time.Duration(float64(time.Since(began))/liveBudget))
		if !bytes.Equal(body, last) {
			last = body
			quietFor = 0
			w.Write([]byte("event: page\n"))
			for line := range bytes.SplitSeq(body, []byte("\n")) {
				w.Write([]byte("data: "))
				w.Write(line)
				w.Write([]byte("\n"))
			}
			w.Write([]byte("\n"))
			flusher.Flush()
		} else if quietFor += wait; quietFor >= 15*time.Second {
			quietFor = 0
			w.Write([]byte(": idle\n\n"))
			flusher.Flush()
		}
		next.Reset(wait)
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case <-end.C:
			return
		case <-next.C:
		}
	}
}

// liveBudget is the share of a core one open page's live updates may take
// at most: the next render waits at least the last one's time over it.
const liveBudget = 0.005
