package fs

import (
	"context"
	"errors"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/safefs"
	"github.com/hfcachefs/hfcachefs/views"
)

// child returns the inode for an entry of parent, creating its node on
// first sight. Files reaching the same blob share an inode number, so
// go-fuse hands back the same Inode: hard links.
func (s *State) child(ctx context.Context, parent *dirNode, e views.Entry, out *fuse.EntryOut) *gofs.Inode {
	// A node the kernel knows under this name already: go-fuse would keep
	// it and drop a new one (found by inode number), so update it instead.
	ch := parent.GetChild(e.Name)
	if ch == nil || ch.StableAttr().Ino != e.Ino || ch.StableAttr().Mode != modeOf(e) {
		var node gofs.InodeEmbedder
		var dn *dirNode
		switch e.Kind {
		case views.KindDir:
			dn = newDirNode(s, place{loc: e.Loc, parent: parent.at().loc, name: e.Name})
			node = dn
		case views.KindSymlink:
			node = &linkNode{st: s, target: e.Target}
		default:
			if e.Role == views.RoleStatusFile {
				node = &statusNode{st: s}
			} else {
				node = &fileNode{st: s}
			}
		}
		ch = parent.NewInode(ctx, node, gofs.StableAttr{Mode: modeOf(e), Ino: e.Ino})
		if dn != nil {
			s.track(dn) // only now: the refresher reads its Inode
		}
	}
	switch ops := ch.Operations().(type) {
	case *dirNode:
		if ops.at().loc != e.Loc {
			// A folder moved into or out of .trash keeps its inode number
			// but now plays the part the model gives it.
			ops.moveTo(place{loc: e.Loc, parent: parent.at().loc, name: e.Name})
		}
		ops.setEntry(&e)
		ops.listingTimes(&e)
	case *fileNode:
		ops.setEntry(&e)
	}
	s.fillAttr(e, &out.Attr)
	t := s.timeout(e)
	out.SetEntryTimeout(t)
	if e.Role == views.RoleRepo && s.pending(e.Loc.Folder) {
		// Placeholder attributes: the kernel asks again (getattr waits
		// for the scan) rather than caching them.
		t = 0
	}
	out.SetAttrTimeout(t)
	return ch
}

