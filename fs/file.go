package fs

import (
	"context"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

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
		return nil, 0, syscall.EACCES
	}
	// The blob path is fully resolved: O_NOFOLLOW refuses a symlink swapped
	// in since, O_NONBLOCK never waits on a FIFO swapped in.
	fd, err := syscall.Open(e.real, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, translateError(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, 0, syscall.EACCES
	}
	var fuseFlags uint32 = fuse.FOPEN_KEEP_CACHE // blobs are immutable
	return &blobHandle{fd: fd, passthrough: !n.st.noPassthrough.Load()}, fuseFlags, 0
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
