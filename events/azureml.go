package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azsystemevents"

	"github.com/modelfleet/modelfleet"
)

// ModelRegistered is what a release needs from a ModelRegistered event.
type ModelRegistered struct {
	Model      modelfleet.ModelRef
	Tags       map[string]string
	Properties map[string]string
}

// DecodeModelRegistered reads the data of a ModelRegistered event. Besides
// the documented schema it accepts the shape of Microsoft's published
// samples: PascalCase keys ("ModelName") and a numeric "ModelVersion" (20).
// Tag and property values of any JSON type become strings (numbers keep
// their literal text, objects and arrays their compact JSON). Errors are
// EINVALID: retrying cannot fix the data.
func DecodeModelRegistered(ev Event) (ModelRegistered, error) {
	const what = "ModelRegistered"
	m, err := dataObject(ev, modelfleet.EventModelRegistered, what)
	if err != nil {
		return ModelRegistered{}, err
	}
	var d azsystemevents.MachineLearningServicesModelRegisteredEventData
	err = check(m, &d, []string{"modelName", "modelVersion"}, []string{"modelTags", "modelProperties"})
	if err == nil {
		err = required("modelName", d.ModelName, "modelVersion", d.ModelVersion)
	}
	if err != nil {
		return ModelRegistered{}, dataError(what, err)
	}
	out := ModelRegistered{
		Model:      modelfleet.ModelRef{Name: *d.ModelName, Version: *d.ModelVersion},
		Tags:       stringMap(m["modelTags"]),
		Properties: stringMap(m["modelProperties"]),
	}
	if err := out.Model.Validate(); err != nil {
		return ModelRegistered{}, dataError(what, fmt.Errorf("%s", modelfleet.ErrorMessage(err)))
	}
	return out, nil
}

// ModelDeployed is an Azure ML deployment of models to a service; modelfleet
// records it for audit only.
type ModelDeployed struct {
	ServiceName        string
	ServiceComputeType string
	Models             []modelfleet.ModelRef // from "modelIds": "name:version,..."
	Tags               map[string]string
	Properties         map[string]string
}

// DecodeModelDeployed reads the data of a ModelDeployed event.
func DecodeModelDeployed(ev Event) (ModelDeployed, error) {
	const what = "ModelDeployed"
	m, err := dataObject(ev, modelfleet.EventModelDeployed, what)
	if err != nil {
		return ModelDeployed{}, err
	}
	var d azsystemevents.MachineLearningServicesModelDeployedEventData
	err = check(m, &d, []string{"serviceName", "serviceComputeType", "modelIds"}, []string{"serviceTags", "serviceProperties"})
	if err == nil {
		err = required("serviceName", d.ServiceName)
	}
	if err != nil {
		return ModelDeployed{}, dataError(what, err)
	}
	out := ModelDeployed{
		ServiceName:        *d.ServiceName,
		ServiceComputeType: deref(d.ServiceComputeType),
		Tags:               stringMap(m["serviceTags"]),
		Properties:         stringMap(m["serviceProperties"]),
	}
	for id := range strings.SplitSeq(deref(d.ModelIDs), ",") {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		i := strings.LastIndexByte(id, ':')
		if i < 0 {
			return ModelDeployed{}, dataError(what, fmt.Errorf("model id %q is not name:version", clip(id)))
		}
		ref := modelfleet.ModelRef{Name: id[:i], Version: id[i+1:]}
		if err := ref.Validate(); err != nil {
			return ModelDeployed{}, dataError(what, fmt.Errorf("%s", modelfleet.ErrorMessage(err)))
		}
		out.Models = append(out.Models, ref)
	}
	return out, nil
}

// Run is an Azure ML run (a training job), as RunCompleted and
// RunStatusChanged events describe it.
type Run struct {
	ExperimentID   string
	ExperimentName string
	RunID          string
	RunType        string
	Status         string // RunStatusChanged only
	Tags           map[string]string
	Properties     map[string]string
}

// DecodeRunCompleted reads the data of a RunCompleted event.
func DecodeRunCompleted(ev Event) (Run, error) {
	const what = "RunCompleted"
	m, err := dataObject(ev, modelfleet.EventRunCompleted, what)
	if err != nil {
		return Run{}, err
	}
	var d azsystemevents.MachineLearningServicesRunCompletedEventData
	err = check(m, &d, []string{"experimentId", "experimentName", "runId", "runType"}, []string{"runTags", "runProperties"})
	if err == nil {
		err = required("runId", d.RunID)
	}
	if err != nil {
		return Run{}, dataError(what, err)
	}
	return Run{
		ExperimentID:   deref(d.ExperimentID),
		ExperimentName: deref(d.ExperimentName),
		RunID:          *d.RunID,
		RunType:        deref(d.RunType),
		Tags:           stringMap(m["runTags"]),
		Properties:     stringMap(m["runProperties"]),
	}, nil
}

