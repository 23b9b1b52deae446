// Package registry is modelfleet's embedded model registry: it behaves like
// the Azure ML model registry for the parts modelfleet uses, so the default
// stack runs with no Azure account. It stores model versions (artifacts and
// validation data content-addressed on disk, records in bbolt) and emits the
// same ModelRegistered event Azure ML publishes through Event Grid, pushed to
// a webhook the way Event Grid delivers it.
package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"go.etcd.io/bbolt"
)

// Options configures a Registry. The zero value is usable: it stores models
// and keeps their events in the outbox until a WebhookURL is configured.
type Options struct {
	// MaxArtifactBytes limits each stored blob: the artifact and the
	// validation data. Default 512 MiB.
	MaxArtifactBytes int64
	// WebhookURL receives ModelRegistered events, Event Grid style. Empty
	// means events wait in the outbox (see Pending) until a later Open sets it.
	WebhookURL string
	// Workspace names the workspace in the event topic. Default "embedded".
	Workspace string
	// PublicURL is the base of artifact and validation data URLs in API
	// responses (e.g. "https://registry.example.com"). Default: derived from
	// each request's Host.
	PublicURL string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// HTTPClient posts events. Default: a client with a 30 s timeout (Event
	// Grid also gives up on an attempt after 30 s and retries).
	HTTPClient *http.Client
	// Subject, if set, names the authenticated caller of a request (the
	// process that guards the registry knows it). A registration records
	// it as the version's modelfleet.PropRegisteredBy property, the
	// release's owner; a value the caller put there is always replaced,
	// or dropped when Subject is nil or names nobody.
	Subject func(*http.Request) string
	// RetryInitial and RetryMax bound the exponential backoff between
	// delivery attempts. Defaults 200 ms and 30 s.
	RetryInitial, RetryMax time.Duration
}

const (
	defaultMaxArtifactBytes = 512 << 20
	defaultWorkspace        = "embedded"
)

func (o *Options) setDefaults() {
	if o.MaxArtifactBytes <= 0 {
		o.MaxArtifactBytes = defaultMaxArtifactBytes
	}
	if o.Workspace == "" {
		o.Workspace = defaultWorkspace
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.RetryInitial <= 0 {
		o.RetryInitial = 200 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
}

// bbolt buckets.
var (
	bucketModels     = []byte("models")     // "name/version" -> Model JSON
	bucketOutbox     = []byte("outbox")     // big-endian sequence -> Event JSON
	bucketDeadLetter = []byte("deadletter") // big-endian sequence -> DeadLetter JSON
)

// Registry is an open model registry. It is safe for concurrent use.
type Registry struct {
	opts    Options
	log     *slog.Logger
	db      *bbolt.DB
	blobs   *BlobStore
	metrics *metrics

	wake      chan struct{} // nudges the delivery loop after a Register
	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the registry stored in dir. When
// opts.WebhookURL is set it starts delivering events, pending ones first.
func Open(dir string, opts Options) (*Registry, error) {
	opts.setDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("registry: create %s: %w", dir, err)
	}
	blobs, err := OpenBlobStore(dir)
	if err != nil {
		return nil, err
	}
	// The timeout turns a second Open of the same dir (bbolt holds a file
	// lock) into an error instead of a hang.
	db, err := bbolt.Open(filepath.Join(dir, "registry.db"), 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("registry: open database: %w", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketModels, bucketOutbox, bucketDeadLetter} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("registry: create buckets: %w", err)
	}
	r := &Registry{
		opts:  opts,
		log:   opts.Logger.With("component", "registry"),
		db:    db,
		blobs: blobs,
		wake:  make(chan struct{}, 1),
	}
	r.metrics = newMetrics(r)
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	if opts.WebhookURL != "" {
		r.wg.Go(func() { r.deliverLoop(ctx) })
	}
	return r, nil
}

// Close stops event delivery (pending events stay in the outbox) and closes
// the database. It is safe to call more than once.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.stop()
		r.wg.Wait()
		if err := r.db.Close(); err != nil {
			r.closeErr = fmt.Errorf("registry: close database: %w", err)
		}
	})
	return r.closeErr
}

func modelKey(name, version string) []byte { return []byte(name + "/" + version) }

// Register stores one model version: it hashes and stores the artifact (and
// the validation data, required exactly when m.Validation is set), fills
// m.Digest, m.Size, m.Validation.DataDigest and m.CreatedAt, and records it.
//
// Registering is idempotent, as a retried upload must be: the same name and
// version with the same content returns the stored record and created=false,
// and emits no second event. The same name and version with other content is
// an ECONFLICT: versions are immutable, as in Azure ML.
//
// A Digest, Size or Validation.DataDigest already set in m is an expectation:
// the stored content must match it.
func (r *Registry) Register(ctx context.Context, m modelfleet.Model, artifact io.Reader, validationData io.Reader) (modelfleet.Model, bool, error) {
	if artifact == nil {
		return modelfleet.Model{}, false, modelfleet.Errorf(modelfleet.EINVALID, "model artifact is required")
	}
	if err := precheck(m, validationData != nil); err != nil {
		r.metrics.registrations.WithLabelValues("rejected").Inc()
		return modelfleet.Model{}, false, err
	}
	art, err := r.putBlob(ctx, "artifact", artifact)
	if err != nil {
		r.metrics.registrations.WithLabelValues("rejected").Inc()
		return modelfleet.Model{}, false, err
	}
	var data *blobInfo
	if validationData != nil {
		if data, err = r.putBlob(ctx, "validation data", validationData); err != nil {
			r.metrics.registrations.WithLabelValues("rejected").Inc()
			return modelfleet.Model{}, false, err
		}
	}
	return r.commit(m, *art, data)
}

