package fs

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/safefs"
	"github.com/hfcachefs/hfcachefs/views"
)

// fileNode is a revision file (or an assets file): its bytes are the
// blob's, read straight from it.
type fileNode struct {
	gofs.Inode
	st   *State
	attr atomic.Pointer[nodeAttr]
}

var (
	_ = (gofs.NodeOpener)((*fileNode)(nil))
	_ = (gofs.NodeGetattrer)((*fileNode)(nil))
	_ = (gofs.NodeSetattrer)((*fileNode)(nil))
	_ = (gofs.NodeGetxattrer)((*fileNode)(nil))
	_ = (gofs.NodeListxattrer)((*fileNode)(nil))
	_ = (gofs.NodeSetxattrer)((*fileNode)(nil))
	_ = (gofs.NodeRemovexattrer)((*fileNode)(nil))
)

// setEntry keeps what a lookup found; an unchanged entry is not copied
// again (a walk looks every file up).
func (n *fileNode) setEntry(e *views.Entry) {
	if cur := n.attr.Load(); cur == nil || !cur.same(e) {
		n.attr.Store(compactEntry(e))
	}
}

// entry is the file's entry as last looked up.
func (n *fileNode) entry() views.Entry { return n.attr.Load().entry("", views.Loc{}) }

func (n *dirNode) setEntry(e *views.Entry) {
	if cur := n.attr.Load(); cur == nil || !cur.same(e) {
		n.attr.Store(compactEntry(e))
	}
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND|syscall.O_CREAT) != 0 {
		return nil, 0, syscall.EROFS
	}
	e := n.attr.Load()
	if e.denied != "" {
		// The kernel may keep a name cached for long (an hour inside a
		// revision): a file refused at the last lookup (its blob seen
		// through a folder swapped for a symlink, say) is served once
		// the current model no longer refuses it.
		f := n.currentFile(e)
		if f == nil || views.Denied(f) != "" {
			return nil, 0, syscall.EACCES
		}
		a := *e
		a.file, a.denied, a.real, a.size, a.blocks = f, "", f.BlobPath, f.Blob.Size, f.Blob.Blocks
		a.mode = 0o444
		n.attr.CompareAndSwap(e, &a)
		e = &a
	}
	var fd int
	var err error
	switch {
	case e.file != nil:
		fd, err = n.openBlob(e)
	case e.role == views.RoleAssets:
		fd, err = n.st.Model().OpenAsset(e.real)
	default:
		// A .trash receipt: the daemon's own state folder, not the cache.
		fd, err = openPlain(e.real)
	}
	if err != nil {
		return nil, 0, translateError(err)
	}
	var fuseFlags uint32 = fuse.FOPEN_KEEP_CACHE // blobs are immutable
	return &blobHandle{fd: fd, passthrough: !n.st.noPassthrough.Load()}, fuseFlags, 0
}

// openBlob opens a revision file's blob beneath the cache dir's handle
// (cachecore.OpenBlob: no symlink on the way, the file the scan saw).
// A blob replaced since (a re-download) or a folder swapped is looked up
// again: in the current model if it is newer than the node's entry, else
// after a rescan of the repo, and what the new scan saw is opened.
func (n *fileNode) openBlob(e *nodeAttr) (int, error) {
	fd, err := n.st.openFile(e.file)
	if err == nil || !retryable(err) {
		return fd, err
	}
	folder := n.st.folderOf(e.file)
	if folder == "" {
		return -1, err
	}
	if f := n.st.findFile(folder, e.file); f != nil && f != e.file {
		// The refresher has seen it since the kernel looked the name up.
		if fd, err2 := n.st.openFound(f); err2 == nil || !retryable(err2) {
			n.refresh(e, f, err2)
			return fd, err2
		}
	}
	if n.st.rescan == nil {
		return -1, err
	}
	n.st.rescan(folder) // stores the new model (the kernel hears of it later)
	f := n.st.findFile(folder, e.file)
	if f == nil {
		return -1, syscall.ENOENT // gone from the cache
	}
	fd, err = n.st.openFound(f)
	n.refresh(e, f, err)
	return fd, err
}

// currentFile is the file at the node's place in the current model, if
// it is a newer scan's than the node's entry.
func (n *fileNode) currentFile(e *nodeAttr) *cachecore.FileInfo {
	if e.file == nil {
		return nil
	}
	folder := n.st.folderOf(e.file)
	if folder == "" {
		return nil
	}
	if f := n.st.findFile(folder, e.file); f != nil && f != e.file {
		return f
	}
	return nil
}

// refresh keeps the file the new scan found, so the next open starts from
// it (the kernel may keep the name cached for long).
func (n *fileNode) refresh(e *nodeAttr, f *cachecore.FileInfo, err error) {
	if err != nil || f == e.file || f.Blob == nil {
		return
	}
	a := *e
	a.file, a.size, a.blocks = f, f.Blob.Size, f.Blob.Blocks
	n.attr.CompareAndSwap(e, &a)
}

