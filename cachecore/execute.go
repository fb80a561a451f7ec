package cachecore

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/internal/safefs"
)

// A deletion runs as a transaction that a crash leaves before or after:
//
//  1. a journal (what goes) is written beside an empty staging folder;
//  2. the refs naming a trashed commit, re-read now, are moved into it;
//  3. each snapshot folder is moved into it in one rename: the revision is
//     whole or gone;
//  4. blobs no remaining snapshot links to are removed, each under its
//     download lock (moved into the staging folder under a hold);
//  5. the staging folder is removed (or moved to the hold), then the
//     journal.
//
// Every step acts beneath handles of the cache and repo folders, never
// through a path string (see internal/safefs). A transaction found on a
// later start is rolled back if no snapshot had been moved yet, else
// finished (FinishStaged). A whole repo is one rename into .locks/,
// where no scan looks, then removed.

// StagingDir is the folder inside a repo where its deletions stage what
// they remove: on the repo's own file system, outside what
// huggingface_hub reads (refs/, snapshots/, blobs/).
const StagingDir = ".hfcachefs-staging"

// stagingPrefix names a whole repo staged for removal inside .locks/
// (which every scanner skips), and its journal.
const stagingPrefix = ".hfcachefs-deleting-"

// journal is what a transaction will do, written before it does anything.
type journal struct {
	Version int               `json:"version"`
	ID      string            `json:"id"`
	Receipt string            `json:"receipt,omitempty"`
	Repo    string            `json:"repo"` // repo folder name
	Whole   bool              `json:"whole,omitempty"`
	Commits []string          `json:"commits,omitempty"`
	Refs    map[string]string `json:"refs,omitempty"`  // staged ref name -> commit
	Blobs   []string          `json:"blobs,omitempty"` // etags to remove
	Hold    string            `json:"hold,omitempty"`  // folder the staged tree goes to instead of being removed
	Created time.Time         `json:"created"`
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
	// path relative to the cache dir), so it can be restored.
	MoveTo string
	// Receipt names the .trash receipt the transaction belongs to (kept in
	// its journal, so a deletion finished after a restart finds it).
	Receipt string
	// Progress, if set, hears how many blobs are done of how many.
	Progress func(done, total int)
}

// Skipped is a path Execute refused or could not remove.
type Skipped struct {
	Kind, Path, Reason string
}

// ExecuteReport says what Execute did.
type ExecuteReport struct {
	Deleted    []string  // paths removed (or moved to the hold)
	Missing    []string  // already gone ("file not found" upstream)
	Skipped    []Skipped // refused (outside the repo, still linked, locked, ...)
	Blobs      []string  // the blobs that went
	BytesFreed int64     // their sizes, plus whole repos' size on disk
}

func (r *ExecuteReport) merge(o *ExecuteReport) {
	r.Deleted = append(r.Deleted, o.Deleted...)
	r.Missing = append(r.Missing, o.Missing...)
	r.Skipped = append(r.Skipped, o.Skipped...)
	r.Blobs = append(r.Blobs, o.Blobs...)
	r.BytesFreed += o.BytesFreed
}

// Staged is a deletion whose refs and snapshots are out of the cache:
// Finish removes the rest (blobs, the staged trees), which may take long.
type Staged struct {
	stopped bool // BeforeStep stopped it
	opts    ExecuteOptions
	root    *safefs.Handle
	txs     []*tx
	rep     *ExecuteReport
}

// Report is what staging did so far.
func (s *Staged) Report() *ExecuteReport { return s.rep }

// Blobs is the number of blobs Finish will look at.
func (s *Staged) Blobs() int {
	n := 0
	for _, t := range s.txs {
		n += len(t.j.Blobs)
	}
	return n
}

// tx is one repo's part of a deletion.
type tx struct {
	j        journal
	repoPath string         // as the plan names it (messages, report paths)
	repo     *safefs.Handle // nil for a whole repo (moved away)
	lock     *os.File       // the journal, flock'ed while the transaction runs
	jdir     *safefs.Handle // the folder holding the journal and staged tree
	staged   string         // name of the staged tree in jdir
}

// Execute runs the strategy: Stage, then Finish.
func (s *DeleteStrategy) Execute(opts ExecuteOptions) (*ExecuteReport, error) {
	st, err := s.Stage(opts)
	if st == nil {
		return &ExecuteReport{}, err
	}
	if err != nil {
		if st.stopped {
			// Left as a kill there would leave it.
			st.Close()
			return st.rep, err
		}
		// What was staged is out of the cache already: finish it.
		rep, _ := st.Finish()
		return rep, err
	}
	return st.Finish()
}

