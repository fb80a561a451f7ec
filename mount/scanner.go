package mount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/cachecore"
	hffs "github.com/hfcachefs/hfcachefs/fs"
	"github.com/hfcachefs/hfcachefs/internal/safefs"
	"github.com/hfcachefs/hfcachefs/views"
)

// scanner keeps the mount's model in step with the cache: a first scan
// in parallel (a repo someone is waiting for goes first), then polling
// cheap fingerprints and rescanning only the entries that changed.
type scanner struct {
	cacheDir  string
	state     *hffs.State
	inos      *views.InoTable
	viewOpts  views.Options
	mountTime time.Time
	logf      func(format string, args ...any)

	urgent chan string   // folders a lookup waits for
	full   chan struct{} // closed once the first full scan is in
	pubMu  sync.Mutex    // serializes model builds, so generations stay in order
	// workMu serializes refreshes and .trash rescans: each reads the scans,
	// works, and writes them back.
	workMu sync.Mutex
	rootID [2]uint64 // dev, ino of the cache dir the state's handle holds (guarded by workMu)

	rmu   sync.Mutex              // protects stale
	stale map[string]*staleFlight // folder -> the rescan for opens that found a blob replaced

	mu          sync.Mutex // protects the following
	names       []string   // top-level entries in directory order
	scans       map[string]cachecore.EntryScan
	fingerprint map[string]entryPrint
	pending     map[string]chan struct{} // folder -> closed once in the model
	kept        []string                 // repos shown as last seen while inconsistent
	gen         uint64
	changed     bool
	rootPrint   [4]int64                     // the cache root's mtime and ctime when names was listed
	shown       map[string]map[string]string // folder -> ref -> commit by-ref showed in the last model
	settling    map[string]*settleState      // repos whose refs moved while a download may still run
	heldViews   map[string]heldView          // the repos as shown while settling, reused across models
	dropped     map[string]string            // folder -> why its kept view was dropped (while it stays inconsistent)
	missing     string                       // set while the cache dir is gone: what .status.json says
}

// staleFlight is one rescan of a repo for opens that found its blob
// replaced; callers arriving before it starts share it.
type staleFlight struct {
	done    chan struct{}
	started bool
}

// settleState is a repo whose refs moved to revisions a download may
// still be writing: by-ref shows them where they were until the repo has
// been quiet for settleQuiet with no download writing a blob (or the
// revisions' trees/<commit>.json says they are complete).
type settleState struct {
	fp    uint64            // the repo's fingerprint when last seen changing
	since time.Time         // when it was last seen changing
	held  map[string]string // ref -> commit shown instead ("" hides the ref)
}

type heldView struct {
	scanned *cachecore.RepoInfo
	shown   *cachecore.RepoInfo
}

// settleQuiet is how long a repo whose refs moved must stay unchanged
// before by-ref follows: longer than the pause between two files of one
// download, short enough that a finished download shows within 2 s.
const settleQuiet = time.Second

// settleCheckEvery is how often settling repos are looked at (the full
// poll may be slower).
const settleCheckEvery = 250 * time.Millisecond

func newScanner(cacheDir string, inos *views.InoTable, viewOpts views.Options, logf func(string, ...any)) *scanner {
	return &scanner{
		cacheDir: cacheDir, inos: inos, viewOpts: viewOpts, mountTime: time.Now(), logf: logf,
		urgent: make(chan string, 64), full: make(chan struct{}),
		scans: map[string]cachecore.EntryScan{}, fingerprint: map[string]entryPrint{}, pending: map[string]chan struct{}{},
		shown: map[string]map[string]string{}, settling: map[string]*settleState{}, heldViews: map[string]heldView{},
		dropped: map[string]string{}, stale: map[string]*staleFlight{},
	}
}

