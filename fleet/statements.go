package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/modelfleet/modelfleet"
)

// A signed version's release statement (about a kilobyte) goes to every
// site of its release. The directory keeps it once (Store.PutStatements,
// under modelfleet.Envelope.StatementRef) and the stored desired states
// name it by that ref: a step or a release's finish at a thousand sites
// then neither decodes nor encodes a thousand copies of it, and neither
// does a plan's read of their states. What leaves the directory carries
// the statement itself, except an agent's answer, which carries each
// statement it names once, beside the versions (statementRefsParam).
//
// Only statements the directory has kept are named by ref; one that came
// in another way (a desired state written before statements were kept)
// stays in its version, and everything reads both.

// statementRefsParam, in an agent's poll, says the agent resolves
// statement refs (modelfleet.Desired.ResolveStatements): its answer then
// is the stored document with the statements it names spliced in once,
// but for those the parameter lists, comma-separated, as held by the
// agent (the statements of its answer before: a site is sent each
// statement once, not again with every step, finish or rollback; any
// other value, "1", lists none). An older agent's poll is answered with
// the statements in their versions.
const statementRefsParam = "statementRefs"

// maxHeldStatements bounds the statements an agent's poll names as held;
// a poll naming more names none.
const maxHeldStatements = 16

// heldStatements reads statementRefsParam's value: the digests listed, or
// none.
func heldStatements(v string) []string {
	if strings.Count(v, ",") >= maxHeldStatements {
		return nil
	}
	refs := strings.Split(v, ",")
	for _, r := range refs {
		if !modelfleet.ValidDigest(r) {
			return nil
		}
	}
	return refs
}

// maxCachedStatements bounds the statements a directory holds in memory;
// when full it starts again (they are in the store).
const maxCachedStatements = 1024

// statementCache holds kept statements by ref, encoded and decoded. A
// ref names its content, so an entry is never stale, in any replica.
type statementCache struct {
	mu   sync.Mutex
	docs map[string][]byte
	envs map[string]*modelfleet.Envelope
	// last is the envelope refOf hashed last, and its ref: a step hands
	// every site's document the same one.
	last    *modelfleet.Envelope
	lastRef string
}

// refOf is env.StatementRef(), remembered for the last envelope asked.
func (c *statementCache) refOf(env *modelfleet.Envelope) string {
	c.mu.Lock()
	if env == c.last {
		defer c.mu.Unlock()
		return c.lastRef
	}
	c.mu.Unlock()
	ref := env.StatementRef()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last, c.lastRef = env, ref
	return ref
}

func (c *statementCache) get(ref string) ([]byte, *modelfleet.Envelope, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	doc, ok := c.docs[ref]
	return doc, c.envs[ref], ok
}

// put records that ref is kept, as doc (env: decoded, if known).
func (c *statementCache) put(ref string, doc []byte, env *modelfleet.Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.docs == nil || len(c.docs) >= maxCachedStatements {
		c.docs, c.envs = map[string][]byte{}, map[string]*modelfleet.Envelope{}
	}
	c.docs[ref] = doc
	if env != nil {
		c.envs[ref] = env
	}
}

// keepStatement keeps env (nil: nothing) in the store unless it is kept
// already, so that the desired states written next name it by ref.
func (d *Directory) keepStatement(ctx context.Context, env *modelfleet.Envelope) error {
	if env == nil {
		return nil
	}
	ref := d.statements.refOf(env) // remembered: the step's update asks again for each site
	if d.keeps(ref) {
		return nil
	}
	doc, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("fleet: release statement: %w", err)
	}
	if err := d.store.PutStatements(ctx, map[string][]byte{ref: doc}); err != nil {
		return fmt.Errorf("fleet: keep release statement: %w", err)
	}
	d.statements.put(ref, doc, env)
	return nil
}

// refStatements replaces each statement of ds that the directory has kept
// by its ref: what a stored desired state holds.
func (d *Directory) refStatements(ds *modelfleet.Desired) {
	ds.ForEachVersion(func(v *modelfleet.DesiredVersion) {
		if v.Statement == nil {
			return
		}
		if ref := d.statements.refOf(v.Statement); d.keeps(ref) {
			v.Statement, v.StatementRef = nil, ref
		}
	})
}

