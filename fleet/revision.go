package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/modelfleet/modelfleet"
)

// docRevision returns the revision of site's desired-state document buf
// (0 for none: the site has had no step yet), as decoding it would; and so
// of its report (modelfleet.Actual, the same head).
//
// A document the directory wrote (json.Marshal of modelfleet.Desired)
// begins {"site":"<site>","revision":<n>, so n is read from there,
// without scanning the models, versions and statements that follow: a
// long poll checks the revision at every start, and at 10,000 sites a
// rollback starts them all at once. Any other layout is decoded in full.
// The rest of the document is not checked: Desired, which reads it, says
// whether it decodes.
func docRevision(site string, buf []byte) (int64, error) {
	if buf == nil {
		return 0, nil
	}
	if n, ok := revisionPrefix(site, buf); ok {
		return n, nil
	}
	var doc struct {
		Revision int64 `json:"revision"`
	}
	if err := json.Unmarshal(buf, &doc); err != nil {
		return 0, err
	}
	return doc.Revision, nil
}

// revisionPrefix reads n from a document that begins
// {"site":"<site>","revision":<n>, followed by ',' or '}'.
func revisionPrefix(site string, buf []byte) (int64, bool) {
	const head, mid = `{"site":"`, `","revision":`
	if len(buf) < len(head)+len(site)+len(mid) || string(buf[:len(head)]) != head ||
		string(buf[len(head):len(head)+len(site)]) != site {
		return 0, false
	}
	rest := buf[len(head)+len(site):]
	if !bytes.HasPrefix(rest, []byte(mid)) {
		return 0, false
	}
	rest = rest[len(mid):]
	end := bytes.IndexAny(rest, ",}")
	if end <= 0 {
		return 0, false
	}
	num := rest[:end]
	digits := bytes.TrimPrefix(num, []byte("-"))
	// JSON's integers: no sign but '-', no leading zero.
	if len(digits) == 0 || (digits[0] == '0' && len(digits) > 1) || bytes.IndexFunc(digits, notDigit) >= 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

func notDigit(r rune) bool { return r < '0' || r > '9' }

// progressDesired and progressActual are the parts of a desired state and
// of a report that Progress reads: decoding into them skips the rest (the
// versions, their statements, the counters of the other models) without
// allocating it.
type progressDesired struct {
	Workloads map[string]modelfleet.DesiredWorkload `json:"workloads"`
}

type progressActual struct {
	Models    map[string]json.RawMessage           `json:"models"`
	Workloads map[string]modelfleet.ActualWorkload `json:"workloads"`
}

// workloadsKey is how a desired-state document the directory wrote
// (json.Marshal of modelfleet.Desired) names its workloads: one without it
// has none, and decodeProgress does not decode it for them.
var workloadsKey = []byte(`"workloads"`)

// decodeProgress reads a site's progress from its desired-state document
// dbuf and its report abuf (nil: none), decoding both only when the report
// is not behind.
func decodeProgress(site, model string, dbuf, abuf []byte) (SiteProgress, error) {
	var p SiteProgress
	var err error
	if p.Desired, err = docRevision(site, dbuf); err != nil {
		return p, fmt.Errorf("decode desired state of %q: %w", site, err)
	}
	if p.Applied, err = docRevision(site, abuf); err != nil {
		return p, fmt.Errorf("decode actual state of %q: %w", site, err)
	}
	if p.pending() {
		return p, nil
	}
	if dbuf != nil && bytes.Contains(dbuf, workloadsKey) {
		var ds progressDesired
		if err := json.Unmarshal(dbuf, &ds); err != nil {
			return p, fmt.Errorf("decode desired state of %q: %w", site, err)
		}
		p.Workloads = ds.Workloads
	}
	if abuf != nil {
		var a progressActual
		if err := json.Unmarshal(abuf, &a); err != nil {
			return p, fmt.Errorf("decode actual state of %q: %w", site, err)
		}
		p.Running = a.Workloads
		if raw, ok := a.Models[model]; ok {
			if err := json.Unmarshal(raw, &p.Model); err != nil {
				return p, fmt.Errorf("decode actual state of %q: %w", site, err)
			}
		}
	}
	return p, nil
}
