package mount

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hfcachefs/hfcachefs/internal/mountinfo"
)

// ourFSType is how the kernel lists our mounts ("fuse." + the go-fuse
// MountOptions.Name), whether mounted directly or through fusermount3.
const ourFSType = "fuse.hfcachefs"

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry = mountinfo.Entry

// parseMountinfo parses mountinfo text, skipping malformed lines.
func parseMountinfo(data string) []mountEntry { return mountinfo.Parse(data) }

// unescapeMountinfo undoes the kernel's octal escapes.
func unescapeMountinfo(s string) string { return mountinfo.Unescape(s) }

func readMountinfo() ([]mountEntry, error) { return mountinfo.Read() }

// topMountAt returns the mount a lookup of path reaches (the one stacked
// last there), or nil if path is not a mount point.
func topMountAt(entries []mountEntry, path string) *mountEntry {
	var top *mountEntry
	covered := map[int]bool{} // parents of mounts stacked at path
	for i := range entries {
		if entries[i].Mountpoint == path {
			covered[entries[i].ParentID] = true
		}
	}
	for i := range entries {
		if e := &entries[i]; e.Mountpoint == path && !covered[e.ID] {
			top = e
		}
	}
	return top
}

func isMounted(path string) bool {
	entries, err := readMountinfo()
	return err == nil && topMountAt(entries, path) != nil
}

// checkOurMount returns nil if the mount at path (as resolveMountpoint
// spells it) is an hfcachefs mount, else why it must not be unmounted.
func checkOurMount(entries []mountEntry, path string) error {
	e := topMountAt(entries, path)
	if e == nil {
		return fmt.Errorf("%s is not mounted", path)
	}
	if e.FSType != ourFSType {
		return fmt.Errorf("refusing to unmount %s: it is %s %s mount, not an hfcachefs mount", path, article(e.FSType), e.FSType)
	}
	return nil
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// resolveMountpoint spells path as mountinfo does: absolute, symlinks
// resolved. Only the parent goes through EvalSymlinks: a mount point (as
// entries list it) is not stat'ed, since a dead or hung FUSE mount would
// fail or block; a final symlink is followed by hand.
func resolveMountpoint(path string, entries []mountEntry) (string, error) {
	p, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	for range 40 {
		if p == "/" {
			return p, nil
		}
		dir, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil {
			return "", err
		}
		p = filepath.Join(dir, filepath.Base(p))
		if topMountAt(entries, p) != nil {
			return p, nil
		}
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return p, nil // a missing path included: the caller says
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		p = filepath.Clean(target)
	}
	return "", &os.PathError{Op: "resolve", Path: path, Err: syscall.ELOOP}
}
