package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Scorer gets a prediction for one feature row (names and row in schema
// order). The site's router in production; an in-process call in tests and
// the benchmark's floor.
type Scorer interface {
	Score(ctx context.Context, model, machine string, names []string, row []float64) (Prediction, error)
}

// ScoreFunc adapts a function to Scorer.
type ScoreFunc func(ctx context.Context, model, machine string, names []string, row []float64) (Prediction, error)

// Score calls f.
func (f ScoreFunc) Score(ctx context.Context, model, machine string, names []string, row []float64) (Prediction, error) {
	return f(ctx, model, machine, names, row)
}

// ScoreError is a failed score call. Permanent errors (the router refused
// the row or the key) are dead-lettered at once; others are retried first.
type ScoreError struct {
	Status    int // HTTP status, 0 when the router was not reached
	Permanent bool
	Message   string
}

func (e *ScoreError) Error() string {
	if e.Status == 0 {
		return e.Message
	}
	return fmt.Sprintf("router answered %d: %s", e.Status, e.Message)
}

// RouterScorer calls a site's inference router: POST <URL>/score/<model>
// with {"features": {...}}, the site key as a bearer token, and the machine
// as the route key, so A/B splits are sticky per machine.
type RouterScorer struct {
	URL    string // e.g. http://127.0.0.1:9001
	APIKey string // empty: no Authorization header
	Client *http.Client
}

// NewRouterScorer returns a scorer with a client sized for workers
// concurrent calls that keeps its connections open.
func NewRouterScorer(url, apiKey string, workers int) *RouterScorer {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        workers * 2,
		MaxIdleConnsPerHost: workers * 2,
		IdleConnTimeout:     90 * time.Second,
	}
	return &RouterScorer{URL: strings.TrimRight(url, "/"), APIKey: apiKey, Client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

// Score implements Scorer.
func (s *RouterScorer) Score(ctx context.Context, model, machine string, names []string, row []float64) (Prediction, error) {
	var p Prediction
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/score/"+model, bytes.NewReader(featureBody(names, row)))
	if err != nil {
		return p, &ScoreError{Permanent: true, Message: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Modelfleet-Route-Key", machine)
	if s.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.APIKey)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return p, &ScoreError{Message: fmt.Sprintf("router unreachable: %v", err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return p, &ScoreError{Status: resp.StatusCode, Message: fmt.Sprintf("reading the answer: %v", err)}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &e)
		// 400 (the row) and 401 (the key) will not change on a retry; 404
		// may (the model is being deployed), and 5xx may.
		perm := resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusRequestEntityTooLarge
		return p, &ScoreError{Status: resp.StatusCode, Permanent: perm, Message: e.Message}
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return p, &ScoreError{Status: resp.StatusCode, Message: fmt.Sprintf("answer is not a prediction: %v", err)}
	}
	return p, nil
}

// Ready checks that the router serves model, so a new workload version
// takes over only where it can score.
func (s *RouterScorer) Ready(ctx context.Context, model string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/models", nil)
	if err != nil {
		return err
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return fmt.Errorf("router %s unreachable: %w", s.URL, err)
	}
	defer resp.Body.Close()
	var served []struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&served); err != nil {
		return fmt.Errorf("router %s: listing models: %w", s.URL, err)
	}
	for _, m := range served {
		if m.Name == model {
			return nil
		}
	}
	return fmt.Errorf("router %s does not serve model %q", s.URL, model)
}

// featureBody writes {"features":{"name":value,...}} without reflection.
// Values are finite: the runtime range-checks them first.
func featureBody(names []string, row []float64) []byte {
	b := make([]byte, 0, 32+24*len(row))
	b = append(b, `{"features":{`...)
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		q, _ := json.Marshal(n) // JSON escapes, not Go's
		b = append(b, q...)
		b = append(b, ':')
		b = strconv.AppendFloat(b, row[i], 'g', -1, 64)
	}
	return append(b, "}}"...)
}
