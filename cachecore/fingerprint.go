package cachecore

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hfcachefs/hfcachefs/internal/safefs"
)

// The I/O half of change detection (change.go has the rules).

// StatPaths stats each path relative to base ("" is base itself),
// following symlinks as the scan does.
func StatPaths(base string, rels []string) []PathStat {
	out := make([]PathStat, 0, len(rels))
	var st syscall.Stat_t
	for _, rel := range rels {
		p := base
		if rel != "" {
			p = base + "/" + rel
		}
		err := syscall.Stat(p, &st)
		out = append(out, StatOf(rel, &st, err))
	}
	return out
}

// PollFingerprint is a repo's cheap fingerprint (PollPaths of its last
// scan; the fixed set when there is none): a handful of stats.
func PollFingerprint(cacheDir, name string, repo *RepoInfo) (fp uint64, paths int, ok bool) {
	rels := PollPaths(repo)
	fp, ok = Fingerprint(StatPaths(cacheDir+"/"+name, rels))
	return fp, len(rels), ok
}

// FullFingerprint is a top-level entry's fingerprint taken from the disk
// alone: the entry, blobs/, .no_exist/, trees/, every folder and file
// under refs/, every folder under snapshots/ (a file added to or removed
// from a revision changes its folder's mtime, so files are not stat'ed).
// A refresher takes it before a scan: a change during the scan shows
// next time. ok is false when a path could not be asked (Unreachable).
func FullFingerprint(cacheDir, name string) (fp uint64, ok bool) {
	path := cacheDir + "/" + name
	var stats []PathStat
	var st syscall.Stat_t
	err := syscall.Stat(path, &st)
	stats = append(stats, StatOf("", &st, err))
	if err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		for _, sub := range []string{"blobs", ".no_exist", "trees"} {
			err := syscall.Stat(path+"/"+sub, &st)
			stats = append(stats, StatOf(sub, &st, err))
		}
		stats = walkStats(path, "refs", true, stats)
		stats = walkStats(path, "snapshots", false, stats)
	}
	return Fingerprint(stats)
}

// walkStats appends the stat of base/rel and of its sub-folders (and its
// files too when files is set), following symlinks as the scan does.
func walkStats(base, rel string, files bool, out []PathStat) []PathStat {
	var st syscall.Stat_t
	err := syscall.Stat(base+"/"+rel, &st)
	out = append(out, StatOf(rel, &st, err))
	if err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return out
	}
	f, err := os.Open(base + "/" + rel)
	if err != nil {
		return append(out, StatOf(rel+"/", nil, err))
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		out = append(out, StatOf(rel+"/", nil, err))
	}
	for _, e := range entries {
		p := rel + "/" + e.Name()
		switch {
		case e.IsDir():
			out = walkStats(base, p, files, out)
		case files:
			err := syscall.Stat(base+"/"+p, &st)
			out = append(out, StatOf(p, &st, err))
		}
	}
	return out
}

// TreeListing reads the paths trees/<commit>.json lists (written by
// snapshot_download before the files), beneath the repo folder: a listing
// swapped for a FIFO or a link out of the cache neither hangs nor feeds
// the refresher. ok is false without a readable listing.
func TreeListing(repo *RepoInfo, commit string) (paths []string, ok bool) {
	root, err := safefs.OpenRoot(filepath.Dir(repo.RepoPath))
	if err != nil {
		return nil, false
	}
	defer root.Close()
	rh, err := root.OpenTop(repo.FolderName())
	if err != nil {
		return nil, false
	}
	defer rh.Close()
	data, err := rh.ReadFile("trees/"+commit+".json", 64<<20)
	if err != nil {
		return nil, false
	}
	var tree struct {
		FormatVersion int                        `json:"format_version"`
		Files         map[string]json.RawMessage `json:"files"`
	}
	if json.Unmarshal(data, &tree) != nil || tree.FormatVersion != 1 {
		return nil, false
	}
	paths = make([]string, 0, len(tree.Files))
	for p := range tree.Files {
		paths = append(paths, p)
	}
	return paths, true
}

// Downloading reports whether a transfer into the repo's blobs/ is
// running: an .incomplete file written in the last 30 seconds.
func Downloading(repoPath string, now time.Time) bool {
	entries, err := os.ReadDir(repoPath + "/blobs")
	if err != nil {
		return false
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".incomplete") {
			continue
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) < 30*time.Second {
			return true
		}
	}
	return false
}