// openRoot opens the cache dir's handle, gives it to the state and
// remembers which folder it is, so the refresher notices the cache dir
// renamed or deleted.
func (s *scanner) openRoot() error {
	h, err := safefs.OpenRoot(s.cacheDir)
	if err != nil {
		return err
	}
	st, err := h.Fstat()
	if err != nil {
		h.Close()
		return err
	}
	s.workMu.Lock()
	s.rootID = [2]uint64{st.Dev, st.Ino}
	s.workMu.Unlock()
	s.state.SetRoot(h)
	return nil
}

// skeleton is the model before any repo has been scanned: repos known
// by their folder names only, so the mount is ready at once.
func (s *scanner) skeleton() (*views.Model, error) {
	names, err := cachecore.ListEntries(s.cacheDir)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = names
	var repos []*cachecore.RepoInfo
	for _, name := range names {
		if repo := placeholder(s.cacheDir, name); repo != nil {
			repos = append(repos, repo)
			s.pending[name] = make(chan struct{})
		}
	}
	info := &cachecore.CacheInfo{CacheDir: s.cacheDir, Repos: repos}
	sort.Slice(info.Repos, func(i, j int) bool { return info.Repos[i].RepoPath < info.Repos[j].RepoPath })
	s.gen++
	return views.Build(s.gen, info, s.inos, s.viewOpts, s.mountTime), nil
}

// placeholder parses a folder name the way the scan does, without
// touching the disk.
func placeholder(cacheDir, name string) *cachecore.RepoInfo {
	typ, id, problem := cachecore.ParseRepoFolderName(name)
	if problem != cachecore.FolderOK {
		return nil
	}
	return &cachecore.RepoInfo{RepoID: id, RepoType: typ, RepoPath: cacheDir + "/" + name}
}

// waitRepo blocks until a folder's scan is in the current model.
func (s *scanner) waitRepo(ctx context.Context, folder string) bool {
	s.mu.Lock()
	ch, ok := s.pending[folder]
	s.mu.Unlock()
	if !ok {
		return true
	}
	select {
	case s.urgent <- folder:
	default:
	}
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// isPending reports whether a folder's scan is not in the model yet.
func (s *scanner) isPending(folder string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pending[folder]
	return ok
}

func (s *scanner) waitFull(ctx context.Context) bool {
	select {
	case <-s.full:
		return true
	case <-ctx.Done():
		return false
	}
}

// initial scans every entry, publishing a model whenever a waited-for
// repo is in and every 200ms meanwhile, then the full model.
func (s *scanner) initial(workers int) {
	s.mu.Lock()
	names := append([]string(nil), s.names...)
	s.mu.Unlock()
	todo := make(chan string, len(names))
	for _, n := range names {
		todo <- n
	}
	close(todo)
	claimed := sync.Map{}
	var wg sync.WaitGroup
	scanOne := func(name string) bool {
		if _, loaded := claimed.LoadOrStore(name, true); loaded {
			return false
		}
		fp := printEntry(s.cacheDir, name) // before: a change during the scan shows next time
		res := cachecore.ScanEntry(s.cacheDir, name)
		s.mu.Lock()
		s.scans[name], s.fingerprint[name], s.changed = res, fp, true
		s.mu.Unlock()
		return true
	}
	publishNow := make(chan struct{}, 1)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case name := <-s.urgent:
					scanOne(name)
					select {
					case publishNow <- struct{}{}:
					default:
					}
					continue
				default:
				}
				name, ok := <-todo
				if !ok {
					return
				}
				scanOne(name)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			// Waiters go before the kernel hears of it: a READDIR waiting
			// for the full scan holds its folder's lock, which a
			// notification about that folder waits for.
			prev, next := s.publishStore()
			close(s.full)
			s.state.InvalidateLater(prev, next)
			// Lookups still waiting now have their answer (or ENOENT).
			go s.serveLateUrgent()
			return
		case <-publishNow:
			s.publish()
		case <-tick.C:
			s.publish()
		}
	}
}

// serveLateUrgent drains requests that raced with the end of the scan.
func (s *scanner) serveLateUrgent() {
	for range s.urgent {
	}
}

