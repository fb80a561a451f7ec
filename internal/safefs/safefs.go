// Package safefs opens, renames and removes cache entries beneath a
// directory handle, never through a path string checked earlier: someone
// who can write the cache may swap any folder for a symlink at any time,
// and a path re-resolved after a check follows it.
//
// Every relative path given here is resolved with openat2(2)
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS from a handle, so neither ".." nor a
// symlink, in any component, can lead anywhere else. Kernels without
// openat2 (before 5.6) get the same rule from a walk one component at a
// time with O_NOFOLLOW.
package safefs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrEscape is returned for a relative path that is absolute, holds "..",
// or crosses a symlink: it would leave the handle it is resolved beneath.
var ErrEscape = errors.New("the path leaves its folder or crosses a symlink")

// noOpenat2 is set once openat2 answers ENOSYS; tests set it to run the
// fallback walk.
var noOpenat2 atomic.Bool

// ForceWalk makes every resolution use the component walk (tests).
func ForceWalk(on bool) { noOpenat2.Store(on) }

// Handle is an open directory (O_PATH): the root relative paths are
// resolved beneath.
type Handle struct {
	fd       int
	path     string // for messages only: never resolved again
	borrowed bool   // another Handle's fd: Close leaves it open
}

// Fd is the handle's descriptor (valid until Close).
func (h *Handle) Fd() int { return h.fd }

// Path is the path the handle was opened as (for messages).
func (h *Handle) Path() string { return h.path }

// Close releases the handle.
func (h *Handle) Close() error {
	if h == nil || h.fd < 0 || h.borrowed {
		return nil
	}
	err := syscall.Close(h.fd)
	h.fd = -1
	return err
}

// OpenRoot opens a trusted absolute folder (the cache directory, as the
// user named it): symlinks in it are followed, once, now.
func OpenRoot(path string) (*Handle, error) {
	fd, err := retry(func() (int, error) {
		return unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &Handle{fd: fd, path: path}, nil
}

// OpenTop opens one entry of h as a folder, following it if it is a
// symlink: the one place a symlink is followed (a repo folder moved to
// another disk by its owner). name must be a single component.
func (h *Handle) OpenTop(name string) (*Handle, error) {
	if !single(name) {
		return nil, &os.PathError{Op: "open", Path: h.path + "/" + name, Err: ErrEscape}
	}
	fd, err := retry(func() (int, error) {
		return unix.Openat(h.fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: h.path + "/" + name, Err: err}
	}
	return &Handle{fd: fd, path: h.path + "/" + name}, nil
}

// OpenDir opens a folder beneath h (no symlink anywhere on the way);
// "." is h itself, "" is refused like everywhere else.
func (h *Handle) OpenDir(rel string) (*Handle, error) {
	if rel == "." {
		fd, err := unix.Openat(h.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: h.path, Err: err}
		}
		return &Handle{fd: fd, path: h.path}, nil
	}
	fd, err := h.Open(rel, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return &Handle{fd: fd, path: h.path + "/" + rel}, nil
}

// Open opens rel beneath h with flags (O_NOFOLLOW and O_CLOEXEC are
// added): no component may be a symlink or "..".
func (h *Handle) Open(rel string, flags int, mode uint32) (int, error) {
	fd, err := openBeneath(h.fd, rel, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: h.path + "/" + rel, Err: err}
	}
	return fd, nil
}

// Stat is fstatat of rel beneath h, not following its last component.
func (h *Handle) Stat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if rel == "." {
		return h.Fstat()
	}
	dir, base, err := h.parent(rel)
	if err != nil {
		return st, err
	}
	defer dir.Close()
	if err := unix.Fstatat(dir.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &os.PathError{Op: "stat", Path: h.path + "/" + rel, Err: err}
	}
	return st, nil
}

// ReadFile reads a regular file beneath h (at most limit bytes; a FIFO or
// device is refused without blocking).
func (h *Handle) ReadFile(rel string, limit int64) ([]byte, error) {
	fd, err := h.Open(rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), h.path+"/"+rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &os.PathError{Op: "read", Path: h.path + "/" + rel, Err: syscall.EINVAL}
	}
	if st.Size > limit {
		return nil, &os.PathError{Op: "read", Path: h.path + "/" + rel, Err: syscall.EFBIG}
	}
	buf := make([]byte, st.Size+1)
	n := 0
	for {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil || m == 0 || n == len(buf) {
			break
		}
	}
	if int64(n) > limit {
		return nil, &os.PathError{Op: "read", Path: h.path + "/" + rel, Err: syscall.EFBIG}
	}
	return buf[:n], nil
}

