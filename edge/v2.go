package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/modelfleet/modelfleet"
)

// The router speaks the Open Inference Protocol (KServe's V2 REST
// protocol, which Triton, MLServer, OpenVINO Model Server and Azure ML
// online endpoints speak too), so a client written for those works against
// a site unchanged. A V2 request gets what a score request gets — the same
// version pick, pinning, stickiness, keys, shadow, metrics and monitoring
// signals — and only its body differs: a batch of rows as tensors.

// Bounds of a V2 inference request.
const (
	// MaxV2Body is the largest V2 request body accepted.
	MaxV2Body = 1 << 20
	// MaxV2Rows is the most rows (the batch dimension N) one request scores.
	MaxV2Rows = 1024
	// MaxV2Elements bounds the elements of all input tensors together.
	MaxV2Elements = 1 << 16
	// maxV2Inputs bounds the input tensors of a request: one per feature
	// at most, and no model declares more features than this.
	maxV2Inputs = 4096
	// maxV2Depth bounds the nesting of a tensor's data.
	maxV2Depth = 8
	// maxV2Name bounds tensor names and the request id.
	maxV2Name = 256
)

// Output tensor names, by task. A binary model answers the probability of
// the positive class and the label; a multiclass one each class's
// probability and the label; a regressor its value.
const (
	V2OutputProbability   = "probability"
	V2OutputProbabilities = "probabilities"
	V2OutputLabel         = "label"
	V2OutputValue         = "value"
)

// V2Tensor is a tensor of a V2 request or response. Data is flat in
// row-major order or nested as the shape says.
type V2Tensor struct {
	Name       string          `json:"name"`
	Datatype   string          `json:"datatype"`
	Shape      []int64         `json:"shape"`
	Parameters json.RawMessage `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data"`
}

// V2RequestOutput names an output a request wants.
type V2RequestOutput struct {
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters,omitempty"`
}

// V2InferRequest is the body of POST /v2/models/{model}/infer.
type V2InferRequest struct {
	ID         string            `json:"id,omitempty"`
	Parameters json.RawMessage   `json:"parameters,omitempty"`
	Inputs     []V2Tensor        `json:"inputs"`
	Outputs    []V2RequestOutput `json:"outputs,omitempty"`
}

// V2InferResponse is the body of a successful V2 inference response.
type V2InferResponse struct {
	ModelName    string     `json:"model_name"`
	ModelVersion string     `json:"model_version,omitempty"`
	ID           string     `json:"id,omitempty"`
	Outputs      []V2Tensor `json:"outputs"`
}

// V2MetadataTensor describes an input or output in model metadata.
type V2MetadataTensor struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// V2ModelMetadata is the body of GET /v2/models/{model}.
type V2ModelMetadata struct {
	Name     string             `json:"name"`
	Versions []string           `json:"versions,omitempty"`
	Platform string             `json:"platform"`
	Inputs   []V2MetadataTensor `json:"inputs"`
	Outputs  []V2MetadataTensor `json:"outputs"`
}

// v2Batch is a decoded V2 request: n rows of f features, row-major, in the
// model's feature order.
type v2Batch struct {
	id      string
	x       []float64
	n, f    int
	float   string          // FP32 when every input was FP32, else FP64: the float outputs' type
	outputs map[string]bool // the outputs asked for; nil: all
}

// row is the i-th feature row of b.
func (b *v2Batch) row(i int) []float64 { return b.x[i*b.f : (i+1)*b.f : (i+1)*b.f] }

// v2Outputs are the output tensors a model of task answers, with their
// datatype (float: the request's float type) and columns (classes for
// multiclass probabilities).
func v2Outputs(task string, classes int) []V2MetadataTensor {
	switch task {
	case modelfleet.TaskRegression:
		return []V2MetadataTensor{{Name: V2OutputValue, Datatype: "FP64", Shape: []int64{-1, 1}}}
	case modelfleet.TaskMulticlass:
		return []V2MetadataTensor{
			{Name: V2OutputProbabilities, Datatype: "FP64", Shape: []int64{-1, int64(classes)}},
			{Name: V2OutputLabel, Datatype: "INT64", Shape: []int64{-1, 1}},
		}
	}
	return []V2MetadataTensor{
		{Name: V2OutputProbability, Datatype: "FP64", Shape: []int64{-1, 1}},
		{Name: V2OutputLabel, Datatype: "INT64", Shape: []int64{-1, 1}},
	}
}