type blobInfo struct {
	digest string
	size   int64
}

func (r *Registry) putBlob(ctx context.Context, what string, rd io.Reader) (*blobInfo, error) {
	d, n, err := r.blobs.put(ctx, what, rd, r.opts.MaxArtifactBytes)
	if err != nil {
		return nil, err
	}
	return &blobInfo{d, n}, nil
}

// precheck rejects a model before any upload is read: everything Validate
// checks except the digests, which are known only once the blobs are stored.
func precheck(m modelfleet.Model, haveData bool) error {
	switch {
	case m.Validation != nil && !haveData:
		return modelfleet.Errorf(modelfleet.EINVALID, "model %q version %q declares validation (metric %q) but no validation data was given", m.Name, m.Version, m.Validation.Metric)
	case m.Validation == nil && haveData:
		return modelfleet.Errorf(modelfleet.EINVALID, "model %q version %q has validation data but no validation spec: set validation.metric and validation.threshold", m.Name, m.Version)
	}
	const placeholder = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	if m.Digest == "" {
		m.Digest = placeholder
	}
	if m.Validation != nil {
		v := *m.Validation
		if v.DataDigest == "" {
			v.DataDigest = placeholder
		}
		m.Validation = &v
	}
	return m.Validate()
}

// commit records a model whose blobs are stored, or finds it already there.
func (r *Registry) commit(m modelfleet.Model, art blobInfo, data *blobInfo) (modelfleet.Model, bool, error) {
	if m.Digest != "" && m.Digest != art.digest {
		return r.reject(modelfleet.Errorf(modelfleet.EINVALID, "artifact digest is %s, not the expected %s", art.digest, m.Digest))
	}
	if m.Size != 0 && m.Size != art.size {
		return r.reject(modelfleet.Errorf(modelfleet.EINVALID, "artifact size is %d bytes, not the expected %d", art.size, m.Size))
	}
	m.Digest, m.Size = art.digest, art.size
	if m.Validation != nil {
		v := *m.Validation // the caller's spec is not ours to modify
		if v.DataDigest != "" && v.DataDigest != data.digest {
			return r.reject(modelfleet.Errorf(modelfleet.EINVALID, "validation data digest is %s, not the expected %s", data.digest, v.DataDigest))
		}
		v.DataDigest, v.DataURL = data.digest, ""
		m.Validation = &v
	}
	// URLs depend on where the registry is reached from; they are filled
	// when served, never stored.
	m.ArtifactURL = ""
	now := time.Now().UTC()
	m.CreatedAt = now.Format(time.RFC3339Nano)
	if err := m.Validate(); err != nil {
		return r.reject(err)
	}

	var existing modelfleet.Model
	found := false
	err := r.db.Update(func(tx *bbolt.Tx) error {
		models := tx.Bucket(bucketModels)
		key := modelKey(m.Name, m.Version)
		if v := models.Get(key); v != nil {
			found = true
			return json.Unmarshal(v, &existing)
		}
		rec, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := models.Put(key, rec); err != nil {
			return err
		}
		// Same transaction as the record: a crash keeps both or neither, so
		// the event is never lost nor sent for a model that is not there.
		return appendOutbox(tx, r.newEvent(m, now))
	})
	if err != nil {
		return modelfleet.Model{}, false, fmt.Errorf("registry: record model: %w", err)
	}
	if found {
		if err := modelfleet.SameContent("model", existing, m); err != nil {
			return r.reject(err)
		}
		r.metrics.registrations.WithLabelValues("existing").Inc()
		return existing, false, nil
	}
	r.metrics.registrations.WithLabelValues("created").Inc()
	r.log.Info("model registered", "model", m.ModelRef.String(), "digest", m.Digest, "size", m.Size)
	r.nudge()
	return m, true, nil
}

func (r *Registry) reject(err error) (modelfleet.Model, bool, error) {
	r.metrics.registrations.WithLabelValues("rejected").Inc()
	return modelfleet.Model{}, false, err
}

// Get returns one model version.
func (r *Registry) Get(name, version string) (modelfleet.Model, error) {
	if err := (modelfleet.ModelRef{Name: name, Version: version}).Validate(); err != nil {
		return modelfleet.Model{}, err
	}
	var m modelfleet.Model
	found := false
	err := r.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketModels).Get(modelKey(name, version))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &m)
	})
	if err != nil {
		return modelfleet.Model{}, fmt.Errorf("registry: get model: %w", err)
	}
	if !found {
		return modelfleet.Model{}, modelfleet.Errorf(modelfleet.ENOTFOUND, "model %q version %q not found", name, version)
	}
	return m, nil
}

// List returns every model version, sorted by name, then by version.
func (r *Registry) List() ([]modelfleet.Model, error) {
	models := []modelfleet.Model{}
	err := r.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketModels).ForEach(func(_, v []byte) error {
			var m modelfleet.Model
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			models = append(models, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("registry: list models: %w", err)
	}
	slices.SortFunc(models, func(a, b modelfleet.Model) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return modelfleet.CompareVersions(a.Version, b.Version)
	})
	return models, nil
}

// OpenBlob opens a stored blob by digest and returns its size. The reader
// is an *os.File, so it also seeks.
func (r *Registry) OpenBlob(digest string) (io.ReadCloser, int64, error) {
	f, n, err := r.blobs.open(digest)
	if err != nil {
		return nil, 0, err // not a typed nil *os.File inside the interface
	}
	return f, n, nil
}

// ping reports whether the database answers, for /healthz.
func (r *Registry) ping() error {
	return r.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketModels) == nil {
			return fmt.Errorf("registry: models bucket missing")
		}
		return nil
	})
}