// Stage takes every selected revision out of the cache (refs re-read now:
// only those still naming a trashed commit go; then each snapshot in one
// rename) and every whole repo (one rename). What is left to Finish is
// invisible to a scan. Transactions an earlier run left are finished
// first.
func (s *DeleteStrategy) Stage(opts ExecuteOptions) (*Staged, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 60 * time.Second
	}
	root, err := safefs.OpenRoot(s.CacheDir)
	if err != nil {
		return nil, err
	}
	st := &Staged{opts: opts, root: root, rep: &ExecuteReport{}}
	// Only the repos this plan touches: a mv into .trash must not walk
	// every repo of the cache (every start has recovered the rest).
	mine := map[string]bool{}
	for _, sel := range s.selections {
		mine[sel.Repo.FolderName()] = true
	}
	if _, err := finishStaged(root, opts.Log, mine); err != nil {
		st.log("Finishing earlier deletions: %v", err)
	}
	whole := map[*RepoInfo]bool{}
	for _, r := range s.wholeRepos {
		whole[r] = true
	}
	for _, sel := range s.selections {
		var t *tx
		if whole[sel.Repo] {
			t, err = st.stageRepo(sel)
		} else {
			t, err = st.stageRevisions(sel, s)
		}
		if t != nil {
			st.txs = append(st.txs, t)
		}
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

func (st *Staged) log(format string, args ...any) {
	if st.opts.Log != nil {
		st.opts.Log(fmt.Sprintf(format, args...))
	}
}

func (st *Staged) step(kind, p string) error {
	if st.opts.BeforeStep != nil {
		if err := st.opts.BeforeStep(kind, p); err != nil {
			st.stopped = true
			return err
		}
	}
	return nil
}

// Discard undoes a Stage that moved nothing (every path was missing):
// its journals and staging folders go.
func (st *Staged) Discard() {
	for _, t := range st.txs {
		if t.repo != nil {
			st.rollback(t)
		} else {
			_ = t.jdir.Remove(t.staged + ".json")
			t.close()
		}
	}
	st.txs = nil
	st.root.Close()
}

// Close releases what Stage holds without finishing (Finish closes too).
func (st *Staged) Close() {
	for _, t := range st.txs {
		t.close()
	}
	st.root.Close()
}

func (t *tx) close() {
	if t.lock != nil {
		t.lock.Close()
		t.lock = nil
	}
	t.repo.Close()
	t.jdir.Close()
}

func newTxID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// writeJournal writes j as name in dir, synced, and returns it open and
// flock'ed: a recovery run skips a journal someone holds. It is written
// under a temporary name and renamed into place, so a kill never leaves
// a half journal (a stray temporary one means nothing had moved yet).
func writeJournal(dir *safefs.Handle, name string, j *journal) (*os.File, error) {
	data, err := json.Marshal(j) // one line: a 40,000-blob journal is written while mv waits
	if err != nil {
		return nil, err
	}
	tmp := name + journalTmp
	fd, err := dir.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), dir.Path()+"/"+name)
	fail := func(err error) (*os.File, error) {
		f.Close()
		_ = dir.Remove(tmp)
		return nil, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fail(err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := dir.Rename(tmp, dir, name, unix.RENAME_NOREPLACE); err != nil {
		return fail(err)
	}
	return f, nil
}

// journalTmp ends a journal's name while it is being written.
const journalTmp = ".tmp"

// removeStrayJournal removes a journal a kill left half-written (nobody
// holds its lock): nothing of its transaction had moved. It reports
// whether it did.
func removeStrayJournal(dir *safefs.Handle, name string) bool {
	fd, err := dir.Open(name, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Uid != uint32(os.Geteuid()) && st.Uid != 0 {
		return false // not ours to judge
	}
	return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil && dir.Remove(name) == nil
}

// stageRepo moves a whole repo out of the cache in one rename: into
// .locks/ (removed by Finish) or, with a hold, into the hold folder. A
// repo folder that is a symlink loses the link; its target stays.
func (st *Staged) stageRepo(sel Selection) (*tx, error) {
	repo := sel.Repo
	folder := repo.FolderName()
	lst, err := st.root.Stat(folder)
	if errors.Is(err, syscall.ENOENT) {
		st.rep.Missing = append(st.rep.Missing, repo.RepoPath)
		st.log("Couldn't delete repo: file not found (%s)", repo.RepoPath)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if lst.Mode&unix.S_IFMT == unix.S_IFLNK {
		if err := st.step("repo", repo.RepoPath); err != nil {
			return nil, err
		}
		target, _ := st.root.Readlink(folder)
		if err := st.root.Remove(folder); err != nil {
			return nil, err
		}
		st.log("Repo folder %s was a symlink to %s: removed the link, left its target alone", repo.RepoPath, target)
		st.rep.Deleted = append(st.rep.Deleted, repo.RepoPath)
		return nil, nil
	}
	rh, err := st.root.OpenDir(folder)
	if err != nil {
		return nil, err
	}
	defer rh.Close()
	// Never on a stale plan: a revision that appeared since goes only if
	// the user saw it.
	planned := map[string]bool{}
	for _, rev := range repo.Revisions {
		planned[rev.CommitHash] = true
	}
	if names, err := rh.ReadDir("snapshots"); err == nil {
		for _, n := range names {
			if !planned[n] && !FilesToIgnore[n] && n != StagingDir {
				return nil, fmt.Errorf("%s: revision %s appeared since the plan: %w", repo.RepoPath, n, ErrChanged)
			}
		}
	}
	locks, err := st.root.Mkdir(".locks", 0o777)
	if err != nil {
		return nil, err
	}
	j := journal{Version: 1, ID: newTxID(), Receipt: st.opts.Receipt, Repo: folder, Whole: true, Hold: st.opts.MoveTo, Created: time.Now().UTC()}
	for _, rev := range repo.Revisions {
		j.Commits = append(j.Commits, rev.CommitHash)
	}
	name := stagingPrefix + j.ID
	lock, err := writeJournal(locks, name+".json", &j)
	if err != nil {
		locks.Close()
		return nil, fmt.Errorf("writing the deletion journal: %w", err)
	}
	t := &tx{j: j, repoPath: repo.RepoPath, lock: lock, jdir: locks, staged: name}
	if err := st.step("repo", repo.RepoPath); err != nil {
		return t, err
	}
	if err := st.root.Rename(folder, locks, name, unix.RENAME_NOREPLACE); err != nil {
		_ = locks.Remove(name + ".json")
		t.close()
		return nil, err
	}
	st.rep.Deleted = append(st.rep.Deleted, repo.RepoPath)
	st.rep.BytesFreed += repo.SizeOnDisk
	return t, st.step("repo-staged", locks.Path()+"/"+name)
}

// stageRevisions stages the refs and snapshots of one repo's selected
// revisions, under the repo's deletion lock.
func (st *Staged) stageRevisions(sel Selection, plan *DeleteStrategy) (*tx, error) {
	repo := sel.Repo
	folder := repo.FolderName()
	if lst, err := st.root.Stat(folder); err == nil && lst.Mode&unix.S_IFMT == unix.S_IFLNK {
		// A repo folder moved elsewhere and linked back: what it points
		// to is not the cache's to trim piecemeal. Only the whole repo
		// (the link) can go.
		target, _ := st.root.Readlink(folder)
		why := "the repo folder is a symlink to " + target + ": only a whole-repo deletion (which removes the link) reaches it"
		for _, rev := range sel.Revisions {
			st.rep.Skipped = append(st.rep.Skipped, Skipped{"snapshot", rev.SnapshotPath, why})
		}
		st.log("Refused to delete revisions of %s: %s", repo.RepoPath, why)
		return nil, nil
	}
	rh, err := st.root.OpenDir(folder)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			for _, rev := range sel.Revisions {
				st.rep.Missing = append(st.rep.Missing, rev.SnapshotPath)
			}
			return nil, nil
		}
		return nil, err
	}
	unlockRepo, err := lockFolder(rh, st.opts.LockTimeout)
	if err != nil {
		rh.Close()
		return nil, err
	}
	defer unlockRepo()
	trashed := map[string]bool{}
	j := journal{Version: 1, ID: newTxID(), Receipt: st.opts.Receipt, Repo: folder, Refs: map[string]string{}, Created: time.Now().UTC()}
	if st.opts.MoveTo != "" {
		j.Hold = path.Join(st.opts.MoveTo, folder)
	}
	for _, rev := range sel.Revisions {
		trashed[rev.CommitHash] = true
		j.Commits = append(j.Commits, rev.CommitHash)
	}
	realRepo, _ := newResolver().realpath(repo.RepoPath)
	for _, b := range plan.Blobs {
		if plan.blobRepo[b] != repo {
			continue
		}
		etag, ok := blobEtag(realRepo, b)
		if !ok {
			st.rep.Skipped = append(st.rep.Skipped, Skipped{"blob", b, "not in this repo's blobs folder: never deleted (another repo or a place outside the cache may need it)"})
			st.log("Refused to delete blob: not in %s/blobs (%s)", repo.RepoPath, b)
			continue
		}
		j.Blobs = append(j.Blobs, etag)
	}
	sdir, err := rh.Mkdir(StagingDir, 0o700)
	if err != nil {
		rh.Close()
		return nil, fmt.Errorf("%s: staging folder: %w", repo.RepoPath, err)
	}
	lock, err := writeJournal(sdir, j.ID+".json", &j)
	if err != nil {
		sdir.Close()
		rh.Close()
		return nil, fmt.Errorf("writing the deletion journal: %w", err)
	}
	t := &tx{j: j, repoPath: repo.RepoPath, repo: rh, lock: lock, jdir: sdir, staged: j.ID}
	if err := unix.Mkdirat(sdir.Fd(), j.ID, 0o700); err != nil {
		t.abandon()
		return nil, err
	}
	moved := 0 // snapshots staged
	fail := func(err error) (*tx, error) {
		switch {
		case st.stopped || moved > 0:
			return t, err
		default:
			st.rollback(t) // nothing of a revision went: as if never started
			return nil, err
		}
	}

	// Refs: re-read each now; only one still naming a trashed commit goes.
	var refNames []string
	for _, rev := range sel.Revisions {
		refNames = append(refNames, rev.Refs...)
	}
	sort.Strings(refNames)
	for _, name := range refNames {
		refPath := repo.RepoPath + "/refs/" + name
		commit, err := readRef(rh, "refs/"+name)
		if errors.Is(err, syscall.ENOENT) {
			st.rep.Missing = append(st.rep.Missing, refPath)
			st.log("Couldn't delete ref: file not found (%s)", refPath)
			continue
		}
		if err != nil {
			// A ref that cannot be read beneath the repo (refs/ swapped
			// for a symlink, say) might name the commit: deleting the
			// snapshot could leave it pointing at nothing.
			st.rollback(t)
			return nil, fmt.Errorf("%s: refs/%s cannot be read safely (%v): nothing deleted: %w", repo.RepoPath, name, err, ErrChanged)
		}
		if !trashed[commit] {
			st.rep.Skipped = append(st.rep.Skipped, Skipped{"ref", refPath, "moved to " + commit + " since the plan: left in place"})
			st.log("Left ref in place: it points to %s now (%s)", commit, refPath)
			continue
		}
		if err := st.step("ref", refPath); err != nil {
			return fail(err)
		}
		if err := st.stageRef(t, name, trashed); err != nil {
			return fail(err)
		}
		if _, ok := t.j.Refs[name]; ok {
			st.rep.Deleted = append(st.rep.Deleted, refPath)
		}
	}
	// A ref that moved onto a trashed commit meanwhile would be left
	// pointing at nothing: give up instead.
	if name, commit, err := refNaming(rh, trashed); err != nil || name != "" {
		st.rollback(t)
		if err != nil {
			return nil, fmt.Errorf("%s: the refs cannot be checked (%v): nothing deleted: %w", repo.RepoPath, err, ErrChanged)
		}
		return nil, fmt.Errorf("%s: refs/%s now points to %s, which was to be deleted: nothing deleted: %w", repo.RepoPath, name, commit, ErrChanged)
	}

	for _, rev := range sel.Revisions {
		if err := st.step("snapshot", rev.SnapshotPath); err != nil {
			return fail(err)
		}
		if err := mkdirIn(sdir, j.ID+"/snapshots"); err != nil {
			return fail(err)
		}
		err := rh.Rename("snapshots/"+rev.CommitHash, sdir, j.ID+"/snapshots/"+rev.CommitHash, unix.RENAME_NOREPLACE)
		switch {
		case err == nil:
			moved++
			st.rep.Deleted = append(st.rep.Deleted, rev.SnapshotPath)
		case errors.Is(err, syscall.ENOENT):
			st.rep.Missing = append(st.rep.Missing, rev.SnapshotPath)
			st.log("Couldn't delete snapshot: file not found (%s)", rev.SnapshotPath)
		default:
			return fail(err)
		}
	}
	return t, nil
}

// stageRef moves refs/name into the staged tree, then reads what it
// moved: a ref rewritten between the read and the move (a download's
// atomic rename) goes back.
func (st *Staged) stageRef(t *tx, name string, trashed map[string]bool) error {
	dst := t.staged + "/refs/" + name
	if err := mkdirIn(t.jdir, path.Dir(dst)); err != nil {
		return err
	}
	if err := t.repo.Rename("refs/"+name, t.jdir, dst, unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return err
	}
	commit, err := readRef(t.jdir, dst)
	if err == nil && trashed[commit] {
		t.j.Refs[name] = commit
		return nil
	}
	// Rewritten meanwhile: put it back, unless a newer one is there already.
	if err := t.jdir.Rename(dst, t.repo, "refs/"+name, unix.RENAME_NOREPLACE); err != nil && !errors.Is(err, syscall.EEXIST) {
		return err
	}
	_ = t.jdir.Remove(dst)
	st.rep.Skipped = append(st.rep.Skipped, Skipped{"ref", t.repoPath + "/refs/" + name, "moved to " + commit + " while deleting: left in place"})
	return nil
}

// rollback puts staged refs back and drops the transaction (nothing of a
// snapshot was moved yet). The staged refs/ tree is walked, not the
// journal: a run stopped mid-way had not recorded them all.
func (st *Staged) rollback(t *tx) {
	for _, name := range stagedRefs(t) {
		// Whatever happens to the staged copy, this ref was not deleted.
		st.rep.Deleted = removeString(st.rep.Deleted, t.repoPath+"/refs/"+name)
		err := t.jdir.Rename(t.staged+"/refs/"+name, t.repo, "refs/"+name, unix.RENAME_NOREPLACE)
		if errors.Is(err, syscall.ENOENT) && mkdirFor(t.repo, "refs/"+name) == nil {
			err = t.jdir.Rename(t.staged+"/refs/"+name, t.repo, "refs/"+name, unix.RENAME_NOREPLACE)
		}
		// EEXIST: a download wrote the ref anew meanwhile; the staged copy
		// is older and goes with the staging folder.
	}
	t.abandon()
}

// mkdirFor makes the folders above rel beneath h (0755: refs/ folders
// others read, as huggingface_hub makes them).
func mkdirFor(h *safefs.Handle, rel string) error {
	d := path.Dir(rel)
	if d == "." {
		return nil
	}
	dh, err := h.Mkdir(d, 0o755)
	if err != nil {
		return err
	}
	return dh.Close()
}

// stagedRefs lists the ref names under the staged tree's refs/.
func stagedRefs(t *tx) []string {
	var out []string
	var walk func(rel string)
	walk = func(rel string) {
		names, err := t.jdir.ReadDir(t.staged + "/refs" + rel)
		if err != nil {
			return
		}
		for _, n := range names {
			st, err := t.jdir.Stat(t.staged + "/refs" + rel + "/" + n)
			if err != nil {
				continue
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				walk(rel + "/" + n)
			} else {
				out = append(out, strings.TrimPrefix(rel+"/"+n, "/"))
			}
		}
	}
	walk("")
	sort.Strings(out)
	return out
}

// abandon removes a transaction's staging and journal.
func (t *tx) abandon() {
	_ = t.jdir.RemoveAll(t.staged)
	_ = t.jdir.Remove(t.staged + ".json")
	if t.repo != nil {
		_ = t.repo.Remove(StagingDir) // once empty
	}
	t.close()
}

func removeString(l []string, s string) []string {
	out := l[:0]
	for _, x := range l {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// Finish removes what Stage moved out, and the blobs no remaining
// snapshot links to (each under its download lock), then closes.
func (st *Staged) Finish() (*ExecuteReport, error) {
	defer st.Close()
	total := st.Blobs()
	done := 0
	progress := func() {
		done++
		if st.opts.Progress != nil {
			st.opts.Progress(done, total)
		}
	}
	for _, t := range st.txs {
		rep, err := finishTx(st.root, t, st.opts, progress)
		st.rep.merge(rep)
		if err != nil {
			return st.rep, err
		}
	}
	return st.rep, nil
}

// finishTx runs a staged transaction to its end.
func finishTx(root *safefs.Handle, t *tx, opts ExecuteOptions, progress func()) (*ExecuteReport, error) {
	rep := &ExecuteReport{}
	step := func(kind, p string) error {
		if opts.BeforeStep != nil {
			return opts.BeforeStep(kind, p)
		}
		return nil
	}
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			opts.Log(fmt.Sprintf(format, args...))
		}
	}
	if t.j.Whole {
		if t.j.Hold != "" {
			hold, err := holdDir(t.j.Hold, "")
			if err != nil {
				return rep, err
			}
			defer hold.Close()
			if err := t.jdir.Rename(t.staged, hold, t.j.Repo, unix.RENAME_NOREPLACE); err != nil {
				return rep, err
			}
		} else if err := t.jdir.RemoveAll(t.staged); err != nil {
			return rep, err
		}
		_ = t.jdir.Remove(t.staged + ".json")
		return rep, nil
	}
	if t.repo == nil {
		return rep, fmt.Errorf("%s: no handle of the repo", t.repoPath)
	}
	if err := removeBlobs(root, t, opts, rep, step, logf, progress); err != nil {
		return rep, err
	}
	if err := step("staged", t.repoPath+"/"+StagingDir+"/"+t.staged); err != nil {
		return rep, err
	}
	if t.j.Hold != "" {
		hold, err := holdDir(path.Dir(t.j.Hold), "")
		if err != nil {
			return rep, err
		}
		defer hold.Close()
		if err := mergeInto(t.jdir, t.staged, hold, path.Base(t.j.Hold)); err != nil {
			return rep, err
		}
	} else if err := t.jdir.RemoveAll(t.staged); err != nil {
		return rep, err
	}
	_ = t.jdir.Remove(t.staged + ".json")
	// The staging folder goes once empty: the cache then holds what
	// huggingface_hub's own deletion leaves.
	_ = t.repo.Remove(StagingDir)
	return rep, nil
}

// holdDir opens (making it) the hold folder: outside the cache, the
// daemon's own (0700), so a path string to it is trusted.
func holdDir(dir, sub string) (*safefs.Handle, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	h, err := safefs.OpenRoot(dir)
	if err != nil || sub == "" {
		return h, err
	}
	defer h.Close()
	return h.Mkdir(sub, 0o700)
}

// mergeInto moves the entries of from/name into to/dst, folder by folder
// (the hold may hold that repo's folder already).
func mergeInto(from *safefs.Handle, name string, to *safefs.Handle, dst string) error {
	err := from.Rename(name, to, dst, unix.RENAME_NOREPLACE)
	if err == nil || !errors.Is(err, syscall.EEXIST) && !errors.Is(err, syscall.ENOTEMPTY) {
		return err
	}
	entries, err := from.ReadDir(name)
	if err != nil {
		return err
	}
	for _, e := range entries {
		st, err := from.Stat(name + "/" + e)
		if err != nil {
			continue
		}
		dstSt, derr := to.Stat(dst + "/" + e)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR && derr == nil && dstSt.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := mergeInto(from, name+"/"+e, to, dst+"/"+e); err != nil {
				return err
			}
			continue
		}
		if derr == nil {
			continue // held already (an earlier receipt's): this copy goes
		}
		if err := from.Rename(name+"/"+e, to, dst+"/"+e, unix.RENAME_NOREPLACE); err != nil {
			return err
		}
	}
	return from.RemoveAll(name)
}