// v2Numeric are the input datatypes accepted, all read as numbers.
var v2Numeric = map[string]bool{
	"FP32": true, "FP64": true,
	"INT8": true, "INT16": true, "INT32": true, "INT64": true,
	"UINT8": true, "UINT16": true, "UINT32": true, "UINT64": true,
}

// decodeV2Infer reads a V2 inference request for a model declaring
// features and answering the outputs of task. Inputs are either one
// tensor [N, F] whose columns are the features in order, or one tensor per
// feature, named after it, of shape [N] or [N, 1]. Every error is an
// EINVALID whose message is fit for the caller.
func decodeV2Infer(body []byte, features []string, task string, classes int) (*v2Batch, error) {
	var req V2InferRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "the request is not a V2 inference request: %v", err)
	}
	if len(req.ID) > maxV2Name {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "id is longer than %d bytes", maxV2Name)
	}
	if err := checkV2Parameters("parameters", req.Parameters); err != nil {
		return nil, err
	}
	b := &v2Batch{id: req.ID, f: len(features), float: "FP32"}
	if len(req.Outputs) > 0 {
		known := map[string]bool{}
		for _, o := range v2Outputs(task, classes) {
			known[o.Name] = true
		}
		b.outputs = map[string]bool{}
		for _, o := range req.Outputs {
			if !known[o.Name] {
				return nil, modelfleet.Errorf(modelfleet.EINVALID, "output %q is not an output of this model: it answers %s", truncate(o.Name), quoteList(v2OutputNames(task, classes)))
			}
			if err := checkV2Parameters("parameters of output "+strconv.Quote(o.Name), o.Parameters); err != nil {
				return nil, err
			}
			b.outputs[o.Name] = true
		}
	}
	switch {
	case len(req.Inputs) == 0:
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "inputs are required: one tensor [N, %d] or one tensor per feature (%s)", b.f, quoteList(features))
	case len(req.Inputs) > maxV2Inputs:
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "%d inputs are more than the %d allowed", len(req.Inputs), maxV2Inputs)
	}
	total := 0
	for i := range req.Inputs {
		t := &req.Inputs[i]
		n, err := checkV2Tensor(t)
		if err != nil {
			return nil, err
		}
		if total += n; total > MaxV2Elements {
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "the inputs have more than %d elements together", MaxV2Elements)
		}
		if t.Datatype != "FP32" {
			b.float = "FP64"
		}
	}
	if in := req.Inputs[0]; len(req.Inputs) == 1 && len(in.Shape) == 2 && in.Shape[1] == int64(b.f) {
		// One matrix whose columns are the features.
		if err := b.setRows(in.Shape[0]); err != nil {
			return nil, err
		}
		vals, err := v2Data(&in, b.n*b.f)
		if err != nil {
			return nil, err
		}
		b.x = vals
		return b, nil
	}
	if len(req.Inputs) != b.f {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "got %d input tensors: send one tensor [N, %d] or one tensor [N] per feature (%s)", len(req.Inputs), b.f, quoteList(features))
	}
	col := make(map[string]int, b.f)
	for j, f := range features {
		col[f] = j
	}
	seen := make([]bool, b.f)
	for k := range req.Inputs {
		t := &req.Inputs[k]
		j, ok := col[t.Name]
		switch {
		case !ok:
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "input %q is not a feature of this model: its features are %s", truncate(t.Name), quoteList(features))
		case seen[j]:
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "input %q appears twice", t.Name)
		case len(t.Shape) == 0 || len(t.Shape) > 2 || (len(t.Shape) == 2 && t.Shape[1] != 1):
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "input %q has shape %v: a feature's tensor is [N] or [N, 1]", t.Name, t.Shape)
		}
		seen[j] = true
		if k == 0 {
			if err := b.setRows(t.Shape[0]); err != nil {
				return nil, err
			}
			b.x = make([]float64, b.n*b.f)
		} else if t.Shape[0] != int64(b.n) {
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "input %q has %d rows, input %q has %d: every feature needs one value per row", t.Name, t.Shape[0], req.Inputs[0].Name, b.n)
		}
		vals, err := v2Data(t, b.n)
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			b.x[i*b.f+j] = v
		}
	}
	return b, nil
}