// publish builds a model of what has been scanned (placeholders for the
// rest), swaps it in, releases the lookups waiting for those repos, and
// only then has kernel caches invalidated (by the state's own goroutine).
func (s *scanner) publish() {
	s.state.InvalidateLater(s.publishStore())
}

// publishStore builds and stores a model of the scans, releasing the
// lookups waiting for them; it returns the models before and after (nil
// when nothing changed) and sends no kernel notification.
func (s *scanner) publishStore() (prev, next *views.Model) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	s.mu.Lock()
	if !s.changed {
		s.mu.Unlock()
		return nil, nil
	}
	s.changed = false
	var entries []cachecore.EntryScan
	var placeholders []*cachecore.RepoInfo
	var ready []string // folders whose scan this model brings
	for _, name := range s.names {
		if res, ok := s.scans[name]; ok {
			if repo := res.Repo(); repo != nil {
				if st := s.settling[name]; st != nil {
					res = res.WithRepo(s.heldRepo(name, repo, st.held))
				}
				s.shown[name] = refsOf(res.Repo())
			} else {
				delete(s.shown, name)
			}
			entries = append(entries, res)
			if _, ok := s.pending[name]; ok {
				ready = append(ready, name)
			}
		} else if p := placeholder(s.cacheDir, name); p != nil {
			placeholders = append(placeholders, p)
		}
	}
	s.gen++
	gen := s.gen
	missing := s.missing
	var leftOut []views.LeftOut
	for name, why := range s.dropped {
		leftOut = append(leftOut, views.LeftOut{Path: s.cacheDir + "/" + name, Reason: why})
	}
	s.mu.Unlock()
	sort.Slice(leftOut, func(i, j int) bool { return leftOut[i].Path < leftOut[j].Path })

	info := cachecore.Assemble(s.cacheDir, entries)
	if len(placeholders) > 0 {
		info.Repos = append(info.Repos, placeholders...)
		sort.Slice(info.Repos, func(i, j int) bool { return info.Repos[i].RepoPath < info.Repos[j].RepoPath })
	}
	next = views.Build(gen, info, s.inos, s.viewOpts, s.mountTime)
	next.LeftOut, next.CacheMissing = leftOut, missing
	prev = s.state.Store(next)
	// Only now: a waiter released earlier would see the placeholder.
	s.mu.Lock()
	for _, name := range ready {
		if ch, ok := s.pending[name]; ok {
			close(ch)
			delete(s.pending, name)
		}
	}
	s.mu.Unlock()
	return prev, next
}

// rescanNow rescans one top-level entry at once (after a deletion or a
// restore through .trash) and stores the new model; the caller tells the
// kernel, once its request is answered.
func (s *scanner) rescanNow(name string) (prev, next *views.Model) {
	s.workMu.Lock()
	defer s.workMu.Unlock()
	return s.rescanLocked(name, false)
}

// planScan makes sure the model's scan of a repo is fresh before a
// deletion is planned from it: the current model if the repo's
// fingerprint is what it was when it was scanned (the refresher's own
// test: a stat per ref file and folder, no listing), else a rescan's
// (nil models: the current one stands). A 40,000-file repo rescans in
// about 0.4 s, which a mv into .trash would otherwise wait for.
func (s *scanner) planScan(name string) (prev, next *views.Model) {
	s.workMu.Lock()
	defer s.workMu.Unlock()
	s.mu.Lock()
	fp, had := s.fingerprint[name]
	_, pending := s.pending[name]
	_, settling := s.settling[name]
	kept := wasKept(s.kept, name)
	s.mu.Unlock()
	if had && !pending && !settling && !kept && fp.paths != nil && fp.recheck() {
		return nil, nil
	}
	return s.rescanLocked(name, false)
}

