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
	tick := time.NewTicker(h.cfg.LiveInterval)
	defer tick.Stop()
	end := time.NewTimer(streamLifetime)
	defer end.Stop()
	var last []byte
	quiet := 0
	for {
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
		if !bytes.Equal(body, last) {
			last = body
			quiet = 0
			w.Write([]byte("event: page\n"))
			for line := range bytes.SplitSeq(body, []byte("\n")) {
				w.Write([]byte("data: "))
				w.Write(line)
				w.Write([]byte("\n"))
			}
			w.Write([]byte("\n"))
			flusher.Flush()
		} else if quiet++; quiet*int(h.cfg.LiveInterval) >= int(15*time.Second) {
			quiet = 0
			w.Write([]byte(": idle\n\n"))
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case <-end.C:
			return
		case <-tick.C:
		}
	}
}
