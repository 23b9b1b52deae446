package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
)

// A FormatOIP version runs in an external model server that speaks the
// Open Inference Protocol (Triton, MLServer, OpenVINO Model Server, an
// Azure ML custom container) instead of the built-in runtime. The agent
// package starts the server, one of those the site declared, as a process
// on a loopback port (ServerHost); the router reaches it through a
// Scorer that forwards each row as a V2 inference request (v2Client), so
// the version gets the same split, pinning, stickiness, shadow, keys,
// metrics, signals and rollback as a built-in one.

// ServerHost runs the external model servers of FormatOIP versions.
type ServerHost interface {
	// Start makes the server of version ref (artifact digest) run, its
	// model directory unpacked from the archive at artifact, and returns
	// its base URL once the server and its model say they are ready. A
	// server that does not become ready within the host's deadline is an
	// error, and nothing of it keeps running. Starting a running version
	// returns its URL.
	Start(ref modelfleet.ModelRef, digest string, server *modelfleet.ModelServer, artifact string) (string, error)
	// Retain stops the servers of model's versions that keep does not
	// list (by version and digest).
	Retain(model string, keep []modelfleet.ServedModel)
	// Close stops every server.
	Close()
}

// loadServed starts the external server of req and returns the version
// backed by it. The archive is checked against the digest first, as a
// model file is.
func (a *Agent) loadServed(req *DeployRequest, path string, loadedAt time.Time) (LoadedModel, error) {
	var m LoadedModel
	if a.servers == nil {
		return m, modelfleet.Errorf(modelfleet.EINVALID, "model %s runs in model server %q, and this site runs no model servers: declare it with `modelfleet edge --oip-server %s=/path/to/server`", req.Model, req.Server.Name, req.Server.Name)
	}
	f, err := os.Open(path)
	if err != nil {
		return m, err
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return m, err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != req.Digest {
		return m, fmt.Errorf("%w: file on disk is %q, want %q", ErrDigestMismatch, got, req.Digest)
	}
	base, err := a.servers.Start(req.Model, req.Digest, req.Server, path)
	if err != nil {
		return m, modelfleet.Errorf(modelfleet.EINVALID, "model %s: %s", req.Model, modelfleet.ErrorMessage(err))
	}
	c, err := newV2Client(base, req.Server, req.Features, nil)
	if err != nil {
		return m, modelfleet.Errorf(modelfleet.EINVALID, "model %s: %s", req.Model, modelfleet.ErrorMessage(err))
	}
	return LoadedModel{Model: req.Model, Digest: req.Digest, Format: req.Format, Features: req.Features, Server: req.Server.Clone(), Scorer: c, Ready: c.ready, PredictRows: c.predictRows, LoadedAt: loadedAt}, nil
}

// retainServers stops the servers of model's versions that ws does not
// serve. Callers hold the model's lock.
func (a *Agent) retainServers(model string, ws []WeightedModel) {
	if a.servers == nil {
		return
	}
	keep := make([]modelfleet.ServedModel, 0, len(ws))
	for _, w := range ws {
		keep = append(keep, modelfleet.ServedModel{ModelRef: w.Model, Digest: w.Digest})
	}
	a.servers.Retain(model, keep)
}

// settleServers stops the servers of model's versions the router does not
// serve: those a change started before it failed. Callers hold the
// model's lock.
func (a *Agent) settleServers(model string) {
	if a.servers != nil {
		a.retainServers(model, a.router.Versions(model))
	}
}

// Bounds of the V2 client.
const (
	// DefaultV2Timeout bounds one request to an external server.
	DefaultV2Timeout = 10 * time.Second
	// maxV2Response bounds a response read from an external server.
	maxV2Response = 4 << 20
)

// v2Client is a Scorer backed by a model in a V2 server: each row becomes
// one inference request.
type v2Client struct {
	infer    string // the model's infer URL
	server   *modelfleet.ModelServer
	features []string
	// How rows are sent, from the server's model metadata: one tensor
	// [1, F] named input, or one tensor per feature (named).
	input    string
	datatype string
	named    bool
	hc       *http.Client
}

var _ Scorer = (*v2Client)(nil)

// NewV2Client returns a Scorer for the model server.Model of the V2
// server at base (e.g. http://127.0.0.1:8000). It reads the model's
// metadata to learn how it takes a row: one input of F columns, or one
// input per feature named after it. hc nil: a client with
// DefaultV2Timeout.
func NewV2Client(base string, server *modelfleet.ModelServer, features []string, hc *http.Client) (Scorer, error) {
	c, err := newV2Client(base, server, features, hc)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func newV2Client(base string, server *modelfleet.ModelServer, features []string, hc *http.Client) (*v2Client, error) {
	if hc == nil {
		hc = &http.Client{Timeout: DefaultV2Timeout}
	}
	c := &v2Client{infer: base + "/v2/models/" + server.Model + "/infer", server: server, features: features, hc: hc}
	var md V2ModelMetadata
	if err := c.get(base+"/v2/models/"+server.Model, &md); err != nil {
		return nil, fmt.Errorf("model server %q: metadata of model %q: %w", server.Name, server.Model, err)
	}
	names := make([]string, len(md.Inputs))
	for i, in := range md.Inputs {
		names[i] = in.Name
	}
	switch {
	case len(md.Inputs) == len(features) && len(features) > 1 && sameSet(names, features):
		c.named, c.datatype = true, floatType(md.Inputs[0].Datatype)
	case len(md.Inputs) == 1:
		c.input, c.datatype = md.Inputs[0].Name, floatType(md.Inputs[0].Datatype)
		if s := md.Inputs[0].Shape; len(s) > 0 && s[len(s)-1] > 0 && s[len(s)-1] != int64(len(features)) {
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "model server %q: model %q takes %d columns in input %q, the version declares %d features", server.Name, server.Model, s[len(s)-1], c.input, len(features))
		}
	default:
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "model server %q: model %q has inputs %s: want one input of %d columns, or one input per feature (%s)", server.Name, server.Model, quoteList(names), len(features), quoteList(features))
	}
	if c.datatype == "" {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "model server %q: model %q takes %s: the router sends FP32 or FP64", server.Name, server.Model, md.Inputs[0].Datatype)
	}
	return c, nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// floatType is the datatype rows are sent as: the input's, when it is a
