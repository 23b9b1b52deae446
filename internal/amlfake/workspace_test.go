package amlfake_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet/internal/amlfake"
)

func status(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// Failures and counts match a call by whole words and path segments; a
// failure is met once, and its hook may change the workspace; another
// workspace's resources are not there.
func TestCallsAndFailures(t *testing.T) {
	w := amlfake.New()
	c, err := ml.NewModelVersionsClient(amlfake.SubscriptionID, &azfake.TokenCredential{}, w.ClientOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	get := func(rg, version string) error {
		_, err := c.Get(ctx, rg, amlfake.Name, "m", version, nil)
		return err
	}
	body := ml.ModelVersion{Properties: &ml.ModelVersionProperties{ModelURI: to.Ptr("azureml://datastores/d/paths/m")}}
	w.PutModelVersion("m", "1", body)
	w.PutModelVersion("m", "10", body)

	w.FailNext("GET model m/1", http.StatusBadRequest)
	if err := get(amlfake.ResourceGroup, "10"); err != nil {
		t.Errorf("m/10 met the failure set for m/1: %v", err)
	}
	if err := get(amlfake.ResourceGroup, "1"); status(err) != http.StatusBadRequest {
		t.Errorf("m/1 = %v, want 400", err)
	}
	if err := get(amlfake.ResourceGroup, "1"); err != nil {
		t.Errorf("m/1 again = %v, want the failure met once", err)
	}
	if err := get("other", "1"); status(err) != http.StatusNotFound {
		t.Errorf("another resource group: %v, want 404", err)
	}
	for call, want := range map[string]int{"GET model m/1": 3, "GET model m": 4, "GET": 4, "GET model m/10": 1, "GET model m/": 0, "PUT": 0} {
		if n := w.Count(call); n != want {
			t.Errorf("Count(%q) = %d, want %d (calls %q)", call, n, want, w.Calls())
		}
	}

	w.FailNextAfter("PUT model m/2", http.StatusConflict, func() { w.PutModelVersion("m", "2", body) })
	if _, err := c.CreateOrUpdate(ctx, amlfake.ResourceGroup, amlfake.Name, "m", "2", body, nil); status(err) != http.StatusConflict {
		t.Errorf("PUT = %v, want 409", err)
	}
	if mv, ok := w.ModelVersion("m", "2"); !ok || *mv.Name != "2" || !slices.Contains(w.Calls(), "PUT model m/2") {
		t.Errorf("the hook's version: %+v %v; calls %q", mv, ok, w.Calls())
	}
}