// retryable: what was opened is not what the scan saw, or a symlink or a
// missing folder on the way: a new scan may know better.
func retryable(err error) bool {
	return errors.Is(err, cachecore.ErrStale) || errors.Is(err, cachecore.ErrOutsideCache)
}

// openFile opens a scanned file's blob beneath the cache dir's handle.
func (s *State) openFile(f *cachecore.FileInfo) (int, error) {
	fd := -1
	err := s.WithRoot(func(root *safefs.Handle) error {
		var err error
		fd, err = cachecore.OpenBlob(root, f)
		return err
	})
	return fd, err
}

// openFound opens a file found in a newer model, refusing what the model
// shows as never served.
func (s *State) openFound(f *cachecore.FileInfo) (int, error) {
	if views.Denied(f) != "" {
		return -1, syscall.EACCES
	}
	return s.openFile(f)
}

// folderOf is the repo folder a scanned file belongs to.
func (s *State) folderOf(f *cachecore.FileInfo) string {
	if f.Blob != nil && f.Blob.Repo != nil {
		return f.Blob.Repo.Folder
	}
	cache := s.Model().Info.CacheDir
	rest, ok := strings.CutPrefix(f.SnapshotPath, strings.TrimSuffix(cache, "/")+"/")
	if !ok {
		return ""
	}
	folder, _, _ := strings.Cut(rest, "/")
	return folder
}

// findFile finds the file at the same place (revision folder, path in
// it) in the current model.
func (s *State) findFile(folder string, old *cachecore.FileInfo) *cachecore.FileInfo {
	for _, r := range s.Model().Info.Repos {
		if r.FolderName() != folder {
			continue
		}
		for _, rev := range r.Revisions {
			if rev.SnapshotPath != old.SnapshotPath {
				continue
			}
			i := sort.Search(len(rev.Files), func(i int) bool { return rev.Files[i].RelPath >= old.RelPath })
			if i < len(rev.Files) && rev.Files[i].RelPath == old.RelPath {
				return rev.Files[i]
			}
			return nil
		}
	}
	return nil
}

// openPlain opens a file of the daemon's own (never a symlink, never a
// FIFO) and checks it is a regular file.
func openPlain(path string) (int, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return -1, syscall.EACCES
	}
	return fd, nil
}

func (n *fileNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	e := n.entry()
	n.st.fillAttr(e, &out.Attr)
	out.SetTimeout(n.st.timeout(e))
	return 0
}

func (n *fileNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (n *fileNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return n.st.getxattr(n.entry(), attr, dest)
}

func (n *fileNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return n.st.listxattr(n.entry(), dest)
}

func (n *fileNode) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}
func (n *fileNode) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }

// blobHandle is an open blob: the kernel reads it directly (passthrough)
// where it can, else reads are spliced from the fd.
type blobHandle struct {
	fd          int
	passthrough bool
}

var (
	_ = (gofs.FilePassthroughFder)((*blobHandle)(nil))
	_ = (gofs.FileReader)((*blobHandle)(nil))
	_ = (gofs.FileReleaser)((*blobHandle)(nil))
)

func (h *blobHandle) PassthroughFd() (int, bool) { return h.fd, h.passthrough }

func (h *blobHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultFd(uintptr(h.fd), off, len(dest)), 0
}

func (h *blobHandle) Release(ctx context.Context) syscall.Errno {
	return gofs.ToErrno(syscall.Close(h.fd))
}

// statusNode is .status.json: rendered at open, served DIRECT_IO so every
// read sees that rendering whatever size was cached.
type statusNode struct {
	gofs.Inode
	st *State
}

var (
	_ = (gofs.NodeOpener)((*statusNode)(nil))
	_ = (gofs.NodeGetattrer)((*statusNode)(nil))
	_ = (gofs.NodeSetattrer)((*statusNode)(nil))
)

func (n *statusNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		return nil, 0, syscall.EROFS
	}
	n.st.waitFull(ctx)
	var data []byte
	if n.st.opts.StatusProvider != nil {
		data = n.st.opts.StatusProvider()
	}
	return &bytesHandle{data: data}, fuse.FOPEN_DIRECT_IO, 0
}

func (n *statusNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	e, ok := n.st.Model().Lookup(views.Root(), views.NameStatus)
	if !ok {
		return syscall.ENOENT
	}
	if h, ok := f.(*bytesHandle); ok {
		e.Size = int64(len(h.data))
	}
	n.st.fillAttr(e, &out.Attr)
	if h, ok := f.(*bytesHandle); ok {
		out.Size = uint64(len(h.data))
	}
	return 0
}

func (n *statusNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

type bytesHandle struct{ data []byte }

var _ = (gofs.FileReader)((*bytesHandle)(nil))

func (h *bytesHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(int64(len(h.data)), off+int64(len(dest)))
	return fuse.ReadResultData(h.data[off:end]), 0
}
