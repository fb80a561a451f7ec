package fs

import (
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/hfcachefs/hfcachefs/views"
)

// NoOpendir wraps go-fuse's node file system so that the kernel stops
// sending OPENDIR and RELEASEDIR: answering OPENDIR with ENOSYS (where the
// kernel offers FUSE_NO_OPENDIR_SUPPORT) makes it open folders by itself,
// and cache every listing (FOPEN_CACHE_DIR). A warm walk then costs no
// round trip per folder. The kernel keeps a cached listing until the
// folder's mtime changes or its pages are invalidated, so folders report
// the time their listing last changed (dirNode.changedAt) and the
// refresher invalidates them (State.Invalidate).
//
// READDIR(PLUS) then arrive without a handle: each is served by a go-fuse
// handle opened and released within the request (the kernel holds the
// folder's inode only that long); a listing read in several chunks is
// kept by State.listings between them.
//
// It also tells the trimmer (State.Touch) that requests come in.
type NoOpendir struct {
	fuse.RawFileSystem
	server *fuse.Server
	st     *State
}

// WrapNoOpendir wraps a node file system (from gofs.NewNodeFS) of st.
func WrapNoOpendir(raw fuse.RawFileSystem, st *State) *NoOpendir {
	return &NoOpendir{RawFileSystem: raw, st: st}
}

// SupportsPrune reports whether the kernel takes FUSE_NOTIFY_PRUNE.
func (w *NoOpendir) SupportsPrune() bool {
	return w.server != nil && w.server.KernelSettings().SupportsNotify(fuse.NOTIFY_PRUNE)
}

func (w *NoOpendir) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	w.st.Touch()
	return w.RawFileSystem.Lookup(cancel, header, name, out)
}

func (w *NoOpendir) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	w.st.Touch()
	return w.RawFileSystem.GetAttr(cancel, in, out)
}

func (w *NoOpendir) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	w.st.Touch()
	return w.RawFileSystem.Open(cancel, in, out)
}

func (w *NoOpendir) Readlink(cancel <-chan struct{}, header *fuse.InHeader) ([]byte, fuse.Status) {
	w.st.Touch()
	return w.RawFileSystem.Readlink(cancel, header)
}

func (w *NoOpendir) GetXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	w.st.Touch()
	return w.RawFileSystem.GetXAttr(cancel, header, attr, dest)
}

func (w *NoOpendir) Init(server *fuse.Server) {
	w.server = server
	w.RawFileSystem.Init(server)
}

// active reports whether the kernel accepts ENOSYS for OPENDIR.
func (w *NoOpendir) active() bool {
	return w.server != nil && w.server.KernelSettings().Flags64()&fuse.CAP_NO_OPENDIR_SUPPORT != 0
}

func (w *NoOpendir) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	w.st.Touch()
	if w.active() {
		return fuse.ENOSYS
	}
	return w.RawFileSystem.OpenDir(cancel, in, out)
}

func (w *NoOpendir) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	w.st.Touch()
	if in.Fh != 0 {
		return w.RawFileSystem.ReadDir(cancel, in, out)
	}
	return w.read(cancel, in, out, w.RawFileSystem.ReadDir)
}

func (w *NoOpendir) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	w.st.Touch()
	if in.Fh != 0 {
		return w.RawFileSystem.ReadDirPlus(cancel, in, out)
	}
	return w.read(cancel, in, out, w.RawFileSystem.ReadDirPlus)
}

// read serves one chunk of a listing the kernel opened by itself, through
// a handle of this request only.
func (w *NoOpendir) read(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList,
	readdir func(<-chan struct{}, *fuse.ReadIn, *fuse.DirEntryList) fuse.Status) fuse.Status {
	var open fuse.OpenOut
	if status := w.RawFileSystem.OpenDir(cancel, &fuse.OpenIn{InHeader: in.InHeader, Flags: in.Flags}, &open); !status.Ok() {
		return status
	}
	chunk := *in
	chunk.Fh = open.Fh
	status := readdir(cancel, &chunk, out)
	w.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: in.InHeader, Fh: open.Fh})
	return status
}

// listings keeps the listings being read in chunks, between the chunks.
type listings struct {
	mu     sync.Mutex // protects the following
	byNode map[*dirNode]*heldListing
}

type heldListing struct {
	entries []views.Entry
	used    time.Time
}

// listingIdle is how long a listing read halfway is kept for its next
// chunk.
const listingIdle = 30 * time.Second

func (l *listings) put(n *dirNode, entries []views.Entry) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byNode == nil {
		l.byNode = map[*dirNode]*heldListing{}
	}
	for k, h := range l.byNode {
		if now.Sub(h.used) > listingIdle {
			delete(l.byNode, k)
		}
	}
	l.byNode[n] = &heldListing{entries: entries, used: now}
}

func (l *listings) get(n *dirNode) ([]views.Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.byNode[n]
	if !ok {
		return nil, false
	}
	h.used = time.Now()
	return h.entries, true
}

// done forgets a listing read to its end.
func (l *listings) done(n *dirNode, entries []views.Entry) {
	if len(entries) <= chunkEntries {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.byNode[n]; ok && len(h.entries) > 0 && &h.entries[0] == &entries[0] {
		delete(l.byNode, n)
	}
}
