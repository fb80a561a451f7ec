package cachecore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Selection picks revisions of one repo for deletion.
type Selection struct {
	Repo      *RepoInfo
	Revisions []*RevisionInfo
}

// DeleteStrategy mirrors DeleteCacheStrategy: what a deletion removes and
// the size upstream expects it to free. Paths are absolute and sorted.
type DeleteStrategy struct {
	CacheDir          string
	ExpectedFreedSize int64
	Blobs             []string
	Refs              []string
	Repos             []string
	Snapshots         []string
	NotFound          []string // hashes no repo holds (DeleteRevisions only)

	// What Execute needs beyond upstream's sets.
	wholeRepos []*RepoInfo
	blobRepo   map[string]*RepoInfo // blob path -> repo whose snapshots may link to it
	selections []Selection
}

// ExpectedFreedSizeStr is _format_size(expected_freed_size).
func (s *DeleteStrategy) ExpectedFreedSizeStr() string { return FormatSize(s.ExpectedFreedSize) }

// Selections are the (repo, revisions) pairs the strategy was built from,
// in repo path order.
func (s *DeleteStrategy) Selections() []Selection { return s.selections }

// Empty reports whether the strategy deletes nothing.
func (s *DeleteStrategy) Empty() bool {
	return len(s.Blobs)+len(s.Refs)+len(s.Repos)+len(s.Snapshots) == 0
}

// DeleteRevisions is HFCacheInfo.delete_revisions(*hashes): exact string
// match; a hash held by several repos selects only the first (by repo
// path, where upstream's pick is arbitrary). Unknown hashes go to NotFound.
func (c *CacheInfo) DeleteRevisions(hashes ...string) *DeleteStrategy {
	toDelete := map[string]bool{}
	for _, h := range hashes {
		toDelete[h] = true
	}
	var sel []Selection
	for _, repo := range c.Repos {
		var revs []*RevisionInfo
		for _, rev := range repo.Revisions {
			if toDelete[rev.CommitHash] {
				revs = append(revs, rev)
				delete(toDelete, rev.CommitHash)
			}
		}
		if len(revs) > 0 {
			sel = append(sel, Selection{Repo: repo, Revisions: revs})
		}
	}
	s := c.PlanDeletion(sel)
	for h := range toDelete {
		s.NotFound = append(s.NotFound, h)
	}
	sort.Strings(s.NotFound)
	return s
}

// PlanDeletion builds the strategy for explicit selections, with
// upstream's rules: a repo losing every revision goes whole; otherwise its
// snapshots, their refs, and the blobs no remaining revision uses.
func (c *CacheInfo) PlanDeletion(selections []Selection) *DeleteStrategy {
	s := &DeleteStrategy{CacheDir: c.CacheDir, blobRepo: map[string]*RepoInfo{}}
	merged := map[*RepoInfo]map[*RevisionInfo]bool{}
	var order []*RepoInfo
	for _, sel := range selections {
		if merged[sel.Repo] == nil {
			merged[sel.Repo] = map[*RevisionInfo]bool{}
			order = append(order, sel.Repo)
		}
		for _, rev := range sel.Revisions {
			merged[sel.Repo][rev] = true
		}
	}
	sort.Slice(order, func(i, j int) bool { return order[i].RepoPath < order[j].RepoPath })
	blobs := map[string]bool{}
	for _, repo := range order {
		selected := merged[repo]
		var revs []*RevisionInfo
		for _, rev := range repo.Revisions {
			if selected[rev] {
				revs = append(revs, rev)
			}
		}
		s.selections = append(s.selections, Selection{Repo: repo, Revisions: revs})
		if len(revs) == len(repo.Revisions) {
			s.Repos = append(s.Repos, repo.RepoPath)
			s.wholeRepos = append(s.wholeRepos, repo)
			s.ExpectedFreedSize += repo.SizeOnDisk
			continue
		}
		kept := map[string]bool{}
		for _, rev := range repo.Revisions {
			if !selected[rev] {
				for _, f := range rev.Files {
					kept[f.BlobPath] = true
				}
			}
		}
		for _, rev := range revs {
			s.Snapshots = append(s.Snapshots, rev.SnapshotPath)
			for _, ref := range rev.Refs {
				s.Refs = append(s.Refs, repo.RepoPath+"/refs/"+ref)
			}
			for _, f := range rev.Files {
				if f.BlobPath != rev.SnapshotPath && isWithin(f.BlobPath, rev.SnapshotPath) {
					// A real file inside the snapshot goes with it.
					s.ExpectedFreedSize += f.SizeOnDisk
					continue
				}
				if blobs[f.BlobPath] || kept[f.BlobPath] {
					continue
				}
				blobs[f.BlobPath] = true
				s.blobRepo[f.BlobPath] = repo
				s.Blobs = append(s.Blobs, f.BlobPath)
				s.ExpectedFreedSize += f.SizeOnDisk
			}
		}
	}
	for _, l := range [][]string{s.Blobs, s.Refs, s.Repos, s.Snapshots} {
		sort.Strings(l)
	}
	return s
}

