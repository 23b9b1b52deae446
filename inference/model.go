// Package inference is the edge model runtime: it loads a model artifact,
// turns request bodies and CSV files into feature rows, scores them, and
// computes the validation metrics a release is gated on. It is pure Go (no
// cgo) so the edge agent stays a single static binary.
package inference

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference/mlflow"
)

// Model formats Load reads, as a model card names them.
const (
	FormatLightGBM = modelfleet.FormatLightGBM // LightGBM text model file
	FormatXGBoost  = modelfleet.FormatXGBoost  // XGBoost JSON or UBJSON model (XGBoost >= 1.0)
	FormatONNX     = modelfleet.FormatONNX     // ONNX model (inference/onnx)
	FormatMLflow   = modelfleet.FormatMLflow   // MLflow model package (inference/mlflow; mlflow.go)
)

// Tasks a model serves.
const (
	TaskBinary     = modelfleet.TaskBinary     // Predict: P(class 1)
	TaskMulticlass = modelfleet.TaskMulticlass // Predict: the most probable class, Probabilities: each class's
	TaskRegression = modelfleet.TaskRegression // Predict: the value
)

// runtime is one model format's predictor.
type runtime interface {
	// outputs writes the model's outputs for a row of the right length into
	// out, which has numOutputs() values: P(class 1) for a binary model,
	// each class's probability for a multiclass one, the value for a
	// regressor.
	outputs(x []float64, out []float64)
	numOutputs() int
	// output is outputs for a single-output model, without a slice (the
	// router's hot path allocates nothing for it).
	output(x []float64) float64
}

// Model is a loaded model, safe for concurrent use.
type Model struct {
	rt       runtime
	format   string
	task     string
	classes  int
	features []string
	// types are the features' types where the artifact declares them (an
	// MLflow signature; nil otherwise), example its input example's rows.
	types   []string
	example [][]float64
}

// Load parses a model artifact. format is what the model card declares
// (FormatLightGBM, FormatXGBoost, FormatONNX or FormatMLflow), or "" to go by
// the content alone; a declared format the content contradicts is an error
// naming what the content is. Artifacts come from users, so every file is
// checked before it is scored and a panic while parsing becomes an error.
func Load(format string, data []byte) (m *Model, err error) {
	detected, ubj := Detect(data)
	switch {
	case detected == formatPickle:
		return nil, invalid("the file is a Python pickle: it is refused because loading a pickle runs arbitrary code. " +
			"Export the model instead: booster.save_model(\"model.json\") for XGBoost, booster.save_model(\"model.txt\") for LightGBM, " +
			"skl2onnx.to_onnx(model, X[:1]) for scikit-learn (ONNX)")
	case format == "" && detected == "":
		return nil, invalid("the model format is not recognised: want a LightGBM text file, an XGBoost JSON/UBJSON model, an ONNX model or an MLflow package")
	case format == "":
		format = detected
	case !slices.Contains(modelfleet.Formats, format):
		return nil, invalid("model format %q is not supported: use one of %s", format, strings.Join(modelfleet.Formats, ", "))
	case detected != "" && detected != format:
		return nil, invalid("the model card says format %q but the file is a %s model", format, detected)
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, invalid("%s model: malformed file (%v)", format, r)
		}
	}()
	switch format {
	case FormatXGBoost:
		m, err = loadXGBoost(data, ubj)
	case FormatONNX:
		m, err = loadONNX(data)
	case FormatMLflow:
		return loadMLflow(data) // its errors name the package's file
	default:
		m, err = loadLightGBM(data)
	}
	if err != nil {
		return nil, invalid("%s model: %v", format, err)
	}
	return m, nil
}

// What Detect returns for files no format loads.
const formatPickle = "pickle"

