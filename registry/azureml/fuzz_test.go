package azureml

import (
	"encoding/json"
	"maps"
	"reflect"
	"testing"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
)

// FuzzToModel maps any model version body Azure ML could answer (the
// SDK's JSON decoding, then ours). What the strict mapping (a release)
// accepts is a valid model, maps leniently (an inventory) to the same
// model, and survives the way back: the version fromModel would create for
// it maps to the same model again.
func FuzzToModel(f *testing.F) {
	f.Add([]byte(`{"name":"3","properties":{"modelUri":"azureml://datastores/d/paths/m/","properties":{
		"modelfleet.digest":"sha256:00000000000000000000000000000000000000000000000000000000000000aa","modelfleet.format":"lightgbm",
		"modelfleet.size":"12","modelfleet.features":"[\"a\",\"b\"]","modelfleet.artifact":"model.txt","owner":"ml"},"tags":{"team":"x"}},
		"systemData":{"createdAt":"2026-01-02T03:04:05Z","createdBy":"alice@example.com"}}`))
	f.Add([]byte(`{"properties":{"modelUri":"https://b/m.onnx","properties":{"modelfleet.digest":"sha256:00000000000000000000000000000000000000000000000000000000000000aa",
		"modelfleet.format":"onnx","modelfleet.validation.uri":"https://b/v.csv","modelfleet.validation.digest":"sha256:00000000000000000000000000000000000000000000000000000000000000bb",
		"modelfleet.validation.metric":"auc","modelfleet.validation.threshold":"0.8"}}}`))
	f.Add([]byte(`{"properties":{"properties":{"modelfleet.size":"-1","modelfleet.features":"{"}}}`))
	f.Add([]byte(`{"properties":null}`))
	f.Add([]byte(`{"properties":{"modelType":"mlflow_model","modelUri":"azureml://datastores/d/paths/runs/1/model","properties":{"modelfleet.digest":"sha256:00000000000000000000000000000000000000000000000000000000000000aa"}}}`))
	f.Add([]byte(`{"properties":{"modelType":"triton_model","modelUri":"azureml://datastores/d/paths/t/","properties":{"modelfleet.digest":"sha256:00000000000000000000000000000000000000000000000000000000000000aa"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var mv ml.ModelVersion
		if json.Unmarshal(body, &mv) != nil {
			return
		}
		m, err := toModel("m", "3", mv, true)
		if err != nil {
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("a refusal that is not invalid input: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("strict mapping accepted an invalid model: %v", err)
		}
		if lenient, err := toModel("m", "3", mv, false); err != nil || !reflect.DeepEqual(lenient, m) {
			t.Fatalf("lenient mapping differs: %+v, %v", lenient, err)
		}
		back, err := fromModel(m, m.ArtifactURL)
		if err != nil {
			t.Fatal(err)
		}
		// The way back through JSON, as Azure ML would store and answer it.
		b, err := json.Marshal(back)
		if err != nil {
			t.Fatal(err)
		}
		var stored ml.ModelVersion
		if err := json.Unmarshal(b, &stored); err != nil {
			t.Fatal(err)
		}
		again, err := toModel("m", "3", stored, true)
		if err != nil {
			t.Fatalf("the version created for %+v is refused: %v", m, err)
		}
		// Who registered it and when are Azure ML's (systemData), not
		// carried by the version modelfleet creates.
		want := m
		want.CreatedAt = ""
		want.Properties = maps.Clone(m.Properties)
		delete(want.Properties, modelfleet.PropRegisteredBy)
		if len(want.Properties) == 0 {
			want.Properties = nil
		}
		if len(want.Tags) == 0 {
			want.Tags = nil
		}
		if len(again.Tags) == 0 {
			again.Tags = nil
		}
		if !reflect.DeepEqual(again, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", again, want)
		}
	})
}