// ExecuteOptions tunes Execute.
type ExecuteOptions struct {
	// BeforeStep runs before each removal; an error stops Execute there
	// (tests use it to stop a deletion between any two steps).
	BeforeStep func(kind, path string) error
	// LockTimeout bounds the wait for a blob's download lock (default 60s);
	// a blob still locked then is left in place.
	LockTimeout time.Duration
	// Log receives one line per event worth telling (may be nil).
	Log func(msg string)
	// MoveTo, if set, is a folder on the cache's file system, outside the
	// cache: what the strategy deletes is moved there instead (keeping its
	// path relative to the cache dir), so it can be restored. A whole repo
	// then moves in one rename.
	MoveTo string
}

// Skipped is a path Execute refused or could not remove.
type Skipped struct {
	Kind, Path, Reason string
}

// ExecuteReport says what Execute did.
type ExecuteReport struct {
	Deleted []string  // paths removed
	Missing []string  // already gone ("file not found" upstream)
	Skipped []Skipped // refused (outside the cache, still linked, locked, ...)
}

// stagingPrefix names the folder a whole repo is moved to inside .locks/
// (which every scanner skips) so that it vanishes from the cache at once.
const stagingPrefix = ".hfcachefs-deleting-"

// Execute runs the strategy in a crash-safe order: refs, then snapshots,
// then blobs; a whole repo loses its refs, then its revisions one by one,
// then moves as one rename out of the scanned area before it is removed.
// Killed at any point, the cache scans without new warnings. Nothing
// outside the cache directory is removed or followed; each blob is removed
// under huggingface_hub's download lock after re-checking that no
// remaining snapshot links to it.
func (s *DeleteStrategy) Execute(opts ExecuteOptions) (*ExecuteReport, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 60 * time.Second
	}
	e := &executor{s: s, opts: opts, rep: &ExecuteReport{}}
	e.cacheDir, _ = newResolver().realpath(s.CacheDir)
	e.removeStaleStaging()
	if err := e.run(); err != nil {
		return e.rep, err
	}
	return e.rep, nil
}

type executor struct {
	s        *DeleteStrategy
	opts     ExecuteOptions
	rep      *ExecuteReport
	cacheDir string
}

func (e *executor) log(format string, args ...any) {
	if e.opts.Log != nil {
		e.opts.Log(fmt.Sprintf(format, args...))
	}
}

func (e *executor) step(kind, path string) error {
	if e.opts.BeforeStep != nil {
		return e.opts.BeforeStep(kind, path)
	}
	return nil
}