// Detect names the format of a model artifact by its content: FormatLightGBM,
// FormatXGBoost (ubj: in its UBJSON encoding), FormatONNX, FormatMLflow (a
// tar archive), "pickle", or ""
// when it is none of them.
func Detect(data []byte) (format string, ubj bool) {
	switch isJSON, isUBJ := sniffXGBoost(data); {
	case isJSON || isUBJ:
		return FormatXGBoost, isUBJ
	case bytes.HasPrefix(data, []byte("tree\n")) || bytes.HasPrefix(data, []byte("tree\r\n")):
		return FormatLightGBM, false
	case isPickle(data):
		return formatPickle, false
	case isONNX(data):
		return FormatONNX, false
	case mlflow.IsArchive(data):
		return FormatMLflow, false
	}
	return "", false
}

// isPickle recognises pickle protocols 2 to 5 (what pickle and joblib write
// by default) by their PROTO opcode.
func isPickle(data []byte) bool {
	return len(data) >= 2 && data[0] == 0x80 && data[1] >= 2 && data[1] <= 5
}

// isONNX recognises an ONNX ModelProto as exporters write it: ir_version
// (field 1, a varint from 3 to 20) first, then another ModelProto field
// (producer_name, producer_version, domain, model_version, doc_string,
// graph or opset_import).
func isONNX(data []byte) bool {
	return len(data) >= 3 && data[0] == 0x08 && data[1] >= 3 && data[1] <= 20 &&
		bytes.IndexByte([]byte{0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42}, data[2]) >= 0
}

// Format is the format the model was loaded as.
func (m *Model) Format() string { return m.format }

// Task is what the model predicts: TaskBinary, TaskMulticlass or
// TaskRegression.
func (m *Model) Task() string { return m.task }

// NumClasses is the number of classes of a classifier (2 for a binary one),
// and 1 for a regressor.
func (m *Model) NumClasses() int { return m.classes }

// NumFeatures is the length of the row Predict expects.
func (m *Model) NumFeatures() int { return len(m.features) }

// FeatureNames returns the feature names stored in the model file, in model
// order. Callers can compare them with the names a model card declares
// (files trained from bare arrays carry generic names like "Column_0" or
// "f0").
func (m *Model) FeatureNames() []string { return append([]string(nil), m.features...) }

// Predict returns the model's prediction for one row as one number: for a
// binary model the probability of the positive class, for a multiclass one
// the most probable class (0 to NumClasses()-1, the first on a tie), for a
// regressor the value. A NaN feature is a missing value.
func (m *Model) Predict(x []float64) (p float64, err error) {
	if m.rt.numOutputs() > 1 {
		out, err := m.Probabilities(x, nil)
		if err != nil {
			return 0, err
		}
		return float64(argmax(out)), nil
	}
	if len(x) != len(m.features) {
		return 0, invalid("got %d features, want %d", len(x), len(m.features))
	}
	defer func() {
		if r := recover(); r != nil {
			p, err = 0, fmt.Errorf("predict: %v", r)
		}
	}()
	p = m.rt.output(x)
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return 0, fmt.Errorf("predict: model returned %v", p)
	}
	return p, nil
}

// Probabilities appends the model's outputs for one row to dst and returns
// it: for a multiclass model each class's probability, for a binary one
// P(class 1) only, for a regressor the value.
func (m *Model) Probabilities(x []float64, dst []float64) (out []float64, err error) {
	if len(x) != len(m.features) {
		return dst, invalid("got %d features, want %d", len(x), len(m.features))
	}
	// Load checked the trees, so this is only a last line of defence: a bug
	// in one model must not take the edge agent down.
	defer func() {
		if r := recover(); r != nil {
			out, err = dst, fmt.Errorf("predict: %v", r)
		}
	}()
	n, k := len(dst), m.rt.numOutputs()
	out = slices.Grow(dst, k)[:n+k]
	m.rt.outputs(x, out[n:])
	for _, p := range out[n:] {
		if math.IsNaN(p) || math.IsInf(p, 0) {
			return dst, fmt.Errorf("predict: model returned %v", p)
		}
	}
	return out, nil
}

func argmax(p []float64) int {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return best
}

// invalid returns an EINVALID domain error: everything this package rejects
// is input that the sender can fix.
func invalid(format string, args ...any) error {
	return modelfleet.Errorf(modelfleet.EINVALID, format, args...)
}