// blobBatch bounds how many download locks are held at once (and how
// often the remaining snapshots are walked: once a batch).
const blobBatch = 256

// removeBlobs removes the journal's blobs that no remaining snapshot links
// to, each under its download lock. Only what went is counted.
func removeBlobs(root *safefs.Handle, t *tx, opts ExecuteOptions, rep *ExecuteReport, step func(string, string) error, logf func(string, ...any), progress func()) error {
	// One handle of each folder for the whole transaction: the blobs
	// folder as it was when the deletion began (a symlink swapped in for
	// it later is never followed), and the repo's download locks.
	locks, err := root.Mkdir(".locks/"+t.j.Repo, 0o777)
	if err != nil {
		return err
	}
	defer locks.Close()
	blobsDir, err := t.repo.OpenDir("blobs")
	if err != nil {
		for _, etag := range t.j.Blobs {
			p := t.repoPath + "/blobs/" + etag
			rep.Skipped = append(rep.Skipped, Skipped{"blob", p, err.Error()})
			progress()
		}
		logf("Left %d blob(s) in place: %v", len(t.j.Blobs), err)
		return nil
	}
	defer blobsDir.Close()
	blobs := t.j.Blobs
	for len(blobs) > 0 {
		batch := blobs[:min(blobBatch, len(blobs))]
		blobs = blobs[len(batch):]
		type held struct {
			etag   string
			unlock func()
		}
		var got []held
		var waitFor []string
		for _, etag := range batch {
			unlock, err := lockIn(locks, etag+".lock", 0)
			if err != nil {
				waitFor = append(waitFor, etag)
				continue
			}
			got = append(got, held{etag, unlock})
		}
		// A blob whose lock is held waits its turn, alone.
		for _, etag := range waitFor {
			unlock, err := lockIn(locks, etag+".lock", opts.LockTimeout)
			if err != nil {
				p := t.repoPath + "/blobs/" + etag
				rep.Skipped = append(rep.Skipped, Skipped{"blob", p, err.Error()})
				logf("Left blob in place: %v (%s)", err, p)
				progress()
				continue
			}
			got = append(got, held{etag, unlock})
		}
		linked, err := linkedEtags(t.repo)
		if err != nil {
			// Which blobs the snapshots still need cannot be told (their
			// folder is not a plain folder now): none of these goes.
			for _, h := range got {
				p := t.repoPath + "/blobs/" + h.etag
				rep.Skipped = append(rep.Skipped, Skipped{"blob", p, "the snapshots could not be checked: " + err.Error()})
				progress()
				h.unlock()
			}
			continue
		}
		var stepErr error
		for _, h := range got {
			if stepErr == nil {
				stepErr = removeBlob(t, blobsDir, h.etag, linked, rep, step, logf)
				progress()
			}
			h.unlock()
		}
		if stepErr != nil {
			return stepErr
		}
	}
	return nil
}