func (e *executor) run() error {
	var wholeRefs, wholeSnaps []string
	for _, repo := range e.s.wholeRepos {
		if e.repoIsSymlink(repo.RepoPath) || e.opts.MoveTo != "" {
			continue // only the link goes, in the last phase
		}
		wholeRefs = append(wholeRefs, repo.RepoPath+"/refs")
		for _, rev := range repo.Revisions {
			wholeSnaps = append(wholeSnaps, rev.SnapshotPath)
		}
	}
	for _, p := range append(append([]string(nil), e.s.Refs...), wholeRefs...) {
		if err := e.remove("ref", p); err != nil {
			return err
		}
	}
	for _, p := range append(append([]string(nil), e.s.Snapshots...), wholeSnaps...) {
		if err := e.remove("snapshot", p); err != nil {
			return err
		}
	}
	if err := e.removeBlobs(); err != nil {
		return err
	}
	for _, repo := range e.s.wholeRepos {
		if err := e.removeRepo(repo.RepoPath); err != nil {
			return err
		}
	}
	return nil
}

// inCache maps a path to the one that removing it would really touch: its
// parent resolved, its last component not followed. ok is false when that
// lies outside the cache's repo folders.
func (e *executor) inCache(path string) (string, bool) {
	parent, err := newResolver().realpath(filepath.Dir(path))
	if err != nil {
		return "", false
	}
	real := pyJoin(parent, filepath.Base(path))
	rel, err := filepath.Rel(e.cacheDir, real)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") || strings.HasPrefix(rel, ".locks") {
		return "", false
	}
	return real, true
}

// removeStaleStaging finishes whole-repo deletions an earlier run was
// stopped in the middle of (their folders are already out of the scan).
func (e *executor) removeStaleStaging() {
	locks := filepath.Join(e.cacheDir, ".locks")
	names, err := readDirNames(locks)
	if err != nil {
		return
	}
	for _, n := range names {
		if strings.HasPrefix(n, stagingPrefix) {
			if err := os.RemoveAll(filepath.Join(locks, n)); err == nil {
				e.log("Finished removing %s, left by an interrupted deletion", filepath.Join(locks, n))
			}
		}
	}
}

func (e *executor) repoIsSymlink(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&os.ModeSymlink != 0
}

// remove deletes one ref, snapshot or blob path without following it.
func (e *executor) remove(kind, path string) error {
	real, ok := e.inCache(path)
	if !ok {
		e.rep.Skipped = append(e.rep.Skipped, Skipped{kind, path, "outside the cache directory: never deleted"})
		e.log("Refused to delete %s: outside the cache directory (%s)", kind, path)
		return nil
	}
	if err := e.step(kind, path); err != nil {
		return err
	}
	fi, err := os.Lstat(real)
	if errors.Is(err, os.ErrNotExist) {
		e.rep.Missing = append(e.rep.Missing, path)
		e.log("Couldn't delete %s: file not found (%s)", kind, path)
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case e.opts.MoveTo != "":
		err = e.moveAside(real)
	case fi.IsDir():
		err = os.RemoveAll(real)
	default:
		err = os.Remove(real)
	}
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			e.rep.Skipped = append(e.rep.Skipped, Skipped{kind, path, "permission denied"})
			e.log("Couldn't delete %s: permission denied (%s)", kind, path)
			return nil
		}
		return err
	}
	e.rep.Deleted = append(e.rep.Deleted, path)
	return nil
}

func (e *executor) removeRepo(path string) error {
	real, ok := e.inCache(path)
	if !ok {
		e.rep.Skipped = append(e.rep.Skipped, Skipped{"repo", path, "outside the cache directory: never deleted"})
		return nil
	}
	if err := e.step("repo", path); err != nil {
		return err
	}
	fi, err := os.Lstat(real)
	if errors.Is(err, os.ErrNotExist) {
		e.rep.Missing = append(e.rep.Missing, path)
		e.log("Couldn't delete repo: file not found (%s)", path)
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		// A repo folder moved to another disk: the link goes, its target
		// (outside the cache) stays.
		if err := os.Remove(real); err != nil {
			return err
		}
		target, _ := os.Readlink(real)
		e.log("Repo folder %s was a symlink to %s: removed the link, left its target alone", path, target)
		e.rep.Deleted = append(e.rep.Deleted, path)
		return nil
	}
	if e.opts.MoveTo != "" {
		if err := e.moveAside(real); err != nil {
			return err
		}
		e.rep.Deleted = append(e.rep.Deleted, path)
		return nil
	}
	staging := filepath.Join(e.cacheDir, ".locks", stagingPrefix+filepath.Base(real)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.MkdirAll(filepath.Dir(staging), 0o777); err != nil {
		return err
	}
	if err := os.Rename(real, staging); err != nil {
		return err
	}
	if err := e.step("repo-staged", staging); err != nil {
		return err
	}
	if err := os.RemoveAll(staging); err != nil {
		return err
	}
	e.rep.Deleted = append(e.rep.Deleted, path)
	return nil
}

// moveAside renames a path of the cache to the same relative path under
// MoveTo.
func (e *executor) moveAside(real string) error {
	rel, err := filepath.Rel(e.cacheDir, real)
	if err != nil {
		return err
	}
	dest := filepath.Join(e.opts.MoveTo, rel)
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return err
	}
	return os.Rename(real, dest)
}