func (d *Directory) keeps(ref string) bool {
	_, _, ok := d.statements.get(ref)
	return ok
}

// statementDocs returns the kept statements refs name, encoded; a ref not
// kept is an error.
func (d *Directory) statementDocs(ctx context.Context, refs []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(refs))
	var missing []string
	for _, ref := range refs {
		if doc, _, ok := d.statements.get(ref); ok {
			out[ref] = doc
		} else {
			missing = append(missing, ref)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	got, err := d.store.Statements(ctx, missing)
	if err != nil {
		return nil, fmt.Errorf("fleet: release statements: %w", err)
	}
	for _, ref := range missing {
		doc, ok := got[ref]
		if !ok {
			return nil, modelfleet.Errorf(modelfleet.EINTERNAL, "release statement %s, which a desired state names, is not kept", ref)
		}
		d.statements.put(ref, doc, nil)
		out[ref] = doc
	}
	return out, nil
}

// inlineStatements puts each statement ds names by ref back into its
// version: a desired state as every reader but an agent gets it.
func (d *Directory) inlineStatements(ctx context.Context, ds *modelfleet.Desired) error {
	var refs []string
	ds.ForEachVersion(func(v *modelfleet.DesiredVersion) {
		if v.StatementRef != "" && !slices.Contains(refs, v.StatementRef) {
			refs = append(refs, v.StatementRef)
		}
	})
	if len(refs) == 0 {
		return nil
	}
	docs, err := d.statementDocs(ctx, refs)
	if err != nil {
		return err
	}
	envs := make(map[string]*modelfleet.Envelope, len(docs))
	for ref, doc := range docs {
		if _, env, _ := d.statements.get(ref); env != nil {
			envs[ref] = env
			continue
		}
		env := new(modelfleet.Envelope)
		if err := json.Unmarshal(doc, env); err != nil {
			return fmt.Errorf("fleet: release statement %s: %w", ref, err)
		}
		d.statements.put(ref, doc, env)
		envs[ref] = env
	}
	ds.ForEachVersion(func(v *modelfleet.DesiredVersion) {
		if v.StatementRef != "" {
			// Shared, as the cache's: nothing changes an envelope.
			v.Statement, v.StatementRef = envs[v.StatementRef], ""
		}
	})
	return nil
}

// docStatementRefs returns the distinct statement refs a stored desired
// state names, read off its bytes: compact JSON (bbolt) or jsonb's text
// (PostgreSQL, a space after each colon). A key can only be the member
// name: inside a string value its quotes would be escaped. ok is false if
// a ref is not a digest, which only a document not written by a
// directory holds: it is then read by decoding it.
func docStatementRefs(doc []byte) (refs []string, ok bool) {
	key := []byte(`"statementRef"`)
	for rest := doc; ; {
		i := bytes.Index(rest, key)
		if i < 0 {
			return refs, true
		}
		rest = bytes.TrimLeft(rest[i+len(key):], " \t\r\n")
		if len(rest) == 0 || rest[0] != ':' {
			return nil, false
		}
		rest = bytes.TrimLeft(rest[1:], " \t\r\n")
		if len(rest) == 0 || rest[0] != '"' {
			return nil, false
		}
		end := bytes.IndexByte(rest[1:], '"')
		if end < 0 {
			return nil, false
		}
		ref := string(rest[1 : 1+end])
		if !modelfleet.ValidDigest(ref) {
			return nil, false
		}
		if !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
		rest = rest[2+end:]
	}
}

// statementsMember encodes the member of an agent's answer that carries
// the statements docs holds: "statements":{"<ref>":<statement>,...}, in
// the order refs lists them.
func statementsMember(refs []string, docs map[string][]byte) []byte {
	var b bytes.Buffer
	b.WriteString(`"statements":{`)
	for i, ref := range refs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(ref) // a digest: nothing to escape
		b.WriteString(`":`)
		b.Write(docs[ref])
	}
	b.WriteByte('}')
	return b.Bytes()
}
