package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
)

// ModelCardFile is the card `model register` reads beside a model file.
const ModelCardFile = "model.yaml"

// maxCardBytes bounds a model card; real ones are a few hundred bytes.
const maxCardBytes = 1 << 20

// ModelCard declares what a model consumes and how it must be validated,
// next to the artifact it describes (examples/bearing-failure/model.yaml).
type ModelCard struct {
	Format   string   `yaml:"format"`
	Task     string   `yaml:"task"`
	Features []string `yaml:"features"`
	// Units gives features' units as the model was trained on them
	// ("temperature_c: degC"): a release refuses a workload declaring
	// another unit for one (modelfleet.PropUnitPrefix).
	Units      map[string]string `yaml:"units"`
	Validation *CardValidation   `yaml:"validation"`
	Tags       map[string]string `yaml:"tags"`
	Properties map[string]string `yaml:"properties"`
	// Workload ("name:version") is the registered workload version the
	// model version is released with (modelfleet.PropWorkload).
	Workload string `yaml:"workload"`
	// Server, with format oip, is the external model server the version
	// runs in (its file is the packed model directory); it is registered
	// as the modelfleet.PropServer property.
	Server *modelfleet.ModelServer `yaml:"server"`
}

// ServerProperty is the card's server block as the PropServer property's
// value ("" when it has none).
func (c *ModelCard) ServerProperty() string {
	if c.Server == nil {
		return ""
	}
	b, _ := json.Marshal(c.Server)
	return string(b)
}

// CardValidation is the card's validation block. Data is relative to the
// card's directory.
type CardValidation struct {
	Data      string  `yaml:"data"`
	Metric    string  `yaml:"metric"`
	Threshold float64 `yaml:"threshold"`
}

// ParseModelCard decodes a card strictly: unknown keys are errors, so a typo
// ("treshold") never silently disables validation.
func ParseModelCard(data []byte) (ModelCard, error) {
	var c ModelCard
	if len(data) > maxCardBytes {
		return c, modelfleet.Errorf(modelfleet.EINVALID, "model card is larger than %d bytes", maxCardBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return ModelCard{}, modelfleet.Errorf(modelfleet.EINVALID, "model card: %v", err)
	}
	for f, u := range c.Units {
		if len(c.Features) > 0 && !slices.Contains(c.Features, f) {
			return ModelCard{}, modelfleet.Errorf(modelfleet.EINVALID, "model card: units names feature %q, which is not one of its features", f)
		}
		if err := modelfleet.ValidateName("feature", f); err != nil {
			return ModelCard{}, modelfleet.Errorf(modelfleet.EINVALID, "model card: units: %s", modelfleet.ErrorMessage(err))
		}
		if err := modelfleet.ValidateUnit(f, u); err != nil {
			return ModelCard{}, modelfleet.Errorf(modelfleet.EINVALID, "model card: units: %s", modelfleet.ErrorMessage(err))
		}
	}
	if c.Workload != "" {
		if _, err := modelfleet.ParseWorkloadRef(c.Workload); err != nil {
			return ModelCard{}, modelfleet.Errorf(modelfleet.EINVALID, "model card: %s", modelfleet.ErrorMessage(err))
		}
	}
	if (c.Server != nil) != (c.Format == modelfleet.FormatOIP) {
		return ModelCard{}, modelfleet.Errorf(modelfleet.EINVALID, "model card: format %q and a server block go together", modelfleet.FormatOIP)
	}
	if c.Server != nil {
		if err := c.Server.Validate(); err != nil {
			return ModelCard{}, modelfleet.Errorf(modelfleet.EINVALID, "model card: server: %s", modelfleet.ErrorMessage(err))
		}
		if c.Validation != nil {
			return ModelCard{}, modelfleet.Errorf(modelfleet.EINVALID, "model card: a version served by a model server has no validation block: the worker cannot run the server")
		}
	}
	if v := c.Validation; v != nil {
		if v.Data == "" {
			return ModelCard{}, modelfleet.Errorf(modelfleet.EINVALID, "model card: validation.data is required when validation is declared")
		}
		spec := modelfleet.ValidationSpec{Metric: v.Metric, Threshold: v.Threshold, DataDigest: "sha256:" + zeros}
		if err := spec.Validate(); err != nil {
			return ModelCard{}, modelfleet.Errorf(modelfleet.EINVALID, "model card: %s", modelfleet.ErrorMessage(err))
		}
	}
	return c, nil
}

var zeros = fmt.Sprintf("%064d", 0)

// ReadModelCard reads and parses the card at path.
func ReadModelCard(path string) (ModelCard, error) {
	f, err := os.Open(path)
	if err != nil {
		return ModelCard{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCardBytes+1))
	if err != nil {
		return ModelCard{}, fmt.Errorf("read %s: %w", path, err)
	}
	c, err := ParseModelCard(data)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if c.Validation != nil && !filepath.IsAbs(c.Validation.Data) {
		c.Validation.Data = filepath.Join(filepath.Dir(path), c.Validation.Data)
	}
	return c, nil
}
