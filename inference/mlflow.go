package inference

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/modelfleet/modelfleet/inference/mlflow"
)

// pickleAdvice says how to get a scikit-learn model to the edge without a
// pickle.
const pickleAdvice = "convert it to ONNX instead: skl2onnx.to_onnx(model, X[:1]) and mlflow.onnx.log_model(onnx_model, ...) " +
	"(an MLflow package with an onnx flavour beside its sklearn one loads), or log a LightGBM or XGBoost booster with " +
	"mlflow.lightgbm.log_model / mlflow.xgboost.log_model(model_format=\"json\")"

// loadMLflow loads an MLflow model package (inference/mlflow): the model
// file of the first flavour the runtime reads (onnx, lightgbm, xgboost),
// with the signature as its feature schema and the input example kept for
// SmokeTest. Every error names the package's file it is about.
func loadMLflow(data []byte) (*Model, error) {
	pkg, err := mlflow.Open(data)
	if err != nil {
		return nil, invalid("%v", err)
	}
	raw, _ := pkg.File(mlflow.MLmodelFile)
	mm, err := mlflow.ParseMLmodel(raw)
	if err != nil {
		return nil, invalid("mlflow package: %v", err)
	}
	flavor, format, file, err := pickFlavor(mm)
	if err != nil {
		return nil, invalid("mlflow package: MLmodel: %v", err)
	}
	inner, err := pkg.File(file)
	if err != nil {
		return nil, invalid("mlflow package: MLmodel's %s flavour names %v", flavor, err)
	}
	m, err := Load(format, inner)
	if err != nil {
		hint := ""
		if detected, _ := Detect(inner); flavor == "xgboost" && detected == "" {
			hint = " (XGBoost before 2.1 wrote its deprecated binary format under model_format \"xgb\": log the model with model_format=\"json\" or \"ubj\")"
		}
		return nil, invalid("mlflow package: %s (the %s flavour's model): %v%s", file, flavor, err, hint)
	}
	cols, err := mm.Signature.InputSchema()
	if err != nil {
		return nil, invalid("mlflow package: MLmodel: %v", err)
	}
	if err := applySignature(m, cols, file); err != nil {
		return nil, invalid("mlflow package: MLmodel: %v", err)
	}
	if info := mm.InputExample; info != nil && info.ArtifactPath != "" {
		ex, err := pkg.File(info.ArtifactPath)
		if err != nil {
			return nil, invalid("mlflow package: MLmodel's saved_input_example_info names %v", err)
		}
		if cols == nil {
			cols = make([]mlflow.Column, m.NumFeatures())
		}
		rows, err := mlflow.ReadExample(ex, cols)
		if err != nil {
			return nil, invalid("mlflow package: input example %s: %v", info.ArtifactPath, err)
		}
		m.example = rows
	}
	m.format = FormatMLflow
	return m, nil
}