// rescanStale is the state's rescan hook: an open found a repo's blob
// not to be what the scan saw (a re-download replaced it, a folder was
// swapped). It rescans the repo and stores the new model before it
// returns (the caller, a FUSE request, then opens what the new scan saw);
// the kernel hears of it from another goroutine. Opens arriving while a
// rescan of the folder waits to start share it.
func (s *scanner) rescanStale(folder string) {
	s.rmu.Lock()
	if f := s.stale[folder]; f != nil && !f.started {
		s.rmu.Unlock()
		<-f.done
		return
	}
	f := &staleFlight{done: make(chan struct{})}
	s.stale[folder] = f
	s.rmu.Unlock()

	s.workMu.Lock()
	s.rmu.Lock()
	f.started = true // from now on, a newcomer needs a scan of its own
	s.rmu.Unlock()
	prev, next := s.rescanLocked(folder, true)
	s.workMu.Unlock()
	s.rmu.Lock()
	if s.stale[folder] == f {
		delete(s.stale, folder)
	}
	s.rmu.Unlock()
	close(f.done)
	s.state.InvalidateLater(prev, next)
}

// rescanLocked rescans one entry (workMu held). For a stale open
// (stale), a repo that was fine and now scans corrupted keeps its last
// good view if that still resolves, as the refresher does, and a moved
// ref stays settling; after a .trash change neither: what it did shows.
func (s *scanner) rescanLocked(name string, stale bool) (prev, next *views.Model) {
	fp := printEntry(s.cacheDir, name)
	_, statErr := os.Lstat(s.cacheDir + "/" + name)
	res := cachecore.ScanEntry(s.cacheDir, name)
	keep := false
	if stale && res.Repo() == nil && statErr == nil && isDir(s.cacheDir+"/"+name) {
		s.mu.Lock()
		old := s.scans[name]
		s.mu.Unlock()
		if old.Repo() != nil {
			if why := s.keptViewBroken(old.Repo()); why == "" {
				res, keep, fp = res.WithRepo(old.Repo()), true, entryPrint{}
			} else {
				s.drop(name, why)
			}
		}
	}
	s.mu.Lock()
	switch {
	case keep && !wasKept(s.kept, name):
		s.kept = append(s.kept, name)
	case !keep && wasKept(s.kept, name):
		s.kept = removeName(s.kept, name) // the scan stands on its own now
	}
	if res.Repo() != nil && !keep || statErr != nil {
		delete(s.dropped, name)
	}
	idx := -1
	for i, n := range s.names {
		if n == name {
			idx = i
		}
	}
	switch {
	case statErr != nil && idx >= 0:
		s.names = append(s.names[:idx:idx], s.names[idx+1:]...)
		delete(s.scans, name)
		delete(s.fingerprint, name)
	case statErr == nil:
		if idx < 0 {
			s.names = append(s.names, name)
		}
		s.scans[name], s.fingerprint[name] = res, fp
	}
	if !stale {
		delete(s.settling, name) // what .trash did shows at once
	}
	s.changed = true
	s.mu.Unlock()
	return s.publishStore()
}

// refresh polls fingerprints until ctx ends.
func (s *scanner) refresh(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	quick := time.NewTicker(settleCheckEvery)
	defer quick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refreshOnce(nil)
		case <-quick.C:
			// Between full polls, only the repos a download is settling.
			if only := s.settlingNames(); len(only) > 0 {
				s.refreshOnce(only)
			}
		}
	}
}

func (s *scanner) settlingNames() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.settling) == 0 {
		return nil
	}
	only := make(map[string]bool, len(s.settling))
	for name := range s.settling {
		only[name] = true
	}
	return only
}

// refreshOnce rescans the entries whose fingerprint changed. A repo that
// was fine and now scans as corrupted (a download wrote its ref before
// its snapshot) keeps its last good view until it is consistent again.
// With only set, just those entries are looked at.
func (s *scanner) refreshOnce(only map[string]bool) {
	// The kernel hears of it only once workMu is free: a .trash rename
	// waits for workMu while the kernel holds its folders' locks, which a
	// notification about those folders waits for.
	s.state.InvalidateLater(s.refreshStore(only))
}

