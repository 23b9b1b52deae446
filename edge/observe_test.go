package edge

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps what it saw.
type recorder struct {
	mu       sync.Mutex
	scored   [][]float64
	preds    []float64
	failed   []string
	rejected []string
}

func (r *recorder) Observe(model, version string, features []float64, prediction float64, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed = append(r.failed, model+"@"+version+": "+err.Error())
		return
	}
	r.scored = append(r.scored, append([]float64(nil), features...))
	r.preds = append(r.preds, prediction)
}

func (r *recorder) ObserveRejected(model, version string, features []string, body []byte, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected = append(r.rejected, model+"@"+version+" "+strings.Join(features, ",")+" "+string(body))
}

func TestObserverSeesEveryAuthenticatedRequest(t *testing.T) {
	r, h := newTestRouter(t, "k1")
	o := &recorder{}
	r.SetObserver(o)
	defer r.SetObserver(nil)
	auth := []string{"Authorization", "Bearer k1"}

	if rec := do(h, "POST", "/score/bearing-failure", goodRow, auth...); rec.Code != 200 {
		t.Fatalf("score: %d %s", rec.Code, rec.Body)
	}
	do(h, "POST", "/score/bearing-failure", `{"temp":1}`, auth...)                    // vectorizer rejects
	do(h, "POST", "/score/bearing-failure", goodRow)                                  // no key: not observed
	do(h, "POST", "/score/bearing-failure", goodRow, "Authorization", "Bearer wrong") // wrong key: not observed

	// A scored request is observed from the backlog (post.go), within
	// postDelay.
	waitFor(t, "the scored request observed", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.scored) > 0
	})
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.scored) != 1 || len(o.scored[0]) != len(testFeatures) || o.preds[0] <= 0 || o.preds[0] >= 1 {
		t.Errorf("scored = %v %v, want one row of %d features with its prediction", o.scored, o.preds, len(testFeatures))
	}
	if len(o.rejected) != 1 || !strings.HasPrefix(o.rejected[0], "bearing-failure@1 temp,vibration,rpm ") {
		t.Errorf("rejected = %q, want the rejected body with the model's feature names", o.rejected)
	}
	if len(o.failed) != 0 {
		t.Errorf("failed = %q, want none (unauthenticated requests must not move a version's figures)", o.failed)
	}
}
