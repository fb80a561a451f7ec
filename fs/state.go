// Package fs adapts the views model to go-fuse: small node types that
// resolve their location in the current model on every call, so a new
// model (a refreshed cache) swaps in atomically under them.
package fs

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/hfcachefs/hfcachefs/internal/safefs"
	"github.com/hfcachefs/hfcachefs/views"
)

// Options shape what the mount shows.
type Options struct {
	UID, GID       *uint32 // show every entry as owned by them
	CacheUID       uint32  // owner of the real cache dir (default owner)
	CacheGID       uint32
	CacheMode      uint32 // permission bits of the real cache dir
	AllowOther     bool
	ReadOnly       bool
	EntryTimeout   time.Duration // for names that can change (refs, repos)
	StableTimeout  time.Duration // for revision contents (immutable, invalidated when removed)
	NoPassthrough  bool
	StatusProvider func() []byte
}

// Trasher carries out what .trash allows; nil means no .trash. Trash and
// Restore return the models before and after, so the caller can tell the
// kernel what changed once the request is answered.
type Trasher interface {
	// Trash deletes the revision or repo src (renamed to .trash/newName).
	Trash(ctx context.Context, src views.Entry, newName string, noReplace bool) (prev, next *views.Model, errno syscall.Errno)
	// Restore puts .trash/name back (renamed into dst as newName).
	Restore(ctx context.Context, name string, dst views.Loc, newName string) (prev, next *views.Model, errno syscall.Errno)
	// Drop removes the receipt of .trash/name (rm .trash/name/receipt.json).
	Drop(ctx context.Context, name string) syscall.Errno
	// Forget removes the emptied .trash/name (rmdir).
	Forget(ctx context.Context, name string) syscall.Errno
	// ReceiptsChanged is when a receipt last came or went (.trash's mtime).
	ReceiptsChanged() time.Time
}

// State is what every node of one mount shares.
type State struct {
	opts          Options
	model         atomic.Pointer[views.Model]
	noPassthrough atomic.Bool
	trasher       Trasher
	ctl           Controller

	// waitRepo blocks until a repo folder's scan is in the current model
	// (the mount is ready before the cache has been walked).
	waitRepo func(ctx context.Context, folder string) bool
	// waitFull blocks until the first full scan is in.
	waitFull func(ctx context.Context) bool
	// pending reports whether a repo folder is still a placeholder.
	pending func(folder string) bool
	// rescan rescans one repo folder now and stores the new model (no
	// kernel notification: the caller may be serving a request); nil: none.
	rescan func(folder string)

	// rootMu guards the cache dir's handle, which every blob is opened
	// beneath: replaced (the old one closed) only once no open uses it.
	rootMu sync.RWMutex
	rootH  *safefs.Handle // nil: the cache dir is gone (every open is ENOENT)

	listings listings // listings read in chunks, between the chunks
	root     atomic.Pointer[dirNode]
	trim     trimmer

	mu   sync.Mutex // protects the following
	live map[*dirNode]struct{}

	qmu      sync.Mutex // protects the following
	queue    []invalidation
	draining bool
}

// NewState makes the shared state with a first model.
func NewState(m *views.Model, opts Options) *State {
	s := &State{opts: opts, live: map[*dirNode]struct{}{}}
	s.noPassthrough.Store(opts.NoPassthrough)
	s.model.Store(m)
	s.waitRepo = func(context.Context, string) bool { return true }
	s.waitFull = func(context.Context) bool { return true }
	s.pending = func(string) bool { return false }
	return s
}

// SetWaiters installs the functions that make lookups wait for scans.
func (s *State) SetWaiters(repo func(ctx context.Context, folder string) bool, full func(ctx context.Context) bool, pending func(folder string) bool) {
	s.waitRepo, s.waitFull, s.pending = repo, full, pending
}

// SetRescan installs the function a blob open calls when what it opened
// is not what the scan saw (a re-download replaced the blob, a folder was
// swapped): it rescans that repo folder and stores the new model, sending
// no kernel notification (it is called from inside a FUSE request).
func (s *State) SetRescan(f func(folder string)) { s.rescan = f }

// SetRoot installs the handle of the cache dir (nil: the cache dir is
// gone); the previous one is closed once no open is using it. The state
// owns the handle from then on.
func (s *State) SetRoot(h *safefs.Handle) {
	s.rootMu.Lock()
	old := s.rootH
	s.rootH = h
	s.rootMu.Unlock()
	if old != nil && old != h {
		old.Close()
	}
}

// WithRoot runs f with the cache dir's handle (nil while the cache dir is
// gone), which stays open until f returns. f must not wait for anything
// that may call SetRoot.
func (s *State) WithRoot(f func(h *safefs.Handle) error) error {
	s.rootMu.RLock()
	defer s.rootMu.RUnlock()
	return f(s.rootH)
}

// SetTrasher installs the .trash handler.
func (s *State) SetTrasher(t Trasher) { s.trasher = t }

// Model is the current model.
func (s *State) Model() *views.Model { return s.model.Load() }

// Root is the root node to mount.
func (s *State) Root() gofs.InodeEmbedder {
	root := newDirNode(s, place{loc: views.Root()})
	s.root.Store(root)
	return root
}

