package azureblob

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
)

// Datastores resolves azureml:// datastore URIs and https blob URLs to the
// URLs of their blobs, reading each datastore's definition (account,
// endpoint, container) once through ARM, and refuses URLs whose host is
// not an Azure Storage blob endpoint, so no URI can carry the storage
// token elsewhere.
type Datastores struct {
	// Client reads datastore definitions.
	Client *ml.DatastoresClient
	// SubscriptionID, ResourceGroup and Workspace are the workspace that
	// short URIs (azureml://datastores/...) refer to; long ones must be
	// in the same subscription.
	SubscriptionID, ResourceGroup, Workspace string
	// Suffixes are the storage DNS suffixes the token may go to (nil:
	// DefaultSuffixes), besides the hosts of pinned containers and of
	// datastores read.
	Suffixes []string
	// Classify turns an ARM error into the caller's error (its codes and
	// advice); what says what was being done. Nil: wrapped as is.
	Classify func(what string, err error) error

	mu     sync.Mutex
	stores map[string]string // "rg/ws/name" -> container URL
	hosts  map[string]bool   // blob hosts learnt from datastores
}

// Pin sets a datastore's container URL without reading its definition
// (a private endpoint's name, say); its host is then trusted.
func (d *Datastores) Pin(rg, ws, name, containerURL, host string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	d.stores[storeKey(rg, ws, name)] = containerURL
	d.hosts[strings.ToLower(host)] = true
}

func (d *Datastores) init() {
	if d.stores == nil {
		d.stores, d.hosts = map[string]string{}, map[string]bool{}
	}
}

// BlobURL resolves raw, an azureml://…/datastores/<ds>/paths/<path> URI
// or an https blob URL, to the https URL of its blob.
func (d *Datastores) BlobURL(ctx context.Context, raw string) (string, error) {
	if _, ok := CutPrefixFold(raw, "azureml://"); ok {
		p, err := ParseURI(raw)
		if err != nil {
			return "", err
		}
		rg, ws := d.ResourceGroup, d.Workspace
		if p.Subscription != "" {
			if !strings.EqualFold(p.Subscription, d.SubscriptionID) {
				return "", modelfleet.Errorf(modelfleet.EINVALID, "azure ml uri %q is in subscription %s, not the worker's", Redact(raw), p.Subscription)
			}
			rg, ws = p.ResourceGroup, p.Workspace
		}
		c, err := d.Container(ctx, rg, ws, p.Datastore)
		if err != nil {
			return "", err
		}
		return c + "/" + EscapePath(p.Path), nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "blob url %q: want azureml://…/datastores/<ds>/paths/<path> or https://<account>.blob.core.windows.net/<container>/<path>", Redact(raw))
	}
	suffixes := d.Suffixes
	if len(suffixes) == 0 {
		suffixes = DefaultSuffixes
	}
	d.mu.Lock()
	known := d.hosts[strings.ToLower(u.Host)]
	d.mu.Unlock()
	if !known && !IsBlobHost(u.Host, suffixes) {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "blob url %q: %s is not an Azure Storage blob endpoint; the worker sends its storage token to those only", Redact(raw), u.Host)
	}
	return raw, nil
}

// Container returns the blob container URL of a datastore, read once from
// its definition and cached. Azure Blob and ADLS Gen2 datastores (which
// the Blob API serves too) over https are supported.
func (d *Datastores) Container(ctx context.Context, rg, ws, name string) (string, error) {
	key := storeKey(rg, ws, name)
	d.mu.Lock()
	d.init()
	c, ok := d.stores[key]
	d.mu.Unlock()
	if ok {
		return c, nil
	}
	resp, err := d.Client.Get(ctx, rg, ws, name, nil)
	if err != nil {
		what := fmt.Sprintf("read datastore %q of workspace %q", name, ws)
		if d.Classify != nil {
			return "", d.Classify(what, err)
		}
		return "", fmt.Errorf("%s: %w", what, err)
	}
	var account, cont, endpoint, protocol string
	switch p := resp.Datastore.Properties.(type) {
	case *ml.AzureBlobDatastore:
		account, cont, endpoint, protocol = deref(p.AccountName), deref(p.ContainerName), deref(p.Endpoint), deref(p.Protocol)
	case *ml.AzureDataLakeGen2Datastore:
		account, cont, endpoint, protocol = deref(p.AccountName), deref(p.Filesystem), deref(p.Endpoint), deref(p.Protocol)
	default:
		kind := "unknown"
		if p := resp.Datastore.Properties; p != nil && p.GetDatastoreProperties().DatastoreType != nil {
			kind = string(*p.GetDatastoreProperties().DatastoreType)
		}
		return "", modelfleet.Errorf(modelfleet.EINVALID, "datastore %q is of type %s: only Azure Blob and ADLS Gen2 datastores are supported", name, kind)
	}
	if account == "" || cont == "" {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "datastore %q names no storage account or container", name)
	}
	if endpoint == "" {
		endpoint = "core.windows.net"
	}
	if protocol != "" && !strings.EqualFold(protocol, "https") {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "datastore %q uses protocol %q: the worker sends its token over https only", name, protocol)
	}
	host := strings.ToLower(account + ".blob." + endpoint)
	c = "https://" + host + "/" + url.PathEscape(cont)
	d.mu.Lock()
	d.stores[key], d.hosts[host] = c, true
	d.mu.Unlock()
	return c, nil
}

func storeKey(rg, ws, name string) string {
	return strings.ToLower(rg + "/" + ws + "/" + name)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
