package views

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/safefs"
)

// FS presents a model as an io/fs.FS, so the tree can be checked with
// testing/fstest without a kernel. Symlinks (by-size) are followed
// inside the tree; files open their blobs read-only.
type FS struct {
	Model  *Model
	Status func() []byte // content of .status.json
	// Root is the cache dir's handle blobs are opened beneath; nil opens
	// the model's cache dir for each open.
	Root *safefs.Handle
}

var (
	_ fs.FS        = FS{}
	_ fs.ReadDirFS = FS{}
	_ fs.StatFS    = FS{}
)

func (f FS) resolve(op, name string) (Entry, error) {
	if !fs.ValidPath(name) {
		return Entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	notFound := &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	e := f.Model.RootEntry()
	if name == "." {
		return e, nil
	}
	var done []string // resolved components so far
	todo := strings.Split(name, "/")
	for hops := 0; len(todo) > 0; {
		seg := todo[0]
		todo = todo[1:]
		if seg == ".." {
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			var ok bool
			if e, ok = f.Model.Resolve(strings.Join(done, "/")); !ok {
				return Entry{}, notFound
			}
			continue
		}
		if e.Kind != KindDir {
			return Entry{}, notFound
		}
		next, ok := f.Model.Lookup(e.Loc, seg)
		if !ok {
			return Entry{}, notFound
		}
		if next.Kind == KindSymlink && next.Role != RoleAssets {
			// by-size links are relative paths inside the tree.
			if hops++; hops > 8 {
				return Entry{}, &fs.PathError{Op: op, Path: name, Err: errors.New("too many links")}
			}
			todo = append(strings.Split(next.Target, "/"), todo...)
			continue
		}
		done = append(done, seg)
		e = next
	}
	return e, nil
}

// Stat implements fs.StatFS.
func (f FS) Stat(name string) (fs.FileInfo, error) {
	e, err := f.resolve("stat", name)
	if err != nil {
		return nil, err
	}
	return entryInfo{e, f.size(e)}, nil
}

func (f FS) size(e Entry) int64 {
	if e.Role == RoleStatusFile && f.Status != nil {
		return int64(len(f.Status()))
	}
	return e.Size
}

// ReadDir implements fs.ReadDirFS.
func (f FS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := f.resolve("readdir", name)
	if err != nil {
		return nil, err
	}
	if e.Kind != KindDir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	entries, ok := f.Model.ReadDir(e.Loc)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	out := make([]fs.DirEntry, len(entries))
	for i, c := range entries {
		out[i] = fs.FileInfoToDirEntry(entryInfo{c, f.size(c)})
	}
	return out, nil
}

// Open implements fs.FS.
func (f FS) Open(name string) (fs.File, error) {
	e, err := f.resolve("open", name)
	if err != nil {
		return nil, err
	}
	info := entryInfo{e, f.size(e)}
	switch {
	case e.Kind == KindDir:
		entries, err := f.ReadDir(name)
		if err != nil {
			return nil, err
		}
		return &dirFile{info: info, entries: entries}, nil
	case e.Denied != "":
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	case e.Role == RoleStatusFile:
		var data []byte
		if f.Status != nil {
			data = f.Status()
		}
		return &memFile{info: info, Reader: bytes.NewReader(data)}, nil
	}
	var fd int
	switch {
	case e.File != nil:
		fd, err = f.openBlob(e.File)
	case e.Role == RoleAssets:
		fd, err = f.Model.OpenAsset(e.Real)
	default: // a .trash receipt: the daemon's own state, not the cache
		var file *os.File
		if file, err = os.OpenFile(e.Real, os.O_RDONLY|syscall.O_NOFOLLOW, 0); err != nil {
			return nil, err
		}
		return &blobFile{File: file, info: info}, nil
	}
	if err != nil {
		if errors.Is(err, cachecore.ErrOutsideCache) {
			err = errors.Join(err, fs.ErrPermission)
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	_ = syscall.SetNonblock(fd, false)
	return &blobFile{File: os.NewFile(uintptr(fd), e.Real), info: info}, nil
}

// openBlob opens a revision file's blob beneath the cache dir's handle
// (cachecore.OpenBlob).
func (f FS) openBlob(file *cachecore.FileInfo) (int, error) {
	root := f.Root
	if root == nil {
		h, err := safefs.OpenRoot(f.Model.Info.CacheDir)
		if err != nil {
			return -1, err
		}
		defer h.Close()
		root = h
	}
	return cachecore.OpenBlob(root, file)
}

type entryInfo struct {
	e    Entry
	size int64
}

func (i entryInfo) Name() string {
	if i.e.Name == "" {
		return "."
	}
	return i.e.Name
}
func (i entryInfo) Size() int64        { return i.size }
func (i entryInfo) ModTime() time.Time { return i.e.Mtime }
func (i entryInfo) IsDir() bool        { return i.e.Kind == KindDir }
func (i entryInfo) Sys() any           { return i.e }
func (i entryInfo) Mode() fs.FileMode {
	m := fs.FileMode(i.e.Mode)
	switch i.e.Kind {
	case KindDir:
		m |= fs.ModeDir
	case KindSymlink:
		m |= fs.ModeSymlink
	}
	return m
}

type dirFile struct {
	info    entryInfo
	entries []fs.DirEntry
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.Name(), Err: syscall.EISDIR}
}
func (d *dirFile) Close() error { return nil }
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return rest[:n], nil
}

type memFile struct {
	info entryInfo
	*bytes.Reader
}

func (m *memFile) Stat() (fs.FileInfo, error) { return m.info, nil }
func (m *memFile) Close() error               { return nil }

type blobFile struct {
	*os.File
	info entryInfo
}

func (b *blobFile) Stat() (fs.FileInfo, error) { return b.info, nil }