// Swap installs a new model and invalidates what the kernel may have
// cached of the old one. It sends kernel notifications, so it must be
// called from a goroutine that holds no lock of this package (go-fuse
// deadlocks otherwise) and never from inside a FUSE request handler.
func (s *State) Swap(next *views.Model) {
	s.Invalidate(s.Store(next), next)
}

// Store installs a new model and returns the previous one.
func (s *State) Store(next *views.Model) *views.Model { return s.model.Swap(next) }

// Invalidate tells the kernel what changed between two models. Like Swap,
// only from a goroutine holding no lock and serving no FUSE request.
func (s *State) Invalidate(prev, next *views.Model) {
	if prev == nil || prev == next {
		return
	}
	s.mu.Lock()
	nodes := make([]*dirNode, 0, len(s.live))
	for n := range s.live {
		nodes = append(nodes, n)
	}
	s.mu.Unlock()
	changed := changedFolders(prev, next)
	for _, n := range nodes {
		if n.at().loc.Folder != "" && !changed[n.at().loc.Folder] {
			continue // this repo did not change
		}
		invalidateDir(n, prev, next)
	}
}

// invalidation is one queued Invalidate; done (if set) is closed once
// the kernel has been told.
type invalidation struct {
	prev, next *views.Model
	done       chan struct{}
}

// InvalidateLater queues Invalidate for a goroutine of its own, in order,
// so that whoever swapped the model never waits for the kernel: a
// notification about a folder waits for that folder's lock, which a
// READDIR waiting for a scan may hold.
func (s *State) InvalidateLater(prev, next *views.Model) {
	if prev == nil || prev == next {
		return
	}
	s.enqueue(invalidation{prev: prev, next: next})
}

// InvalidateWait queues Invalidate like InvalidateLater (nil models: none)
// and waits, at most timeout, until the kernel has been told of it and of
// everything queued before: a request that promises the new view (the
// refresh control) answers only once the kernel's cached names are gone.
// It holds no lock while it waits.
func (s *State) InvalidateWait(prev, next *views.Model, timeout time.Duration) {
	done := make(chan struct{})
	s.enqueue(invalidation{prev: prev, next: next, done: done})
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

func (s *State) enqueue(inv invalidation) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	s.queue = append(s.queue, inv)
	if s.draining {
		return
	}
	s.draining = true
	go func() {
		for {
			s.qmu.Lock()
			if len(s.queue) == 0 {
				s.draining = false
				s.qmu.Unlock()
				return
			}
			inv := s.queue[0]
			s.queue = s.queue[1:]
			s.qmu.Unlock()
			s.Invalidate(inv.prev, inv.next)
			if inv.done != nil {
				close(inv.done)
			}
		}
	}()
}

// changedFolders lists repo folders whose scan differs between models.
func changedFolders(a, b *views.Model) map[string]bool {
	out := map[string]bool{}
	old := map[string]any{}
	for _, r := range a.Info.Repos {
		old[r.FolderName()] = r
	}
	for _, r := range b.Info.Repos {
		if old[r.FolderName()] != any(r) {
			out[r.FolderName()] = true
		}
		delete(old, r.FolderName())
	}
	for folder := range old {
		out[folder] = true
	}
	return out
}

// invalidateDir drops the kernel's dentries of a directory whose child
// vanished or now means another inode, and its cached listing if that
// changed.
func invalidateDir(n *dirNode, prev, next *views.Model) {
	if n.Inode.Forgotten() {
		return
	}
	before, _ := prev.ReadDir(n.at().loc)
	after, okAfter := next.ReadDir(n.at().loc)
	now := map[string]uint64{}
	for _, e := range after {
		now[e.Name] = e.Ino
	}
	listingChanged := !okAfter || len(before) != len(after)
	for _, e := range before {
		ino, ok := now[e.Name]
		if !ok || ino != e.Ino {
			_ = n.NotifyEntry(e.Name)
			listingChanged = true
		}
	}
	if listingChanged {
		n.touch() // before the kernel asks for the mtime again
		_ = n.NotifyContent(0, 0)
	}
}

func (s *State) track(n *dirNode) {
	s.mu.Lock()
	s.live[n] = struct{}{}
	s.mu.Unlock()
}

func (s *State) untrack(n *dirNode) {
	s.mu.Lock()
	delete(s.live, n)
	s.mu.Unlock()
}

// afterRename tells the kernel, once the rename request has been answered,
// what the rename changed beyond the dentry the kernel moved itself: the
// moved name now means another inode, and other views changed.
func (s *State) afterRename(prev, next *views.Model, dirs map[*dirNode][]string) {
	go func() {
		for d, names := range dirs {
			for _, name := range names {
				_ = d.NotifyEntry(name)
			}
		}
		s.InvalidateLater(prev, next)
	}()
}

// moved makes the folder a rename through .trash moved (name in parent,
// shown as src) play its new part at once. Its inode number goes to no
// one else from now on: the moved inode keeps it, and a folder the kernel
// sees in two places at once is a stale handle.
func (s *State) moved(parent *dirNode, name string, src views.Entry, to place) {
	s.Model().RetireIno(src.Ino)
	ch := parent.GetChild(name)
	if ch == nil {
		return
	}
	if d, ok := ch.Operations().(*dirNode); ok {
		d.moveTo(to)
	}
}

// DisablePassthrough makes opens serve reads by splicing (call before
// the first open: go-fuse decides per open).
func (s *State) DisablePassthrough() { s.noPassthrough.Store(true) }
