package mount

import (
	"context"
	"errors"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/hfcachefs/hfcachefs/cachecore"
	hffs "github.com/hfcachefs/hfcachefs/fs"
	"github.com/hfcachefs/hfcachefs/trash"
	"github.com/hfcachefs/hfcachefs/views"
)

// trasher carries out .trash for a mount: deletions with the cache's
// delete strategy scoped to one repo, receipts, restores.
type trasher struct {
	m        *Mount
	store    *trash.Store
	logf     func(string, ...any)
	holdWake chan struct{} // a new hold: the purge loop looks at its expiry

	mu      sync.Mutex // protects the following
	running map[string]*views.TrashProgress
	last    *views.TrashProgress
	version uint64    // bumped on every change, so .status.json renders again
	heldAt  time.Time // the receipts folder's mtime when held was summed
	held    [2]int64  // bytes and receipts holds keep
}

// Trash deletes what src shows: planned from a fresh scan of its repo,
// checked against what the caller could delete by themselves, staged out
// of the cache before the rename returns, finished in the background.
func (t *trasher) Trash(ctx context.Context, src views.Entry, newName string, noReplace bool) (prev, next *views.Model, errno syscall.Errno) {
	if len(newName) > 255 {
		return nil, nil, hffs.Errno(cachecore.ErrNameTooLong)
	}
	if t.store.Exists(newName) {
		return nil, nil, hffs.Errno(cachecore.ErrReceiptExists)
	}
	// Never on a stale view: the plan comes from the repo as it is now
	// (its scan, checked or made again; refs are read again as they go).
	t0 := time.Now()
	prev, fresh := t.m.scanner.planScan(src.Loc.Folder)
	tScan := time.Since(t0)
	if prev == nil {
		prev = t.m.state.Model()
	}
	if fresh == nil {
		fresh = t.m.state.Model()
	}
	next = fresh
	info := fresh.Info
	var repo *cachecore.RepoInfo
	for _, r := range info.Repos {
		if r.FolderName() == src.Loc.Folder {
			repo = r
		}
	}
	if repo == nil {
		return prev, next, syscall.ENOENT
	}
	sel := cachecore.Selection{Repo: repo, Revisions: repo.Revisions}
	if src.Role == views.RoleRevision {
		rev := repo.Revision(src.Loc.Commit)
		if rev == nil {
			return prev, next, syscall.ENOENT
		}
		sel.Revisions = []*cachecore.RevisionInfo{rev}
	}
	plan := info.PlanDeletion([]cachecore.Selection{sel})
	if caller, ok := fuse.FromContext(ctx); ok && caller.Uid != 0 {
		cred := cachecore.CredOfPid(caller.Uid, caller.Gid, caller.Pid)
		if err := plan.CheckCaller(cred); err != nil {
			t.logf("trash %s: refused for uid %d: %v", newName, caller.Uid, err)
			return prev, next, hffs.Errno(err)
		}
	}
	also := alsoRemoved(src, sel)
	progress := &views.TrashProgress{Name: newName, Repo: repo.CacheID(), State: trash.StatePending, Started: time.Now(), AlsoRemoved: also}
	t1 := time.Now()
	r, staged, err := t.store.Trash(plan, newName, cachecore.ExecuteOptions{
		LockTimeout: 10 * time.Second,
		Log:         func(msg string) { t.logf("trash %s: %s", newName, msg) },
		BeforeStep:  stepDelay(t.logf),
		Progress: func(done, total int) {
			t.mu.Lock()
			progress.BlobsDone, progress.Blobs = done, total
			t.version++
			t.mu.Unlock()
		},
	})
	// Whatever happened on disk, the views show it now.
	tStage := time.Since(t1)
	t2 := time.Now()
	if _, after := t.m.scanner.rescanNow(src.Loc.Folder); after != nil {
		next = after
	}
	if err != nil && staged == nil {
		t.logf("trash %s: %v", newName, err)
		return prev, next, hffs.Errno(err)
	}
	if len(also) > 0 {
		t.logf("trash %s: also removed %s (they named the same revision)", newName, strings.Join(also, ", "))
	}
	t.mu.Lock()
	progress.State, progress.Blobs = trash.StateDeleting, staged.Blobs()
	t.running[newName] = progress
	t.version++
	t.mu.Unlock()
	t3 := time.Now()
	done := make(chan struct{})
	go func() {
		t.complete(r, staged, progress, src.Loc.Folder)
		close(done)
	}()
	if err != nil {
		t.logf("trash %s: %v", newName, err)
	}
	// A small deletion is over before mv returns; a large one goes on in
	// the background (.status.json and the receipt show its progress),
	// so the kernel's rename lock is never held for long.
	select {
	case <-done:
	case <-time.After(syncBudget):
	}
	t.logf("trash %s: answered after %v (fresh scan %v, plan to staged %v, views %v)", newName,
		time.Since(t0).Round(time.Millisecond), tScan.Round(time.Millisecond), tStage.Round(time.Millisecond), t3.Sub(t2).Round(time.Millisecond))
	return prev, next, 0
}

// syncBudget is how long a .trash rename waits for its deletion to end
// before answering and letting it finish in the background.
const syncBudget = 100 * time.Millisecond