func removeBlob(t *tx, blobsDir *safefs.Handle, etag string, linked map[string]bool, rep *ExecuteReport, step func(string, string) error, logf func(string, ...any)) error {
	p := t.repoPath + "/blobs/" + etag
	if linked[etag] {
		rep.Skipped = append(rep.Skipped, Skipped{"blob", p, "a snapshot links to it again"})
		logf("Left blob in place: a snapshot links to it again (%s)", p)
		return nil
	}
	if err := step("blob", p); err != nil {
		return err
	}
	st, err := blobsDir.Stat(etag)
	if errors.Is(err, syscall.ENOENT) {
		rep.Missing = append(rep.Missing, p)
		logf("Couldn't delete blob: file not found (%s)", p)
		return nil
	}
	if err != nil {
		rep.Skipped = append(rep.Skipped, Skipped{"blob", p, err.Error()})
		logf("Left blob in place: %v (%s)", err, p)
		return nil
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		rep.Skipped = append(rep.Skipped, Skipped{"blob", p, "a folder, not a blob: left in place"})
		return nil
	}
	if t.j.Hold != "" {
		if err := mkdirIn(t.jdir, t.staged+"/blobs"); err != nil {
			return err
		}
		err = blobsDir.Rename(etag, t.jdir, t.staged+"/blobs/"+etag, unix.RENAME_NOREPLACE)
	} else {
		err = blobsDir.Remove(etag)
	}
	if err != nil {
		reason := err.Error()
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			reason = "permission denied"
		}
		rep.Skipped = append(rep.Skipped, Skipped{"blob", p, reason})
		logf("Couldn't delete blob: %s (%s)", reason, p)
		return nil
	}
	rep.Deleted = append(rep.Deleted, p)
	rep.Blobs = append(rep.Blobs, p)
	rep.BytesFreed += st.Size
	return nil
}

