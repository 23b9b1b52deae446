package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
)

// writeScore must write exactly what encoding/json writes for scoreResponse.
func TestWriteScoreMatchesEncodingJSON(t *testing.T) {
	r := NewRouter(`site "1" <&>`, fakeVector, nil) // a site id that needs escaping
	values := []float64{0, 1, 0.5, 0.1, 1e-6, 9.99e-7, 1e-7, 1.5e-10, 5e-324, 1e-300, 0.123456789012345678, 1e21, 1e20, math.Nextafter(1, 0)}
	for range 1000 {
		values = append(values, rand.Float64(), rand.Float64()*1e-8)
	}
	for _, shadow := range []bool{false, true} {
		if err := r.Set("m", []WeightedModel{
			{LoadedModel: version("1", testFeatures, &fakeScorer{weights: []float64{1, 1, 1}}), Weight: 100},
			{LoadedModel: version("2", testFeatures, &fakeScorer{weights: []float64{1, 1, 1}}), Shadow: shadow},
		}); err != nil {
			t.Fatal(err)
		}
		a := r.lookup("m").version("2")
		for _, p := range values {
			rec := httptest.NewRecorder()
			label := labelOf(p)
			writeScore(rec, a, p, label, nil)
			var want bytes.Buffer
			json.NewEncoder(&want).Encode(scoreResponse{Model: "m", Version: "2", Prediction: p, Label: &label, Site: r.Site, Shadow: shadow})
			if got := rec.Body.String(); got != want.String() {
				t.Fatalf("writeScore(%v) = %s, encoding/json = %s", p, got, want.String())
			}
		}
	}
	r.Close()
}

func TestScoreResponseHeaders(t *testing.T) {
	_, h := newTestRouter(t)
	rec := do(h, "POST", "/score/bearing-failure", goodRow)
	if got := rec.Header(); got.Get("Content-Type") != "application/json" || got.Get("Cache-Control") != "no-store" || got.Get(HeaderVersion) != "1" {
		t.Errorf("headers = %v", got)
	}
}

// BenchmarkScore is the request path without the network, with and without a
// route key and a shadow; go test -bench Score -benchmem ./edge/.
func BenchmarkScore(b *testing.B) {
	r := NewRouter("site-1", fakeVector, nil)
	defer r.Close()
	s := &fakeScorer{weights: []float64{1, 1, 1}}
	err := r.Set("m", []WeightedModel{
		{LoadedModel: version("1", testFeatures, s), Weight: 90},
		{LoadedModel: version("2", testFeatures, s), Weight: 10},
		{LoadedModel: version("3", testFeatures, s), Shadow: true},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.SetKeys("", []string{"k"}); err != nil {
		b.Fatal(err)
	}
	h := r.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/score/m", bytes.NewReader([]byte(goodRow)))
			req.Header.Set("Authorization", "Bearer k")
			req.Header.Set(HeaderRouteKey, "line-7")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatal(rec.Code)
			}
		}
	})
}

// readBody reads what io.ReadAll(http.MaxBytesReader(...)) reads, with the
// same error, from bodies around its buffer sizes and the limit, again
// and again through the pool.
func TestReadBodyIsReadAll(t *testing.T) {
	const limit = 3000
	for range 3 {
		for _, n := range []int{0, 1, 511, 512, 513, 1024, 2999, 3000, 3001, 9000} {
			body := bytes.Repeat([]byte("0123456789abcdefg"), n/17+1)[:n]
			want, wantErr := io.ReadAll(http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(body)), limit))
			buf, got, err := readBody(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(body)), limit)
			if !bytes.Equal(got, want) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("%d bytes: read %d bytes, %v; io.ReadAll %d bytes, %v", n, len(got), err, len(want), wantErr)
			}
			putBody(buf, got)
		}
	}
}
