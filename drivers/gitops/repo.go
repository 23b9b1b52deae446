package gitops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/memfs"
	"github.com/go-git/go-billy/v5/util"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/modelfleet/modelfleet"
)

// errAwaitingMerge is a pull request's change not yet on the branch: a
// retryable condition, so the reconciler comes back until someone merges.
var errAwaitingMerge = errors.New("waiting for the pull request to be merged")

// commit makes the branch hold files, in one commit, retrying when another
// writer pushed first: fetch, reset to theirs, write ours again, push. Our
// paths are the site's own, so re-applying on top of the other commit is a
// rebase that cannot conflict.
func (d *Driver) commit(ctx context.Context, site string, ds modelfleet.Desired, files map[string][]byte) error {
	var last error
	for attempt := 1; attempt <= d.cfg.MaxAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.sync(ctx); err != nil {
			return err
		}
		wt, err := d.repo.Worktree()
		if err != nil {
			return err
		}
		changed, err := write(wt.Filesystem, site, files)
		if err != nil {
			return err
		}
		if !changed {
			if d.cfg.PullRequests && attempt == 1 && last != nil {
				return last
			}
			return nil // the branch already says so: converged
		}
		if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
			return fmt.Errorf("stage: %w", err)
		}
		hash, err := wt.Commit(message(site, ds, d.describe(site, ds)), &git.CommitOptions{
			Author:  &object.Signature{Name: d.cfg.AuthorName, Email: d.cfg.AuthorEmail, When: time.Now()},
			SignKey: d.cfg.SignKey,
		})
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if d.beforePush != nil {
			d.beforePush()
		}
		target := d.cfg.Branch
		if d.cfg.PullRequests {
			target = fmt.Sprintf("modelfleet/%s/r%d", site, ds.Revision)
		}
		err = d.repo.PushContext(ctx, &git.PushOptions{
			RemoteName: "origin",
			Auth:       d.cfg.Auth,
			RefSpecs:   []config.RefSpec{config.RefSpec(fmt.Sprintf("%s%s:refs/heads/%s", force(d.cfg.PullRequests), hash, target))},
		})
		switch {
		case err == nil || errors.Is(err, git.NoErrAlreadyUpToDate):
			if d.cfg.PullRequests {
				d.cfg.Log.Info("gitops: pushed a change for review", "site", site, "branch", target, "commit", hash.String())
				return errAwaitingMerge
			}
			d.cfg.Log.Info("gitops: pushed", "site", site, "revision", ds.Revision, "commit", hash.String(), "attempt", attempt)
			return nil
		case rejected(err):
			// Another writer won the race: go round again on top of theirs.
			d.cfg.Log.Info("gitops: push rejected; re-applying on the new head", "site", site, "attempt", attempt, "error", redactErr(err, d.cfg.URL))
			last = err
		default:
			return fmt.Errorf("push: %w", err)
		}
	}
	return fmt.Errorf("push still rejected after %d attempts: %w", d.cfg.MaxAttempts, last)
}

func force(yes bool) string {
	if yes {
		return "+" // our own review branch: replace whatever an earlier attempt left
	}
	return ""
}

// rejected reports whether a push lost a race with another writer, whether
// go-git saw it (stale remote ref) or the server refused the update.
func rejected(err error) bool {
	if errors.Is(err, git.ErrNonFastForwardUpdate) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "non-fast-forward") || strings.Contains(s, "rejected") || strings.Contains(s, "failed to update ref") || strings.Contains(s, "fetch first")
}

