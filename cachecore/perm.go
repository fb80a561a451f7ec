package cachecore

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/internal/safefs"
)

// Cred is who asks for a deletion: a daemon running as root must not
// delete for someone what they could not delete themselves.
type Cred struct {
	UID  uint32
	GIDs []uint32 // the primary group first, then the supplementary ones
}

// CredOfPid is the caller's credentials: uid and gid as the kernel gave
// them with the request, supplementary groups from /proc/<pid>/status
// (none when the process is gone or in another pid namespace).
func CredOfPid(uid, gid, pid uint32) Cred {
	c := Cred{UID: uid, GIDs: []uint32{gid}}
	if pid == 0 {
		return c
	}
	data, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/status")
	if err != nil {
		return c
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Groups:"); ok {
			for _, f := range strings.Fields(rest) {
				if g, err := strconv.ParseUint(f, 10, 32); err == nil {
					c.GIDs = append(c.GIDs, uint32(g))
				}
			}
		}
	}
	return c
}

func (c Cred) inGroup(gid uint32) bool {
	for _, g := range c.GIDs {
		if g == gid {
			return true
		}
	}
	return false
}

// may reports whether c has the permission bits want (0o1 search, 0o2
// write, 0o4 read) on st, as the kernel decides for a non-root user
// (owner class, else group class, else others; POSIX ACLs aside).
func (c Cred) may(st *unix.Stat_t, want uint32) bool {
	mode := st.Mode
	switch {
	case c.UID == st.Uid:
		return (mode>>6)&want == want
	case c.inGroup(st.Gid):
		return (mode>>3)&want == want
	}
	return mode&want == want
}

// mayUnlink reports whether c may remove the entry ent of folder dir:
// write and search on dir, and under the sticky bit, owning one of them.
func (c Cred) mayUnlink(dir, ent *unix.Stat_t) bool {
	if !c.may(dir, 0o3) {
		return false
	}
	if dir.Mode&unix.S_ISVTX != 0 && c.UID != dir.Uid && c.UID != ent.Uid {
		return false
	}
	return true
}

// CheckCaller reports (ErrNotPermitted, naming the first path) unless c
// could perform every removal of the strategy by themselves: the refs,
// the snapshot trees (every folder in them), the blobs, whole repos (and
// everything in them), each beneath the cache's handle. Root may always.
func (s *DeleteStrategy) CheckCaller(c Cred) error {
	if c.UID == 0 {
		return nil
	}
	root, err := safefs.OpenRoot(s.CacheDir)
	if err != nil {
		return err
	}
	defer root.Close()
	rootSt, err := root.Fstat()
	if err != nil {
		return err
	}
	if !c.may(&rootSt, 0o1) {
		return deny(s.CacheDir, "no search permission")
	}
	whole := map[*RepoInfo]bool{}
	for _, r := range s.wholeRepos {
		whole[r] = true
	}
	for _, sel := range s.selections {
		folder := sel.Repo.FolderName()
		if whole[sel.Repo] {
			if err := c.checkTree(root, folder, &rootSt); err != nil {
				return err
			}
			continue
		}
		repo, err := root.OpenTop(folder)
		if err != nil {
			return err
		}
		err = c.checkRevisions(repo, sel, s)
		repo.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func deny(p, why string) error {
	return fmt.Errorf("%s: %s: %w", p, why, ErrNotPermitted)
}

func (c Cred) checkRevisions(repo *safefs.Handle, sel Selection, s *DeleteStrategy) error {
	repoSt, err := repo.Fstat()
	if err != nil {
		return err
	}
	if !c.may(&repoSt, 0o1) {
		return deny(repo.Path(), "no search permission")
	}
	for _, rev := range sel.Revisions {
		for _, ref := range rev.Refs {
			if err := c.checkEntry(repo, "refs/"+ref); err != nil {
				return err
			}
		}
		if err := c.checkEntry(repo, "snapshots/"+rev.CommitHash); err != nil {
			return err
		}
		if err := c.checkInside(repo, "snapshots/"+rev.CommitHash, 0); err != nil {
			return err
		}
	}
	realRepo, _ := newResolver().realpath(sel.Repo.RepoPath)
	for _, b := range s.Blobs {
		if s.blobRepo[b] != sel.Repo {
			continue
		}
		if etag, ok := blobEtag(realRepo, b); ok {
			if err := c.checkEntry(repo, "blobs/"+etag); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkEntry checks the removal of rel (search on every folder above it
// beneath the handle, write on its own folder, the sticky rule).
func (c Cred) checkEntry(h *safefs.Handle, rel string) error {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		st, err := h.Stat(strings.Join(parts[:i], "/"))
		if err != nil {
			return err
		}
		if !c.may(&st, 0o1) {
			return deny(h.Path()+"/"+strings.Join(parts[:i], "/"), "no search permission")
		}
	}
	ent, err := h.Stat(rel)
	if errors.Is(err, syscall.ENOENT) {
		return nil // nothing to remove there
	}
	if err != nil {
		return err
	}
	dirRel := strings.Join(parts[:len(parts)-1], "/")
	dir, err := h.Stat(dirRel)
	if dirRel == "" {
		dir, err = h.Fstat()
	}
	if err != nil {
		return err
	}
	if !c.mayUnlink(&dir, &ent) {
		return deny(h.Path()+"/"+rel, "may not remove it from its folder")
	}
	return nil
}

// checkInside checks that every entry below the folder rel may be
// removed (rm -r needs write and search on each folder it empties).
func (c Cred) checkInside(h *safefs.Handle, rel string, depth int) error {
	st, err := h.Stat(rel)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || depth > 128 {
		return nil
	}
	names, err := h.ReadDir(rel)
	if err != nil {
		return deny(h.Path()+"/"+rel, "cannot list it")
	}
	for _, n := range names {
		ent, err := h.Stat(rel + "/" + n)
		if err != nil {
			continue
		}
		if !c.mayUnlink(&st, &ent) {
			return deny(h.Path()+"/"+rel+"/"+n, "may not remove it from its folder")
		}
		if ent.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := c.checkInside(h, rel+"/"+n, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkTree checks a whole repo's removal: the folder from the cache
// root, then everything in it (a repo folder that is a symlink: the link).
func (c Cred) checkTree(root *safefs.Handle, folder string, rootSt *unix.Stat_t) error {
	ent, err := root.Stat(folder)
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	if !c.mayUnlink(rootSt, &ent) {
		return deny(root.Path()+"/"+folder, "may not remove it from the cache folder")
	}
	if ent.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	return c.checkInside(root, folder, 0)
}
