package modelfleet

import (
	"encoding/json"
	"regexp"
	"strings"
)

// FormatOIP is the format of a version served by an external model server
// that speaks the Open Inference Protocol (Triton, MLServer, OpenVINO Model
// Server, an Azure ML custom container): its artifact is the server's model
// directory packed as a tar archive (gzip-compressed or not), and its
// DesiredVersion.Server says which server runs it.
const FormatOIP = "oip"

// Placeholders a ModelServer's arguments may hold: the loopback port the
// site gives the server, and the directory the version's artifact was
// unpacked into.
const (
	ServerArgPort     = "{port}"
	ServerArgModelDir = "{model_dir}"
)

// Bounds of a ModelServer.
const (
	MaxServerArgs   = 32
	MaxServerArgLen = 512
	MaxServerClass  = 10000
)

// ModelServer names the external model server a version runs in. A site
// runs only servers its operator declared (`modelfleet edge --oip-server
// NAME=PATH`): the desired state names one of them, never a command
// (docs/security.md, "External model servers").
type ModelServer struct {
	// Name is the server as the site declares it (e.g. "triton").
	Name string `json:"name"`
	// Model is the model's name inside the server: what its
	// /v2/models/{model} endpoints are called.
	Model string `json:"model"`
	// Args are the server's arguments, with {port} and {model_dir}
	// replaced; a site that declares its own arguments for the server
	// refuses versions that bring others.
	Args []string `json:"args,omitempty"`
	// Task is binary, multiclass or regression, and Classes a multiclass
	// model's number of classes: the router answers as for a built-in
	// model of that task.
	Task    string `json:"task"`
	Classes int    `json:"classes,omitempty"`
	// Output is the output tensor holding the prediction (for a binary
	// model P(class 1), or both classes' probabilities; for a multiclass
	// one every class's probability; for a regressor the value). Default:
	// the first FP32 or FP64 output of the response.
	Output string `json:"output,omitempty"`
}

// PropServer is the model property holding a FormatOIP version's
// ModelServer as JSON: the model card's server block, kept with the
// registered version and carried by its releases.
const PropServer = "modelfleet.server"

// MaxServerProp bounds the property's JSON.
const MaxServerProp = 32 << 10

// ServerOf returns the model server a model version runs in: nil for a
// built-in format, an error when a FormatOIP version has no valid one.
func ServerOf(m *Model) (*ModelServer, error) {
	raw, ok := m.Properties[PropServer]
	if m.Format != FormatOIP {
		if ok {
			return nil, Errorf(EINVALID, "model %s: property %s is for format %q only", m.ModelRef, PropServer, FormatOIP)
		}
		return nil, nil
	}
	if !ok {
		return nil, Errorf(EINVALID, "model %s: format %q needs property %s (the model card's server block)", m.ModelRef, FormatOIP, PropServer)
	}
	if len(raw) > MaxServerProp {
		return nil, Errorf(EINVALID, "model %s: property %s is larger than %d bytes", m.ModelRef, PropServer, MaxServerProp)
	}
	var s ModelServer
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, Errorf(EINVALID, "model %s: property %s: %v", m.ModelRef, PropServer, err)
	}
	if err := s.Validate(); err != nil {
		return nil, Errorf(EINVALID, "model %s: %s", m.ModelRef, ErrorMessage(err))
	}
	return &s, nil
}

var serverModelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Validate checks a server reference before a site acts on it. The model
// name goes into URL paths, and every argument to a process: both are
// bounded, and an argument holds no NUL and no placeholder but the two.
func (s *ModelServer) Validate() error {
	if s == nil {
		return nil
	}
	if err := ValidateName("model server name", s.Name); err != nil {
		return err
	}
	if !serverModelRE.MatchString(s.Model) {
		return Errorf(EINVALID, "model server %q: model %q is invalid: want 1 to 128 letters, digits, '.', '_' or '-'", s.Name, s.Model)
	}
	if len(s.Args) > MaxServerArgs {
		return Errorf(EINVALID, "model server %q: %d arguments are more than %d", s.Name, len(s.Args), MaxServerArgs)
	}
	for _, a := range s.Args {
		if len(a) > MaxServerArgLen || strings.ContainsRune(a, 0) {
			return Errorf(EINVALID, "model server %q: an argument is longer than %d bytes or holds a NUL", s.Name, MaxServerArgLen)
		}
		rest := strings.NewReplacer(ServerArgPort, "", ServerArgModelDir, "").Replace(a)
		if i := strings.IndexByte(rest, '{'); i >= 0 && strings.IndexByte(rest[i:], '}') > 0 {
			return Errorf(EINVALID, "model server %q: argument %q holds a placeholder other than %s and %s", s.Name, a, ServerArgPort, ServerArgModelDir)
		}
	}
	switch s.Task {
	case TaskBinary, TaskRegression:
		if s.Classes != 0 && !(s.Task == TaskBinary && s.Classes == 2) {
			return Errorf(EINVALID, "model server %q: a %s model has no classes to declare", s.Name, s.Task)
		}
	case TaskMulticlass:
		if s.Classes < 3 || s.Classes > MaxServerClass {
			return Errorf(EINVALID, "model server %q: a multiclass model declares 3 to %d classes, got %d", s.Name, MaxServerClass, s.Classes)
		}
	default:
		return Errorf(EINVALID, "model server %q: task %q is not one of %s, %s, %s", s.Name, s.Task, TaskBinary, TaskMulticlass, TaskRegression)
	}
	if len(s.Output) > 256 {
		return Errorf(EINVALID, "model server %q: output name is longer than 256 bytes", s.Name)
	}
	return nil
}

// NumClasses is the model's number of classes as the router counts them:
// 2 for binary, 1 for a regressor.
func (s *ModelServer) NumClasses() int {
	switch s.Task {
	case TaskMulticlass:
		return s.Classes
	case TaskRegression:
		return 1
	}
	return 2
}

// Clone returns a deep copy (nil for nil).
func (s *ModelServer) Clone() *ModelServer {
	if s == nil {
		return nil
	}
	c := *s
	c.Args = append([]string(nil), s.Args...)
	return &c
}

// Equal reports whether two references name the same server run the same
// way.
func (s *ModelServer) Equal(o *ModelServer) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.Name == o.Name && s.Model == o.Model && s.Task == o.Task && s.Classes == o.Classes &&
		s.Output == o.Output && strings.Join(s.Args, "\x00") == strings.Join(o.Args, "\x00") && len(s.Args) == len(o.Args)
}
