package azureml

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
)

// The model version properties modelfleet reads and writes. Properties, not
// tags: Azure ML lets anyone change a version's tags later, but its
// properties are fixed when the version is created, and a release must not
// be able to pick up a different digest or gate than it was validated with.
const (
	PropDigest   = "modelfleet.digest"   // "sha256:<hex>" of the artifact; required
	PropFormat   = "modelfleet.format"   // "lightgbm" (the default)
	PropSize     = "modelfleet.size"     // the artifact's bytes (informational)
	PropFeatures = "modelfleet.features" // JSON array of feature names, in the model's column order
	// PropArtifact names the artifact file inside modelUri when modelUri
	// is a folder (what Azure ML's custom_model folders are).
	PropArtifact = "modelfleet.artifact"
	// The validation gate: all four, or none.
	PropValidationURI       = "modelfleet.validation.uri"    // azureml:// or https:// of a labelled CSV
	PropValidationDigest    = "modelfleet.validation.digest" // its "sha256:<hex>"
	PropValidationMetric    = "modelfleet.validation.metric" // auc, accuracy, f1
	PropValidationThreshold = "modelfleet.validation.threshold"
)

// mapped are the properties the mapping consumes; the rest are the
// model's own and pass through.
var mapped = []string{PropDigest, PropFormat, PropSize, PropFeatures, PropArtifact,
	PropValidationURI, PropValidationDigest, PropValidationMetric, PropValidationThreshold}

// toModel maps an Azure ML model version to a modelfleet model. Strict
// (Get, for a release) fails on anything a release needs that is missing
// or malformed, naming the property; lenient (List, an inventory) keeps
// what it can read.
func toModel(name, version string, mv ml.ModelVersion, strict bool) (modelfleet.Model, error) {
	m := modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: name, Version: version}, Format: modelfleet.FormatLightGBM}
	p := mv.Properties
	if p == nil {
		p = &ml.ModelVersionProperties{}
	}
	props := strMap(p.Properties)
	m.Tags = strMap(p.Tags)
	cannot := func(format string, args ...any) (modelfleet.Model, error) {
		return modelfleet.Model{}, modelfleet.Errorf(modelfleet.EINVALID, "azure ml model %q version %q cannot be released: %s", name, version, fmt.Sprintf(format, args...))
	}
	var errs []string
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Sprintf(format, args...))
	}

	if f, ok := props[PropFormat]; ok {
		m.Format = f
	}
	m.Digest = props[PropDigest]
	switch {
	case m.Digest == "":
		fail("property %q (the artifact's sha256:<64 hex digits>) is missing", PropDigest)
	case !modelfleet.ValidDigest(m.Digest):
		fail("property %q is %q, want sha256:<64 hex digits>", PropDigest, m.Digest)
	}
	if s, ok := props[PropSize]; ok {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			m.Size = n
		} else {
			fail("property %q is %q, want a number of bytes", PropSize, s)
		}
	}
	if s, ok := props[PropFeatures]; ok && s != "" {
		if err := json.Unmarshal([]byte(s), &m.Features); err != nil {
			m.Features = nil
			fail("property %q is not a JSON array of feature names: %v", PropFeatures, err)
		}
		if len(m.Features) == 0 {
			m.Features = nil // "[]" names no features, as no property does
		}
	}
	switch t := deref(p.ModelType); t {
	case "", AssetCustom:
	case AssetMLflow:
		if f, ok := props[PropFormat]; ok && f != modelfleet.FormatMLflow {
			fail("asset type %s with property %q %q: an mlflow_model is format %q", t, PropFormat, f, modelfleet.FormatMLflow)
		}
		m.Format = modelfleet.FormatMLflow
	case AssetTriton:
		// A Triton model repository: served by the Triton server the sites
		// declare (format oip), named by the version's server block.
		if f, ok := props[PropFormat]; ok && f != modelfleet.FormatOIP {
			fail("asset type %s with property %q %q: a triton_model is format %q", t, PropFormat, f, modelfleet.FormatOIP)
		}
		m.Format = modelfleet.FormatOIP
		if props[modelfleet.PropServer] == "" {
			fail("%s", tritonNeedsServer)
		}
	default:
		fail("asset type %q is not supported: use %s (a model file, or a folder with one), %s or %s (with a server block)", t, AssetCustom, AssetMLflow, AssetTriton)
	}
	m.ArtifactURL = assetURL(deref(p.ModelType), deref(p.ModelURI), props[PropArtifact])
	if m.ArtifactURL == "" {
		fail("modelUri is empty")
	}
	if v, err := validationOf(props); err != nil {
		fail("%s", err)
	} else {
		m.Validation = v
	}
	m.Properties = maps.Clone(props)
	for _, k := range mapped {
		delete(m.Properties, k)
	}
	if len(m.Properties) == 0 {
		m.Properties = nil
	}
	// Who registered the version is Azure ML's to say (systemData), never
	// a property anyone with write access could set.
	delete(m.Properties, modelfleet.PropRegisteredBy)
	if sd := mv.SystemData; sd != nil {
		if sd.CreatedAt != nil {
			m.CreatedAt = sd.CreatedAt.UTC().Format("2006-01-02T15:04:05Z07:00")
		}
		if sd.CreatedBy != nil && *sd.CreatedBy != "" {
			if m.Properties == nil {
				m.Properties = map[string]string{}
			}
			m.Properties[modelfleet.PropRegisteredBy] = *sd.CreatedBy
		}
	}
	if len(m.Properties) == 0 {
		m.Properties = nil
	}
	if !strict {
		return m, nil
	}
	if len(errs) > 0 {
		return cannot("%s", strings.Join(errs, "; "))
	}
	if err := m.Validate(); err != nil {
		return cannot("%s", modelfleet.ErrorMessage(err))
	}
	return m, nil
}

