package fs

import (
	"context"
	"sort"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/hfcachefs/hfcachefs/views"
)

// dirNode is every directory of the mount: it knows its location and asks
// the current model for everything else.
type dirNode struct {
	gofs.Inode
	st   *State
	here atomic.Pointer[place]
	attr atomic.Pointer[nodeAttr] // as last looked up
	// changedAt (unix ns) is when a new model last changed this folder's
	// listing: shown as its mtime when later than the model's, since the
	// kernel keeps a cached listing until the mtime changes.
	changedAt atomic.Int64
}

// listingTimes shows as the folder's mtime when its listing last changed,
// in every reply that carries attributes (GETATTR, LOOKUP): the kernel
// compares it with the mtime its cached listing was made at.
func (n *dirNode) listingTimes(e *views.Entry) {
	if e.Role == views.RoleTrash && n.st.trasher != nil {
		e.Mtime = n.st.trasher.ReceiptsChanged() // receipts also come and go from the CLI
		e.Ctime = e.Mtime
	}
	if ns := n.changedAt.Load(); ns > e.Mtime.UnixNano() {
		e.Mtime = time.Unix(0, ns)
		e.Ctime = e.Mtime
	}
}

// touch records that the listing changed now.
func (n *dirNode) touch() {
	now := time.Now().UnixNano()
	for {
		old := n.changedAt.Load()
		next := max(now, old+1)
		if n.changedAt.CompareAndSwap(old, next) {
			return
		}
	}
}

// place is what a folder is and where it was found. A rename through
// .trash swaps it: the kernel moved the dentry, and the moved folder must
// serve its new part at once.
type place struct {
	loc    views.Loc
	parent views.Loc // the folder it was found in, and as what name
	name   string
}

func newDirNode(s *State, p place) *dirNode {
	n := &dirNode{st: s}
	n.here.Store(&p)
	return n
}

func (n *dirNode) at() *place { return n.here.Load() }

func (n *dirNode) moveTo(p place) {
	n.here.Store(&p)
	n.attr.Store(nil)
}

var (
	_ = (gofs.NodeLookuper)((*dirNode)(nil))
	_ = (gofs.NodeOpendirHandler)((*dirNode)(nil))
	_ = (gofs.NodeGetattrer)((*dirNode)(nil))
	_ = (gofs.NodeGetxattrer)((*dirNode)(nil))
	_ = (gofs.NodeListxattrer)((*dirNode)(nil))
	_ = (gofs.NodeSetxattrer)((*dirNode)(nil))
	_ = (gofs.NodeRemovexattrer)((*dirNode)(nil))
	_ = (gofs.NodeSetattrer)((*dirNode)(nil))
	_ = (gofs.NodeMkdirer)((*dirNode)(nil))
	_ = (gofs.NodeMknoder)((*dirNode)(nil))
	_ = (gofs.NodeCreater)((*dirNode)(nil))
	_ = (gofs.NodeSymlinker)((*dirNode)(nil))
	_ = (gofs.NodeLinker)((*dirNode)(nil))
	_ = (gofs.NodeUnlinker)((*dirNode)(nil))
	_ = (gofs.NodeRmdirer)((*dirNode)(nil))
	_ = (gofs.NodeRenamer)((*dirNode)(nil))
	_ = (gofs.NodeOnForgetter)((*dirNode)(nil))
	_ = (gofs.NodeStatfser)((*dirNode)(nil))
)

// wait blocks until what this folder shows has been scanned.
func (n *dirNode) wait(ctx context.Context) bool {
	switch n.at().loc.Role {
	case views.RoleBySize:
		return n.st.waitFull(ctx)
	case views.RoleRoot, views.RoleType, views.RoleAssets, views.RoleTrash:
		return true
	}
	return n.st.waitRepo(ctx, n.at().loc.Folder)
}

// self is this folder's entry in the current model (a repo folder's once
// its scan is in), or as last seen when the name now means another folder
// (a by-ref folder keeps its pinned revision).
func (n *dirNode) self(ctx context.Context) (views.Entry, bool) {
	m := n.st.Model()
	if n.at().loc.Role == views.RoleRoot {
		return m.RootEntry(), true
	}
	if n.at().loc.Role == views.RoleRepo && n.st.pending(n.at().loc.Folder) {
		if !n.st.waitRepo(ctx, n.at().loc.Folder) {
			return views.Entry{}, false
		}
		m = n.st.Model()
	}
	if e, ok := m.Lookup(n.at().parent, n.at().name); ok && e.Loc == n.at().loc {
		return e, true
	}
	a := n.attr.Load()
	if a == nil {
		return views.Entry{}, false
	}
	return a.entry(n.at().name, n.at().loc), true
}

