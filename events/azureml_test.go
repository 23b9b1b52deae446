package events

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

func first(t *testing.T, file, contentType string) Event {
	t.Helper()
	evs, err := Decode(load(t, file), contentType)
	if err != nil {
		t.Fatalf("Decode(%s): %v", file, err)
	}
	return evs[0]
}

func TestDecodeModelRegistered(t *testing.T) {
	tests := []struct {
		file, contentType string
		want              ModelRegistered
	}{
		{"eventgrid_model_registered.json", ctJSON, ModelRegistered{
			Model:      modelfleet.ModelRef{Name: "sklearn_regression_model", Version: "3"},
			Tags:       map[string]string{"area": "diabetes", "type": "regression"},
			Properties: map[string]string{"area": "test"},
		}},
		// Microsoft's sample: PascalCase keys, numeric version, tag values
		// of every JSON type.
		{"eventgrid_model_registered_sample.json", ctJSON, ModelRegistered{
			Model: modelfleet.ModelRef{Name: "sklearn_regression_model", Version: "20"},
			Tags: map[string]string{"area": "diabetes", "type": "regression", "auc": "0.91", "approved": "true",
				"owners": `["ml-team","ops"]`, "note": ""},
			Properties: map[string]string{"type": "test"},
		}},
		{"cloudevents_model_registered_sample.json", ctCloudBatch, ModelRegistered{
			Model:      modelfleet.ModelRef{Name: "sklearn_regression_model", Version: "20"},
			Tags:       map[string]string{"area": "diabetes", "type": "regression"},
			Properties: map[string]string{"type": "test"},
		}},
		{"cloudevent_model_registered.json", ctCloud, ModelRegistered{
			Model:      modelfleet.ModelRef{Name: "churn-lgbm", Version: "7"},
			Tags:       map[string]string{"stage": "candidate"},
			Properties: map[string]string{"framework": "lightgbm"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := DecodeModelRegistered(first(t, tt.file, tt.contentType))
			if err != nil {
				t.Fatalf("DecodeModelRegistered: %v", err)
			}
			if got, want := got.Model, tt.want.Model; got != want {
				t.Errorf("Model = %v, want %v", got, want)
			}
			if got, want := got.Tags, tt.want.Tags; !maps.Equal(got, want) {
				t.Errorf("Tags = %v, want %v", got, want)
			}
			if got, want := got.Properties, tt.want.Properties; !maps.Equal(got, want) {
				t.Errorf("Properties = %v, want %v", got, want)
			}
		})
	}
}

func registered(data string) Event {
	return Event{ID: "e1", Type: modelfleet.EventModelRegistered, Subject: "models/m:1", Schema: SchemaEventGrid, Data: []byte(data)}
}

func TestDecodeModelRegisteredVariants(t *testing.T) {
	tests := []struct {
		name, data string
		want       modelfleet.ModelRef
	}{
		{"camelCase wins over PascalCase", `{"modelName":"a","ModelName":"b","modelVersion":"1"}`, modelfleet.ModelRef{Name: "a", Version: "1"}},
		{"negative number is its literal, and invalid", `{"modelName":"a","modelVersion":-1}`, modelfleet.ModelRef{}},
		{"decimal version keeps its text", `{"modelName":"a","modelVersion":1.10}`, modelfleet.ModelRef{Name: "a", Version: "1.10"}},
		{"null tags", `{"modelName":"a","modelVersion":"1","modelTags":null}`, modelfleet.ModelRef{Name: "a", Version: "1"}},
		{"spaces around values", `{ "modelName" : "a" , "modelVersion" : 2 , "modelTags" : { "k" : 1 } }`, modelfleet.ModelRef{Name: "a", Version: "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeModelRegistered(registered(tt.data))
			if tt.want == (modelfleet.ModelRef{}) {
				if err == nil {
					t.Fatalf("DecodeModelRegistered = %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeModelRegistered: %v", err)
			}
			if got, want := got.Model, tt.want; got != want {
				t.Errorf("Model = %v, want %v", got, want)
			}
		})
	}
}

func TestDecodeModelRegisteredErrors(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		msg  string
	}{
		{"wrong type", Event{ID: "e1", Type: "Other", Data: []byte(`{}`)}, `ModelRegistered data: event type is "Other"`},
		{"no data", registered(""), "ModelRegistered data: data must be a JSON object"},
		{"data is an array", registered(`[1]`), "data must be a JSON object"},
		{"data is a string", registered(`"x"`), "data must be a JSON object"},
		{"missing modelName", registered(`{"modelVersion":"1"}`), `ModelRegistered data: missing "modelName"`},
		{"empty modelName", registered(`{"modelName":"","modelVersion":"1"}`), `missing "modelName"`},
		{"missing modelVersion", registered(`{"modelName":"a"}`), `missing "modelVersion"`},
		{"modelName is an object", registered(`{"modelName":{},"modelVersion":"1"}`), `"modelName" must be a string`},
		{"modelVersion is a bool", registered(`{"modelName":"a","modelVersion":true}`), `"modelVersion" must be a string`},
		{"modelTags is an array", registered(`{"modelName":"a","modelVersion":"1","modelTags":["x"]}`), `"modelTags" must be an object`},
		{"ModelProperties is a string", registered(`{"ModelName":"a","ModelVersion":1,"ModelProperties":"x"}`), `"modelProperties" must be an object`},
		{"invalid name", registered(`{"modelName":"a b","modelVersion":"1"}`), `ModelRegistered data: model name "a b" is invalid`},
		{"path traversal version", registered(`{"modelName":"a","modelVersion":"1..2"}`), `model version "1..2" is invalid`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeModelRegistered(tt.ev)
			if got, want := modelfleet.ErrorCode(err), modelfleet.EINVALID; got != want {
				t.Fatalf("code = %q, want %q (%v)", got, want, err)
			}
			if got := modelfleet.ErrorMessage(err); !strings.Contains(got, tt.msg) {
				t.Errorf("message = %q, want it to contain %q", got, tt.msg)
			}
		})
	}
}

