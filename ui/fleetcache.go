package ui

import (
	"slices"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/rollout"
)

// What makes the fleet and release pages cheap at 10,000 sites, rendered again every
// LiveInterval for every open dashboard: one listing of the directory
// shared by the pages rendered within listTTL, the sites' natural order
// kept while the set of sites stays the same, and each maintenance window
// parsed once.

// listTTL is how long one listing of the directory serves every fleet
// page: well under a live interval, so each push still shows fresh
// reports.
func (h *Handler) listTTL() time.Duration { return min(h.cfg.LiveInterval/2, time.Second) }

type fleetCache struct {
	mu sync.Mutex
	// The latest listing and when it was taken (monotonic clock: a test's
	// frozen Now must not freeze it).
	sites []modelfleet.Site
	at    time.Time
	// ids are the sites in the listing's order, order the indexes of the
	// listing in natural ID order (site-2 before site-10).
	ids   []string
	order []int
	// windows are parsed maintenance windows (nil: unreadable, with err).
	windows map[modelfleet.MaintenanceWindow]parsedWindow
}

type parsedWindow struct {
	w   *rollout.Window
	err error
}

// maxWindows bounds the parsed-window cache: sites share a few schedules.
const maxWindows = 4096

// list returns the directory's sites and their natural order; both are
// shared: read only.
func (h *Handler) list() ([]modelfleet.Site, []int, error) {
	c := &h.fleet
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sites != nil && time.Since(c.at) < h.listTTL() {
		return c.sites, c.order, nil
	}
	sites, err := h.cfg.Sites.List()
	if err != nil {
		return nil, nil, err
	}
	c.sites, c.at = sites, time.Now()
	same := len(sites) == len(c.ids)
	for i := 0; same && i < len(sites); i++ {
		same = sites[i].ID == c.ids[i]
	}
	if !same {
		c.ids = make([]string, len(sites))
		c.order = make([]int, len(sites))
		for i, s := range sites {
			c.ids[i], c.order[i] = s.ID, i
		}
		slices.SortFunc(c.order, func(a, b int) int { return naturalCompare(c.ids[a], c.ids[b]) })
	}
	return c.sites, c.order, nil
}

// window parses a site's maintenance window once.
func (h *Handler) window(w modelfleet.MaintenanceWindow) (*rollout.Window, error) {
	c := &h.fleet
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.windows[w]; ok {
		return p.w, p.err
	}
	if c.windows == nil || len(c.windows) >= maxWindows {
		c.windows = map[modelfleet.MaintenanceWindow]parsedWindow{}
	}
	pw, err := rollout.ParseWindow(w)
	c.windows[w] = parsedWindow{pw, err}
	return pw, err
}