func (s *scanner) refreshStore(only map[string]bool) (prev, next *views.Model) {
	s.workMu.Lock()
	defer s.workMu.Unlock()
	s.mu.Lock()
	oldScans := s.scans
	oldFP := s.fingerprint
	names := s.names
	s.mu.Unlock()
	// The cache dir renamed or deleted: the mount shows no repo until a
	// folder is at its path again, then everything is scanned afresh.
	var root syscall.Stat_t
	rootState := s.checkRoot(&root)
	switch rootState {
	case rootGone:
		return s.publishStore() // the empty model, once
	case rootStillGone:
		return nil, nil
	case rootBack:
		s.mu.Lock()
		oldScans, oldFP, names = s.scans, s.fingerprint, s.names
		s.mu.Unlock()
	}
	// The cache root is listed again only when it changed.
	if rp := [4]int64{root.Mtim.Sec, root.Mtim.Nsec, root.Ctim.Sec, root.Ctim.Nsec}; rp != s.rootPrint {
		var err error
		if names, err = cachecore.ListEntries(s.cacheDir); err != nil {
			s.logf("refresh: %v", err)
			return nil, nil
		}
		s.rootPrint = rp
	}

	scans := make(map[string]cachecore.EntryScan, len(names))
	fps := make(map[string]entryPrint, len(names))
	var kept []string
	changed := len(names) != len(oldScans) || rootState == rootBack
	now := time.Now()
	for _, name := range names {
		old, had := oldScans[name]
		if only != nil && !only[name] && had {
			scans[name], fps[name] = old, oldFP[name]
			if wasKept(s.kept, name) {
				kept = append(kept, name)
			}
			continue
		}
		// Cheap first: the paths the last walk of the entry stat'ed.
		if op, ok := oldFP[name]; had && ok && op.paths != nil && op.recheck() {
			fps[name] = op
			scans[name] = old
			if wasKept(s.kept, name) {
				kept = append(kept, name)
			} else if s.settle(name, old.Repo(), op.fp, now) {
				changed = true
			}
			continue
		}
		fp := printEntry(s.cacheDir, name)
		fps[name] = fp
		if had && oldFP[name].fp == fp.fp {
			scans[name] = old
			if wasKept(s.kept, name) {
				kept = append(kept, name)
			} else if s.settle(name, old.Repo(), fp.fp, now) {
				changed = true
			}
			continue
		}
		changed = true
		res := cachecore.ScanEntry(s.cacheDir, name)
		if res.Repo() == nil && had && old.Repo() != nil && isDir(s.cacheDir+"/"+name) {
			// Kept only while every folder its blobs are in still
			// resolves as scanned, beneath the repo or the cache dir.
			if why := s.keptViewBroken(old.Repo()); why == "" {
				res = res.WithRepo(old.Repo())
				kept = append(kept, name)
				fps[name] = entryPrint{} // look again next time
			} else {
				s.drop(name, why)
				s.settle(name, nil, fp.fp, now)
			}
		} else {
			s.settle(name, res.Repo(), fp.fp, now)
			if res.Repo() != nil {
				s.undrop(name)
			}
		}
		scans[name] = res
	}
	s.mu.Lock()
	for name := range s.settling {
		if _, ok := scans[name]; !ok {
			delete(s.settling, name) // the repo is gone
		}
	}
	for name := range s.dropped {
		if _, ok := scans[name]; !ok {
			delete(s.dropped, name)
			changed = true
		}
	}
	s.mu.Unlock()
	if !changed {
		return nil, nil
	}
	s.mu.Lock()
	s.names, s.scans, s.fingerprint, s.kept, s.changed = names, scans, fps, kept, true
	s.mu.Unlock()
	return s.publishStore()
}

// What checkRoot found.
const (
	rootSame      = iota // the folder the handle holds
	rootGone             // missing since this poll: its empty model is to be published
	rootStillGone        // missing, and already shown so
	rootBack             // a folder is at the path again (or another one): reopened, to be scanned afresh
)

