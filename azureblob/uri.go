package azureblob

import (
	"net/url"
	"strings"

	"github.com/modelfleet/modelfleet"
)

// Path is a file on an Azure ML datastore, as an azureml:// URI names it.
type Path struct {
	Subscription, ResourceGroup, Workspace string // empty: the caller's workspace
	Datastore                              string
	Path                                   string // inside the datastore, no leading '/'
}

// ParseURI reads the two forms of datastore URI Azure ML uses for
// model and data assets:
//
//	azureml://subscriptions/<sub>/resourcegroups/<rg>/workspaces/<ws>/datastores/<ds>/paths/<path>
//	azureml://datastores/<ds>/paths/<path>
//
// Other azureml:// forms (job outputs, registries) are refused: the worker
// cannot resolve them to a blob without more API calls than it makes.
func ParseURI(raw string) (Path, error) {
	invalid := func(why string) (Path, error) {
		return Path{}, modelfleet.Errorf(modelfleet.EINVALID, "azure ml uri %q: %s", raw, why)
	}
	rest, ok := CutPrefixFold(raw, "azureml://")
	if !ok {
		return invalid("want azureml://")
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	var p Path
	segs := strings.Split(rest, "/")
	take := func(key string) (string, bool) {
		if len(segs) < 2 || !strings.EqualFold(segs[0], key) || segs[1] == "" {
			return "", false
		}
		v := segs[1]
		segs = segs[2:]
		return v, true
	}
	if len(segs) > 0 && strings.EqualFold(segs[0], "subscriptions") {
		var ok1, ok2, ok3 bool
		p.Subscription, ok1 = take("subscriptions")
		p.ResourceGroup, ok2 = take("resourcegroups")
		p.Workspace, ok3 = take("workspaces")
		if !ok1 || !ok2 || !ok3 {
			return invalid("want azureml://subscriptions/<sub>/resourcegroups/<rg>/workspaces/<ws>/datastores/<ds>/paths/<path>")
		}
	}
	if p.Datastore, ok = take("datastores"); !ok {
		return invalid("only datastore paths are supported (azureml://[subscriptions/<sub>/resourcegroups/<rg>/workspaces/<ws>/]datastores/<ds>/paths/<path>)")
	}
	if len(segs) < 2 || !strings.EqualFold(segs[0], "paths") {
		return invalid("want .../datastores/<ds>/paths/<path>")
	}
	path, err := url.PathUnescape(strings.Join(segs[1:], "/"))
	if err != nil {
		return invalid(err.Error())
	}
	p.Path = strings.TrimLeft(path, "/")
	if p.Path == "" || strings.HasSuffix(p.Path, "/") {
		return invalid("the path must name a file")
	}
	for _, s := range strings.Split(p.Path, "/") {
		if s == "." || s == ".." {
			return invalid("the path must not contain '.' or '..' segments")
		}
	}
	return p, nil
}

// String is the long form, which names the workspace: what Azure ML itself
// records for assets uploaded from a client.
func (p Path) String() string {
	return "azureml://subscriptions/" + p.Subscription + "/resourcegroups/" + p.ResourceGroup +
		"/workspaces/" + p.Workspace + "/datastores/" + p.Datastore + "/paths/" + EscapePath(p.Path)
}

// EscapePath escapes each segment of a blob path for a URL.
func EscapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// CutPrefixFold is strings.CutPrefix ignoring case.
func CutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