// float type ("" otherwise).
func floatType(dt string) string {
	if dt == "FP32" || dt == "FP64" {
		return dt
	}
	return ""
}

func (c *v2Client) NumFeatures() int { return len(c.features) }
func (c *v2Client) Task() string     { return c.server.Task }
func (c *v2Client) NumClasses() int  { return c.server.NumClasses() }

// Predict scores one row: P(class 1), the most probable class, or the
// value, by task.
func (c *v2Client) Predict(x []float64) (float64, error) {
	v, err := c.score(x)
	if err != nil {
		return 0, err
	}
	switch c.server.Task {
	case modelfleet.TaskMulticlass:
		best := 0
		for i, q := range v {
			if q > v[best] {
				best = i
			}
		}
		return float64(best), nil
	case modelfleet.TaskBinary:
		p := v[len(v)-1]
		if p < 0 || p > 1 {
			return 0, fmt.Errorf("model server %q answered %v, not a probability", c.server.Name, p)
		}
		return p, nil
	}
	return v[0], nil
}

// Probabilities appends each class's probability (a multiclass model).
func (c *v2Client) Probabilities(x, dst []float64) ([]float64, error) {
	v, err := c.score(x)
	if err != nil {
		return dst, err
	}
	if c.server.Task != modelfleet.TaskMulticlass {
		p := v[len(v)-1]
		return append(dst, 1-p, p), nil
	}
	return append(dst, v...), nil
}

// score sends one row and returns the output's values for it.
func (c *v2Client) score(x []float64) ([]float64, error) {
	if len(x) != len(c.features) {
		return nil, fmt.Errorf("got %d features, want %d", len(x), len(c.features))
	}
	v, _, err := c.scoreRows(x, 1)
	return v, err
}

// predictRows scores n rows (x, row-major) in one request, as the router
// answers them: per row the prediction (P(class 1), the most probable
// class, the value) and, for a multiclass model, every class's
// probability.
func (c *v2Client) predictRows(x []float64, n int) (p, probs []float64, err error) {
	if n < 1 || len(x) != n*len(c.features) {
		return nil, nil, fmt.Errorf("got %d values for %d rows of %d features", len(x), n, len(c.features))
	}
	v, w, err := c.scoreRows(x, n)
	if err != nil {
		return nil, nil, err
	}
	p = make([]float64, n)
	for i := range n {
		row := v[i*w : (i+1)*w]
		switch c.server.Task {
		case modelfleet.TaskMulticlass:
			best := 0
			for k, q := range row {
				if q > row[best] {
					best = k
				}
			}
			p[i] = float64(best)
			probs = append(probs, row...)
		case modelfleet.TaskBinary:
			if q := row[w-1]; q < 0 || q > 1 {
				return nil, nil, fmt.Errorf("model server %q answered %v, not a probability", c.server.Name, q)
			}
			p[i] = row[w-1]
		default:
			p[i] = row[0]
		}
	}
	return p, probs, nil
}

