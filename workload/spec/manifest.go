package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
)

// APIVersion is the manifest format this package reads.
const APIVersion = "modelfleet/v1"

// KindWorkload is the manifest's kind.
const KindWorkload = "Workload"

// maxManifestBytes bounds a manifest; real ones are a few kilobytes.
const maxManifestBytes = 1 << 20

// Defaults where a manifest is silent.
const (
	DefaultWorkers   = 4
	DefaultQueue     = 256
	DefaultRecord    = 1000
	DefaultMaxSkew   = time.Minute
	DefaultThreshold = 0.5
	DefaultMaxBytes  = 64 << 10
)

// Manifest declares a workload version: what it reads, the features it
// produces for which model, and where its results go. It travels with the
// workload's code and is what releases check compatibility against.
type Manifest struct {
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	Kind       string `yaml:"kind" json:"kind"`
	Name       string `yaml:"name" json:"name"`
	Version    string `yaml:"version" json:"version"`
	// Model is the name of the model the workload calls at the site's router.
	Model string `yaml:"model" json:"model"`
	// Features is the schema the workload produces, in model order.
	Features []Feature `yaml:"features" json:"features"`
	Input    Input     `yaml:"input" json:"input"`
	Output   Output    `yaml:"output" json:"output"`
	Window   Window    `yaml:"window" json:"window"`
	Scaling  Scaling   `yaml:"scaling" json:"scaling"`
	// Module, when set, is the workload's code as a WebAssembly module
	// (docs/workloads.md, "ABI"); without it the site pairs the manifest
	// with feature code built into its agent.
	Module *Module `yaml:"module,omitempty" json:"module,omitempty"`
	// Image, when set, is the workload's code as an OCI container image
	// pinned by digest ("registry/repo@sha256:<64 hex>"), for sites whose
	// workloads run as Kubernetes Deployments (the gitops driver): the
	// container gets the same configuration as `modelfleet workload run`
	// (docs/workloads.md, "Container images"). An agent that hosts its
	// workloads itself cannot run one and reports it failed.
	Image string `yaml:"image,omitempty" json:"image,omitempty"`
}

// Feature is one feature the workload produces: its name as the model
// declares it, its unit, and the range a sane value lies in. A value outside
// the range is dead-lettered instead of scored.
type Feature struct {
	Name string `yaml:"name" json:"name"`
	// Type is what the values are, when the model's schema cares (an MLflow
	// signature's long or boolean column): one of modelfleet.FeatureTypes;
	// "" is not checked against the model.
	Type string   `yaml:"type,omitempty" json:"type,omitempty"`
	Unit string   `yaml:"unit,omitempty" json:"unit,omitempty"`
	Min  *float64 `yaml:"min,omitempty" json:"min,omitempty"`
	Max  *float64 `yaml:"max,omitempty" json:"max,omitempty"`
}

// Holds reports whether v is a value of the feature's declared type: a
// whole number for long and integer, 0 or 1 for boolean, any number
// otherwise. The runtime dead-letters a feature that is not.
func (f Feature) Holds(v float64) bool {
	switch f.Type {
	case modelfleet.FeatureLong, modelfleet.FeatureInteger:
		return v == math.Trunc(v)
	case modelfleet.FeatureBoolean:
		return v == 0 || v == 1
	}
	return true
}

// Input declares the factory data: MQTT topic filters ("{site}" is replaced
// by the site ID), the payload fields it needs and how far a sample's clock
// may be from the site's.
type Input struct {
	Topics       []string `yaml:"topics" json:"topics"`
	MachineField string   `yaml:"machineField,omitempty" json:"machineField,omitempty"` // default "machine"
	TimeField    string   `yaml:"timeField,omitempty" json:"timeField,omitempty"`       // default "ts"
	SeqField     string   `yaml:"seqField,omitempty" json:"seqField,omitempty"`         // default "seq"
	MaxSkew      Duration `yaml:"maxSkew,omitempty" json:"maxSkew,omitempty"`           // default DefaultMaxSkew
	MaxBytes     int      `yaml:"maxBytes,omitempty" json:"maxBytes,omitempty"`         // default DefaultMaxBytes
	Fields       []Field  `yaml:"fields" json:"fields"`
}

