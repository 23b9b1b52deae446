// Package training submits and follows model training jobs: the retraining
// workflow's compute. One interface, Runner, has a backend per kind of
// compute: Local runs the training command as a subprocess (the embedded
// stack), AzureML submits an Azure Machine Learning command job to a cloud
// compute cluster or to an Arc-connected Kubernetes compute in the plant.
// Which one a model uses is its Policy.
//
// Every backend keeps the same job contract: the command reads labelled CSV
// files from its input folder and writes model.txt (and, optionally,
// metrics.json) into its output folder. The command names them with Azure
// ML's own placeholders, ${{inputs.data}} and ${{outputs.model}}, so one
// command line works on every backend; the local runner substitutes paths
// and also sets MODELFLEET_TRAINING_DATA and MODELFLEET_TRAINING_OUTPUT.
package training

// The job contract's names.
const (
	// InputData is the name of the job's input folder of labelled CSVs.
	InputData = "data"
	// OutputModel is the name of the job's output folder.
	OutputModel = "model"
	// DataPlaceholder and OutputPlaceholder are replaced by the input and
	// output folders in a command (Azure ML's syntax, which Azure ML
	// itself substitutes).
	DataPlaceholder   = "${{inputs." + InputData + "}}"
	OutputPlaceholder = "${{outputs." + OutputModel + "}}"
	// EnvData, EnvOutput and EnvJob are set for the local runner's
	// commands too.
	EnvData   = "MODELFLEET_TRAINING_DATA"
	EnvOutput = "MODELFLEET_TRAINING_OUTPUT"
	EnvJob    = "MODELFLEET_TRAINING_JOB"
)
