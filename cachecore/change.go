package cachecore

import (
	"errors"
	"hash/fnv"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Change detection: what a refresher watches or polls to learn that a
// repo changed, what a changed path means, and when a moved ref may be
// followed. Pure functions: the mount's scheduling lives in mount/.

// ChangeKind says what a change under the cache dir is to the views.
type ChangeKind uint8

// Change kinds.
const (
	ChangeNone ChangeKind = iota // nothing any view shows (locks, partial downloads, our own staging)
	ChangeRoot                   // a top-level entry came, went or was replaced
	ChangeRepo                   // something inside a repo folder
)

// Change is what one changed path means.
type Change struct {
	Kind   ChangeKind
	Folder string // the top-level entry (ChangeRoot, ChangeRepo)
	Ref    bool   // a ref file or refs folder: by-ref may move
}

// ClassifyPath says what a change at rel (a path relative to the cache
// dir, "/"-separated) means. A download touches, in order: .locks/ (its
// lock file), <repo>/blobs/<etag>.incomplete (written for as long as the
// transfer runs), <repo>/refs/<ref>, the blob's rename into place, the
// symlink under <repo>/snapshots/<commit>/, and trees/<commit>.json for
// snapshot_download; only what the views show is a change.
func ClassifyPath(rel string) Change {
	rel = strings.Trim(rel, "/")
	if rel == "" || rel == "." {
		return Change{Kind: ChangeRoot}
	}
	top, rest, nested := strings.Cut(rel, "/")
	if top == ".locks" {
		return Change{} // upstream's lock folder: never a repo
	}
	if !nested {
		return Change{Kind: ChangeRoot, Folder: top}
	}
	sub, below, _ := strings.Cut(rest, "/")
	switch sub {
	case "refs":
		return Change{Kind: ChangeRepo, Folder: top, Ref: true}
	case "blobs":
		if strings.HasSuffix(below, ".incomplete") {
			return Change{} // a transfer in progress; its rename into place is the change
		}
	case StagingDir:
		return Change{} // our own deletion staging: the snapshot's move out is the change
	}
	return Change{Kind: ChangeRepo, Folder: top}
}

// WatchDirs lists the folders of a scanned repo (relative to its folder,
// "" for the folder itself) whose entries a download or a deletion
// changes: the folder, refs/ and its ref-prefix folders, snapshots/ and
// every folder of every revision (a new file in an existing snapshot
// changes only its own folder), blobs/, .no_exist/ and trees/. A folder
// that does not exist yet is seen being made through its parent's watch.
func WatchDirs(repo *RepoInfo) []string {
	set := map[string]bool{"": true, "refs": true, "snapshots": true, "blobs": true, ".no_exist": true, "trees": true}
	if repo != nil {
		for _, rev := range repo.Revisions {
			for _, ref := range rev.Refs {
				for d := path.Dir(ref); d != "."; d = path.Dir(d) {
					set["refs/"+d] = true
				}
			}
			base := "snapshots/" + rev.CommitHash
			set[base] = true
			for _, f := range rev.Files {
				for d := path.Dir(f.RelPath); d != "." && d != "/"; d = path.Dir(d) {
					if set[base+"/"+d] {
						break // its parents are in too
					}
					set[base+"/"+d] = true
				}
			}
		}
	}
	return sortedKeys(set)
}

// PollPaths lists what a poll stats of a scanned repo (relative to its
// folder): a handful of paths, whatever the number of its files. A new or
// removed ref, revision or blob changes a folder's mtime (refs/,
// snapshots/, blobs/); a ref rewritten in place changes its file; a file
// added to a revision a ref shows changes the folder it is added to, so
// the folders of those revisions are in (up to PollSubdirsMax each). A
// file that reuses a blob already there, added to a revision no ref
// shows or to a folder beyond that bound, is seen at the next full check
// (`hfcachefs refresh`).
func PollPaths(repo *RepoInfo) []string {
	set := map[string]bool{"": true, "refs": true, "snapshots": true, "blobs": true, ".no_exist": true}
	if repo != nil {
		for _, rev := range repo.Revisions {
			if len(rev.Refs) == 0 {
				continue
			}
			for _, ref := range rev.Refs {
				set["refs/"+ref] = true
				for d := path.Dir(ref); d != "."; d = path.Dir(d) {
					set["refs/"+d] = true
				}
			}
			base := "snapshots/" + rev.CommitHash
			set[base] = true
			subs := 0
		files:
			for _, f := range rev.Files {
				for d := path.Dir(f.RelPath); d != "." && d != "/"; d = path.Dir(d) {
					if set[base+"/"+d] {
						break
					}
					if subs == PollSubdirsMax {
						break files
					}
					set[base+"/"+d] = true
					subs++
				}
			}
		}
	}
	return sortedKeys(set)
}

// PollSubdirsMax bounds the sub-folders of one shown revision a poll
// stats: a dataset of thousands of folders costs what a model does.
const PollSubdirsMax = 16

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// PathStat is what a fingerprint keeps of one path.
type PathStat struct {
	Path   string
	Err    error // nil, or why it could not be stat'ed
	Mtime  syscall.Timespec
	Ctime  syscall.Timespec
	Size   int64
	Ino    uint64
	Exists bool
}

// StatOf makes a PathStat from a stat's result.
func StatOf(p string, st *syscall.Stat_t, err error) PathStat {
	if err != nil {
		return PathStat{Path: p, Err: err}
	}
	return PathStat{Path: p, Exists: true, Mtime: st.Mtim, Ctime: st.Ctim, Size: st.Size, Ino: st.Ino}
}

// Fingerprint hashes the stats of a repo's paths: equal fingerprints mean
// nothing the views show changed (as far as the paths tell). A path that
// is missing hashes differently from one that exists; an error other than
// "not found" makes the fingerprint unknown (ok false): the repo must not
// be rescanned on its account (the file server may be down).
func Fingerprint(stats []PathStat) (fp uint64, ok bool) {
	h := fnv.New64a()
	var buf [8 * 6]byte
	for _, s := range stats {
		if s.Err != nil && Unreachable(s.Err) {
			return 0, false
		}
		_, _ = io.WriteString(h, s.Path)
		if !s.Exists {
			// A path that is not there, or answers "permission denied":
			// the same answer hashes the same way each time.
			var errno syscall.Errno
			errors.As(s.Err, &errno)
			_, _ = h.Write([]byte{0, byte(errno), byte(errno >> 8)})
			continue
		}
		for i, v := range [6]uint64{uint64(s.Mtime.Sec), uint64(s.Mtime.Nsec), uint64(s.Ctime.Sec), uint64(s.Ctime.Nsec), uint64(s.Size), s.Ino} {
			for j := 0; j < 8; j++ {
				buf[i*8+j] = byte(v >> (8 * j))
			}
		}
		_, _ = h.Write(buf[:])
	}
	return h.Sum64(), true
}

// Unreachable reports whether an error says nothing about the cache, only
// that it could not be asked (a file server down: ENOTCONN, EIO, a
// timeout, a stale handle): anything but an answer about the path ("not
// found", "not a directory", "permission denied", a symlink loop, a name
// too long). A refresher keeps the last good view then.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return false
	}
	for _, answer := range []syscall.Errno{syscall.ENOENT, syscall.ENOTDIR, syscall.EACCES, syscall.EPERM, syscall.ELOOP, syscall.ENAMETOOLONG} {
		if errors.Is(err, answer) {
			return false
		}
	}
	return true
}