func TestDecodeModelDeployed(t *testing.T) {
	got, err := DecodeModelDeployed(first(t, "eventgrid_model_deployed.json", ctJSON))
	if err != nil {
		t.Fatalf("DecodeModelDeployed: %v", err)
	}
	if got, want := got.ServiceName, "aciservice1"; got != want {
		t.Errorf("ServiceName = %q, want %q", got, want)
	}
	if got, want := got.ServiceComputeType, "ACI"; got != want {
		t.Errorf("ServiceComputeType = %q, want %q", got, want)
	}
	if got, want := len(got.Models), 2; got != want {
		t.Fatalf("len(Models) = %d, want %d", got, want)
	}
	if got, want := got.Models[1], (modelfleet.ModelRef{Name: "my_second_model", Version: "1"}); got != want {
		t.Errorf("Models[1] = %v, want %v", got, want)
	}
	if got, want := got.Tags["mytag"], "test tag"; got != want {
		t.Errorf("Tags[mytag] = %q, want %q", got, want)
	}
	for _, data := range []string{`{"modelIds":"a:1"}`, `{"serviceName":"s","modelIds":"a"}`, `{"serviceName":"s","modelIds":"a b:1"}`} {
		ev := Event{ID: "e", Type: modelfleet.EventModelDeployed, Data: []byte(data)}
		if _, err := DecodeModelDeployed(ev); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("DecodeModelDeployed(%s) error = %v, want invalid", data, err)
		}
	}
}

func TestDecodeRuns(t *testing.T) {
	done, err := DecodeRunCompleted(first(t, "eventgrid_run_completed.json", ctJSON))
	if err != nil {
		t.Fatalf("DecodeRunCompleted: %v", err)
	}
	if got, want := done.RunID, "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc"; got != want {
		t.Errorf("RunID = %q, want %q", got, want)
	}
	if got, want := done.ExperimentName, "automl-local-regression"; got != want {
		t.Errorf("ExperimentName = %q, want %q", got, want)
	}
	// The SDK's own sample spells it "RunTags".
	if got, want := done.Tags["experiment_status"], "ModelSelection"; got != want {
		t.Errorf("Tags[experiment_status] = %q, want %q", got, want)
	}

	changed, err := DecodeRunStatusChanged(first(t, "eventgrid_run_status_changed.json", ctJSON))
	if err != nil {
		t.Fatalf("DecodeRunStatusChanged: %v", err)
	}
	if got, want := changed.Status, "Running"; got != want {
		t.Errorf("Status = %q, want %q", got, want)
	}
	if got, want := changed.Properties["num_iterations"], "10"; got != want {
		t.Errorf("Properties[num_iterations] = %q, want %q", got, want)
	}

	bad := Event{ID: "e", Type: modelfleet.EventRunStatusChanged, Data: []byte(`{"runId":"r"}`)}
	if _, err := DecodeRunStatusChanged(bad); !strings.Contains(modelfleet.ErrorMessage(err), `missing "runStatus"`) {
		t.Errorf("DecodeRunStatusChanged without status: %v", err)
	}
	bad = Event{ID: "e", Type: modelfleet.EventRunCompleted, Data: []byte(`{"runTags":1}`)}
	if _, err := DecodeRunCompleted(bad); !strings.Contains(modelfleet.ErrorMessage(err), `"runTags" must be an object`) {
		t.Errorf("DecodeRunCompleted with bad tags: %v", err)
	}
}

func TestDecodeDatasetDriftDetected(t *testing.T) {
	got, err := DecodeDatasetDriftDetected(first(t, "eventgrid_dataset_drift_detected.json", ctJSON))
	if err != nil {
		t.Fatalf("DecodeDatasetDriftDetected: %v", err)
	}
	if got, want := got.DataDriftName, "driftMonitor3"; got != want {
		t.Errorf("DataDriftName = %q, want %q", got, want)
	}
	if got, want := got.DriftCoefficient, 0.8350349068479208; got != want {
		t.Errorf("DriftCoefficient = %v, want %v", got, want)
	}
	if got, want := got.TargetDatasetID, "d7e74d2e-c972-4266-b5fb-6c9c182d2a74"; got != want {
		t.Errorf("TargetDatasetID = %q, want %q", got, want)
	}
	if got, want := got.EndTime, time.Date(2019, 7, 5, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("EndTime = %v, want %v", got, want)
	}
	for _, data := range []string{`{"driftCoefficient":0.5}`, `{"dataDriftId":"d"}`, `{"dataDriftId":"d","driftCoefficient":"high"}`, `{"dataDriftId":"d","driftCoefficient":1,"startTime":"soon"}`} {
		ev := Event{ID: "e", Type: modelfleet.EventDatasetDriftDetected, Data: []byte(data)}
		if _, err := DecodeDatasetDriftDetected(ev); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("DecodeDatasetDriftDetected(%s) error = %v, want invalid", data, err)
		}
	}
}
