package edge

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// Header names of the score API.
const (
	// HeaderRouteKey carries a sticky routing key, such as a machine or line
	// ID: requests with the same key land on the same version of a model for
	// as long as its split stays the same.
	HeaderRouteKey = "X-Modelfleet-Route-Key"
	// HeaderVersion on a request pins it to a loaded version, even one at
	// weight 0 (like Azure ML's azureml-model-deployment header); on a
	// response it names the version that answered.
	HeaderVersion = "X-Modelfleet-Version"
)

// table is everything the request path reads. It is immutable once
// published: writers build a new one under Router.mu and swap the pointer,
// so a request takes no lock and sees one consistent split and key set.
type table struct {
	routes map[string]*route
	keys   *keyTable
}

// route is one model name: its loaded versions and how its traffic splits.
//
// Traffic is split in 100 buckets. A request's bucket is hash(model, key)
// mod 100 when it carries a route key and a random one otherwise, and the
// versions own consecutive bands of buckets in version order, each as wide
// as its weight. So changing the split between two versions moves only the
// keys in the band that changes hands: going from {1:90, 2:10} to
// {1:50, 2:50} moves buckets 50-89 from 1 to 2 and no other key, and a key
// that moved to a canary stays on it while the canary's weight grows. With
// three or more versions, changing one weight also shifts the bands of the
// versions after it.
type route struct {
	name    string
	arms    []*arm // every loaded version, sorted by version
	bands   [100]*arm
	shadows []*arm
	loaded  string // the loaded versions, quoted, for 404 messages
}

// arm is one loaded version as the request path needs it, with everything
// per request precomputed: the response around the prediction, the header
// value, the metric children.
type arm struct {
	*LoadedModel
	weight int
	shadow bool
	// rows is the index of the first arm of the route declaring the same
	// features: a shadow with the primary's rows scores the primary's row
	// instead of decoding the body again.
	rows    int
	version []string  // value of the X-Modelfleet-Version response header
	prefix  []byte    // the score response up to the prediction
	suffix  [2][]byte // after a binary prediction: the label, site and shadow
	tail    []byte    // the end of every response: site and shadow
	task    string
	classes int
	m       armMetrics
	// mirrorsBody: a shadow of the route other than this arm declares
	// other features, so it needs the body of a request this arm answered.
	mirrorsBody bool
	// shadowStreak counts a shadow's last scores within
	// shadowInlineBudget, up to shadowInlineStreak (shadow.go).
	shadowStreak atomic.Int32
}

// newRoute builds the route of name; versions must have passed checkWeights.
func (r *Router) newRoute(name string, versions []WeightedModel) *route {
	rt := &route{name: name}
	for _, v := range versions {
		m := v.LoadedModel
		m.Features = slices.Clone(m.Features)
		rt.arms = append(rt.arms, &arm{LoadedModel: &m, weight: v.Weight, shadow: v.Shadow})
	}
	slices.SortFunc(rt.arms, func(a, b *arm) int { return strings.Compare(a.Model.Version, b.Model.Version) })
	b := 0
	quoted := make([]string, len(rt.arms))
	for i, a := range rt.arms {
		for range a.weight {
			rt.bands[b] = a
			b++
		}
		if a.shadow {
			rt.shadows = append(rt.shadows, a)
		}
		a.rows = slices.IndexFunc(rt.arms, func(o *arm) bool { return slices.Equal(o.Features, a.Features) })
		a.version = []string{a.Model.Version}
		a.prefix = []byte(`{"model":` + jsonString(name) + `,"version":` + jsonString(a.Model.Version) + `,"prediction":`)
		a.tail = []byte(`,"site":` + jsonString(r.Site) + `,"shadow":` + strconv.FormatBool(a.shadow) + "}\n")
		for label := range a.suffix {
			a.suffix[label] = append([]byte(`,"label":`+strconv.Itoa(label)), a.tail...)
		}
		a.task, a.classes = a.Scorer.Task(), a.Scorer.NumClasses()
		a.m = r.metrics.arm(name, a.Model.Version, a.shadow)
		quoted[i] = strconv.Quote(a.Model.Version)
	}
	rt.loaded = strings.Join(quoted, ", ")
	for _, a := range rt.arms {
		a.mirrorsBody = slices.ContainsFunc(rt.shadows, func(s *arm) bool { return s != a && s.rows != a.rows })
	}
	return rt
}

// pick chooses the version that answers a request with the given route key
// ("" for none).
func (rt *route) pick(key string) *arm {
	if key == "" {
		return rt.bands[rand.IntN(len(rt.bands))]
	}
	return rt.bands[bucket(rt.name, key)]
}

// version returns the loaded version v, or nil (rt may be nil).
func (rt *route) version(v string) *arm {
	if rt == nil { // a model no longer served
		return nil
	}
	for _, a := range rt.arms {
		if a.Model.Version == v {
			return a
		}
	}
	return nil
}

// bucket maps a route key to one of the 100 buckets of a model. It must be
// stable across processes and restarts (so not the runtime's seeded hash),
// and changing it moves keys. The model name is hashed in so that the
// machines a canary of one model lands on are not those of every canary.
// FNV-1a alone leaves the low bits, and so the bucket mod 4, depending on
// the low bits of each byte only; the murmur3 finaliser mixes them.
func bucket(model, key string) int {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < len(model); i++ {
		h = (h ^ uint64(model[i])) * prime
	}
	h *= prime // a 0 separator: ("ab", "c") and ("a", "bc") differ
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * prime
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return int(h % 100)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