// removeBlobs deletes the plan's blobs, each under its download lock and
// only if no snapshot still links to it.
func (e *executor) removeBlobs() error {
	byRepo := map[*RepoInfo][]string{}
	var repos []*RepoInfo
	for _, b := range e.s.Blobs {
		repo := e.s.blobRepo[b]
		if byRepo[repo] == nil {
			repos = append(repos, repo)
		}
		byRepo[repo] = append(byRepo[repo], b)
	}
	for _, repo := range repos {
		for _, blob := range byRepo[repo] {
			if err := e.removeBlob(repo, blob); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *executor) removeBlob(repo *RepoInfo, blob string) error {
	if _, ok := e.inCache(blob); !ok {
		e.rep.Skipped = append(e.rep.Skipped, Skipped{"blob", blob, "outside the cache directory: never deleted"})
		e.log("Refused to delete blob: outside the cache directory (%s)", blob)
		return nil
	}
	unlock, err := lockBlob(e.cacheDir, repo.FolderName(), filepath.Base(blob), e.opts.LockTimeout)
	if err != nil {
		e.rep.Skipped = append(e.rep.Skipped, Skipped{"blob", blob, err.Error()})
		e.log("Left blob in place: %v (%s)", err, blob)
		return nil
	}
	defer unlock()
	linked, err := linkedBlobs(repo.RepoPath)
	if err != nil {
		return err
	}
	if linked[blob] {
		e.rep.Skipped = append(e.rep.Skipped, Skipped{"blob", blob, "a snapshot links to it again"})
		e.log("Left blob in place: a snapshot links to it again (%s)", blob)
		return nil
	}
	return e.remove("blob", blob)
}

// lockBlob takes .locks/<repo folder>/<etag>.lock the way huggingface_hub's
// filelock does (flock, mode 0664), waiting up to timeout.
func lockBlob(cacheDir, repoFolder, etag string, timeout time.Duration) (func(), error) {
	dir := filepath.Join(cacheDir, ".locks", repoFolder)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, etag+".lock")
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o664)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(fd, syscall.LOCK_UN); syscall.Close(fd) }, nil
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			syscall.Close(fd)
			return nil, &os.PathError{Op: "flock", Path: path, Err: err}
		}
		if time.Now().After(deadline) {
			syscall.Close(fd)
			return nil, fmt.Errorf("download lock %s still held after %s", path, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// linkedBlobs resolves every file under a repo's snapshots/ now.
func linkedBlobs(repoPath string) (map[string]bool, error) {
	out := map[string]bool{}
	r := newResolver()
	root := repoPath + "/snapshots"
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, os.ErrNotExist) {
				return filepath.SkipAll
			}
			return nil // unreadable corners: nothing there links anywhere we can see
		}
		if d.IsDir() {
			return nil
		}
		if real, err := r.realpath(p); err == nil {
			out[real] = true
		}
		return nil
	})
	return out, err
}