// checkRoot compares the folder at the cache dir's path with the one the
// state's handle holds (workMu held). When a folder is at the path again,
// or another one, the handle is reopened and the scans forgotten (every
// entry is scanned afresh). root is the path's stat.
func (s *scanner) checkRoot(root *syscall.Stat_t) int {
	err := syscall.Stat(s.cacheDir, root)
	if err == nil && root.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		err = syscall.ENOTDIR
	}
	if err == nil && [2]uint64{root.Dev, root.Ino} == s.rootID {
		return rootSame
	}
	var h *safefs.Handle
	if err == nil {
		if h, err = safefs.OpenRoot(s.cacheDir); err == nil {
			var st unix.Stat_t
			if st, err = h.Fstat(); err == nil {
				*root = syscall.Stat_t{}
				err = syscall.Stat(s.cacheDir, root)
				if err == nil && (root.Dev != st.Dev || root.Ino != st.Ino) {
					err = syscall.EAGAIN // changed again meanwhile: next poll
				}
			}
			if err != nil {
				h.Close()
				h = nil
			}
		}
	}
	s.mu.Lock()
	wasMissing := s.missing != ""
	if h == nil && wasMissing {
		s.mu.Unlock()
		return rootStillGone
	}
	s.names, s.scans, s.fingerprint, s.kept = nil, map[string]cachecore.EntryScan{}, map[string]entryPrint{}, nil
	s.settling, s.dropped, s.heldViews = map[string]*settleState{}, map[string]string{}, map[string]heldView{}
	s.rootPrint = [4]int64{}
	s.changed = true
	if h == nil {
		s.missing = fmt.Sprintf("the cache directory %s is gone (%v) since %s: no repo is shown until a folder is at that path again",
			s.cacheDir, err, time.Now().Format(time.RFC3339))
	} else {
		s.missing = ""
	}
	s.mu.Unlock()
	if h == nil {
		s.rootID = [2]uint64{}
		s.state.SetRoot(nil) // every open is ENOENT from now on
		s.logf("refresh: %s: the cache directory is gone (%v): showing no repo until it is back", s.cacheDir, err)
		return rootGone
	}
	st, _ := h.Fstat()
	s.rootID = [2]uint64{st.Dev, st.Ino}
	s.state.SetRoot(h)
	s.logf("refresh: %s: a cache directory is at the path again: scanning it afresh", s.cacheDir)
	return rootBack
}

// keptViewBroken says why a repo's last good view can no longer be kept
// ("" if it can): a folder its blobs are in no longer resolves beneath
// the repo folder or the cache dir as scanned (a symlink swapped in, a
// folder replaced or gone).
func (s *scanner) keptViewBroken(repo *cachecore.RepoInfo) string {
	err := s.state.WithRoot(func(root *safefs.Handle) error { return cachecore.CheckAnchor(root, repo) })
	if err == nil {
		return ""
	}
	what := "a folder of its blobs is not the one scanned"
	if errors.Is(err, cachecore.ErrOutsideCache) {
		what = "a folder of its blobs no longer resolves beneath the repo folder or the cache dir (a symlink on the way)"
	}
	return fmt.Sprintf("its last good view (kept while it is inconsistent) is dropped: %s (%v)", what, err)
}

// drop records why a repo's kept view was dropped (.status.json left_out).
func (s *scanner) drop(name, why string) {
	s.mu.Lock()
	s.dropped[name] = why
	s.mu.Unlock()
	s.logf("refresh: %s: %s", name, why)
}

func (s *scanner) undrop(name string) {
	s.mu.Lock()
	delete(s.dropped, name)
	s.mu.Unlock()
}