// Mkdir makes every missing folder of rel beneath h (mode for the new
// ones) and returns a handle of the last.
func (h *Handle) Mkdir(rel string, mode uint32) (*Handle, error) {
	if err := check(rel); err != nil {
		return nil, &os.PathError{Op: "mkdir", Path: h.path + "/" + rel, Err: err}
	}
	cur, err := h.OpenDir(".")
	if err != nil {
		return nil, err
	}
	for _, part := range strings.Split(rel, "/") {
		err := unix.Mkdirat(cur.fd, part, mode)
		if err != nil && err != unix.EEXIST {
			cur.Close()
			return nil, &os.PathError{Op: "mkdir", Path: cur.path + "/" + part, Err: err}
		}
		next, err := cur.OpenDir(part)
		cur.Close()
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

// parent opens the folder holding rel beneath h and returns it with
// rel's last component.
func (h *Handle) parent(rel string) (*Handle, string, error) {
	if err := check(rel); err != nil || rel == "." {
		if err == nil {
			err = ErrEscape // the handle's own folder has no entry to act on
		}
		return nil, "", &os.PathError{Op: "open", Path: h.path + "/" + rel, Err: err}
	}
	dir, base := ".", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, base = rel[:i], rel[i+1:]
	}
	if dir == "." {
		// An entry of h itself: no need to open h again (a 40,000-blob
		// deletion stats and unlinks each beneath one handle).
		return &Handle{fd: h.fd, path: h.path, borrowed: true}, base, nil
	}
	d, err := h.OpenDir(dir)
	if err != nil {
		return nil, "", err
	}
	return d, base, nil
}

// Remove unlinks rel beneath h (a file, a symlink, or an empty folder),
// never following its last component.
func (h *Handle) Remove(rel string) error {
	dir, base, err := h.parent(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.unlink(base)
}

func (h *Handle) unlink(name string) error {
	err := unix.Unlinkat(h.fd, name, 0)
	if err == unix.EISDIR || err == unix.EPERM {
		if err2 := unix.Unlinkat(h.fd, name, unix.AT_REMOVEDIR); err2 == nil || err2 != unix.ENOTDIR {
			err = err2
		}
	}
	if err != nil {
		return &os.PathError{Op: "unlink", Path: h.path + "/" + name, Err: err}
	}
	return nil
}

// RemoveAll removes rel beneath h and, if it is a folder, everything in
// it, walking with handles: a folder swapped for a symlink mid-walk loses
// the symlink, never what it points to. A missing rel is no error.
func (h *Handle) RemoveAll(rel string) error {
	dir, base, err := h.parent(rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	defer dir.Close()
	return dir.removeAll(base, 0)
}

// maxDepth bounds RemoveAll's recursion (a revision nested deeper than
// this is not something huggingface_hub writes).
const maxDepth = 512

func (h *Handle) removeAll(name string, depth int) error {
	err := unix.Unlinkat(h.fd, name, 0)
	switch err {
	case nil, unix.ENOENT:
		return nil
	case unix.EISDIR, unix.EPERM:
	default:
		return &os.PathError{Op: "unlink", Path: h.path + "/" + name, Err: err}
	}
	if depth > maxDepth {
		return &os.PathError{Op: "remove", Path: h.path + "/" + name, Err: unix.ELOOP}
	}
	for attempt := 0; ; attempt++ {
		fd, err := retry(func() (int, error) {
			return unix.Openat(h.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		})
		switch {
		case err == unix.ENOENT:
			return nil
		case err == unix.ENOTDIR || err == unix.ELOOP:
			// Swapped for a file or a symlink since: that goes, not its target.
			return h.unlink(name)
		case err != nil:
			return &os.PathError{Op: "open", Path: h.path + "/" + name, Err: err}
		}
		f := os.NewFile(uintptr(fd), h.path+"/"+name)
		sub := &Handle{fd: fd, path: h.path + "/" + name}
		var firstErr error
		for {
			names, rerr := f.Readdirnames(1024)
			for _, n := range names {
				if err := sub.removeAll(n, depth+1); err != nil && firstErr == nil {
					firstErr = err
				}
			}
			if rerr != nil || len(names) == 0 {
				break
			}
		}
		f.Close()
		if firstErr != nil {
			return firstErr
		}
		err = unix.Unlinkat(h.fd, name, unix.AT_REMOVEDIR)
		switch {
		case err == nil || err == unix.ENOENT:
			return nil
		case err == unix.ENOTEMPTY && attempt < 8:
			continue // something was added meanwhile: go again
		case err == unix.ENOTDIR:
			return h.unlink(name)
		}
		return &os.PathError{Op: "rmdir", Path: h.path + "/" + name, Err: err}
	}
}

// Rename moves oldRel beneath h to newRel beneath to (the same file
// system), with renameat2 flags (unix.RENAME_NOREPLACE...). Neither path
// may cross a symlink; the entries themselves are never followed.
func (h *Handle) Rename(oldRel string, to *Handle, newRel string, flags uint) error {
	od, ob, err := h.parent(oldRel)
	if err != nil {
		return err
	}
	defer od.Close()
	nd, nb, err := to.parent(newRel)
	if err != nil {
		return err
	}
	defer nd.Close()
	if err := unix.Renameat2(od.fd, ob, nd.fd, nb, flags); err != nil {
		return &os.LinkError{Op: "rename", Old: h.path + "/" + oldRel, New: to.path + "/" + newRel, Err: err}
	}
	return nil
}

// Readlink reads the symlink rel beneath h.
func (h *Handle) Readlink(rel string) (string, error) {
	dir, base, err := h.parent(rel)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dir.fd, base, buf)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: h.path + "/" + rel, Err: err}
	}
	return string(buf[:n]), nil
}

// ReadDir lists the folder rel beneath h (names only, OS order).
func (h *Handle) ReadDir(rel string) ([]string, error) {
	fd, err := h.Open(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), h.path+"/"+rel)
	defer f.Close()
	return f.Readdirnames(-1)
}