// mkdirIn makes rel (and its parents) beneath h.
func mkdirIn(h *safefs.Handle, rel string) error {
	d, err := h.Mkdir(rel, 0o700)
	if err != nil {
		return err
	}
	return d.Close()
}

// readRef reads a ref beneath h as huggingface_hub does.
func readRef(h *safefs.Handle, rel string) (string, error) {
	data, err := h.ReadFile(rel, 4096)
	if err != nil {
		return "", err
	}
	return RefContent(data)
}

// refNaming finds a ref (under refs/, beneath the repo handle) whose
// content names one of the commits. Anything that cannot be read (a
// folder swapped for a symlink, an unreadable ref) is an error: what it
// holds might name one.
func refNaming(repo *safefs.Handle, commits map[string]bool) (string, string, error) {
	var walk func(rel string, depth int) (string, string, error)
	walk = func(rel string, depth int) (string, string, error) {
		names, err := repo.ReadDir(rel)
		if errors.Is(err, syscall.ENOENT) && rel == "refs" {
			return "", "", nil // no refs at all
		}
		if err != nil || depth > 64 {
			return "", "", fmt.Errorf("listing %s: %v", rel, err)
		}
		for _, n := range names {
			p := rel + "/" + n
			st, err := repo.Stat(p)
			if errors.Is(err, syscall.ENOENT) {
				continue // gone since the listing
			}
			if err != nil {
				return "", "", err
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				if name, c, err := walk(p, depth+1); err != nil || name != "" {
					return name, c, err
				}
			case unix.S_IFREG:
				c, err := readRef(repo, p)
				if errors.Is(err, syscall.ENOENT) {
					continue
				}
				if err != nil {
					return "", "", err
				}
				if commits[c] {
					return strings.TrimPrefix(p, "refs/"), c, nil
				}
			case unix.S_IFLNK:
				// huggingface_hub reads through it; we never follow one.
				return "", "", fmt.Errorf("%s is a symlink", p)
			}
		}
		return "", "", nil
	}
	return walk("refs", 0)
}

