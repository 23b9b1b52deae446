package fleet

import (
	"context"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drift"
)

// Store is where the directory keeps its records: bbolt in one file for
// the embedded default (Open), PostgreSQL shared by any number of gateway
// replicas (OpenPostgres). The Directory holds the rules (validation,
// steps and leases, progress); a Store only keeps records, atomically.
//
// Every implementation passes the conformance suite in fleet/fleettest.
type Store interface {
	// PutSite stores s; when s has no labels it keeps the stored ones and
	// sets them in s.
	PutSite(ctx context.Context, s *modelfleet.Site) error
	// Site returns one site (ENOTFOUND if it is not registered).
	Site(ctx context.Context, id string) (modelfleet.Site, error)
	// Sites returns every site ordered by ID (byte order).
	Sites(ctx context.Context) ([]modelfleet.Site, error)
	// UpdateDesired runs f on each site's desired state in one
	// transaction, holding every listed site against concurrent updates
	// from any process, writes back what f did not refuse with a conflict,
	// bumps the revision of the sites where f changed something, and
	// returns them. An unregistered site fails the whole update with
	// ENOTFOUND and changes nothing. Stores wake the long polls of the
	// changed sites in other processes; the Directory wakes its own.
	UpdateDesired(ctx context.Context, sites []string, f UpdateFunc) (res modelfleet.StepResult, changed []string, err error)
	// Desired returns a site's desired state (revision 0 and no models
	// before its first step; ENOTFOUND if the site is not registered).
	Desired(ctx context.Context, site string) (modelfleet.Desired, error)
	// DesiredDoc is Desired as the JSON document the store keeps (bbolt:
	// json.Marshal's bytes; PostgreSQL: jsonb's text), an object of a
	// modelfleet.Desired without its release keys, and its revision; nil
	// and 0 before the site's first step. An agent's poll is answered with
	// those bytes, not with them decoded and encoded again.
	DesiredDoc(ctx context.Context, site string) (doc []byte, revision int64, err error)
	// Revision returns the revision of a site's desired state, as Desired
	// would, without reading the rest of it: what a long poll checks to
	// learn whether there is anything new (ENOTFOUND if the site is not
	// registered).
	Revision(ctx context.Context, site string) (int64, error)
	// ReportActual stores a site's report (without its record); rec, if
	// not nil, is stored in the same transaction as PutSite would. Without
	// rec the site must be registered (ENOTFOUND).
	ReportActual(ctx context.Context, rec *modelfleet.Site, a modelfleet.Actual) error
	// States reads the desired and actual state of each listed site in
	// one consistent snapshot, in the order listed; a site without one
	// has the zero state.
	States(ctx context.Context, sites []string) ([]SiteState, error)
	// Progress reads, in one consistent snapshot and in the order listed,
	// each site's desired and applied revision and, for a site whose
	// report is not behind its desired state, what a release's progress
	// reads of it: see SiteProgress. A site without a state has the zero
	// one. A report that is behind is not decoded: while a release waits
	// for thousands of sites, most of them are.
	Progress(ctx context.Context, sites []string, model string) ([]SiteProgress, error)
	// PutPolicy and Policy keep a model's rollout policy document; Policy
	// returns nil when the model has none.
	PutPolicy(ctx context.Context, model string, doc []byte) error
	Policy(ctx context.Context, model string) ([]byte, error)
	// PutBaseline and Baseline keep a model version's baseline; Baseline
	// returns nil when there is none.
	PutBaseline(ctx context.Context, model, version string, doc []byte) error
	Baseline(ctx context.Context, model, version string) ([]byte, error)
	// PutStatements keeps release statements, each encoded under its
	// modelfleet.Envelope.StatementRef, once: a statement kept already
	// stays as it is (its ref is its content's digest). Stored desired
	// states name them by ref (Directory.update).
	PutStatements(ctx context.Context, docs map[string][]byte) error
	// Statements returns the kept statements among refs; a ref not kept
	// is absent from the map.
	Statements(ctx context.Context, refs []string) (map[string][]byte, error)
	// PutWorkload stores rec unless its name and version are stored
	// already: then it returns the stored record and created false.
	PutWorkload(ctx context.Context, rec modelfleet.WorkloadRecord) (stored modelfleet.WorkloadRecord, created bool, err error)
	// Workload returns one workload version; ok is false when it is not
	// registered.
	Workload(ctx context.Context, name, version string) (rec modelfleet.WorkloadRecord, ok bool, err error)
	// Workloads lists every workload version by name, then version (byte
	// order), with their manifests.
	Workloads(ctx context.Context) ([]modelfleet.WorkloadRecord, error)
	// Watch has wake called with each site whose desired state another
	// process changed ("" when any may have: after a reconnection), until
	// Close. It returns how often a long poll re-reads anyway, in case a
	// wake-up was lost (0: never; the store sees every write itself).
	Watch(wake func(site string)) (poll time.Duration)
	// The drift monitor's series (Directory.MonitorState).
	drift.StateStore
	// Ping reports whether the store can serve (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// UpdateFunc changes one site's desired state: changed says whether the
// site's agent has something to do (the revision is bumped), a conflict
// refuses the site (nothing of it is written).
type UpdateFunc func(ds *modelfleet.Desired) (changed bool, conflict *modelfleet.Conflict)

// SiteState is a site's desired and reported state.
type SiteState struct {
	Desired modelfleet.Desired
	Actual  modelfleet.Actual
}

// SiteProgress is what Directory.Progress reads of a site: the revision of
// its desired state and the one its report applied and, when that is not
// behind (Applied >= Desired), the desired workloads, the report's entry
// for the model asked about and its workloads, as States would read them.
type SiteProgress struct {
	Desired, Applied int64
	Workloads        map[string]modelfleet.DesiredWorkload
	Model            modelfleet.ActualModel
	Running          map[string]modelfleet.ActualWorkload
}

// pending reports whether the site's report is behind its desired state.
func (p SiteProgress) pending() bool { return p.Applied < p.Desired }

// emptyDesired is a site's desired state before its first step.
func emptyDesired(site string) modelfleet.Desired {
	return modelfleet.Desired{Site: site, Models: map[string]modelfleet.DesiredModel{}}
}