func removeName(list []string, name string) []string {
	out := list[:0:0]
	for _, n := range list {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}

// settle decides what by-ref shows of a repo whose refs moved since the
// last model (a download wrote refs/<ref> before, or while, it wrote the
// snapshot): the refs stay where they were, or stay hidden if they are
// new, until the repo has settled. It reports whether that changed.
func (s *scanner) settle(name string, repo *cachecore.RepoInfo, fp uint64, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.settling[name]
	if repo == nil {
		delete(s.settling, name)
		return st != nil
	}
	shown := s.shown[name]
	held := map[string]string{}
	var moved []*cachecore.RevisionInfo
	for _, rev := range repo.Revisions {
		for _, ref := range rev.Refs {
			was, ok := shown[ref]
			if ok && was == rev.CommitHash {
				continue
			}
			if !ok || repo.Revision(was) == nil {
				was = ""
			}
			held[ref] = was
			moved = append(moved, rev)
		}
	}
	if len(held) == 0 {
		delete(s.settling, name) // the refs are back where they are shown, or gone
		return st != nil
	}
	settled := treesComplete(repo, moved) ||
		st != nil && st.fp == fp && now.Sub(st.since) >= settleQuiet && !downloading(repo.RepoPath, now)
	switch {
	case settled:
		delete(s.settling, name)
		return st != nil
	case st == nil || st.fp != fp:
		s.settling[name] = &settleState{fp: fp, since: now, held: held}
		return st == nil || !maps.Equal(st.held, held)
	}
	return false
}

// treesComplete reports whether trees/<commit>.json (written by
// snapshot_download before the files) lists no file missing from each
// revision's snapshot.
func treesComplete(repo *cachecore.RepoInfo, revs []*cachecore.RevisionInfo) bool {
	if len(revs) == 0 {
		return false
	}
	for _, rev := range revs {
		// Beneath the repo's handle: a listing swapped for a FIFO or a
		// link out of the cache must not hang or feed the refresher.
		data, err := readTree(repo, rev.CommitHash)
		if err != nil {
			return false
		}
		var tree struct {
			FormatVersion int                        `json:"format_version"`
			Files         map[string]json.RawMessage `json:"files"`
		}
		if json.Unmarshal(data, &tree) != nil || tree.FormatVersion != 1 {
			return false
		}
		have := make(map[string]bool, len(rev.Files))
		for _, f := range rev.Files {
			have[f.RelPath] = true
		}
		for p := range tree.Files {
			if !have[p] {
				return false
			}
		}
	}
	return true
}

// readTree reads trees/<commit>.json of a repo beneath its folder (no
// symlink on the way; at most 64 MiB).
func readTree(repo *cachecore.RepoInfo, commit string) ([]byte, error) {
	root, err := safefs.OpenRoot(filepath.Dir(repo.RepoPath))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rh, err := root.OpenTop(repo.FolderName())
	if err != nil {
		return nil, err
	}
	defer rh.Close()
	return rh.ReadFile("trees/"+commit+".json", 64<<20)
}

// downloading reports whether a blob of the repo is being written: an
// .incomplete file touched in the last 30 seconds.
func downloading(repoPath string, now time.Time) bool {
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

// heldRepo is repo with its moved refs shown where they were (a copy,
// reused while neither changes, so unchanged repos stay unchanged).
func (s *scanner) heldRepo(name string, repo *cachecore.RepoInfo, held map[string]string) *cachecore.RepoInfo {
	if hv, ok := s.heldViews[name]; ok && hv.scanned == repo && sameRefs(hv.shown, repo, held) {
		return hv.shown
	}
	out := *repo
	out.Revisions = make([]*cachecore.RevisionInfo, len(repo.Revisions))
	for i, rev := range repo.Revisions {
		r := *rev
		r.Refs = nil
		for _, ref := range rev.Refs {
			if _, isHeld := held[ref]; !isHeld {
				r.Refs = append(r.Refs, ref)
			}
		}
		for ref, commit := range held {
			if commit == rev.CommitHash {
				r.Refs = append(r.Refs, ref)
			}
		}
		sort.Strings(r.Refs)
		out.Revisions[i] = &r
	}
	s.heldViews[name] = heldView{scanned: repo, shown: &out}
	return &out
}

func sameRefs(shown, repo *cachecore.RepoInfo, held map[string]string) bool {
	want := refsOf(repo)
	for ref, commit := range held {
		if commit == "" {
			delete(want, ref)
		} else {
			want[ref] = commit
		}
	}
	return maps.Equal(refsOf(shown), want)
}

// refsOf maps a repo's refs to their commits.
func refsOf(repo *cachecore.RepoInfo) map[string]string {
	out := map[string]string{}
	for _, rev := range repo.Revisions {
		for _, ref := range rev.Refs {
			out[ref] = rev.CommitHash
		}
	}
	return out
}

func wasKept(kept []string, name string) bool {
	for _, k := range kept {
		if k == name {
			return true
		}
	}
	return false
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// settlingRefs describes the refs by-ref shows where they were while a
// download settles.
func (s *scanner) settlingRefs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, st := range s.settling {
		for ref, commit := range st.held {
			shows := "hidden"
			if commit != "" {
				shows = "still " + commit
			}
			out = append(out, fmt.Sprintf("%s/refs/%s: %s until the download settles", name, ref, shows))
		}
	}
	sort.Strings(out)
	return out
}

// keptRepos lists repo folders shown as last seen.
func (s *scanner) keptRepos() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.kept...)
}

