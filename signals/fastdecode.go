package signals

import "github.com/modelfleet/modelfleet/internal/jsonscan"

// fastMessage parses one message in the canonical shape (see fastjson.go).
func (s *scanner) message(m *Message) bool {
	return s.object(func(key []byte) int {
		ok := false
		n := -1
		switch string(key) {
		case "schemaVersion":
			n = 0
			m.SchemaVersion, ok = s.string()
		case "messageId":
			n = 1
			m.MessageID, ok = s.string()
		case "site":
			n = 2
			m.Site, ok = s.string()
		case "model":
			n = 3
			m.Model, ok = s.string()
		case "version":
			n = 4
			m.Version, ok = s.string()
		case "windowStart":
			n = 5
			m.WindowStart, ok = s.time()
		case "windowEnd":
			n = 6
			m.WindowEnd, ok = s.time()
		case "baseline":
			n = 7
			m.Baseline, ok = s.string()
		case "requests":
			n = 8
			m.Requests, ok = s.int64()
		case "scored":
			n = 9
			m.Scored, ok = s.int64()
		case "errors":
			n = 10
			m.Errors, ok = s.int64()
		case "errorCodes":
			n = 11
			ok = s.errorCodes(m)
		case "rejected":
			n = 12
			m.Rejected, ok = s.int64()
		case "latencyMs":
			n = 13
			m.LatencyMs, ok = s.ints()
		case "features":
			n = 14
			ok = s.features(m)
		case "prediction":
			n = 15
			m.Prediction = &Histogram{}
			ok = s.histogram(m.Prediction, nil)
		}
		if !ok {
			return -1
		}
		return n
	})
}

func (s *scanner) errorCodes(m *Message) bool {
	m.ErrorCodes = map[string]int64{}
	i := 0
	return s.object(func(key []byte) int {
		v, ok := s.int64()
		if !ok || i >= 64 {
			return -1 // past 64 keys the seen mask cannot tell: leave it to encoding/json
		}
		if _, dup := m.ErrorCodes[string(key)]; dup {
			return -1
		}
		m.ErrorCodes[string(key)] = v
		i++
		return i - 1
	})
}

func (s *scanner) features(m *Message) bool {
	m.Features = make([]FeatureHistogram, 0, 64)
	return s.array(func() bool {
		m.Features = append(m.Features, FeatureHistogram{})
		f := &m.Features[len(m.Features)-1]
		return s.histogram(&f.Histogram, f)
	})
}

// histogram parses a Histogram's fields, and a FeatureHistogram's when f
// is not nil.
func (s *scanner) histogram(h *Histogram, f *FeatureHistogram) bool {
	return s.object(func(key []byte) int {
		ok := false
		n := -1
		switch string(key) {
		case "counts":
			n = 0
			h.Counts, ok = s.ints()
		case "sum":
			n = 1
			h.Sum, ok = s.float64()
		case "belowSum":
			n = 2
			h.BelowSum, ok = s.float64()
		case "aboveSum":
			n = 3
			h.AboveSum, ok = s.float64()
		case "min":
			n = 7
			h.Min, ok = s.float64p()
		case "max":
			n = 8
			h.Max, ok = s.float64p()
		}
		if f != nil {
			switch string(key) {
			case "name":
				n = 4
				f.Name, ok = s.string()
			case "nulls":
				n = 5
				f.Nulls, ok = s.int64()
			case "typeErrors":
				n = 6
				f.TypeErrors, ok = s.int64()
			}
		}
		if !ok {
			return -1
		}
		return n
	})
}

// fastDecode parses a message, or a batch of them, in the canonical shape.
// ok false means "decode with encoding/json", not "invalid".
func fastDecode(b []byte) (single Message, batch []Message, isBatch, ok bool) {
	s := &scanner{Scanner: jsonscan.Scanner{B: b}}
	s.Space()
	// A batch starts with its schemaVersion, as Sender writes it; any other
	// order is left to the fallback.
	const batchPrefix = `{"schemaVersion":"` + BatchSchemaVersion + `","messages":`
	if len(b)-s.I > len(batchPrefix) && string(b[s.I:s.I+len(batchPrefix)]) == batchPrefix {
		s.I += len(batchPrefix)
		ok = s.array(func() bool {
			batch = append(batch, Message{})
			return s.message(&batch[len(batch)-1])
		})
		if batch == nil {
			batch = []Message{}
		}
		return Message{}, batch, true, ok && s.Next('}') && s.End()
	}
	ok = s.message(&single) && s.End()
	return single, nil, false, ok
}