// Field is one numeric payload field the workload reads.
type Field struct {
	Name     string   `yaml:"name" json:"name"`
	Unit     string   `yaml:"unit,omitempty" json:"unit,omitempty"`
	Min      *float64 `yaml:"min,omitempty" json:"min,omitempty"`
	Max      *float64 `yaml:"max,omitempty" json:"max,omitempty"`
	Optional bool     `yaml:"optional,omitempty" json:"optional,omitempty"`
}

// Output says where results go. Topics may contain "{site}".
type Output struct {
	Decisions  string `yaml:"decisions" json:"decisions"`
	DeadLetter string `yaml:"deadLetter" json:"deadLetter"`
	// Threshold is the prediction at or above which the default decision
	// is "alert".
	Threshold *float64 `yaml:"threshold,omitempty" json:"threshold,omitempty"`
	// Record is how many recent decisions the site keeps (GET /decisions).
	Record int `yaml:"record,omitempty" json:"record,omitempty"`
}

// Window is the per-machine sample window features are computed over.
type Window struct {
	Size int `yaml:"size" json:"size"`
}

// Scaling sizes the runtime: Workers process machines in parallel (one
// machine's samples always in order, on one worker), each with a queue of
// Queue messages.
type Scaling struct {
	Workers int `yaml:"workers,omitempty" json:"workers,omitempty"`
	Queue   int `yaml:"queue,omitempty" json:"queue,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// UnmarshalYAML reads "30s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q is invalid: want e.g. \"30s\"", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes "30s".
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ParseManifest decodes and validates a manifest strictly: unknown keys are
// errors, so a typo never silently drops a range check. Defaults are filled.
func ParseManifest(data []byte) (Manifest, error) {
	var m Manifest
	if len(data) > maxManifestBytes {
		return m, modelfleet.Errorf(modelfleet.EINVALID, "workload manifest is larger than %d bytes", maxManifestBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil && !errors.Is(err, io.EOF) {
		return Manifest{}, modelfleet.Errorf(modelfleet.EINVALID, "workload manifest: %v", err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// LoadManifest reads and parses a manifest file.
func LoadManifest(path string) (Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Manifest{}, err
	}
	m, err := ParseManifest(data)
	if err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Validate checks the manifest and fills its defaults.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return modelfleet.Errorf(modelfleet.EINVALID, "workload manifest: "+format, args...)
	}
	if m.APIVersion != APIVersion {
		return bad("apiVersion %q is not supported: use %q", m.APIVersion, APIVersion)
	}
	if m.Kind != KindWorkload {
		return bad("kind %q is not supported: use %q", m.Kind, KindWorkload)
	}
	for _, n := range [][2]string{{"workload name", m.Name}, {"workload version", m.Version}, {"model name", m.Model}} {
		if err := modelfleet.ValidateName(n[0], n[1]); err != nil {
			return bad("%s", modelfleet.ErrorMessage(err))
		}
	}
	if len(m.Features) == 0 {
		return bad("features are required: the schema the workload produces, in model order")
	}
	seen := map[string]bool{}
	for _, f := range m.Features {
		if f.Name == "" || seen[f.Name] {
			return bad("features must be unique and non-empty (got %q)", f.Name)
		}
		seen[f.Name] = true
		if f.Type != "" && !slices.Contains(modelfleet.FeatureTypes, f.Type) {
			return bad("feature %q: type %q is not supported: use one of %s", f.Name, f.Type, strings.Join(modelfleet.FeatureTypes, ", "))
		}
		if err := checkRange("feature", f.Name, f.Min, f.Max); err != nil {
			return bad("%v", err)
		}
	}
	if err := m.Input.validate(); err != nil {
		return bad("%v", err)
	}
	if err := m.Output.validate(); err != nil {
		return bad("%v", err)
	}
	if m.Window.Size < 1 || m.Window.Size > 1<<16 {
		return bad("window.size %d is out of range: want 1 to 65536 samples", m.Window.Size)
	}
	if m.Scaling.Workers == 0 {
		m.Scaling.Workers = DefaultWorkers
	}
	if m.Scaling.Queue == 0 {
		m.Scaling.Queue = DefaultQueue
	}
	if m.Module != nil {
		if err := m.Module.validate(); err != nil {
			return bad("%v", err)
		}
	}
	if m.Image != "" {
		if m.Module != nil {
			return bad("module and image are exclusive: the workload's code is one or the other")
		}
		if err := CheckImage(m.Image); err != nil {
			return bad("image: %v", err)
		}
	}
	if m.Scaling.Workers < 1 || m.Scaling.Workers > 256 || m.Scaling.Queue < 1 || m.Scaling.Queue > 1<<16 {
		return bad("scaling: workers %d and queue %d must be 1..256 and 1..65536", m.Scaling.Workers, m.Scaling.Queue)
	}
	return nil
}

func (in *Input) validate() error {
	if len(in.Topics) == 0 {
		return errors.New("input.topics are required")
	}
	for _, t := range in.Topics {
		if err := checkTopic(t, true); err != nil {
			return fmt.Errorf("input topic %q: %w", t, err)
		}
	}
	if in.MachineField == "" {
		in.MachineField = "machine"
	}
	if in.TimeField == "" {
		in.TimeField = "ts"
	}
	if in.SeqField == "" {
		in.SeqField = "seq"
	}
	if in.MaxSkew == 0 {
		in.MaxSkew = Duration(DefaultMaxSkew)
	}
	if in.MaxBytes == 0 {
		in.MaxBytes = DefaultMaxBytes
	}
	if in.MaxBytes < 0 || in.MaxBytes > 1<<20 {
		return fmt.Errorf("input.maxBytes %d is out of range 1..1048576", in.MaxBytes)
	}
	if len(in.Fields) == 0 {
		return errors.New("input.fields are required: the payload fields the workload reads")
	}
	seen := map[string]bool{in.MachineField: true, in.TimeField: true, in.SeqField: true}
	for _, f := range in.Fields {
		if f.Name == "" || seen[f.Name] {
			return fmt.Errorf("input fields must be unique, non-empty and not the machine, time or seq field (got %q)", f.Name)
		}
		seen[f.Name] = true
		if err := checkRange("input field", f.Name, f.Min, f.Max); err != nil {
			return err
		}
	}
	return nil
}

func (o *Output) validate() error {
	if err := checkTopic(o.Decisions, false); err != nil {
		return fmt.Errorf("output.decisions %q: %w", o.Decisions, err)
	}
	if err := checkTopic(o.DeadLetter, false); err != nil {
		return fmt.Errorf("output.deadLetter %q: %w", o.DeadLetter, err)
	}
	if o.Decisions == o.DeadLetter {
		return errors.New("output.decisions and output.deadLetter must differ")
	}
	if o.Threshold == nil {
		t := DefaultThreshold
		o.Threshold = &t
	}
	if o.Record == 0 {
		o.Record = DefaultRecord
	}
	if o.Record < 1 || o.Record > 1_000_000 {
		return fmt.Errorf("output.record %d is out of range 1..1000000", o.Record)
	}
	return nil
}

func checkRange(what, name string, lo, hi *float64) error {
	for _, v := range []*float64{lo, hi} {
		if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
			return fmt.Errorf("%s %q: bounds must be finite", what, name)
		}
	}
	if lo != nil && hi != nil && *lo > *hi {
		return fmt.Errorf("%s %q: min %v is above max %v", what, name, *lo, *hi)
	}
	return nil
}

// checkTopic accepts an MQTT topic name, or with wild a topic filter.
func checkTopic(t string, wild bool) error {
	if t == "" {
		return errors.New("is empty")
	}
	if strings.HasPrefix(t, "$") {
		return errors.New("must not start with '$'")
	}
	levels := strings.Split(t, "/")
	for i, l := range levels {
		switch {
		case !wild && strings.ContainsAny(l, "+#"):
			return errors.New("must not contain wildcards")
		case l == "#" && i != len(levels)-1:
			return errors.New("'#' must be the last level")
		case l != "+" && l != "#" && strings.ContainsAny(l, "+#"):
			return errors.New("a wildcard must fill a whole level")
		}
	}
	return nil
}

// Topic replaces "{site}" in a manifest topic.
func Topic(t, site string) string { return strings.ReplaceAll(t, "{site}", site) }

// FeatureNames lists the feature names in schema order.
func (m *Manifest) FeatureNames() []string {
	out := make([]string, len(m.Features))
	for i, f := range m.Features {
		out[i] = f.Name
	}
	return out
}

// Ref names the workload version in messages and logs: "name:version".
func (m *Manifest) Ref() string { return m.Name + ":" + m.Version }