// complete finishes a staged deletion off the request path.
func (t *trasher) complete(r *trash.Receipt, staged *cachecore.Staged, progress *views.TrashProgress, folder string) {
	r, err := t.store.Complete(r, staged)
	now := time.Now()
	t.mu.Lock()
	progress.State, progress.BytesFreed, progress.Skipped, progress.Finished = r.State, r.BytesFreed, len(r.Skipped), &now
	if err != nil {
		progress.State, progress.Error = "failed", err.Error()
	}
	delete(t.running, progress.Name)
	t.last = progress
	t.version++
	t.mu.Unlock()
	if err != nil {
		t.logf("trash %s: %v", r.Name, err)
	} else {
		t.logf("trash %s: %s, %s freed, %d skipped", r.Name, r.State, r.BytesFreedStr, len(r.Skipped))
	}
	// The blobs are gone: the repo's notices (orphans) change.
	t.m.scanner.state.InvalidateLater(t.m.scanner.rescanNow(folder))
	select {
	case t.holdWake <- struct{}{}:
	default:
	}
}

// alsoRemoved lists the refs a move takes beyond the one it named: every
// ref of a trashed revision goes with it.
func alsoRemoved(src views.Entry, sel cachecore.Selection) []string {
	var out []string
	for _, rev := range sel.Revisions {
		for _, ref := range rev.Refs {
			if ref != src.Loc.ViaRef {
				out = append(out, "refs/"+ref)
			}
		}
	}
	if src.Role == views.RoleRepo {
		return nil // a whole repo: nothing beyond what was named
	}
	return out
}

// info is the trash section of .status.json, and its version.
func (t *trasher) info() (views.TrashInfo, uint64) {
	changed := t.ReceiptsChanged()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !changed.Equal(t.heldAt) || changed.IsZero() {
		// Summed again only when a receipt came, went or changed.
		bytes, count := t.store.Held()
		t.held, t.heldAt = [2]int64{bytes, int64(count)}, changed
	}
	out := views.TrashInfo{Running: []views.TrashProgress{}, HeldBytes: t.held[0], HeldCount: int(t.held[1])}
	for _, p := range t.running {
		out.Running = append(out.Running, *p)
	}
	sort.Slice(out.Running, func(i, j int) bool { return out.Running[i].Started.Before(out.Running[j].Started) })
	if t.last != nil {
		l := *t.last
		out.Last = &l
	}
	return out, t.version
}

// wait blocks until no deletion runs in the background (unmount, tests).
func (t *trasher) wait(ctx context.Context) bool {
	for {
		t.mu.Lock()
		n := len(t.running)
		t.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (t *trasher) Restore(ctx context.Context, name string, dst views.Loc, newName string) (prev, next *views.Model, errno syscall.Errno) {
	r, err := t.store.Get(name)
	if err != nil {
		return nil, nil, hffs.Errno(err)
	}
	// A revision goes back into its repo's by-commit/, a repo into the
	// folder it was shown in.
	switch {
	case !r.WholeRepo && dst.Role == views.RoleCommits && dst.Folder == r.RepoFolder:
	case r.WholeRepo && dst.Role == views.RoleType && dst.Type == r.RepoType && parentPath(r.RepoID) == dst.Path:
	case r.WholeRepo && dst.Role == views.RoleRepo && dst.Type == r.RepoType && parentPath(r.RepoID) == dst.Path:
	default:
		return nil, nil, syscall.EPERM
	}
	_, _, err = t.store.Restore(name)
	if errors.Is(err, trash.ErrNoHold) {
		return nil, nil, hffs.Errno(err) // nothing changed: no rescan
	}
	prev, next = t.m.scanner.rescanNow(r.RepoFolder)
	if err != nil {
		t.logf("restore %s: %v", name, err)
		return prev, next, hffs.Errno(err)
	}
	return prev, next, 0
}

func parentPath(id string) string {
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		return id[:i]
	}
	return ""
}

func (t *trasher) Drop(ctx context.Context, name string) syscall.Errno {
	return hffs.Errno(t.store.Drop(name))
}

func (t *trasher) Forget(ctx context.Context, name string) syscall.Errno {
	return hffs.Errno(t.store.Forget(name))
}

func (t *trasher) ReceiptsChanged() time.Time {
	if fi, err := os.Stat(t.store.ReceiptsDir()); err == nil {
		return fi.ModTime()
	}
	return time.Time{}
}

// purgeLoop purges expired holds now and whenever one expires.
func (t *trasher) purgeLoop(ctx context.Context) {
	for {
		if names, err := t.store.PurgeExpired(time.Now()); err != nil {
			t.logf("purging expired holds: %v", err)
		} else if len(names) > 0 {
			t.logf("purged expired holds: %s", strings.Join(names, ", "))
		}
		// Holds this daemon makes wake it (holdWake), and each expiry is
		// known; one made by the CLI meanwhile is looked for hourly (every
		// CLI command purges expired holds too): an idle mount reads
		// nothing.
		wait := time.Hour
		if next, ok := t.store.NextExpiry(); ok {
			wait = min(wait, max(time.Until(next)+10*time.Millisecond, 10*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-t.holdWake:
		}
	}
}

// stepDelay lets crash tests kill a .trash deletion between two steps:
// with HFCACHEFS_TEST_DELETE_STEP_DELAY=200ms each step waits that long.
func stepDelay(logf func(string, ...any)) func(kind, path string) error {
	d, err := time.ParseDuration(os.Getenv("HFCACHEFS_TEST_DELETE_STEP_DELAY"))
	if err != nil || d <= 0 {
		return nil
	}
	return func(kind, path string) error {
		logf("step: %s %s", kind, path)
		time.Sleep(d)
		return nil
	}
}