// scoreRows sends n rows and returns the output's values, n × width, the
// width checked against the task: 1 (or 2 for a binary model: both
// classes) or the classes.
func (c *v2Client) scoreRows(x []float64, n int) (v []float64, width int, err error) {
	f := len(c.features)
	req := V2InferRequest{}
	enc := func(v []float64) json.RawMessage {
		var b []byte
		if c.datatype == "FP32" {
			f := make([]float32, len(v))
			for i, x := range v {
				f[i] = float32(x)
			}
			b, _ = json.Marshal(f)
		} else {
			b, _ = json.Marshal(v)
		}
		return b
	}
	if c.named {
		col := make([]float64, n)
		for j, name := range c.features {
			for i := range n {
				col[i] = x[i*f+j]
			}
			req.Inputs = append(req.Inputs, V2Tensor{Name: name, Datatype: c.datatype, Shape: []int64{int64(n)}, Data: enc(col)})
		}
	} else {
		req.Inputs = []V2Tensor{{Name: c.input, Datatype: c.datatype, Shape: []int64{int64(n), int64(f)}, Data: enc(x)}}
	}
	if c.server.Output != "" {
		req.Outputs = []V2RequestOutput{{Name: c.server.Output}}
	}
	body, _ := json.Marshal(req)
	var res V2InferResponse
	if err := c.do(http.MethodPost, c.infer, body, &res); err != nil {
		return nil, 0, fmt.Errorf("model server %q: %w", c.server.Name, err)
	}
	var out *V2Tensor
	for i := range res.Outputs {
		o := &res.Outputs[i]
		if (c.server.Output == "" && floatType(o.Datatype) != "") || (c.server.Output != "" && o.Name == c.server.Output) {
			out = o
			break
		}
	}
	if out == nil {
		return nil, 0, fmt.Errorf("model server %q: the response has no output %q", c.server.Name, c.server.Output)
	}
	want := []int{1}
	switch c.server.Task {
	case modelfleet.TaskBinary:
		want = []int{1, 2}
	case modelfleet.TaskMulticlass:
		want = []int{c.server.Classes}
	}
	// At most the widest row the task allows: the shape sizes what is
	// allocated before the data is read.
	limit := int64(n) * int64(slices.Max(want))
	total := int64(1)
	for _, d := range out.Shape {
		if d < 0 || d > limit {
			return nil, 0, fmt.Errorf("model server %q: output %q has shape %v for %d rows", c.server.Name, out.Name, out.Shape, n)
		}
		if total *= d; total > limit {
			return nil, 0, fmt.Errorf("model server %q: output %q has shape %v for %d rows", c.server.Name, out.Name, out.Shape, n)
		}
	}
	t := *out
	t.Datatype = "FP64" // read as sent: no FP32 rounding of what the server computed
	if v, err = v2Data(&t, int(total)); err != nil {
		return nil, 0, fmt.Errorf("model server %q: output %q: %s", c.server.Name, out.Name, modelfleet.ErrorMessage(err))
	}
	width = len(v) / n
	if len(v)%n != 0 || !slices.Contains(want, width) {
		return nil, 0, fmt.Errorf("model server %q: output %q has %d values for %d rows, want %v per row", c.server.Name, out.Name, len(v), n, want)
	}
	for _, q := range v {
		if math.IsNaN(q) || math.IsInf(q, 0) {
			return nil, 0, fmt.Errorf("model server %q: output %q holds %v", c.server.Name, out.Name, q)
		}
	}
	return v, width, nil
}

// ready asks the server whether the model is ready.
func (c *v2Client) ready() error {
	var v map[string]any
	return c.get(strings.TrimSuffix(c.infer, "/infer")+"/ready", &v)
}

func (c *v2Client) get(url string, v any) error { return c.do(http.MethodGet, url, nil, v) }

func (c *v2Client) do(method, url string, body []byte, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultV2Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxV2Response+1))
	if err != nil {
		return err
	}
	if len(b) > maxV2Response {
		return fmt.Errorf("%s %s: response larger than %d bytes", method, url, maxV2Response)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, truncate(e.Error))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errors.New("the response is not V2 JSON: " + err.Error())
	}
	return nil
}