// sync makes the in-memory clone's worktree the remote branch's head
// (clone on first use; an empty remote starts an empty history).
func (d *Driver) sync(ctx context.Context) error {
	ref := plumbing.NewBranchReferenceName(d.cfg.Branch)
	if d.repo == nil {
		r, err := git.CloneContext(ctx, memory.NewStorage(), memfs.New(), &git.CloneOptions{
			URL: d.cfg.URL, Auth: d.cfg.Auth, ReferenceName: ref, SingleBranch: true,
		})
		if err == nil {
			d.repo = r
			return nil
		}
		if !noBranch(err) {
			return fmt.Errorf("clone %q: %w", redactURL(d.cfg.URL), err)
		}
		return d.initEmpty()
	}
	err := d.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin", Auth: d.cfg.Auth, Force: true,
		RefSpecs: []config.RefSpec{config.RefSpec(fmt.Sprintf("+%s:refs/remotes/origin/%s", ref, d.cfg.Branch))},
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		if noBranch(err) {
			return d.initEmpty() // still empty: start over from nothing
		}
		return fmt.Errorf("fetch: %w", err)
	}
	head, err := d.repo.Reference(plumbing.NewRemoteReferenceName("origin", d.cfg.Branch), true)
	if err != nil {
		return d.initEmpty()
	}
	wt, err := d.repo.Worktree()
	if err != nil {
		return err
	}
	// Point the local branch at the remote's head, then make the worktree match.
	if err := d.repo.Storer.SetReference(plumbing.NewHashReference(ref, head.Hash())); err != nil {
		return err
	}
	if err := d.repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, ref)); err != nil {
		return err
	}
	return wt.Reset(&git.ResetOptions{Commit: head.Hash(), Mode: git.HardReset})
}

// initEmpty starts a history for a remote that has no such branch yet.
func (d *Driver) initEmpty() error {
	r, err := git.Init(memory.NewStorage(), memfs.New())
	if err != nil {
		return err
	}
	if _, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{d.cfg.URL}}); err != nil {
		return err
	}
	if err := r.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(d.cfg.Branch))); err != nil {
		return err
	}
	d.repo = r
	return nil
}

func noBranch(err error) bool {
	var nm git.NoMatchingRefSpecError
	return errors.Is(err, transport.ErrEmptyRemoteRepository) || errors.Is(err, plumbing.ErrReferenceNotFound) ||
		errors.As(err, &nm) || strings.Contains(err.Error(), "couldn't find remote ref")
}

// write puts files in the worktree and removes what else the site's
// directory holds; it reports whether anything differs from before.
func write(fs billy.Filesystem, site string, files map[string][]byte) (bool, error) {
	changed := false
	dir := ClusterDir(site)
	existing, err := util.Glob(fs, path.Join(dir, "*"))
	if err != nil {
		return false, err
	}
	for _, p := range existing {
		if _, keep := files[p]; !keep {
			if err := util.RemoveAll(fs, p); err != nil {
				return false, err
			}
			changed = true
		}
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		old, err := util.ReadFile(fs, p)
		if err == nil && string(old) == string(files[p]) {
			continue
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		if err := util.WriteFile(fs, p, files[p], 0o644); err != nil {
			return false, err
		}
		changed = true
	}
	return changed, nil
}

func (d *Driver) describe(site string, ds modelfleet.Desired) Change {
	var c Change
	if d.cfg.Describe != nil {
		c = d.cfg.Describe(site, ds)
	}
	join := func(get func(modelfleet.DesiredModel) string) string {
		seen := map[string]bool{}
		var out []string
		for _, dm := range ds.Models {
			if v := get(dm); v != "" && !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
		sort.Strings(out)
		return strings.Join(out, ", ")
	}
	if c.Release == "" {
		c.Release = join(func(dm modelfleet.DesiredModel) string { return dm.Release })
	}
	if c.Wave == "" {
		c.Wave = join(func(dm modelfleet.DesiredModel) string { return dm.Wave })
	}
	if c.ApprovedBy == "" {
		c.ApprovedBy = join(func(dm modelfleet.DesiredModel) string { return dm.ApprovedBy })
	}
	return c
}

// message is one line a human scans in `git log --oneline`, then trailers a
// machine can read (git interpret-trailers).
func message(site string, ds modelfleet.Desired, c Change) string {
	names := make([]string, 0, len(ds.Models))
	for n := range ds.Models {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		split := modelfleet.SplitString(ds.Models[n].Versions)
		if split == "" {
			split = "none"
		}
		parts = append(parts, n+" "+split)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: r%d %s\n\n", site, ds.Revision, strings.Join(parts, "; "))
	fmt.Fprintf(&b, "Modelfleet-Site: %s\nModelfleet-Revision: %d\n", site, ds.Revision)
	for _, t := range [][2]string{{"Modelfleet-Release", c.Release}, {"Modelfleet-Wave", c.Wave}, {"Modelfleet-Approved-By", c.ApprovedBy}} {
		if t[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", t[0], t[1])
		}
	}
	return b.String()
}