func modeOf(e views.Entry) uint32 {
	switch e.Kind {
	case views.KindDir:
		return syscall.S_IFDIR
	case views.KindSymlink:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

// timeout: what lies inside a revision never changes (a removal is
// notified); names that follow refs or repos may change at any time.
func (s *State) timeout(e views.Entry) time.Duration {
	switch e.Role {
	case views.RoleRevisionFile, views.RoleRevSubdir:
		if e.Denied != "" {
			// Refused now (seen through a folder swapped for a symlink,
			// say): asked again soon, not kept for an hour.
			return s.opts.EntryTimeout
		}
		return s.opts.StableTimeout
	case views.RoleRevision:
		if e.Loc.ViaRef == "" {
			return s.opts.StableTimeout
		}
	case views.RoleStatusFile, views.RoleTrash:
		return 0 // .trash: its mtime says whether the cached listing is stale
	}
	return s.opts.EntryTimeout
}

// fillAttr renders an entry as FUSE attributes.
func (s *State) fillAttr(e views.Entry, a *fuse.Attr) {
	a.Ino = e.Ino
	a.Mode = modeOf(e) | e.Mode
	a.Nlink = e.Nlink
	a.Size = uint64(e.Size)
	a.Blocks = uint64(e.Blocks)
	a.Blksize = 4096
	a.SetTimes(&e.Atime, &e.Mtime, &e.Ctime)
	a.Uid, a.Gid = s.opts.CacheUID, s.opts.CacheGID
	if e.File != nil && e.File.Blob != nil {
		a.Uid, a.Gid = e.File.Blob.UID, e.File.Blob.GID
	}
	if e.Kind == views.KindDir && e.Role != views.RoleAssets {
		a.Size = 0
		a.Blocks = 0
	}
	if s.opts.AllowOther && e.Kind == views.KindDir {
		// The kernel checks these folders' modes for a .trash move
		// (default_permissions): show the real folders the deletion
		// writes, so exactly the users who may write the cache can.
		if real := s.realFolder(e); real != "" {
			var st syscall.Stat_t
			if syscall.Stat(real, &st) == nil {
				a.Uid, a.Gid, a.Mode = st.Uid, st.Gid, syscall.S_IFDIR|st.Mode&0o7777
			}
		}
	}
	if e.Role == views.RoleStatusFile && s.opts.StatusProvider != nil {
		a.Size = uint64(len(s.opts.StatusProvider()))
	}
	if s.opts.UID != nil {
		a.Uid = *s.opts.UID
	}
	if s.opts.GID != nil {
		a.Gid = *s.opts.GID
	}
}

// realFolder is the cache folder a .trash move through e writes.
func (s *State) realFolder(e views.Entry) string {
	if s.trasher == nil {
		return ""
	}
	cache := s.Model().Info.CacheDir
	switch e.Role {
	case views.RoleRepo:
		return cache + "/" + e.Loc.Folder
	case views.RoleRevision:
		return cache + "/" + e.Loc.Folder + "/snapshots/" + e.Loc.Commit
	case views.RoleCommits, views.RoleRefs:
		return cache + "/" + e.Loc.Folder + "/snapshots"
	case views.RoleType, views.RoleTrash, views.RoleTrashReceipt:
		return cache
	}
	return ""
}

// getxattr answers user.hf.*; security.* and system.* are not supported
// at all, so ls -l stops asking.
func (s *State) getxattr(e views.Entry, attr string, dest []byte) (uint32, syscall.Errno) {
	if strings.HasPrefix(attr, "security.") || strings.HasPrefix(attr, "system.") {
		return 0, syscall.EOPNOTSUPP
	}
	v, ok := s.Model().Xattr(e, attr)
	if !ok {
		return 0, syscall.ENODATA
	}
	if len(dest) == 0 {
		return uint32(len(v)), 0
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (s *State) listxattr(e views.Entry, dest []byte) (uint32, syscall.Errno) {
	names := s.Model().Xattrs(e)
	sort.Strings(names)
	var b []byte
	for _, n := range names {
		b = append(append(b, n...), 0)
	}
	if len(dest) == 0 {
		return uint32(len(b)), 0
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

// translateError maps an error from the cache side to the errno a FUSE
// caller sees: a path that does not resolve beneath the cache (a symlink
// or an escape on the way) is EACCES; a blob that is still not what the
// scan saw after a rescan (gone, replaced again) is ENOENT, never ESTALE
// (a re-download is no stale handle).
func translateError(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	switch {
	// The cache side's named errors first: they wrap the errno of the
	// system call that found them, which is not what the caller should see.
	case errors.Is(err, cachecore.ErrOutsideCache), errors.Is(err, safefs.ErrEscape):
		return syscall.EACCES // a symlink or ".." on the way: never followed
	case errors.Is(err, cachecore.ErrStale):
		return syscall.ENOENT // not the file the scan saw, even after a rescan
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, os.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, os.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, os.ErrExist):
		return syscall.EEXIST
	}
	return syscall.EIO
}

// linkNode is a by-size symlink (or one of the assets cache).
type linkNode struct {
	gofs.Inode
	st     *State
	target string
}

var (
	_ = (gofs.NodeReadlinker)((*linkNode)(nil))
	_ = (gofs.NodeGetattrer)((*linkNode)(nil))
	_ = (gofs.NodeSetattrer)((*linkNode)(nil))
	_ = (gofs.NodeGetxattrer)((*linkNode)(nil))
)

func (n *linkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	return []byte(n.target), 0
}

func (n *linkNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	now := time.Now()
	e := views.Entry{Kind: views.KindSymlink, Ino: n.StableAttr().Ino, Nlink: 1, Mode: 0o777, Size: int64(len(n.target)),
		Atime: now, Mtime: now, Ctime: now}
	n.st.fillAttr(e, &out.Attr)
	return 0
}

func (n *linkNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (n *linkNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if strings.HasPrefix(attr, "security.") || strings.HasPrefix(attr, "system.") {
		return 0, syscall.EOPNOTSUPP
	}
	return 0, syscall.ENODATA
}
