package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/inference/mlflow"
)

// packMLflow packs the MLflow model directory dir into tmp and returns the
// archive's path. It loads the archive as the validator will, so a package
// the edge cannot serve (a pickle, a flavour it does not read, a signature
// that disagrees with the model file) is refused before anything is
// registered; a card without features takes the signature's names.
func packMLflow(dir, tmp string, m *modelfleet.Model) (string, error) {
	path := filepath.Join(tmp, filepath.Base(dir)+".mlflow.tar")
	digest, err := packTo(dir, path)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	model, err := inference.Load(m.Format, data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", dir, err)
	}
	if len(m.Features) == 0 {
		names := model.FeatureNames()
		if inference.Unnamed(names) {
			return "", fmt.Errorf("%s: the package does not name its %d features (no column signature): declare them in the model card (features: [...])", dir, len(names))
		}
		m.Features = names
		fmt.Printf("features from the MLmodel signature: %s\n", strings.Join(names, ", "))
	}
	fmt.Printf("packed %s (%s, %s)\n", dir, digest, model.Task())
	return path, nil
}

// packTo packs the MLflow directory dir into the file at path and returns
// its digest.
func packTo(dir, path string) (string, error) { return writeArchive(dir, path, mlflow.PackDir) }

// archiveTo archives any model directory (mlflow.ArchiveDir) into the file
// at path and returns its digest.
func archiveTo(dir, path string) (string, error) { return writeArchive(dir, path, mlflow.ArchiveDir) }

func writeArchive(dir, path string, pack func(string, io.Writer) error) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if err := pack(dir, io.MultiWriter(f, h)); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func newModelPackCmd() *cobra.Command {
	var out, format string
	cmd := &cobra.Command{
		Use:   "pack <MLflow model directory>",
		Short: "Pack an MLflow model directory into the archive modelfleet registers, and print its digest",
		Long: `Pack an MLflow model directory (one holding MLmodel) into one archive: entries
sorted, regular files only, no times or owners, so the same directory always
packs to the same bytes. The digest printed is what the registry records; in
Azure mode, set it as the modelfleet.digest property of an mlflow_model
version (docs/azure.md). Nothing is uploaded.

With --format oip the directory is an external model server's model
repository (a Triton model repository: a triton_model version in Azure ML):
archived the same way, without MLmodel, and only its digest is printed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			dir := filepath.Clean(args[0])
			if format == modelfleet.FormatOIP {
				if out == "" {
					out = filepath.Base(dir) + ".tar"
				}
				digest, err := archiveTo(dir, out)
				if err != nil {
					return err
				}
				fmt.Printf("%s\t%s\tmodel directory for an external model server\n", digest, out)
				return nil
			}
			if format != "" && format != modelfleet.FormatMLflow {
				return fmt.Errorf("--format %q: model pack packs an MLflow directory (mlflow) or an external server's model directory (oip)", format)
			}
			if out == "" {
				out = filepath.Base(dir) + ".mlflow.tar"
			}
			digest, err := packTo(dir, out)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(out)
			if err != nil {
				return err
			}
			model, err := inference.Load(modelfleet.FormatMLflow, data)
			if err != nil {
				return fmt.Errorf("%s: %w", dir, err)
			}
			fmt.Printf("%s\t%s\t%s, %d features: %s\n", digest, out, model.Task(), model.NumFeatures(), strings.Join(model.FeatureNames(), ","))
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "archive to write (default <dir>.mlflow.tar, or <dir>.tar with --format oip)")
	cmd.Flags().StringVar(&format, "format", modelfleet.FormatMLflow, "mlflow, or oip for an external model server's model directory")
	return cmd
}
