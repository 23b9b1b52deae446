package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// docRevision returns the revision of the desired-state document buf of
// site (0 for none: the site has had no step yet), as decoding it would.
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
		return 0, fmt.Errorf("decode desired state of %q: %w", site, err)
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
