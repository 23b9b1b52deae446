package amlfake

import (
	"context"
	"maps"
	"net/http"
	"slices"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4/fake"
)

// PutModelVersion stores a model version as if it had been registered,
// replacing any of that name: Name, ID and SystemData are set as the
// service sets them.
func (w *Workspace) PutModelVersion(model, version string, mv ml.ModelVersion) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.putModelVersion(model, version, mv)
}

func (w *Workspace) putModelVersion(model, version string, mv ml.ModelVersion) {
	if w.models[model] == nil {
		w.models[model] = map[string]ml.ModelVersion{}
	}
	mv.Name = to.Ptr(version)
	mv.ID = to.Ptr(resourcePrefix + "/models/" + model + "/versions/" + version)
	mv.SystemData = &ml.SystemData{CreatedAt: to.Ptr(CreatedAt)}
	w.models[model][version] = mv
}

// ModelVersion returns a stored model version.
func (w *Workspace) ModelVersion(model, version string) (ml.ModelVersion, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	mv, ok := w.models[model][version]
	return mv, ok
}

// SetDatastore adds or replaces a datastore.
func (w *Workspace) SetDatastore(name string, p ml.DatastorePropertiesClassification) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.datastores[name] = p
}

func (w *Workspace) modelContainersServer() fake.ModelContainersServer {
	return fake.ModelContainersServer{
		NewListPager: func(rg, ws string, _ *ml.ModelContainersClientListOptions) (resp azfake.PagerResponder[ml.ModelContainersClientListResponse]) {
			if s, code := w.call(rg, ws, "LIST models"); s != 0 {
				resp.AddResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			names := slices.Sorted(maps.Keys(w.models))
			// One container a page: the client must follow the pages.
			for _, n := range names {
				resp.AddPage(http.StatusOK, ml.ModelContainersClientListResponse{ModelContainerResourceArmPaginatedResult: ml.ModelContainerResourceArmPaginatedResult{
					Value: []*ml.ModelContainer{{Name: to.Ptr(n), Properties: &ml.ModelContainerProperties{}}}}}, nil)
			}
			if len(names) == 0 {
				resp.AddPage(http.StatusOK, ml.ModelContainersClientListResponse{}, nil)
			}
			return
		},
	}
}

func (w *Workspace) modelVersionsServer() fake.ModelVersionsServer {
	return fake.ModelVersionsServer{
		Get: func(_ context.Context, rg, ws, name, version string, _ *ml.ModelVersionsClientGetOptions) (resp azfake.Responder[ml.ModelVersionsClientGetResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "GET model "+name+"/"+version); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			mv, ok := w.models[name][version]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, errUser)
				return
			}
			resp.SetResponse(http.StatusOK, ml.ModelVersionsClientGetResponse{ModelVersion: mv}, nil)
			return
		},
		CreateOrUpdate: func(_ context.Context, rg, ws, name, version string, body ml.ModelVersion, _ *ml.ModelVersionsClientCreateOrUpdateOptions) (resp azfake.Responder[ml.ModelVersionsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "PUT model "+name+"/"+version); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if body.Properties == nil || body.Properties.ModelURI == nil {
				errResp.SetResponseError(http.StatusBadRequest, errUser)
				return
			}
			if _, ok := w.models[name][version]; ok {
				// Azure ML's versions are immutable but for tags.
				errResp.SetResponseError(http.StatusConflict, errUser)
				return
			}
			w.putModelVersion(name, version, body)
			resp.SetResponse(http.StatusCreated, ml.ModelVersionsClientCreateOrUpdateResponse{ModelVersion: w.models[name][version]}, nil)
			return
		},
		NewListPager: func(rg, ws, name string, _ *ml.ModelVersionsClientListOptions) (resp azfake.PagerResponder[ml.ModelVersionsClientListResponse]) {
			if s, code := w.call(rg, ws, "LIST versions "+name); s != 0 {
				resp.AddResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			// In the order of their names ("1", "10", "2"): the client sorts.
			var page []*ml.ModelVersion
			for _, v := range slices.Sorted(maps.Keys(w.models[name])) {
				page = append(page, to.Ptr(w.models[name][v]))
			}
			resp.AddPage(http.StatusOK, ml.ModelVersionsClientListResponse{ModelVersionResourceArmPaginatedResult: ml.ModelVersionResourceArmPaginatedResult{Value: page}}, nil)
			return
		},
	}
}

func (w *Workspace) datastoresServer() fake.DatastoresServer {
	return fake.DatastoresServer{
		Get: func(_ context.Context, rg, ws, name string, _ *ml.DatastoresClientGetOptions) (resp azfake.Responder[ml.DatastoresClientGetResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "GET datastore "+name); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			d, ok := w.datastores[name]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, errUser)
				return
			}
			resp.SetResponse(http.StatusOK, ml.DatastoresClientGetResponse{Datastore: ml.Datastore{Name: to.Ptr(name), Properties: d}}, nil)
			return
		},
	}
}
