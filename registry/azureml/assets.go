package azureml

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/azureblob"
	"github.com/modelfleet/modelfleet/inference/mlflow"
)

// Azure ML's model asset types (a model version's modelType).
const (
	AssetCustom = "custom_model" // a file, or a folder with one model file in it
	AssetMLflow = "mlflow_model" // a folder holding MLmodel
	AssetTriton = "triton_model" // a Triton model repository
)

// tritonNeedsServer is what a triton_model version lacks without its
// server block.
const tritonNeedsServer = `asset type triton_model is served by an Open Inference Protocol server at the sites: set the version's property "modelfleet.server" to its server block, e.g. {"name":"triton","model":"<model name in the repository>","task":"binary"} (docs/models.md, "External model servers")`

// tritonConfig is the file every model of a Triton model repository has.
const tritonConfig = "config.pbtxt"

// modelFiles are the names a model file in a custom_model folder may have:
// LightGBM text, XGBoost JSON or UBJSON, ONNX.
var modelFiles = []string{".txt", ".lgb", ".json", ".ubj", ".onnx"}

// assetURL is the artifact URL a version of asset type t at modelURI is
// downloaded from: a folder URL (ending in "/") for an mlflow_model, and
// for a custom_model folder with no modelfleet.artifact property; the file
// otherwise.
func assetURL(t, modelURI, artifact string) string {
	switch {
	case artifact != "" && modelURI != "":
		return strings.TrimRight(modelURI, "/") + "/" + strings.TrimLeft(artifact, "/")
	case (t == AssetMLflow || t == AssetTriton) && modelURI != "":
		return strings.TrimRight(modelURI, "/") + "/"
	}
	return modelURI
}

// downloadFolder downloads the folder at rawURL (ending in "/"): an MLflow
// model (MLmodel at its top) as the archive mlflow.Pack makes of it, or
// the one model file of a custom_model folder. The bytes must hash to
// digest; they are written to w only then.
func (r *Registry) downloadFolder(ctx context.Context, rawURL, digest string, w io.Writer) (int64, error) {
	u, err := r.blobURL(ctx, strings.TrimRight(rawURL, "/")) // an azureml:// path names a file
	if err != nil {
		return 0, err
	}
	container, prefix, err := azureblob.SplitFolder(u + "/")
	if err != nil {
		return 0, err
	}
	blobs, err := r.blobs.c.List(ctx, container, prefix, mlflow.MaxEntries)
	if err != nil {
		return 0, r.err("download "+redact(rawURL), err)
	}
	var names []string
	sizes := map[string]int64{}
	for _, b := range blobs {
		name := strings.TrimPrefix(b.Name, prefix)
		if name == "" || strings.HasSuffix(name, "/") {
			continue // a folder marker (ADLS Gen2)
		}
		names = append(names, name)
		sizes[name] = b.Size
	}
	if len(names) == 0 {
		return 0, modelfleet.Errorf(modelfleet.ENOTFOUND, "azure ml registry: download %s: the folder is empty or does not exist", redact(rawURL))
	}
	get := func(name string, limit int64) ([]byte, error) {
		if sizes[name] > limit {
			return nil, modelfleet.Errorf(modelfleet.ETOOLARGE, "azure ml registry: download %s: %q is %d bytes, more than %d", redact(rawURL), name, sizes[name], limit)
		}
		var buf bytes.Buffer
		if _, err := r.blobs.c.Get(ctx, container+"/"+azureblob.EscapePath(prefix+name), limit, &buf); err != nil {
			return nil, r.err(fmt.Sprintf("download %s: %q", redact(rawURL), name), err)
		}
		return buf.Bytes(), nil
	}
	var data []byte
	// A Triton model repository (a config.pbtxt in it; a triton_model
	// version) is archived whole, as `modelfleet model register --file
	// <dir>` archives a model directory: the same files, the same bytes.
	triton := slices.ContainsFunc(names, func(n string) bool { return n == tritonConfig || strings.HasSuffix(n, "/"+tritonConfig) })
	if slices.Contains(names, mlflow.MLmodelFile) || triton {
		var files []mlflow.File
		var total int64
		for _, name := range names {
			if total += sizes[name]; total > mlflow.MaxArchiveBytes {
				return 0, modelfleet.Errorf(modelfleet.ETOOLARGE, "azure ml registry: download %s: the model folder holds more than %d bytes", redact(rawURL), mlflow.MaxArchiveBytes)
			}
			b, err := get(name, mlflow.MaxFileBytes)
			if err != nil {
				return 0, err
			}
			files = append(files, mlflow.File{Name: name, Data: b})
		}
		var buf bytes.Buffer
		pack := mlflow.Pack
		if triton && !slices.Contains(names, mlflow.MLmodelFile) {
			pack = mlflow.Archive
		}
		if err := pack(files, &buf); err != nil {
			return 0, modelfleet.Errorf(modelfleet.EINVALID, "azure ml registry: download %s: model folder: %v", redact(rawURL), err)
		}
		data = buf.Bytes()
	} else {
		var candidates []string
		for _, name := range names {
			if slices.Contains(modelFiles, path.Ext(name)) {
				candidates = append(candidates, name)
			}
		}
		if len(candidates) != 1 {
			return 0, modelfleet.Errorf(modelfleet.EINVALID, "azure ml registry: download %s: the custom_model folder holds %d model files (%s) among %q: want exactly one (%s), or set the %q property to the one to release",
				redact(rawURL), len(candidates), strings.Join(candidates, ", "), names, strings.Join(modelFiles, ", "), PropArtifact)
		}
		if data, err = get(candidates[0], mlflow.MaxArchiveBytes); err != nil {
			return 0, err
		}
	}
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return 0, fmt.Errorf("azure ml registry: download %s: %w: got %s, want %s", redact(rawURL), ErrDigestMismatch, got, digest)
	}
	n, err := w.Write(data)
	return int64(n), err
}