// validationOf reads the validation gate: none of its properties, or all.
func validationOf(props map[string]string) (*modelfleet.ValidationSpec, error) {
	keys := []string{PropValidationURI, PropValidationDigest, PropValidationMetric, PropValidationThreshold}
	var missing []string
	for _, k := range keys {
		if props[k] == "" {
			missing = append(missing, strconv.Quote(k))
		}
	}
	switch len(missing) {
	case len(keys):
		return nil, nil
	case 0:
	default:
		return nil, fmt.Errorf("a validation gate needs all of %s; missing %s", strings.Join(quoteAll(keys), ", "), strings.Join(missing, ", "))
	}
	th, err := strconv.ParseFloat(props[PropValidationThreshold], 64)
	if err != nil {
		return nil, fmt.Errorf("property %q is %q, want a number", PropValidationThreshold, props[PropValidationThreshold])
	}
	return &modelfleet.ValidationSpec{DataURL: props[PropValidationURI], DataDigest: props[PropValidationDigest], Metric: props[PropValidationMetric], Threshold: th}, nil
}

// fromModel is the model version to create for m, its artifact at
// modelURI. m's own properties pass through; the mapped ones are set from
// m's fields and win over any of the same name.
func fromModel(m modelfleet.Model, modelURI string) (ml.ModelVersion, error) {
	props := map[string]*string{}
	for k, v := range m.Properties {
		props[k] = to.Ptr(v)
	}
	props[PropDigest] = to.Ptr(m.Digest)
	props[PropFormat] = to.Ptr(m.Format)
	props[PropSize] = to.Ptr(strconv.FormatInt(m.Size, 10))
	delete(props, PropArtifact)
	if len(m.Features) > 0 {
		b, err := json.Marshal(m.Features)
		if err != nil {
			return ml.ModelVersion{}, err
		}
		props[PropFeatures] = to.Ptr(string(b))
	} else {
		delete(props, PropFeatures)
	}
	for _, k := range []string{PropValidationURI, PropValidationDigest, PropValidationMetric, PropValidationThreshold} {
		delete(props, k)
	}
	if v := m.Validation; v != nil {
		props[PropValidationURI] = to.Ptr(v.DataURL)
		props[PropValidationDigest] = to.Ptr(v.DataDigest)
		props[PropValidationMetric] = to.Ptr(v.Metric)
		props[PropValidationThreshold] = to.Ptr(strconv.FormatFloat(v.Threshold, 'g', -1, 64))
	}
	tags := map[string]*string{}
	for k, v := range m.Tags {
		tags[k] = to.Ptr(v)
	}
	return ml.ModelVersion{Properties: &ml.ModelVersionProperties{
		ModelURI:    to.Ptr(modelURI),
		ModelType:   to.Ptr("custom_model"),
		Description: to.Ptr("registered by modelfleet"),
		Properties:  props,
		Tags:        tags,
	}}, nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

func strMap(m map[string]*string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
