package mount

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/trash"
	"github.com/hfcachefs/hfcachefs/views"
)

// trasher carries out .trash for a mount: deletions with the cache's
// delete strategy scoped to one repo, receipts, restores.
type trasher struct {
	m     *Mount
	store *trash.Store
	logf  func(string, ...any)
	held  chan struct{} // a new hold: the purge loop looks at its expiry
}

func (t *trasher) Trash(ctx context.Context, src views.Entry, newName string, noReplace bool) (prev, next *views.Model, errno syscall.Errno) {
	if t.store.Exists(newName) {
		return nil, nil, syscall.EEXIST
	}
	info := t.m.state.Model().Info
	var repo *cachecore.RepoInfo
	for _, r := range info.Repos {
		if r.FolderName() == src.Loc.Folder {
			repo = r
		}
	}
	if repo == nil {
		return nil, nil, syscall.ENOENT
	}
	sel := cachecore.Selection{Repo: repo, Revisions: repo.Revisions}
	if src.Role == views.RoleRevision {
		rev := repo.Revision(src.Loc.Commit)
		if rev == nil {
			return nil, nil, syscall.ENOENT
		}
		sel.Revisions = []*cachecore.RevisionInfo{rev}
	}
	_, err := t.store.Trash(info, sel, newName, cachecore.ExecuteOptions{
		LockTimeout: 10 * time.Second,
		Log:         func(msg string) { t.logf("trash %s: %s", newName, msg) },
		BeforeStep:  stepDelay(t.logf),
	})
	// Whatever happened on disk, the views show it now.
	prev, next = t.m.scanner.rescanNow(src.Loc.Folder)
	if err != nil {
		t.logf("trash %s: %v", newName, err)
		return prev, next, errnoOf(err)
	}
	select {
	case t.held <- struct{}{}:
	default:
	}
	return prev, next, 0
}

func (t *trasher) Restore(ctx context.Context, name string, dst views.Loc, newName string) (prev, next *views.Model, errno syscall.Errno) {
	r, err := t.store.Get(name)
	if err != nil {
		return nil, nil, errnoOf(err)
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
		return nil, nil, syscall.EPERM
	}
	prev, next = t.m.scanner.rescanNow(r.RepoFolder)
	if err != nil {
		t.logf("restore %s: %v", name, err)
		return prev, next, errnoOf(err)
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
	return errnoOf(t.store.Drop(name))
}

func (t *trasher) Forget(ctx context.Context, name string) syscall.Errno {
	return errnoOf(t.store.Forget(name))
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
		wait := time.Minute
		if next, ok := t.store.NextExpiry(); ok {
			wait = min(wait, max(time.Until(next)+10*time.Millisecond, 10*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-t.held:
		}
	}
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, os.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, os.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, os.ErrPermission):
		return syscall.EACCES
	}
	return syscall.EIO
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