func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if !n.wait(ctx) {
		return nil, syscall.EINTR
	}
	n.st.refLookup(ctx, n.at().loc)
	e, ok := n.st.Model().Lookup(n.at().loc, name)
	if !ok {
		return nil, syscall.ENOENT
	}
	if e.Kind == views.KindDir && e.Role != views.RoleAssets && e.Loc.Folder != "" && e.Role != views.RoleRepo {
		if !n.st.waitRepo(ctx, e.Loc.Folder) {
			return nil, syscall.EINTR
		}
	}
	return n.st.child(ctx, n, e, out), 0
}

func (n *dirNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if !n.wait(ctx) {
		return nil, 0, syscall.EINTR
	}
	var fuseFlags uint32
	m := n.st.Model()
	loc := n.at().loc
	switch {
	case loc.Role == views.RoleTrash, loc.Role == views.RoleTrashReceipt, loc.Role == views.RoleAssets:
		// Listed live (receipts, the assets folder): never cached.
	case m.IsEmptyDir(loc):
		// The kernel keeps an empty cached listing until the folder's
		// mtime changes (there is no page to invalidate), and ours may not.
	default:
		// Listings come from the model; when a new model changes one, the
		// refresher invalidates the kernel's cached copy (State.Invalidate).
		fuseFlags = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	}
	// The listing is made on the first read, from the model the flags were
	// chosen by: with a cached listing the kernel opens the folder but
	// never reads it.
	return &dirHandle{node: n, model: m, loc: loc}, fuseFlags, 0
}

func (n *dirNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	e, ok := n.self(ctx)
	if !ok {
		return syscall.ENOENT
	}
	n.listingTimes(&e)
	n.st.fillAttr(e, &out.Attr)
	out.Ino = n.StableAttr().Ino // a folder moved through .trash keeps its number
	out.SetTimeout(n.st.timeout(e))
	return 0
}

func (n *dirNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr == XattrRefresh {
		return n.st.refreshXattr(ctx, n.at().loc, dest)
	}
	e, ok := n.self(ctx)
	if !ok {
		return 0, syscall.ENOENT
	}
	return n.st.getxattr(e, attr, dest)
}

func (n *dirNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	e, ok := n.self(ctx)
	if !ok {
		return 0, syscall.ENOENT
	}
	return n.st.listxattr(e, dest)
}

func (n *dirNode) Setxattr(ctx context.Context, attr string, value []byte, flags uint32) syscall.Errno {
	if attr == XattrRefresh {
		return n.st.refreshWrite(ctx, n.at().loc, value)
	}
	return syscall.EROFS
}
func (n *dirNode) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }
func (n *dirNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
func (n *dirNode) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (n *dirNode) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (n *dirNode) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (n *dirNode) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (n *dirNode) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

// Unlink is refused but for a .trash receipt (rm -r .trash/NAME).
func (n *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.at().loc.Role == views.RoleTrashReceipt && name == views.ReceiptFileName && n.st.trasher != nil {
		return n.st.trasher.Drop(ctx, n.at().loc.Path)
	}
	return syscall.EROFS
}

// Rmdir is refused but for an emptied .trash receipt folder.
func (n *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.at().loc.Role == views.RoleTrash && n.st.trasher != nil {
		return n.st.trasher.Forget(ctx, name)
	}
	return syscall.EROFS
}

// Linux renameat2 flags.
const (
	renameNoReplace = 1 << 0
	renameExchange  = 1 << 1
	renameWhiteout  = 1 << 2
)

// renameAction is what a rename asks for.
type renameAction int

const (
	renameRefused renameAction = iota
	renameTrash                // a revision or repo into .trash
	renameRestore              // a receipt out of .trash
)

// decideRename says what a rename of (from, name) to (to, newName) does,
// given what name is in the current model (found tells whether it is
// there at all). Only revisions and repos go into .trash; only receipts
// come out; unknown flags are refused, never ignored.
func decideRename(from, to views.Loc, src views.Entry, found bool, flags uint32, hasTrash bool) (renameAction, syscall.Errno) {
	if flags&^renameNoReplace != 0 {
		return renameRefused, syscall.EINVAL // RENAME_EXCHANGE, RENAME_WHITEOUT, ...
	}
	switch {
	case to.Role == views.RoleTrash && hasTrash:
		if !found {
			return renameRefused, syscall.ENOENT
		}
		if src.Role != views.RoleRevision && src.Role != views.RoleRepo {
			return renameRefused, syscall.EPERM // only revisions and repos can be trashed
		}
		return renameTrash, 0
	case from.Role == views.RoleTrash && hasTrash:
		return renameRestore, 0
	case to.Role == views.RoleTrash || from.Role == views.RoleTrashReceipt || to.Role == views.RoleTrashReceipt:
		return renameRefused, syscall.EPERM
	}
	return renameRefused, syscall.EROFS
}

// Rename deletes through .trash (a revision or repo moved in) and restores
// from it (a held receipt moved back); everything else is refused.
func (n *dirNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*dirNode)
	if !ok {
		return syscall.EROFS
	}
	tr := n.st.trasher
	if np.at().loc.Role == views.RoleTrash && !n.wait(ctx) {
		return syscall.EINTR
	}
	e, found := n.st.Model().Lookup(n.at().loc, name)
	action, errno := decideRename(n.at().loc, np.at().loc, e, found, flags, tr != nil)
	switch action {
	case renameTrash:
		if e.Role == views.RoleRepo && !n.st.waitRepo(ctx, e.Loc.Folder) {
			return syscall.EINTR
		}
		prev, next, errno := tr.Trash(ctx, e, newName, flags&renameNoReplace != 0)
		if errno == 0 {
			// The kernel moves the folder's dentry into .trash when we
			// answer: from then on it is the receipt.
			n.st.moved(n, name, e, place{loc: views.Loc{Role: views.RoleTrashReceipt, Path: newName}, parent: np.at().loc, name: newName})
			n.st.afterRename(prev, next, map[*dirNode][]string{np: {newName}, n: {name}})
		}
		return errno
	case renameRestore:
		src, _ := n.st.Model().Lookup(n.at().loc, name)
		prev, next, errno := tr.Restore(ctx, name, np.at().loc, newName)
		if errno == 0 {
			// The moved folder shows the restored revision or repo if the
			// name the user gave is its name, and nothing otherwise (the
			// receipt is gone) until the kernel forgets it.
			to := place{loc: views.Loc{Role: views.RoleTrashReceipt, Path: name}, parent: np.at().loc, name: newName}
			if back, ok := next.Lookup(np.at().loc, newName); ok && back.Kind == views.KindDir {
				to.loc = back.Loc
			}
			n.st.moved(n, name, src, to)
			n.st.afterRename(prev, next, map[*dirNode][]string{np: {newName}, n: {name}})
		}
		return errno
	}
	return errno
}

