package fs

import (
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/views"
)

// nodeAttr is what a node keeps of the entry it was last looked up as.
// A walk leaves one per inode the kernel knows, so it is a third of a
// views.Entry: no name or location (the node's place has them), times as
// nanoseconds.
type nodeAttr struct {
	file                *cachecore.FileInfo
	real                string
	denied              string
	ino                 uint64
	size, blocks        int64
	atime, mtime, ctime int64 // unix ns
	nlink, mode         uint32
	kind                views.Kind
	role                views.Role
}

func compactEntry(e *views.Entry) *nodeAttr {
	return &nodeAttr{
		file: e.File, real: e.Real, denied: e.Denied, ino: e.Ino, size: e.Size, blocks: e.Blocks,
		atime: e.Atime.UnixNano(), mtime: e.Mtime.UnixNano(), ctime: e.Ctime.UnixNano(),
		nlink: e.Nlink, mode: e.Mode, kind: e.Kind, role: e.Role,
	}
}

// same reports whether e is what a already says (a walk looks every
// name up: an unchanged entry is not copied again).
func (a *nodeAttr) same(e *views.Entry) bool {
	return a.file == e.File && a.real == e.Real && a.denied == e.Denied && a.ino == e.Ino &&
		a.size == e.Size && a.blocks == e.Blocks && a.nlink == e.Nlink && a.mode == e.Mode &&
		a.kind == e.Kind && a.role == e.Role && a.atime == e.Atime.UnixNano() &&
		a.mtime == e.Mtime.UnixNano() && a.ctime == e.Ctime.UnixNano()
}

// entry rebuilds the entry, named and placed as given.
func (a *nodeAttr) entry(name string, loc views.Loc) views.Entry {
	return views.Entry{
		Name: name, Kind: a.kind, Role: a.role, Ino: a.ino, Nlink: a.nlink, Mode: a.mode,
		Size: a.size, Blocks: a.blocks,
		Atime: time.Unix(0, a.atime), Mtime: time.Unix(0, a.mtime), Ctime: time.Unix(0, a.ctime),
		File: a.file, Denied: a.denied, Loc: loc, Real: a.real,
	}
}