// blobEtag maps a blob path of the plan to its name in the repo's own
// blobs folder; false for anything else.
func blobEtag(realRepo, blob string) (string, bool) {
	if realRepo == "" {
		return "", false
	}
	etag, ok := strings.CutPrefix(blob, realRepo+"/blobs/")
	if !ok || etag == "" || strings.ContainsRune(etag, '/') || etag == "." || etag == ".." {
		return "", false
	}
	return etag, true
}

// linkedEtags walks the repo's snapshots beneath its handle and returns
// the blobs/<etag> names their symlinks lead to, resolved by their text
// (relative links as huggingface_hub writes them; a link through another
// symlink is not followed, and counts as linking nothing here).
func linkedEtags(repo *safefs.Handle) (map[string]bool, error) {
	out := map[string]bool{}
	fd, err := repo.Open("snapshots", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if errors.Is(err, syscall.ENOENT) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if err := walkLinks(fd, "snapshots", 0, out); err != nil {
		return nil, err
	}
	return out, nil
}

// walkLinks lists an open folder (and closes it), recording where its
// symlinks lead; sub-folders are opened beneath it with O_NOFOLLOW. A
// folder that cannot be listed or opened (swapped meanwhile) is an error:
// what it holds might link to a blob.
func walkLinks(fd int, rel string, depth int, out map[string]bool) error {
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return fmt.Errorf("listing %s: %w", rel, err)
	}
	buf := make([]byte, 4096)
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir():
			if depth > 128 {
				return fmt.Errorf("%s: nested too deep", rel)
			}
			sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("opening %s/%s: %w", rel, name, err)
			}
			if err := walkLinks(sub, rel+"/"+name, depth+1, out); err != nil {
				return err
			}
		case e.Type()&os.ModeSymlink != 0:
			n, err := unix.Readlinkat(fd, name, buf)
			if err != nil {
				if err == unix.ENOENT {
					continue
				}
				return fmt.Errorf("reading %s/%s: %w", rel, name, err)
			}
			target := string(buf[:n])
			if strings.HasPrefix(target, "/") {
				// Absolute: its last two components say which blob.
				if dir, etag := path.Split(target); path.Base(dir) == "blobs" {
					out[etag] = true
				}
				continue
			}
			if dest := path.Join(rel, target); strings.HasPrefix(dest, "blobs/") {
				out[strings.TrimPrefix(dest, "blobs/")] = true
			}
		}
	}
	return nil
}

