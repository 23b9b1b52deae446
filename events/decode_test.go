package events

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	ctJSON       = "application/json; charset=utf-8"
	ctCloud      = "application/cloudevents+json; charset=utf-8"
	ctCloudBatch = "application/cloudevents-batch+json; charset=utf-8"
)

func TestDecodeSamples(t *testing.T) {
	tests := []struct {
		file, contentType         string
		n                         int
		schema, id, typ, subject  string
		source, dataVersion, time string
	}{
		{"eventgrid_model_registered.json", ctJSON, 1, SchemaEventGrid, "3b73ee51-bbf4-480d-9112-cfc23b41bfdb",
			modelfleet.EventModelRegistered, "models/sklearn_regression_model:3",
			"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mlops-rg/providers/Microsoft.MachineLearningServices/workspaces/factory-ws",
			"2", "2019-10-17T22:23:57.5350054Z"},
		{"eventgrid_model_registered_sample.json", "", 1, SchemaEventGrid, "831e1650-001e-001b-66ab-eeb76e069631",
			modelfleet.EventModelRegistered, "models/sklearn_regression_model:20", "", "2", "2017-06-26T18:41:00.9584103Z"},
		{"cloudevents_model_registered_sample.json", ctCloudBatch, 1, SchemaCloudEvents, "831e1650-001e-001b-66ab-eeb76e069631",
			modelfleet.EventModelRegistered, "models/sklearn_regression_model:20", "", "", "2017-06-26T18:41:00.9584103Z"},
		// Plain JSON with "specversion" is sniffed as CloudEvents.
		{"cloudevents_model_registered_sample.json", ctJSON, 1, SchemaCloudEvents, "831e1650-001e-001b-66ab-eeb76e069631",
			modelfleet.EventModelRegistered, "models/sklearn_regression_model:20", "", "", "2017-06-26T18:41:00.9584103Z"},
		{"cloudevent_model_registered.json", ctCloud, 1, SchemaCloudEvents, "9d0f3a5e-5b1e-4c4b-8f57-2f0b6c9d1e21",
			modelfleet.EventModelRegistered, "models/churn-lgbm:7", "", "", "2026-03-02T09:15:00Z"},
		{"subscription_validation.json", ctJSON, 1, SchemaEventGrid, "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
			EventSubscriptionValidation, "", "", "1", "2018-01-25T22:12:19.4556811Z"},
		{"eventgrid_model_deployed.json", ctJSON, 1, SchemaEventGrid, "40d0b167-be44-477b-9d23-a2befba7cde0",
			modelfleet.EventModelDeployed, "endpoints/aciservice1", "", "2", "2019-10-23T18:20:08.8824474Z"},
		{"eventgrid_run_completed.json", ctJSON, 1, SchemaEventGrid, "044ac44d-462c-4043-99eb-d9e01dc760ab",
			modelfleet.EventRunCompleted, "experiments/0fa9dfaa-cba3-4fa7-b590-23e48548f5c1/runs/AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc", "", "2", "2019-10-18T19:29:55.8856038Z"},
		{"eventgrid_run_status_changed.json", ctJSON, 1, SchemaEventGrid, "aa8cd7df-fe28-5d5d-9b40-3342dbc2a887",
			modelfleet.EventRunStatusChanged, "experiments/0fa9dfaa-cba3-4fa7-b590-23e48548f5c1/runs/AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc", "", "2", "2020-03-09T23:53:04.4579724Z"},
		{"eventgrid_dataset_drift_detected.json", ctJSON, 1, SchemaEventGrid, "2684de79-b145-4dcf-ad2e-6a1db798585f",
			modelfleet.EventDatasetDriftDetected, "datadrift/01d29aa4-e6a4-470a-9ef3-66660d21f8ef/run/01d29aa4-e6a4-470a-9ef3-66660d21f8ef_1571590300380", "", "2", "2019-10-20T17:08:08.467191Z"},
		{"eventgrid_batch.json", ctJSON, 3, SchemaEventGrid, "batch-1",
			modelfleet.EventModelRegistered, "models/churn-lgbm:7", "", "2", "2026-03-02T09:15:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.contentType, func(t *testing.T) {
			evs, err := Decode(load(t, tt.file), tt.contentType)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got, want := len(evs), tt.n; got != want {
				t.Fatalf("len = %d, want %d", got, want)
			}
			ev := evs[0]
			if got, want := ev.Schema, tt.schema; got != want {
				t.Errorf("Schema = %q, want %q", got, want)
			}
			if got, want := ev.ID, tt.id; got != want {
				t.Errorf("ID = %q, want %q", got, want)
			}
			if got, want := ev.Type, tt.typ; got != want {
				t.Errorf("Type = %q, want %q", got, want)
			}
			if got, want := ev.Subject, tt.subject; got != want {
				t.Errorf("Subject = %q, want %q", got, want)
			}
			if tt.source != "" {
				if got, want := ev.Source, tt.source; got != want {
					t.Errorf("Source = %q, want %q", got, want)
				}
			} else if ev.Source == "" {
				t.Errorf("Source is empty")
			}
			if got, want := ev.DataVersion, tt.dataVersion; got != want {
				t.Errorf("DataVersion = %q, want %q", got, want)
			}
			if got, want := ev.Time.UTC().Format(time.RFC3339Nano), tt.time; got != want {
				t.Errorf("Time = %s, want %s", got, want)
			}
			if !json.Valid(ev.Data) || ev.Data[0] != '{' {
				t.Errorf("Data = %s, want a JSON object", ev.Data)
			}
		})
	}
}