// DecodeRunStatusChanged reads the data of a RunStatusChanged event.
func DecodeRunStatusChanged(ev Event) (Run, error) {
	const what = "RunStatusChanged"
	m, err := dataObject(ev, modelfleet.EventRunStatusChanged, what)
	if err != nil {
		return Run{}, err
	}
	var d azsystemevents.MachineLearningServicesRunStatusChangedEventData
	err = check(m, &d, []string{"experimentId", "experimentName", "runId", "runType", "runStatus"}, []string{"runTags", "runProperties"})
	if err == nil {
		err = required("runId", d.RunID, "runStatus", d.RunStatus)
	}
	if err != nil {
		return Run{}, dataError(what, err)
	}
	return Run{
		ExperimentID:   deref(d.ExperimentID),
		ExperimentName: deref(d.ExperimentName),
		RunID:          *d.RunID,
		RunType:        deref(d.RunType),
		Status:         *d.RunStatus,
		Tags:           stringMap(m["runTags"]),
		Properties:     stringMap(m["runProperties"]),
	}, nil
}

// DatasetDrift is a data drift monitor's finding.
type DatasetDrift struct {
	DataDriftID      string
	DataDriftName    string
	RunID            string
	BaseDatasetID    string
	TargetDatasetID  string
	DriftCoefficient float64
	StartTime        time.Time // of the target data's time series
	EndTime          time.Time
}

// DecodeDatasetDriftDetected reads the data of a DatasetDriftDetected event.
func DecodeDatasetDriftDetected(ev Event) (DatasetDrift, error) {
	const what = "DatasetDriftDetected"
	m, err := dataObject(ev, modelfleet.EventDatasetDriftDetected, what)
	if err != nil {
		return DatasetDrift{}, err
	}
	var d azsystemevents.MachineLearningServicesDatasetDriftDetectedEventData
	err = check(m, &d, []string{"dataDriftId", "dataDriftName", "runId", "baseDatasetId", "targetDatasetId"}, nil)
	if err == nil {
		err = required("dataDriftId", d.DataDriftID)
	}
	if err == nil && d.DriftCoefficient == nil {
		err = fmt.Errorf("missing %q", "driftCoefficient")
	}
	if err != nil {
		return DatasetDrift{}, dataError(what, err)
	}
	return DatasetDrift{
		DataDriftID:      *d.DataDriftID,
		DataDriftName:    deref(d.DataDriftName),
		RunID:            deref(d.RunID),
		BaseDatasetID:    deref(d.BaseDatasetID),
		TargetDatasetID:  deref(d.TargetDatasetID),
		DriftCoefficient: *d.DriftCoefficient,
		StartTime:        deref(d.StartTime),
		EndTime:          deref(d.EndTime),
	}, nil
}

// dataObject checks the event type and returns its data as an object with
// camelCase keys: Microsoft's samples publish PascalCase ("ModelName") while
// the schema and the SDK read camelCase ("modelName"). Where both spellings
// are present the camelCase one wins.
func dataObject(ev Event, wantType, what string) (map[string]json.RawMessage, error) {
	if ev.Type != wantType {
		return nil, dataError(what, fmt.Errorf("event type is %q", clip(ev.Type)))
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(ev.Data, &in); err != nil || in == nil {
		return nil, dataError(what, fmt.Errorf("data must be a JSON object"))
	}
	out := make(map[string]json.RawMessage, len(in))
	for k, v := range in {
		c := lowerFirst(k)
		if _, twin := in[c]; twin && c != k {
			continue
		}
		out[c] = v
	}
	return out, nil
}

// sdkData is an azsystemevents data type.
type sdkData interface{ UnmarshalJSON([]byte) error }

// check validates the JSON types of the fields modelfleet reads, so errors
// name the field, then decodes m into the SDK type d. A number where a
// string is due is taken as its literal text ("modelVersion": 20 is "20").
func check(m map[string]json.RawMessage, d sdkData, strs, objects []string) error {
	for _, k := range strs {
		raw := m[k]
		switch {
		case isNull(raw) || raw[0] == '"':
		case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
			m[k], _ = json.Marshal(string(raw))
		default:
			return fmt.Errorf("%q must be a string", k)
		}
	}
	for _, k := range objects {
		if raw := m[k]; !isNull(raw) && raw[0] != '{' {
			return fmt.Errorf("%q must be an object", k)
		}
	}
	norm, err := json.Marshal(m)
	if err == nil {
		err = d.UnmarshalJSON(norm)
	}
	if err != nil {
		return fmt.Errorf("data does not match the Azure ML schema: %v", err)
	}
	return nil
}

// required takes pairs of key and value and reports the first missing one.
func required(kv ...any) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if p, _ := kv[i+1].(*string); p == nil || *p == "" {
			return fmt.Errorf("missing %q", kv[i])
		}
	}
	return nil
}

// stringMap renders an object's values as strings: a string as itself, null
// as "", anything else as its compact JSON.
func stringMap(raw json.RawMessage) map[string]string {
	var in map[string]json.RawMessage
	if isNull(raw) || json.Unmarshal(raw, &in) != nil || in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		var s string
		var b bytes.Buffer
		switch {
		case json.Unmarshal(v, &s) == nil:
		case isNull(v):
		case json.Compact(&b, v) == nil:
			s = b.String()
		default:
			s = string(v)
		}
		out[k] = s
	}
	return out
}

func dataError(what string, err error) error {
	return modelfleet.Errorf(modelfleet.EINVALID, "%s data: %v", what, err)
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func lowerFirst(s string) string {
	if s != "" && s[0] >= 'A' && s[0] <= 'Z' {
		return string(s[0]+'a'-'A') + s[1:]
	}
	return s
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