// RemoveIncomplete deletes a leftover blobs/*.incomplete file of the scan,
// refusing anything that is not such a file inside the cache directory.
func RemoveIncomplete(cacheDir, path string) error {
	dir, err := newResolver().realpath(cacheDir)
	if err != nil {
		return err
	}
	parent, err := newResolver().realpath(filepath.Dir(path))
	if err != nil {
		return err
	}
	real := pyJoin(parent, filepath.Base(path))
	rel, err := filepath.Rel(dir, real)
	parts := strings.Split(rel, "/")
	if err != nil || len(parts) != 3 || parts[1] != "blobs" || parts[0] == ".." || !strings.HasSuffix(parts[2], ".incomplete") {
		return fmt.Errorf("refusing to delete %s: not an incomplete download inside the cache", path)
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("refusing to delete %s: a directory", path)
	}
	return os.Remove(real)
}

// RestoreReport says what Restore put back and what it left.
type RestoreReport struct {
	Restored []string // paths back in the cache
	Kept     []string // present in the cache again meanwhile: the cache's version stays
	Notes    []string // for people, e.g. a ref that moved meanwhile
}

// Restore moves back what an Execute with MoveTo moved to heldDir: blobs
// that are missing, then the snapshots, then the refs that do not exist
// now (a ref that exists now stays where it points), then the repos that
// were moved whole (wholeRepos: their folder names) — the reverse of the
// deletion order, so the cache scans clean at every step. A path the cache
// has again meanwhile keeps the cache's version.
func Restore(cacheDir, heldDir string, wholeRepos []string) (*RestoreReport, error) {
	rep := &RestoreReport{}
	whole := map[string]bool{}
	for _, f := range wholeRepos {
		whole[f] = true
	}
	folders, err := readDirNames(heldDir)
	if err != nil {
		return nil, err
	}
	sort.Strings(folders)
	var blobs, snaps, refs []string
	for _, folder := range folders {
		if whole[folder] {
			continue
		}
		base := filepath.Join(heldDir, folder)
		for _, kind := range []string{"blobs", "snapshots"} {
			names, _ := readDirNames(filepath.Join(base, kind))
			sort.Strings(names)
			for _, n := range names {
				rel := filepath.Join(folder, kind, n)
				if kind == "blobs" {
					blobs = append(blobs, rel)
				} else {
					snaps = append(snaps, rel)
				}
			}
		}
		_ = filepath.WalkDir(filepath.Join(base, "refs"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(heldDir, p)
				refs = append(refs, rel)
			}
			return nil
		})
	}
	put := func(rel string) error {
		dest := filepath.Join(cacheDir, rel)
		if _, err := os.Lstat(dest); err == nil {
			rep.Kept = append(rep.Kept, dest)
			return os.RemoveAll(filepath.Join(heldDir, rel))
		}
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(heldDir, rel), dest); err != nil {
			return err
		}
		rep.Restored = append(rep.Restored, dest)
		return nil
	}
	for _, rel := range append(blobs, snaps...) {
		if err := put(rel); err != nil {
			return rep, err
		}
	}
	for _, rel := range refs {
		dest := filepath.Join(cacheDir, rel)
		if now, err := os.ReadFile(dest); err == nil {
			held, _ := os.ReadFile(filepath.Join(heldDir, rel))
			if string(now) != string(held) {
				name := strings.SplitN(filepath.ToSlash(rel), "/", 3)[2]
				rep.Notes = append(rep.Notes, fmt.Sprintf("ref %s moved meanwhile to %s: left as is (it was %s)", name, now, held))
			}
		}
		if err := put(rel); err != nil {
			return rep, err
		}
	}
	for _, folder := range folders {
		if !whole[folder] {
			continue
		}
		dest := filepath.Join(cacheDir, folder)
		if _, err := os.Lstat(dest); err == nil {
			return rep, fmt.Errorf("cannot restore %s: the cache has a folder of that name again: %w", folder, os.ErrExist)
		}
		if err := os.Rename(filepath.Join(heldDir, folder), dest); err != nil {
			return rep, err
		}
		rep.Restored = append(rep.Restored, dest)
	}
	return rep, nil
}
