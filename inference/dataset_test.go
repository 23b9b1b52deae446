package inference

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

func TestReadCSV(t *testing.T) {
	for _, c := range []struct {
		name, data string
		features   []string
		want       Dataset
	}{
		{"schema order", "b,label,a,id\n2,1,1,x\n4,0,3.5,y\n", []string{"a", "b"},
			Dataset{[]string{"a", "b"}, [][]float64{{1, 2}, {3.5, 4}}, []float64{1, 0}}},
		{"header order", "\ufeff b , a ,label\n 2, -1e3 ,1.0\n", nil,
			Dataset{[]string{"b", "a"}, [][]float64{{2, -1000}}, []float64{1}}},
		{"no rows", "a,label\n", nil, Dataset{Features: []string{"a"}}},
		{"crlf and quotes", "a,label\r\n\"7\",0\r\n", []string{"a"},
			Dataset{[]string{"a"}, [][]float64{{7}}, []float64{0}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := ReadCSV(strings.NewReader(c.data), c.features)
			if err != nil || !reflect.DeepEqual(*d, c.want) {
				t.Errorf("ReadCSV = %+v, %v; want %+v", d, err, c.want)
			}
		})
	}
}

func TestReadCSVErrors(t *testing.T) {
	for _, c := range []struct {
		name, data string
		features   []string
		want       string
	}{
		{"empty", "", nil, "data set is empty"},
		{"no label", "a,b\n1,2\n", nil, `missing "label" column`},
		{"missing feature", "a,label\n1,0\n", []string{"a", "temperature_c"}, `missing column "temperature_c"`},
		{"label as feature", "a,label\n1,0\n", []string{"label"}, `missing column "label"`},
		{"duplicate column", "a,a,label\n1,2,0\n", nil, `duplicate column "a"`},
		{"unnamed column", "a,,label\n1,2,0\n", nil, "column 2 has no name"},
		{"bad number", "a,label\n1,0\n2,1\nabc,0\n", nil, `line 4: column "a": "abc" is not a finite number`},
		{"empty value", "a,label\n,0\n", nil, `line 2: column "a": "" is not a finite number`},
		{"nan", "a,label\nNaN,0\n", nil, `line 2: column "a": "NaN" is not a finite number`},
		{"inf", "a,label\n-Inf,0\n", nil, `"-Inf" is not a finite number`},
		{"bad label", "a,label\n1,2\n", nil, `line 2: label "2" must be 0 or 1`},
		{"text label", "a,label\n1,yes\n", nil, `line 2: label "yes" must be 0 or 1`},
		{"ragged", "a,label\n1,0\n1,0,3\n", nil, "wrong number of fields"},
		{"bad quote", "a,label\n\"1,0\n", nil, "data set: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := ReadCSV(strings.NewReader(c.data), c.features)
			if err == nil {
				t.Fatalf("ReadCSV = %+v, want error", d)
			}
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q (code %s), want an invalid error containing %q", err, modelfleet.ErrorCode(err), c.want)
			}
		})
	}
}

// rowsReader yields a header and then an endless stream of rows.
type rowsReader struct{ header bool }

func (r *rowsReader) Read(p []byte) (int, error) {
	if !r.header {
		r.header = true
		return copy(p, "a,label\n"), nil
	}
	n := 0
	for n+4 <= len(p) {
		n += copy(p[n:], "1,0\n")
	}
	return n, nil
}

func TestReadCSVLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("reads a million rows")
	}
	_, err := ReadCSV(&rowsReader{}, nil)
	if want := fmt.Sprintf("more than %d rows", MaxRows); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestReadCSVReadError(t *testing.T) {
	boom := errors.New("body too large")
	_, err := ReadCSV(io.MultiReader(strings.NewReader("a,label\n1,0\n"), errReader{boom}), nil)
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want the reader's error", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