func (b *v2Batch) setRows(n int64) error {
	if n < 1 || n > MaxV2Rows {
		return modelfleet.Errorf(modelfleet.EINVALID, "a request scores 1 to %d rows, got %d", MaxV2Rows, n)
	}
	b.n = int(n)
	return nil
}

// checkV2Tensor checks an input's name, datatype and shape, and returns
// its number of elements.
func checkV2Tensor(t *V2Tensor) (int, error) {
	switch {
	case t.Name == "":
		return 0, modelfleet.Errorf(modelfleet.EINVALID, "every input needs a name")
	case len(t.Name) > maxV2Name:
		return 0, modelfleet.Errorf(modelfleet.EINVALID, "input name %q is longer than %d bytes", truncate(t.Name), maxV2Name)
	case !v2Numeric[t.Datatype]:
		return 0, modelfleet.Errorf(modelfleet.EINVALID, "input %q: datatype %q is not supported: send FP32 or FP64 (or an integer type)", t.Name, truncate(t.Datatype))
	case len(t.Shape) == 0 || len(t.Shape) > 2:
		return 0, modelfleet.Errorf(modelfleet.EINVALID, "input %q has shape %v: want [N, F], [N] or [N, 1]", t.Name, t.Shape)
	}
	if err := checkV2Parameters("parameters of input "+strconv.Quote(t.Name), t.Parameters); err != nil {
		return 0, err
	}
	n := int64(1)
	for _, d := range t.Shape {
		if d < 0 || d > MaxV2Elements {
			return 0, modelfleet.Errorf(modelfleet.EINVALID, "input %q has shape %v: dimensions are 0 to %d", t.Name, t.Shape, MaxV2Elements)
		}
		if n *= d; n > MaxV2Elements {
			return 0, modelfleet.Errorf(modelfleet.EINVALID, "input %q has more than %d elements", t.Name, MaxV2Elements)
		}
	}
	return int(n), nil
}

// checkV2Parameters accepts absent parameters or a JSON object. The
// router reads none of them: binary_data, the extension that would put
// tensors after the JSON, is not supported, and says so.
func checkV2Parameters(what string, p json.RawMessage) error {
	p = bytes.TrimSpace(p)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		return nil
	}
	var m map[string]json.RawMessage
	if p[0] != '{' || json.Unmarshal(p, &m) != nil {
		return modelfleet.Errorf(modelfleet.EINVALID, "%s must be a JSON object", what)
	}
	for _, k := range []string{"binary_data", "binary_data_size", "binary_data_output"} {
		if v, ok := m[k]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("false")) {
			return modelfleet.Errorf(modelfleet.EINVALID, "%s: %s is not supported: send tensors as JSON data", what, k)
		}
	}
	return nil
}

// v2Data reads a tensor's data, flat or nested, as want numbers. FP32
// values are rounded to float32, as a server holding them as FP32 would.
func v2Data(t *V2Tensor, want int) ([]float64, error) {
	dec := json.NewDecoder(bytes.NewReader(t.Data))
	dec.UseNumber()
	out := make([]float64, 0, want)
	depth := 0
	bad := func(format string, args ...any) error {
		return modelfleet.Errorf(modelfleet.EINVALID, "input %q: "+format, append([]any{t.Name}, args...)...)
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bad("data is not valid JSON: %v", err)
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '[':
				if depth++; depth > maxV2Depth {
					return nil, bad("data is nested more than %d deep", maxV2Depth)
				}
			case ']':
				depth--
			default:
				return nil, bad("data must be an array of numbers")
			}
		case json.Number:
			if depth == 0 {
				return nil, bad("data must be an array of numbers")
			}
			if len(out) == want {
				return nil, bad("data has more than the %d elements its shape %v says", want, t.Shape)
			}
			f, err := strconv.ParseFloat(v.String(), 64)
			if err != nil || math.IsInf(f, 0) {
				return nil, bad("%s is not a finite number", truncate(v.String()))
			}
			if t.Datatype == "FP32" {
				if f32 := float32(f); math.IsInf(float64(f32), 0) {
					return nil, bad("%s is out of FP32's range", v.String())
				} else {
					f = float64(f32)
				}
			}
			out = append(out, f)
		case nil:
			return nil, bad("data holds a null: every feature of every row needs a value")
		default:
			return nil, bad("data must be an array of numbers, got %v", tok)
		}
	}
	if len(t.Data) == 0 {
		return nil, bad("data is required")
	}
	if len(out) != want {
		return nil, bad("data has %d elements, its shape %v says %d", len(out), t.Shape, want)
	}
	return out, nil
}

