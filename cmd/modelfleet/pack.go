package main

import (
	"fmt"
	"os"

	"github.com/modelfleet/modelfleet/inference/mlflow"
)

// packModelDir packs a model directory (an external model server's model
// repository) into a temporary file it returns: the archive an oip
// version's artifact is, made as an MLflow directory's is (mlflow.ArchiveDir:
// a tar of the regular files, sorted, no times, owners, modes or links), so
// packing the same directory twice gives the same digest, and Azure ML's
// copy of the folder (a triton_model version) packs to the same bytes.
func packModelDir(dir string) (string, error) {
	out, err := os.CreateTemp("", "modelfleet-model-*.tar")
	if err != nil {
		return "", err
	}
	err = mlflow.ArchiveDir(dir, out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", fmt.Errorf("pack %s: %w", dir, err)
	}
	return out.Name(), nil
}