func TestDecodeVariants(t *testing.T) {
	const eg = `{"id":"1","eventType":"T","subject":"s","eventTime":"2026-01-02T03:04:05Z","data":{"a":1}}`
	const ce = `{"specversion":"1.0","id":"1","source":"/src","type":"T","data":{"a":1}}`
	tests := []struct {
		name, body, contentType string
		check                   func(t *testing.T, evs []Event)
	}{
		{"event grid single object", eg, ctJSON, func(t *testing.T, evs []Event) {
			if got, want := evs[0].Schema, SchemaEventGrid; got != want {
				t.Errorf("Schema = %q, want %q", got, want)
			}
		}},
		{"text/json", "[" + eg + "]", "text/json", nil},
		{"no content type, cloud event sniffed", ce, "", func(t *testing.T, evs []Event) {
			if got, want := evs[0].Schema, SchemaCloudEvents; got != want {
				t.Errorf("Schema = %q, want %q", got, want)
			}
			if !evs[0].Time.IsZero() {
				t.Errorf("Time = %v, want zero (time is optional)", evs[0].Time)
			}
		}},
		{"cloudevents batch", "[" + ce + "," + ce + "]", ctCloudBatch, func(t *testing.T, evs []Event) {
			if got, want := len(evs), 2; got != want {
				t.Errorf("len = %d, want %d", got, want)
			}
		}},
		{"cloud event without subject", ce, ctCloud, func(t *testing.T, evs []Event) {
			if got, want := evs[0].Source, "/src"; got != want {
				t.Errorf("Source = %q, want %q", got, want)
			}
		}},
		{"data_base64 holding JSON", `{"specversion":"1.0","id":"1","source":"/s","type":"T","data_base64":"eyJhIjoxfQ=="}`, ctCloud, func(t *testing.T, evs []Event) {
			if got, want := string(evs[0].Data), `{"a":1}`; got != want {
				t.Errorf("Data = %s, want %s", got, want)
			}
		}},
		{"data_base64 holding bytes", `{"specversion":"1.0","id":"1","source":"/s","type":"T","data_base64":"AAEC"}`, ctCloud, func(t *testing.T, evs []Event) {
			if got, want := string(evs[0].Data), `"AAEC"`; got != want {
				t.Errorf("Data = %s, want %s", got, want)
			}
		}},
		{"null data", `[{"id":"1","eventType":"T","subject":"s","eventTime":"2026-01-02T03:04:05Z","data":null}]`, ctJSON, func(t *testing.T, evs []Event) {
			if evs[0].Data != nil {
				t.Errorf("Data = %s, want nil", evs[0].Data)
			}
		}},
		{"time without zone is UTC", `[{"id":"1","eventType":"T","subject":"s","eventTime":"2026-01-02T03:04:05.1234567"}]`, ctJSON, func(t *testing.T, evs []Event) {
			if got, want := evs[0].Time, time.Date(2026, 1, 2, 3, 4, 5, 123456700, time.UTC); !got.Equal(want) {
				t.Errorf("Time = %v, want %v", got, want)
			}
		}},
		{"mixed schemas in plain JSON", "[" + eg + "," + ce + "]", ctJSON, func(t *testing.T, evs []Event) {
			if got, want := evs[0].Schema+","+evs[1].Schema, SchemaEventGrid+","+SchemaCloudEvents; got != want {
				t.Errorf("schemas = %s, want %s", got, want)
			}
		}},
		{"exactly MaxBatchEvents", "[" + strings.Repeat(eg+",", MaxBatchEvents-1) + eg + "]", ctJSON, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := Decode([]byte(tt.body), tt.contentType)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if tt.check != nil {
				tt.check(t, evs)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	const ok = `{"id":"1","eventType":"T","subject":"s","eventTime":"2026-01-02T03:04:05Z"}`
	tests := []struct {
		name, body, contentType string
		code, msg               string // msg: a substring of the error
	}{
		{"empty body", "", ctJSON, modelfleet.EINVALID, "the body is empty"},
		{"blank body", " \n", ctJSON, modelfleet.EINVALID, "the body is empty"},
		{"not JSON", "hello", ctJSON, modelfleet.EINVALID, "not valid JSON"},
		{"truncated array", "[" + ok, ctJSON, modelfleet.EINVALID, "not valid JSON"},
		{"trailing garbage", "[" + ok + "] x", ctJSON, modelfleet.EINVALID, "not valid JSON"},
		{"JSON null", "null", ctJSON, modelfleet.EINVALID, "must be a JSON array of events or one event object"},
		{"JSON number", "42", ctJSON, modelfleet.EINVALID, "must be a JSON array"},
		{"empty batch", "[]", ctJSON, modelfleet.EINVALID, "the batch holds no events"},
		{"element is a number", "[1]", ctJSON, modelfleet.EINVALID, "event[0]: must be a JSON object"},
		{"element is null", "[" + ok + ",null]", ctJSON, modelfleet.EINVALID, "event[1]: must be a JSON object"},
		{"missing id", `[{"eventType":"T","subject":"s","eventTime":"2026-01-02T03:04:05Z"}]`, ctJSON, modelfleet.EINVALID, `event[0]: missing "id"`},
		{"empty id", `[{"id":"","eventType":"T","subject":"s","eventTime":"2026-01-02T03:04:05Z"}]`, ctJSON, modelfleet.EINVALID, `event[0]: missing "id"`},
		{"id not a string", `[{"id":7,"eventType":"T","subject":"s","eventTime":"2026-01-02T03:04:05Z"}]`, ctJSON, modelfleet.EINVALID, `event[0]: "id" must be a string`},
		{"missing eventType", "[" + ok + "," + ok + `,{"id":"3","subject":"s","eventTime":"2026-01-02T03:04:05Z"}]`, ctJSON, modelfleet.EINVALID, `event[2]: missing "eventType"`},
		{"missing subject", `[{"id":"1","eventType":"T","eventTime":"2026-01-02T03:04:05Z"}]`, ctJSON, modelfleet.EINVALID, `event[0]: missing "subject"`},
		{"null subject", `[{"id":"1","eventType":"T","subject":null,"eventTime":"2026-01-02T03:04:05Z"}]`, ctJSON, modelfleet.EINVALID, `event[0]: missing "subject"`},
		{"missing eventTime", `[{"id":"1","eventType":"T","subject":"s"}]`, ctJSON, modelfleet.EINVALID, `event[0]: missing "eventTime"`},
		{"bad eventTime", `[{"id":"1","eventType":"T","subject":"s","eventTime":"yesterday"}]`, ctJSON, modelfleet.EINVALID, `event[0]: "eventTime" is "yesterday": want an RFC 3339 time`},
		{"topic not a string", `[{"id":"1","eventType":"T","subject":"s","eventTime":"2026-01-02T03:04:05Z","topic":{}}]`, ctJSON, modelfleet.EINVALID, `event[0]: "topic" must be a string`},
		{"cloud: wrong specversion", `{"specversion":"0.3","id":"1","source":"/s","type":"T"}`, ctCloud, modelfleet.EINVALID, `event[0]: "specversion" is "0.3": only "1.0" is supported`},
		{"cloud: specversion not a string", `{"specversion":1.0,"id":"1","source":"/s","type":"T"}`, ctCloud, modelfleet.EINVALID, `event[0]: "specversion" must be a string`},
		{"cloud: missing specversion", `{"id":"1","source":"/s","type":"T"}`, ctCloud, modelfleet.EINVALID, `event[0]: missing "specversion"`},
		{"cloud: missing id", `{"specversion":"1.0","source":"/s","type":"T"}`, ctCloud, modelfleet.EINVALID, `event[0]: missing "id"`},
		{"cloud: missing source", `[{"specversion":"1.0","id":"1","type":"T"}]`, ctCloudBatch, modelfleet.EINVALID, `event[0]: missing "source"`},
		{"cloud: missing type", `{"specversion":"1.0","id":"1","source":"/s"}`, "", modelfleet.EINVALID, `event[0]: missing "type"`},
		{"cloud: bad time", `{"specversion":"1.0","id":"1","source":"/s","type":"T","time":"2026-13-01T00:00:00Z"}`, ctCloud, modelfleet.EINVALID, `event[0]: "time" is "2026-13-01T00:00:00Z"`},
		{"cloud: data and data_base64", `{"specversion":"1.0","id":"1","source":"/s","type":"T","data":{},"data_base64":"e30="}`, ctCloud, modelfleet.EINVALID, `"data" and "data_base64" are mutually exclusive`},
		{"cloud: bad base64", `{"specversion":"1.0","id":"1","source":"/s","type":"T","data_base64":"!!"}`, ctCloud, modelfleet.EINVALID, `"data_base64" is not valid base64`},
		{"too many events", "[" + strings.Repeat(ok+",", MaxBatchEvents) + ok + "]", ctJSON, modelfleet.ETOOLARGE, "the batch holds 5001 events: at most 5000 are accepted"},
		{"long value is clipped", `[{"id":"1","eventType":"T","subject":"s","eventTime":"` + strings.Repeat("x", 1000) + `"}]`, ctJSON, modelfleet.EINVALID, strings.Repeat("x", 64) + `..."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body), tt.contentType)
			if err == nil {
				t.Fatal("Decode succeeded, want an error")
			}
			if got, want := modelfleet.ErrorCode(err), tt.code; got != want {
				t.Errorf("code = %q, want %q (%v)", got, want, err)
			}
			if got := modelfleet.ErrorMessage(err); !strings.Contains(got, tt.msg) {
				t.Errorf("message = %q, want it to contain %q", got, tt.msg)
			}
			if errors.Is(err, ErrUnsupportedMediaType) {
				t.Errorf("error %v wraps ErrUnsupportedMediaType", err)
			}
		})
	}
}

func TestDecodeUnsupportedMediaType(t *testing.T) {
	body := load(t, "eventgrid_model_registered.json")
	for _, ct := range []string{"text/plain", "application/xml", "application/json; charset=latin1", "multipart/form-data; boundary", ";;"} {
		t.Run(ct, func(t *testing.T) {
			_, err := Decode(body, ct)
			if !errors.Is(err, ErrUnsupportedMediaType) {
				t.Fatalf("Decode error = %v, want ErrUnsupportedMediaType", err)
			}
			if got, want := modelfleet.ErrorCode(err), modelfleet.EINVALID; got != want {
				t.Errorf("code = %q, want %q", got, want)
			}
		})
	}
}