func v2OutputNames(task string, classes int) []string {
	var names []string
	for _, o := range v2Outputs(task, classes) {
		names = append(names, o.Name)
	}
	return names
}

// truncate shortens what a caller sent before it is quoted back.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// v2Result is what a batch's rows answered.
type v2Result struct {
	p      []float64 // prediction per row (the class of a multiclass model)
	probs  []float64 // multiclass: n × classes
	labels []int64
}

// v2Response builds the response tensors of a, in the request's float type.
func (a *arm) v2Response(model string, b *v2Batch, res *v2Result) V2InferResponse {
	out := V2InferResponse{ModelName: model, ModelVersion: a.Model.Version, ID: b.id, Outputs: []V2Tensor{}}
	add := func(name, datatype string, cols int, data any) {
		if b.outputs != nil && !b.outputs[name] {
			return
		}
		raw, _ := json.Marshal(data) // finite numbers: predict rejects the rest
		out.Outputs = append(out.Outputs, V2Tensor{Name: name, Datatype: datatype, Shape: []int64{int64(b.n), int64(cols)}, Data: raw})
	}
	floats := func(v []float64) any {
		if b.float == "FP64" {
			return v
		}
		f := make([]float32, len(v))
		for i, x := range v {
			f[i] = float32(x)
		}
		return f
	}
	switch a.task {
	case modelfleet.TaskRegression:
		add(V2OutputValue, b.float, 1, floats(res.p))
	case modelfleet.TaskMulticlass:
		add(V2OutputProbabilities, b.float, a.classes, floats(res.probs))
		add(V2OutputLabel, "INT64", 1, res.labels)
	default:
		add(V2OutputProbability, b.float, 1, floats(res.p))
		add(V2OutputLabel, "INT64", 1, res.labels)
	}
	return out
}

