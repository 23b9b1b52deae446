package inference

import (
	"encoding/csv"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
)

// Limits on a labelled data set, so that an oversized validation file fails
// with an error instead of exhausting the validator's memory.
const (
	MaxRows   = 1_000_000
	maxValues = 50_000_000 // feature values in all rows (400 MB of float64)
)

// LabelColumn is the CSV column holding the label: 0 or 1 for a binary
// classifier, the class (0, 1, 2, ...) for a multiclass one, the target
// value for a regressor.
const LabelColumn = "label"

// Dataset is a labelled data set: X[i] is a row ordered by Features and
// Y[i] its label.
type Dataset struct {
	Features []string
	X        [][]float64
	Y        []float64
}

// ReadCSV reads a labelled data set: a header row naming the columns, one of
// them "label" (0 or 1), then one row per example. Columns may come in any
// order and extra columns are ignored; rows are ordered by features, each of
// which must be a column. With no features, every non-label column is a
// feature, in header order. Values must be finite numbers. Callers bound the
// reader's size; rows beyond MaxRows are an error.
func ReadCSV(r io.Reader, features []string) (*Dataset, error) {
	return ReadLabelled(r, features, TaskBinary)
}

// ReadLabelled is ReadCSV for a model of the given task: labels are 0 or 1
// for TaskBinary, classes (integers from 0) for TaskMulticlass, and any
// finite number for TaskRegression.
func ReadLabelled(r io.Reader, features []string, task string) (*Dataset, error) {
	checkLabel, err := labelChecker(task)
	if err != nil {
		return nil, err
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, invalid("data set is empty: want a header row with a %q column", LabelColumn)
	} else if err != nil {
		return nil, csvError(err)
	}
	column := make(map[string]int, len(header))
	var names []string
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if _, dup := column[h]; dup {
			return nil, invalid("duplicate column %q", h)
		}
		column[h] = i
		if h != LabelColumn {
			names = append(names, h)
		}
		if h == "" && len(features) == 0 {
			return nil, invalid("column %d has no name", i+1)
		}
	}
	label, ok := column[LabelColumn]
	if !ok {
		return nil, invalid("missing %q column", LabelColumn)
	}
	if len(features) == 0 {
		features = names
	}
	index := make([]int, len(features))
	for j, f := range features {
		if index[j], ok = column[f]; !ok || f == "" || f == LabelColumn {
			return nil, invalid("missing column %q", f)
		}
	}
	d := &Dataset{Features: append([]string(nil), features...)}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return d, nil
		} else if err != nil {
			return nil, csvError(err)
		}
		if len(d.Y) == MaxRows || (len(d.Y)+1)*len(features) > maxValues {
			return nil, invalid("data set is too large: more than %d rows or %d values", MaxRows, maxValues)
		}
		line, _ := cr.FieldPos(0)
		y, err := strconv.ParseFloat(strings.TrimSpace(rec[label]), 64)
		if msg := checkLabel(y, err); msg != "" {
			return nil, invalid("line %d: label %q must be %s", line, rec[label], msg)
		}
		row := make([]float64, len(features))
		for j, c := range index {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[c]), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, invalid("line %d: column %q: %q is not a finite number", line, features[j], rec[c])
			}
			row[j] = v
		}
		d.X = append(d.X, row)
		d.Y = append(d.Y, y)
	}
}

// maxClasses bounds a multiclass label, so a typo cannot make the
// validator allocate per-class counts without bound.
const maxClasses = 10_000

// labelChecker returns the label check of a task: what a label must be, or
// "" when y (parsed with err) is one.
func labelChecker(task string) (func(y float64, err error) string, error) {
	switch task {
	case TaskBinary:
		return func(y float64, err error) string {
			if err != nil || (y != 0 && y != 1) {
				return "0 or 1"
			}
			return ""
		}, nil
	case TaskMulticlass:
		return func(y float64, err error) string {
			if err != nil || y < 0 || y >= maxClasses || y != math.Trunc(y) {
				return "a class: an integer from 0"
			}
			return ""
		}, nil
	case TaskRegression:
		return func(y float64, err error) string {
			if err != nil || math.IsNaN(y) || math.IsInf(y, 0) {
				return "a finite number"
			}
			return ""
		}, nil
	}
	return nil, invalid("task %q is not supported: use %q, %q or %q", task, TaskBinary, TaskMulticlass, TaskRegression)
}

// csvError keeps read errors (the caller's I/O, e.g. a size limit) as they
// are and turns malformed CSV into an invalid-input error.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return invalid("data set: %v", pe)
	}
	return err
}