// pickFlavor chooses the flavour the runtime loads and its model file.
func pickFlavor(mm *mlflow.MLmodel) (flavor, format, file string, err error) {
	if f, ok := mm.Flavors["onnx"]; ok {
		// scikit-learn models reach the edge this way: an onnx flavour
		// (skl2onnx) beside, or instead of, the sklearn one.
		return "onnx", FormatONNX, orDefault(f.String("data"), "model.onnx"), nil
	}
	if f, ok := mm.Flavors["lightgbm"]; ok {
		return "lightgbm", FormatLightGBM, orDefault(f.String("data"), "model.lgb"), nil
	}
	if f, ok := mm.Flavors["xgboost"]; ok {
		file := f.String("data")
		if file == "" {
			file = "model." + orDefault(f.String("model_format"), "xgb")
		}
		switch mf := f.String("model_format"); mf {
		case "", "json", "ubj", "xgb":
			// "xgb" (MLflow's default): XGBoost >= 2.1 writes UBJSON under
			// any other extension; older ones wrote their deprecated binary
			// format, which Load names.
		default:
			return "", "", "", fmt.Errorf("xgboost flavour: model_format %q is not supported: log the model with model_format=\"json\" or \"ubj\"", mf)
		}
		return "xgboost", FormatXGBoost, file, nil
	}
	for _, name := range []string{"sklearn", "python_function"} {
		f, ok := mm.Flavors[name]
		if !ok {
			continue
		}
		file := orDefault(f.String("pickled_model"), f.String("data"))
		switch sf := f.String("serialization_format"); {
		case sf == "cloudpickle" || sf == "pickle" || name == "sklearn":
			return "", "", "", fmt.Errorf("the %s flavour's model %s is a Python pickle (serialization_format %q): it is refused because loading a pickle runs arbitrary code; %s",
				name, orDefault(file, "(unnamed)"), orDefault(sf, "pickle"), pickleAdvice)
		case f.String("loader_module") != "":
			return "", "", "", fmt.Errorf("the python_function flavour (loader_module %q) runs Python code, which the edge runtime does not; %s", f.String("loader_module"), pickleAdvice)
		}
	}
	return "", "", "", fmt.Errorf("flavours %s: none the edge runtime loads (onnx, lightgbm, xgboost; sklearn only beside an onnx flavour)", strings.Join(mm.FlavorNames(), ", "))
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// unnamedRE matches the names a model file gives columns it was not told
// the names of: XGBoost's and ONNX's f0, f1, …, LightGBM's Column_0, ….
var unnamedRE = regexp.MustCompile(`^(f|Column_)[0-9]+$`)

// Unnamed reports whether names are only the positional names a model file
// uses when it was trained without feature names (f0, f1, … or Column_0,
// …): such a model's features can be checked by count only.
func Unnamed(names []string) bool {
	for _, n := range names {
		if !unnamedRE.MatchString(n) {
			return false
		}
	}
	return true
}

// applySignature makes the signature's columns m's feature schema. The
// model file takes len(cols) features; when both name them, the names must
// agree in order (the first difference is the error).
func applySignature(m *Model, cols []mlflow.Column, file string) error {
	if cols == nil {
		return nil
	}
	if len(cols) != m.NumFeatures() {
		return fmt.Errorf("the signature has %d inputs but %s takes %d features", len(cols), file, m.NumFeatures())
	}
	names := make([]string, len(cols))
	types := make([]string, len(cols))
	for i, c := range cols {
		names[i], types[i] = c.Name, c.Type
	}
	if names[0] != "" {
		if !Unnamed(m.features) {
			if d := FirstDifference(names, m.features); d != "" {
				return fmt.Errorf("the signature's inputs disagree with the features %s was trained on: %s", file, d)
			}
		}
		m.features = names
	}
	m.types = types
	return nil
}

// FirstDifference describes the first way got (a schema) differs from want
// (the model's features, in order): a feature missing, one extra, or the
// first out of order. "" when they are equal.
func FirstDifference(got, want []string) string {
	in := func(s []string, x string) bool { return slices.Contains(s, x) }
	for _, w := range want {
		if !in(got, w) {
			return fmt.Sprintf("feature %q is missing", w)
		}
	}
	for _, g := range got {
		if !in(want, g) {
			return fmt.Sprintf("feature %q is extra (the model does not take it)", g)
		}
	}
	for i := range want {
		if got[i] != want[i] {
			return fmt.Sprintf("feature %q is out of order: at position %d, where the model takes %q", got[i], i+1, want[i])
		}
	}
	return ""
}

// FeatureTypes returns the features' types where the artifact declares
// them (an MLflow signature's double, float, long, integer or boolean), in
// model order; nil when it does not.
func (m *Model) FeatureTypes() []string { return slices.Clone(m.types) }

// InputExample returns the input example the artifact carries (an MLflow
// package's), as rows in model order; nil when it has none.
func (m *Model) InputExample() [][]float64 { return m.example }

// SmokeTest scores the model's input example, if it has one: nil when every
// row scores, else an error naming the first row that does not.
func (m *Model) SmokeTest() error {
	var out []float64
	for i, row := range m.example {
		var err error
		if out, err = m.Probabilities(row, out[:0]); err != nil {
			return invalid("input example row %d does not score: %v", i+1, err)
		}
	}
	return nil
}
