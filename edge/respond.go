package edge

import (
	"math"
	"net/http"
	"strconv"
	"sync"

	"github.com/modelfleet/modelfleet"
)

// Header values shared by every score response; net/http only reads them.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

var scoreBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// writeScore writes the score response of arm a: the precomputed prefix and
// suffix around the prediction, the same bytes json.NewEncoder would write
// for scoreResponse, without reflection or an encoder per request. A binary
// model's response is what it always was; a multiclass one adds the class
// probabilities (probs), a regressor's has no label.
func writeScore(w http.ResponseWriter, a *arm, p float64, label int, probs []float64) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	buf := scoreBufs.Get().(*[]byte)
	b := append((*buf)[:0], a.prefix...)
	b = appendJSONFloat(b, p)
	switch a.task {
	case modelfleet.TaskRegression:
		b = append(b, a.tail...)
	case modelfleet.TaskMulticlass:
		b = append(b, `,"label":`...)
		b = strconv.AppendInt(b, int64(label), 10)
		b = append(b, `,"probabilities":[`...)
		for i, q := range probs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONFloat(b, q)
		}
		b = append(b, ']')
		b = append(b, a.tail...)
	default:
		b = append(b, a.suffix[label]...)
	}
	// Declared, so that a flush before the handler returns (a shadow
	// scored inline: shadow.go) sends it whole rather than chunked.
	h["Content-Length"] = contentLength(len(b))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	*buf = b
	scoreBufs.Put(buf)
}

// labelOf is the class a prediction of arm a answers: for a binary model the
// positive class from probability 0.5, for a multiclass one the predicted
// class itself, and -1 for a regressor, which answers no class.
func (a *arm) labelOf(p float64) int {
	switch a.task {
	case modelfleet.TaskRegression:
		return -1
	case modelfleet.TaskMulticlass:
		return int(p)
	}
	return labelOf(p)
}

// shiftPoint is where a prediction falls in modelfleet.PredictionBins,
// which a release's prediction shift compares versions over: a binary
// model's probability as it is; a multiclass model's class k at the middle
// of bin k (each of the first nine classes in a bin of its own, the rest
// in the last); a regressor's value as it is (its shift is measured by the
// drift monitor's prediction histogram, binned over the value's range).
func (a *arm) shiftPoint(p float64) float64 {
	if a.task == modelfleet.TaskMulticlass {
		return (p + 0.5) / 10
	}
	return p
}

// appendJSONFloat formats f as encoding/json does: the shortest
// representation, in exponent form only below 1e-6 or from 1e21, with a
// two-digit exponent trimmed (e-07 becomes e-7). f is finite: predict
// rejects the rest.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// contentLengths are the Content-Length header values of the score
// responses' usual sizes, made once rather than per response.
var contentLengths = func() (v [1024][]string) {
	for n := range v {
		v[n] = []string{strconv.Itoa(n)}
	}
	return v
}()

// contentLength is the Content-Length header value of n bytes; the caller
// does not modify it.
func contentLength(n int) []string {
	if n < len(contentLengths) {
		return contentLengths[n]
	}
	return []string{strconv.Itoa(n)}
}