// Fstat is fstat of the handle itself.
func (h *Handle) Fstat() (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstat(h.fd, &st)
	return st, err
}

// single reports whether name is one plain path component.
func single(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsRune(name, '/')
}

// check refuses what can never be resolved beneath a folder.
func check(rel string) error {
	if rel == "" || rel[0] == '/' {
		return ErrEscape
	}
	if rel == "." {
		return nil // the handle's folder itself
	}
	for _, part := range strings.Split(rel, "/") {
		// "x/." would let a removal empty x itself.
		if part == ".." || part == "" || part == "." {
			return ErrEscape
		}
	}
	return nil
}

func openBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	if err := check(rel); err != nil {
		return -1, err
	}
	if !noOpenat2.Load() {
		how := unix.OpenHow{
			Flags:   uint64(flags),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		}
		// openat2 refuses (EINVAL) a mode without O_CREAT or O_TMPFILE,
		// where open(2) and the walk ignore it.
		if flags&unix.O_CREAT != 0 || flags&unix.O_TMPFILE == unix.O_TMPFILE {
			how.Mode = uint64(mode)
		}
		fd, err := retry(func() (int, error) { return unix.Openat2(dirfd, rel, &how) })
		switch err {
		case nil:
			return fd, nil
		case unix.ENOSYS:
			noOpenat2.Store(true)
		default:
			return -1, escaped(dirfd, rel, flags, err)
		}
	}
	fd, err := walkBeneath(dirfd, rel, flags, mode)
	if err != nil {
		return -1, escaped(dirfd, rel, flags, err)
	}
	return fd, nil
}

// escaped makes a failed resolution's error ErrEscape (still wrapping the
// errno) when it was a symlink on the way: ELOOP (O_NOFOLLOW or
// RESOLVE_NO_SYMLINKS met one) or EXDEV (openat2 saw an escape), and
// ENOTDIR when the component that was not a folder is a symlink (a
// folder opened O_DIRECTORY|O_NOFOLLOW: every folder of the walk, the
// last component of OpenDir and ReadDir, the parent of Stat, Remove...).
func escaped(dirfd int, rel string, flags int, err error) error {
	switch {
	case err == unix.ELOOP || err == unix.EXDEV:
	case err == unix.ENOTDIR && crossesSymlink(dirfd, rel, flags&unix.O_DIRECTORY != 0):
	default:
		return err
	}
	return fmt.Errorf("%w (%w)", ErrEscape, err)
}

// crossesSymlink reports whether a folder of rel beneath dirfd (and its
// last component, with last) is a symlink. It only classifies an error:
// it opens O_PATH, never follows, and keeps nothing.
func crossesSymlink(dirfd int, rel string, last bool) bool {
	parts := strings.Split(rel, "/")
	if !last {
		parts = parts[:len(parts)-1]
	}
	cur := dirfd
	defer func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}()
	for _, part := range parts {
		fd, err := retry(func() (int, error) {
			return unix.Openat(cur, part, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		})
		if err != nil {
			return false
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Close(fd)
			return err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		cur = fd
	}
	return false
}

// walkBeneath is openat2's rule for kernels without it: every folder on
// the way opened with O_NOFOLLOW, then the last component with flags.
func walkBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	parts := strings.Split(rel, "/")
	cur := dirfd
	closeCur := func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}
	for _, part := range parts[:len(parts)-1] {
		next, err := retry(func() (int, error) {
			return unix.Openat(cur, part, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		})
		closeCur()
		if err != nil {
			return -1, err // ENOTDIR for a symlink: see escaped
		}
		cur = next
	}
	fd, err := retry(func() (int, error) {
		return unix.Openat(cur, parts[len(parts)-1], flags|unix.O_NOFOLLOW, mode)
	})
	closeCur()
	return fd, err
}

func retry(f func() (int, error)) (int, error) {
	for {
		fd, err := f()
		if err != unix.EINTR {
			return fd, err
		}
	}
}
