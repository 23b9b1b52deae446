package training

import (
	"bytes"
	"errors"
	"io"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
)

// ParsePolicies reads policies from YAML (or JSON) and validates them.
//
//	models:
//	  bearing-failure:
//	    compute: {kind: local}
//	    command: go run ./examples/bearing-failure/train -data ${{inputs.data}} -out ${{outputs.model}}
//	  press-anomaly:
//	    compute:
//	      kind: azureml-edge
//	      computeId: /subscriptions/.../workspaces/ws/computes/arc-plant-a
//	    command: python train.py --data ${{inputs.data}} --out ${{outputs.model}}
//	    environment: azureml:lightgbm-train:3
//	    data: azureml://datastores/plant_a/paths/press/labelled/
func ParsePolicies(data []byte) (modelfleet.TrainingPolicies, error) {
	var ps modelfleet.TrainingPolicies
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&ps); err != nil && !errors.Is(err, io.EOF) {
		return modelfleet.TrainingPolicies{}, modelfleet.Errorf(modelfleet.EINVALID, "retraining policies: %v", err)
	}
	return ps, ps.Validate()
}