// lockIn takes the lock file name in the folder d the way
// huggingface_hub's filelock does (flock, mode 0664), waiting up to
// timeout (0: not at all).
func lockIn(d *safefs.Handle, name string, timeout time.Duration) (func(), error) {
	fd, err := d.Open(name, unix.O_RDWR|unix.O_CREAT, 0o664)
	if err != nil {
		return nil, err
	}
	if err := flockWait(fd, timeout, 50*time.Millisecond); err != nil {
		unix.Close(fd)
		if err == unix.EWOULDBLOCK {
			return nil, fmt.Errorf("download lock %s still held after %s", d.Path()+"/"+name, timeout)
		}
		return nil, &os.PathError{Op: "flock", Path: d.Path() + "/" + name, Err: err}
	}
	return func() { unix.Flock(fd, unix.LOCK_UN); unix.Close(fd) }, nil
}

// flockWait takes an exclusive flock of fd, trying every step until
// timeout (0: once); EWOULDBLOCK if it is still held then.
func flockWait(fd int, timeout, step time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case err != unix.EWOULDBLOCK && err != unix.EINTR:
			return err
		case !time.Now().Before(deadline):
			return unix.EWOULDBLOCK
		}
		time.Sleep(step)
	}
}

// lockFolder flocks the folder itself: hfcachefs processes deleting in
// one repo take turns, and nothing is written into the cache for it.
func lockFolder(h *safefs.Handle, timeout time.Duration) (func(), error) {
	fd, err := unix.Openat(h.Fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: h.Path(), Err: err}
	}
	if err := flockWait(fd, timeout, 20*time.Millisecond); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: another deletion holds the repo: %w", h.Path(), ErrChanged)
	}
	return func() { unix.Flock(fd, unix.LOCK_UN); unix.Close(fd) }, nil
}

// StagedReceipts lists the receipt names the cache's deletion journals
// name (every repo's staging folder and .locks/), read beneath handles:
// never a FIFO, never through a link.
func StagedReceipts(cacheDir string) (map[string]bool, error) {
	root, err := safefs.OpenRoot(cacheDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	out := map[string]bool{}
	read := func(dir *safefs.Handle, name string) {
		var j journal
		if data, err := dir.ReadFile(name, 64<<20); err == nil && json.Unmarshal(data, &j) == nil && j.Receipt != "" {
			out[j.Receipt] = true
		}
	}
	names, err := root.ReadDir(".")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		dir, err := root.OpenDir(n + "/" + StagingDir)
		if n == ".locks" {
			dir, err = root.OpenDir(".locks")
		}
		if err != nil {
			continue
		}
		entries, _ := dir.ReadDir(".")
		for _, e := range entries {
			if strings.HasSuffix(e, ".json") && (n != ".locks" || strings.HasPrefix(e, stagingPrefix)) {
				read(dir, e)
			}
		}
		dir.Close()
	}
	return out, nil
}

// Recovered is a transaction an earlier run left, finished or rolled back.
type Recovered struct {
	ID, Receipt, Repo string
	RolledBack        bool
	Report            *ExecuteReport
	Err               error
}

// FinishStaged finishes what interrupted deletions left in the cache
// (every repo's staging folder and .locks/): a transaction that had
// moved no snapshot yet is rolled back (its refs go back), any other is
// finished. A transaction another process is running is left to it.
func FinishStaged(cacheDir string, log func(string)) ([]Recovered, error) {
	root, err := safefs.OpenRoot(cacheDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return finishStaged(root, log, nil)
}

func finishStaged(root *safefs.Handle, log func(string), only map[string]bool) ([]Recovered, error) {
	logf := func(format string, args ...any) {
		if log != nil {
			log(fmt.Sprintf(format, args...))
		}
	}
	var out []Recovered
	var names []string
	if only != nil {
		names = append(names, ".locks")
		for n := range only {
			names = append(names, n)
		}
		sort.Strings(names)
	} else {
		var err error
		if names, err = root.ReadDir("."); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		if n == ".locks" {
			out = append(out, finishWhole(root, logf)...)
			continue
		}
		if !strings.Contains(n, "--") {
			continue
		}
		rh, err := root.OpenTop(n)
		if err != nil {
			continue
		}
		if entries, err := rh.ReadDir(StagingDir); err == nil {
			// A deletion staging in this repo right now holds its lock:
			// its folder and journal are its own, not leftovers.
			unlock, err := lockFolder(rh, 0)
			if err != nil {
				rh.Close()
				continue
			}
			if len(entries) == 0 {
				// Killed right after making the folder: nothing had moved.
				if rh.Remove(StagingDir) == nil {
					out = append(out, Recovered{Repo: n, RolledBack: true, Report: &ExecuteReport{}})
				}
			} else if sdir, err := rh.OpenDir(StagingDir); err == nil {
				for _, e := range entries {
					if strings.HasSuffix(e, ".json"+journalTmp) {
						if removeStrayJournal(sdir, e) {
							out = append(out, Recovered{ID: strings.TrimSuffix(e, ".json"+journalTmp), Repo: n, RolledBack: true, Report: &ExecuteReport{}})
						}
						continue
					}
					if id, ok := strings.CutSuffix(e, ".json"); ok {
						if r, ok := finishOne(root, rh, sdir, n, id, logf); ok {
							out = append(out, r)
						}
					}
				}
				sdir.Close()
				_ = rh.Remove(StagingDir) // once empty
			}
			unlock()
		}
		rh.Close()
	}
	return out, nil
}

// openJournal opens and flocks a journal; ok is false if another process
// holds it (its transaction is running). A journal is trusted only if
// this user or root wrote it and nobody else may change it: anyone who
// can write the cache could otherwise forge one (naming a hold folder
// anywhere, or blobs to remove).
func openJournal(dir *safefs.Handle, name string) (*os.File, *journal, bool, error) {
	fd, err := dir.Open(name, unix.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, false, err
	}
	f := os.NewFile(uintptr(fd), dir.Path()+"/"+name)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, nil, false, err
	}
	if euid := uint32(os.Geteuid()); st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != euid && st.Uid != 0 || st.Mode&0o022 != 0 {
		f.Close()
		return nil, nil, false, fmt.Errorf("not written by this user or root (owner %d, mode %o): ignored", st.Uid, st.Mode&0o7777)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, nil, false, nil
	}
	var j journal
	data, err := dir.ReadFile(name, 64<<20)
	if err == nil {
		err = json.Unmarshal(data, &j)
	}
	if err == nil && j.Hold != "" && (!path.IsAbs(j.Hold) || path.Clean(j.Hold) != j.Hold || !strings.Contains(j.Hold, "/.hfcachefs-hold-")) {
		err = fmt.Errorf("its hold folder %q is not one of hfcachefs's", j.Hold)
	}
	if err != nil {
		f.Close()
		return nil, nil, false, err
	}
	return f, &j, true, nil
}