// v2Infer answers POST /v2/models/{model}/infer and
// /v2/models/{model}/versions/{version}/infer. The version in the path pins
// the request as X-Modelfleet-Version does.
func (r *Router) v2Infer(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	t := r.table.Load()
	name := req.PathValue("model")
	rt := t.routes[name]
	header := req.Header.Get(HeaderVersion)
	pinned := req.PathValue("version")
	if pinned == "" {
		pinned = header
	}
	var a *arm
	switch {
	case rt == nil:
	case pinned != "":
		a = rt.version(pinned)
	default:
		a = rt.pick(req.Header.Get(HeaderRouteKey))
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		r.failV2(w, rt, a, start, http.StatusMethodNotAllowed, codeMethodNotAllowed, fmt.Sprintf("method %s is not allowed: use POST", req.Method))
		return
	}
	if !t.keys.allows(name, rt != nil, req.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="modelfleet-edge"`)
		r.failV2(w, rt, a, start, http.StatusUnauthorized, modelfleet.EUNAUTHORIZED, "a valid API key is required: send \"Authorization: Bearer <key>\"")
		return
	}
	switch {
	case rt == nil:
		r.failV2(w, rt, a, start, http.StatusNotFound, modelfleet.ENOTFOUND, fmt.Sprintf("model %q is not served at site %q; served: %s", name, r.Site, quoteList(r.names())))
		return
	case header != "" && header != pinned:
		r.failV2(w, rt, nil, start, http.StatusBadRequest, modelfleet.EINVALID, fmt.Sprintf("the path pins version %q and %s pins %q", pinned, HeaderVersion, header))
		return
	case a == nil:
		r.failV2(w, rt, a, start, http.StatusNotFound, modelfleet.ENOTFOUND, fmt.Sprintf("version %q of model %q is not loaded at site %q; loaded: %s", pinned, name, r.Site, rt.loaded))
		return
	}
	w.Header()[HeaderVersion] = a.version
	if req.ContentLength > MaxV2Body {
		r.failV2(w, rt, a, start, http.StatusRequestEntityTooLarge, modelfleet.ETOOLARGE, fmt.Sprintf("request body is larger than %d bytes", MaxV2Body))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxV2Body))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			r.failV2(w, rt, a, start, http.StatusRequestEntityTooLarge, modelfleet.ETOOLARGE, fmt.Sprintf("request body is larger than %d bytes", MaxV2Body))
			r.observeFailed(a, modelfleet.ETOOLARGE, start)
			return
		}
		r.failV2(w, rt, a, start, http.StatusBadRequest, modelfleet.EINVALID, fmt.Sprintf("reading request body: %v", err))
		r.observeFailed(a, modelfleet.EINVALID, start)
		return
	}
	b, err := decodeV2Infer(body, a.Features, a.task, a.classes)
	if err != nil {
		r.failV2(w, rt, a, start, http.StatusBadRequest, modelfleet.EINVALID, modelfleet.ErrorMessage(err))
		r.observeRejected(a, nil, start)
		return
	}
	res, err := r.predictBatch(a, b)
	if err != nil {
		r.log.Error("edge: v2 infer", "model", a.Model.String(), "err", err)
		r.failV2(w, rt, a, start, http.StatusInternalServerError, modelfleet.EINTERNAL, fmt.Sprintf("model %s failed to score the request", a.Model))
		r.observeFailed(a, modelfleet.EINTERNAL, start)
		return
	}
	if a.task == modelfleet.TaskRegression {
		res.labels = nil
	}
	writeJSON(w, http.StatusOK, a.v2Response(name, b, res))
	a.m.ok.Inc()
	a.m.latency.Observe(time.Since(start).Seconds())
	for i := range b.n {
		row, label := b.row(i), a.labelOf(res.p[i])
		if len(rt.shadows) > 0 {
			r.mirror(w, rt, a, row, rowBody(a.Features, row, rt, a), label)
		}
		r.rememberV2(req, name, a, b, i, label, res.p[i])
		a.m.predictions.Observe(a.shiftPoint(res.p[i]))
		r.observeScored(a, row, res.p[i], start)
	}
}

// predictBatch scores every row of b: in one call where the version can
// (PredictRows: an external server), else row by row, checked as predict
// checks one.
func (r *Router) predictBatch(a *arm, b *v2Batch) (res *v2Result, err error) {
	res = &v2Result{p: make([]float64, b.n), labels: make([]int64, b.n)}
	if a.PredictRows == nil {
		for i := range b.n {
			p, probs, err := r.predict(a, b.row(i))
			if err != nil {
				return nil, err
			}
			res.p[i] = p
			res.probs = append(res.probs, probs...)
			res.labels[i] = int64(a.labelOf(p))
		}
		return res, nil
	}
	defer func() {
		if v := recover(); v != nil {
			res, err = nil, fmt.Errorf("model %s panicked: %v", a.Model, v)
		}
	}()
	p, probs, err := a.PredictRows(b.x, b.n)
	if err != nil {
		return nil, err
	}
	want := 0
	if a.task == modelfleet.TaskMulticlass {
		want = b.n * a.classes
	}
	if len(p) != b.n || len(probs) != want {
		return nil, fmt.Errorf("model %s returned %d predictions and %d probabilities for %d rows", a.Model, len(p), len(probs), b.n)
	}
	for _, q := range append(p[:len(p):len(p)], probs...) {
		if math.IsNaN(q) || math.IsInf(q, 0) {
			return nil, fmt.Errorf("model %s returned a non-finite value %v", a.Model, q)
		}
	}
	res.p, res.probs = p, probs
	for i, q := range p {
		res.labels[i] = int64(a.labelOf(q))
	}
	return res, nil
}

// rowBody is a row as the JSON object a score request would have sent, for
// shadows declaring other features than the primary (they vectorize the
// body); nil when every shadow shares the primary's rows.
func rowBody(features []string, row []float64, rt *route, primary *arm) []byte {
	need := false
	for _, s := range rt.shadows {
		need = need || (s != primary && s.rows != primary.rows)
	}
	if !need {
		return nil
	}
	m := make(map[string]float64, len(features))
	for j, f := range features {
		m[f] = row[j]
	}
	b, _ := json.Marshal(m)
	return b
}

// rememberV2 records an identified row of a V2 request for its ground
// truth. The id is X-Modelfleet-Request-Id or else the request's id; with
// more than one row, row i is "<id>/<i>".
func (r *Router) rememberV2(req *http.Request, model string, a *arm, b *v2Batch, i, label int, p float64) {
	id := req.Header.Get(HeaderRequestID)
	if id == "" {
		id = b.id
	}
	if id == "" {
		return
	}
	if b.n > 1 {
		id += "/" + strconv.Itoa(i)
	}
	if len(id) > MaxRequestID {
		return
	}
	r.feedback.outcomes.record(model, id, a.Model.Version, label, p)
}

// failV2 answers with a V2 error body ({"error": "..."}) and counts the
// failure as fail does.
func (r *Router) failV2(w http.ResponseWriter, rt *route, a *arm, start time.Time, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
	r.count(rt, a, start, code)
}

func writeV2Error(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// v2Model answers the model metadata and readiness endpoints:
// GET /v2/models/{model}[/versions/{version}][/ready]. They need a key of
// the model, as scoring does.
func (r *Router) v2Model(ready bool) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeV2Error(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed: use GET", req.Method))
			return
		}
		t := r.table.Load()
		name := req.PathValue("model")
		rt := t.routes[name]
		if !t.keys.allows(name, rt != nil, req.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="modelfleet-edge"`)
			writeV2Error(w, http.StatusUnauthorized, "a valid API key is required: send \"Authorization: Bearer <key>\"")
			return
		}
		if rt == nil {
			writeV2Error(w, http.StatusNotFound, fmt.Sprintf("model %q is not served at site %q; served: %s", name, r.Site, quoteList(r.names())))
			return
		}
		version := req.PathValue("version")
		if version == "" {
			version = req.Header.Get(HeaderVersion)
		}
		var a *arm
		if version != "" {
			if a = rt.version(version); a == nil {
				writeV2Error(w, http.StatusNotFound, fmt.Sprintf("version %q of model %q is not loaded at site %q; loaded: %s", version, name, r.Site, rt.loaded))
				return
			}
		} else {
			// The version most of the traffic goes to describes the model.
			for _, c := range rt.arms {
				if a == nil || c.weight > a.weight {
					a = c
				}
			}
		}
		if ready {
			if a.Ready != nil {
				if err := a.Ready(); err != nil {
					writeV2Error(w, http.StatusServiceUnavailable, fmt.Sprintf("version %q of model %q is not ready: its model server: %v", a.Model.Version, name, err))
					return
				}
			}
			writeJSON(w, http.StatusOK, map[string]any{"name": name, "ready": true})
			return
		}
		md := V2ModelMetadata{Name: name, Platform: "modelfleet_" + a.Format, Outputs: v2Outputs(a.task, a.classes)}
		if version != "" {
			md.Versions = []string{a.Model.Version}
		} else {
			for _, c := range rt.arms {
				md.Versions = append(md.Versions, c.Model.Version)
			}
		}
		for _, f := range a.Features {
			md.Inputs = append(md.Inputs, V2MetadataTensor{Name: f, Datatype: "FP64", Shape: []int64{-1}})
		}
		writeJSON(w, http.StatusOK, md)
	}
}