// entryPrint is a top-level entry's fingerprint and the paths it covers.
type entryPrint struct {
	fp    uint64
	paths []string // in the order they were hashed
}

// recheck reports whether the same paths still hash to the same value: a
// stat each, no listing (a new file or folder changes its folder's mtime).
func (p entryPrint) recheck() bool {
	h := newPrintHash()
	var st syscall.Stat_t
	for _, path := range p.paths {
		if syscall.Stat(path, &st) != nil {
			return false
		}
		h.add(path, &st)
	}
	return h.Sum64() == p.fp
}

type printHash struct {
	hash.Hash64
	buf [8 * 5]byte
}

func newPrintHash() *printHash { return &printHash{Hash64: fnv.New64a()} }

func (h *printHash) add(p string, st *syscall.Stat_t) {
	_, _ = io.WriteString(h, p)
	for i, v := range [5]uint64{uint64(st.Mtim.Sec), uint64(st.Mtim.Nsec), uint64(st.Size), st.Ino, uint64(st.Ctim.Nsec)} {
		for j := 0; j < 8; j++ {
			h.buf[i*8+j] = byte(v >> (8 * j))
		}
	}
	_, _ = h.Write(h.buf[:])
}

// printEntry hashes what a download or a deletion changes in a top-level
// entry: the stat of the entry, of every file and folder under refs/, of
// every folder under snapshots/, of blobs/ and .no_exist/. Files under
// snapshots/ are not stat'ed: adding or removing one changes its folder's
// mtime.
func printEntry(cacheDir, name string) entryPrint {
	h := newPrintHash()
	var paths []string
	add := func(p string, st *syscall.Stat_t) {
		h.add(p, st)
		paths = append(paths, p)
	}
	path := cacheDir + "/" + name
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return entryPrint{}
	}
	add(path, &st)
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		for _, sub := range []string{"/blobs", "/.no_exist"} {
			if syscall.Stat(path+sub, &st) == nil {
				add(path+sub, &st)
			}
		}
		walkStat(path+"/refs", true, add)
		walkStat(path+"/snapshots", false, add)
	}
	return entryPrint{fp: h.Sum64(), paths: paths}
}

// walkStat stats a folder and its sub-folders (and its files too when
// files is set), following symlinks as the scan does.
func walkStat(dir string, files bool, add func(string, *syscall.Stat_t)) {
	var st syscall.Stat_t
	if syscall.Stat(dir, &st) != nil {
		return
	}
	add(dir, &st)
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	entries, _ := f.ReadDir(-1)
	f.Close()
	for _, e := range entries {
		p := dir + "/" + e.Name()
		switch {
		case e.IsDir():
			walkStat(p, files, add)
		case files:
			if syscall.Stat(p, &st) == nil {
				add(p, &st)
			}
		}
	}
}