func finishOne(root, rh, sdir *safefs.Handle, folder, id string, logf func(string, ...any)) (Recovered, bool) {
	f, j, ok, err := openJournal(sdir, id+".json")
	if err != nil {
		// A journal that cannot be read: its tree is no deletion anyone
		// can finish; it stays, and the log says so.
		logf("Unreadable deletion journal %s/%s/%s.json: %v", folder, StagingDir, id, err)
		return Recovered{}, false
	}
	if !ok {
		return Recovered{}, false
	}
	rec := Recovered{ID: id, Receipt: j.Receipt, Repo: folder}
	repoPath := root.Path() + "/" + folder
	sub, _ := rh.OpenDir(".")
	jd, _ := sdir.OpenDir(".")
	t := &tx{j: *j, repoPath: repoPath, repo: sub, lock: f, jdir: jd, staged: id}
	staged := 0
	for _, c := range j.Commits {
		if _, err := sdir.Stat(id + "/snapshots/" + c); err == nil {
			staged++
		}
	}
	if staged == 0 {
		// Stopped before any snapshot moved: as if it never ran.
		st := &Staged{rep: &ExecuteReport{}}
		st.rollback(t)
		rec.RolledBack = true
		rec.Report = st.rep
		logf("Rolled back an interrupted deletion in %s (no revision had gone yet)", repoPath)
		return rec, true
	}
	// Refs of a revision still in snapshots/ go back.
	for _, name := range stagedRefs(t) {
		c, err := readRef(sdir, id+"/refs/"+name)
		if err != nil {
			continue
		}
		if _, err := rh.Stat("snapshots/" + c); err == nil {
			_ = mkdirFor(rh, "refs/"+name)
			_ = sdir.Rename(id+"/refs/"+name, rh, "refs/"+name, unix.RENAME_NOREPLACE)
		}
	}
	rep, err := finishTx(root, t, ExecuteOptions{LockTimeout: 10 * time.Second}, func() {})
	rec.Report, rec.Err = rep, err
	t.close()
	if err == nil {
		logf("Finished an interrupted deletion in %s", repoPath)
	}
	return rec, true
}

// finishWhole removes whole repos an interrupted deletion moved into
// .locks/ (or moves them to their hold).
func finishWhole(root *safefs.Handle, logf func(string, ...any)) []Recovered {
	locks, err := root.OpenDir(".locks")
	if err != nil {
		return nil
	}
	defer locks.Close()
	names, err := locks.ReadDir(".")
	if err != nil {
		return nil
	}
	var out []Recovered
	for _, n := range names {
		if !strings.HasPrefix(n, stagingPrefix) {
			continue
		}
		if strings.HasSuffix(n, ".json"+journalTmp) {
			if removeStrayJournal(locks, n) {
				out = append(out, Recovered{ID: n, RolledBack: true, Report: &ExecuteReport{}})
			}
			continue
		}
		if id, ok := strings.CutSuffix(strings.TrimPrefix(n, stagingPrefix), ".json"); ok {
			f, j, ok, err := openJournal(locks, n)
			if err != nil || !ok {
				continue
			}
			rec := Recovered{ID: id, Receipt: j.Receipt, Repo: j.Repo}
			jd, _ := locks.OpenDir(".")
			t := &tx{j: *j, repoPath: root.Path() + "/" + j.Repo, lock: f, jdir: jd, staged: stagingPrefix + id}
			if _, err := locks.Stat(t.staged); errors.Is(err, syscall.ENOENT) {
				// The journal was written, the repo never moved: nothing happened.
				rec.RolledBack = true
				rec.Report = &ExecuteReport{}
				_ = locks.Remove(n)
				t.close()
				out = append(out, rec)
				continue
			}
			rec.Report, rec.Err = finishTx(root, t, ExecuteOptions{}, func() {})
			t.close()
			out = append(out, rec)
			logf("Finished removing %s, left by an interrupted deletion", root.Path()+"/.locks/"+stagingPrefix+id)
			continue
		}
		// A staged folder of a run before journals (or whose journal is
		// gone): nothing of it is in the cache any more.
		if _, err := locks.Stat(n + ".json"); err == nil {
			continue
		}
		if err := locks.RemoveAll(n); err == nil {
			logf("Finished removing %s, left by an interrupted deletion", root.Path()+"/.locks/"+n)
		}
	}
	return out
}