// v2Routes adds the Open Inference Protocol's endpoints to mux.
func (r *Router) v2Routes(mux *http.ServeMux) {
	mux.HandleFunc("/v2/models/{model}/infer", r.v2Infer)
	mux.HandleFunc("/v2/models/{model}/versions/{version}/infer", r.v2Infer)
	mux.HandleFunc("/v2/models/{model}", r.v2Model(false))
	mux.HandleFunc("/v2/models/{model}/versions/{version}", r.v2Model(false))
	mux.HandleFunc("/v2/models/{model}/ready", r.v2Model(true))
	mux.HandleFunc("/v2/models/{model}/versions/{version}/ready", r.v2Model(true))
	// Health and server metadata say nothing about which models exist, so
	// they answer without a key, as /healthz and /readyz do (probes).
	mux.Handle("/v2/health/live", onlyGet(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})))
	mux.Handle("/v2/health/ready", onlyGet(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if countVersions(r.table.Load().routes) == 0 {
			writeV2Error(w, http.StatusServiceUnavailable, fmt.Sprintf("no model is loaded at site %q yet", r.Site))
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})))
	mux.Handle("/v2", onlyGet(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"name": "modelfleet-edge", "version": "2", "extensions": []string{}})
	})))
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, req *http.Request) {
		writeV2Error(w, http.StatusNotFound, fmt.Sprintf("no route for %q", req.URL.Path))
	})
}