// SettleInput is what the settle rule looks at for one repo.
type SettleInput struct {
	// Shown maps each ref to the commit by-ref showed in the last model.
	Shown map[string]string
	// Repo is the fresh scan.
	Repo *RepoInfo
	// Listing returns the paths trees/<commit>.json lists (ok false when
	// there is no readable listing).
	Listing func(commit string) (paths []string, ok bool)
	// Quiet is how long the repo has gone unchanged; Downloading says a
	// transfer into its blobs/ is running.
	Quiet       time.Duration
	Downloading bool
}

// SettleQuiet is how long a repo whose refs moved to an incomplete
// snapshot must stay unchanged, with no transfer running, before by-ref
// follows anyway: longer than the pause between two files of one
// download, short enough that a finished download shows within 2 s.
const SettleQuiet = time.Second

// Settle is the rule for a moving ref. by-ref/<ref> follows a ref to its
// new commit at once when that commit's snapshot is complete: its
// trees/<commit>.json lists no file the snapshot lacks, or, with no
// listing, it holds every path the revision shown before held. Otherwise
// (a download still writing the snapshot) it keeps showing the old
// revision (a new ref stays hidden) until the repo has been quiet for
// SettleQuiet with no transfer running. Held maps each ref that does not
// follow yet to the commit still shown ("" hidden); nil when every ref
// follows.
func Settle(in SettleInput) (held map[string]string) {
	if in.Repo == nil {
		return nil
	}
	quiet := in.Quiet >= SettleQuiet && !in.Downloading
	for _, rev := range in.Repo.Revisions {
		for _, ref := range rev.Refs {
			was, shown := in.Shown[ref]
			if shown && was == rev.CommitHash {
				continue
			}
			var before *RevisionInfo
			if shown {
				before = in.Repo.Revision(was)
			}
			if complete(rev, before, in.Listing) || quiet {
				continue
			}
			if held == nil {
				held = map[string]string{}
			}
			if before != nil {
				held[ref] = was
			} else {
				held[ref] = ""
			}
		}
	}
	return held
}

// complete reports whether a revision's snapshot holds everything it
// should: what its listing lists, or, with none, what the revision shown
// before held (no revision before and no listing: unknown, so no).
func complete(rev, before *RevisionInfo, listing func(string) ([]string, bool)) bool {
	lacks, known := missing(rev, before, listing)
	return known && len(lacks) == 0
}

// Missing lists the paths a revision lacks: those its listing lists, or
// with none those the revision before held, sorted.
func Missing(rev, before *RevisionInfo, listing func(string) ([]string, bool)) []string {
	out, _ := missing(rev, before, listing)
	return out
}

// missing is Missing, and whether anything said what the revision should
// hold (a listing, or a revision before).
func missing(rev, before *RevisionInfo, listing func(string) ([]string, bool)) (out []string, known bool) {
	var want []string
	if listing != nil {
		want, known = listing(rev.CommitHash)
	}
	if !known && before != nil {
		known = true
		for _, f := range before.Files {
			want = append(want, f.RelPath)
		}
	}
	have := make(map[string]bool, len(rev.Files))
	for _, f := range rev.Files {
		have[f.RelPath] = true
	}
	for _, p := range want {
		if !have[p] {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, known
}