func (n *dirNode) OnForget() { n.st.untrack(n) }

func (n *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.st.Model().Info.CacheDir, &st); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStatfsT(&st)
	return 0
}

// dirHandle serves one opendir from one model generation, and answers
// READDIRPLUS lookups from the same listing.
type dirHandle struct {
	node    *dirNode
	model   *views.Model
	loc     views.Loc
	loaded  bool
	entries []views.Entry
	pos     int
}

// load lists the folder once per handle. A handle that starts past the
// beginning continues a listing read in chunks (each chunk its own handle
// when the kernel opens folders by itself): it goes on with the listing
// the first chunk had, so no entry is skipped or repeated in between.
func (h *dirHandle) load() syscall.Errno {
	if h.loaded {
		return 0
	}
	if h.pos > 0 {
		if entries, ok := h.node.st.listings.get(h.node); ok {
			h.entries, h.loaded = entries, true
			return 0
		}
	}
	entries, ok := h.model.ReadDir(h.loc)
	if !ok {
		return syscall.ENOENT
	}
	h.entries, h.loaded = entries, true
	if len(entries) > chunkEntries {
		h.node.st.listings.put(h.node, entries)
	}
	return 0
}

// chunkEntries is about what one READDIRPLUS reply holds (a 4 KiB page):
// longer listings are read in several requests.
const chunkEntries = 16

var (
	_ = (gofs.FileReaddirenter)((*dirHandle)(nil))
	_ = (gofs.FileLookuper)((*dirHandle)(nil))
	_ = (gofs.FileSeekdirer)((*dirHandle)(nil))
)

func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if errno := h.load(); errno != 0 {
		return nil, errno
	}
	if h.pos >= len(h.entries) {
		h.node.st.listings.done(h.node, h.entries)
		return nil, 0
	}
	e := h.entries[h.pos]
	h.pos++
	return &fuse.DirEntry{Name: e.Name, Mode: modeOf(e), Ino: e.Ino, Off: uint64(h.pos)}, 0
}

func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if !h.loaded {
		h.pos = int(min(off, 1<<31))
	}
	if errno := h.load(); errno != 0 {
		return errno
	}
	// Past the end (the listing got shorter between two chunks): the end.
	h.pos = int(min(off, uint64(len(h.entries))))
	return 0
}

func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := h.load(); errno != 0 {
		return nil, errno
	}
	i := sort.Search(len(h.entries), func(i int) bool { return h.entries[i].Name >= name })
	if i == len(h.entries) || h.entries[i].Name != name {
		return h.node.Lookup(ctx, name, out)
	}
	return h.node.st.child(ctx, h.node, h.entries[i], out), 0
}
