package cachecore

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/hfcachefs/hfcachefs/internal/safefs"
)

// Errors of OpenBlob and CheckAnchor; they wrap the cause, so errors.Is
// works on both.
var (
	// ErrOutsideCache: the path does not resolve beneath the cache dir or
	// the repo folder (a symlink or an escape on the way), or the scan
	// found it outside them.
	ErrOutsideCache = errors.New("does not resolve beneath the cache directory or its repo folder")
	// ErrStale: what was opened is not the file (or folder) the scan saw
	// (another device and inode, not a regular file), or it is gone.
	ErrStale = errors.New("not what the scan saw")
)

// OpenBlob opens the blob of a scanned file read-only (O_NONBLOCK: a FIFO
// swapped in never blocks), resolving its path beneath a directory handle,
// never through a path string: beneath root (the cache dir, opened once
// and trusted) for BaseCache blobs, beneath the repo folder for BaseRepo
// blobs (the folder opened from root, following a symlink at the top
// only, and checked to be the folder the scan resolved). No component on
// the way may be a symlink, and what is opened must be the regular file
// the scan saw (same device and inode). Errors wrap ErrOutsideCache or
// ErrStale when they are that.
func OpenBlob(root *safefs.Handle, f *FileInfo) (int, error) {
	b := f.Blob
	if root == nil {
		return -1, &os.PathError{Op: "open", Path: f.FilePath(), Err: syscall.ENOENT}
	}
	if b == nil || b.Outside || b.Base == BaseNone {
		return -1, fmt.Errorf("open %s: %w", f.FilePath(), ErrOutsideCache)
	}
	if b.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return -1, &os.PathError{Op: "open", Path: b.Path, Err: syscall.EACCES}
	}
	dir := root
	if b.Base == BaseRepo {
		if b.Repo == nil {
			return -1, fmt.Errorf("open %s: %w", b.Path, ErrOutsideCache)
		}
		h, err := OpenRepo(root, b.Repo)
		if err != nil {
			return -1, err
		}
		defer h.Close()
		dir = h
	}
	return openChecked(dir, b.Rel(), b.Dev, b.Ino)
}

// OpenRepo opens a repo folder beneath root, following a symlink at the
// top only, and checks it is the folder the scan resolved.
func OpenRepo(root *safefs.Handle, a *RepoAnchor) (*safefs.Handle, error) {
	h, err := root.OpenTop(a.Folder)
	if err != nil {
		return nil, classify(err)
	}
	st, err := h.Fstat()
	if err != nil {
		h.Close()
		return nil, err
	}
	if st.Dev != a.Dev || st.Ino != a.Ino {
		h.Close()
		return nil, fmt.Errorf("open %s: %w (the repo folder was replaced since the scan)", h.Path(), ErrStale)
	}
	return h, nil
}

// openChecked opens rel beneath dir and checks it is the regular file
// (dev, ino).
func openChecked(dir *safefs.Handle, rel string, dev, ino uint64) (int, error) {
	fd, err := dir.Open(rel, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return -1, classify(err)
	}
	var st syscall.Stat_t
	for {
		err = syscall.Fstat(fd, &st)
		if err != syscall.EINTR {
			break
		}
	}
	switch {
	case err != nil:
		syscall.Close(fd)
		return -1, &os.PathError{Op: "fstat", Path: dir.Path() + "/" + rel, Err: err}
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		syscall.Close(fd)
		return -1, fmt.Errorf("open %s/%s: %w (no longer a regular file)", dir.Path(), rel, ErrStale)
	case st.Dev != dev || st.Ino != ino:
		syscall.Close(fd)
		return -1, fmt.Errorf("open %s/%s: %w (another file since the scan)", dir.Path(), rel, ErrStale)
	}
	return fd, nil
}

// classify wraps a resolution error: a symlink or an escape on the way is
// ErrOutsideCache, a missing component ErrStale (gone since the scan).
func classify(err error) error {
	switch {
	case errors.Is(err, safefs.ErrEscape):
		return fmt.Errorf("%w: %w", ErrOutsideCache, err)
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ESTALE):
		// ESTALE: a network file system's handle of something another
		// node deleted; gone, as far as the views go.
		return fmt.Errorf("%w: %w", ErrStale, err)
	}
	return err
}

// CheckAnchor reports whether a repo's scanned view still resolves as
// scanned: the repo folder is the one scanned, and every folder holding
// its blobs (RepoAnchor.Dirs) opens beneath the repo folder or the cache
// dir with no symlink on the way and is the folder the scan saw. A view
// kept while the repo is inconsistent is served only while it does.
// The error wraps ErrOutsideCache or ErrStale.
func CheckAnchor(root *safefs.Handle, repo *RepoInfo) error {
	a := repo.Anchor
	if a == nil {
		return nil // a placeholder: nothing is served from it
	}
	if root == nil {
		return fmt.Errorf("%s: %w (the cache directory is gone)", repo.RepoPath, ErrStale)
	}
	var rh *safefs.Handle
	for _, d := range a.Dirs {
		base := root
		if d.Base == BaseRepo {
			if rh == nil {
				h, err := OpenRepo(root, a)
				if err != nil {
					return err
				}
				defer h.Close()
				rh = h
			}
			base = rh
		}
		rel := d.Rel
		if rel == "" {
			rel = "." // the base itself
		}
		h, err := base.OpenDir(rel)
		if err != nil {
			return classify(err)
		}
		st, err := h.Fstat()
		h.Close()
		if err != nil {
			return err
		}
		if st.Dev != d.Dev || st.Ino != d.Ino {
			return fmt.Errorf("%s/%s: %w (another folder since the scan)", base.Path(), d.Rel, ErrStale)
		}
	}
	return nil
}
