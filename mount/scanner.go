package mount

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"sort"
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
// in parallel (a repo someone is waiting for goes first), then the
// refresher (refresh.go), which rescans only the entries that changed.
// This file schedules the scans and publishes models; what a change is
// lives in cachecore (change.go, fingerprint.go).
type scanner struct {
	cacheDir  string
	state     *hffs.State
	inos      *views.InoTable
	viewOpts  views.Options
	mountTime time.Time
	logf      func(format string, args ...any)
	cfg       refreshConfig

	urgent chan string   // folders a lookup waits for
	full   chan struct{} // closed once the first full scan is in
	wake   chan struct{} // the refresher has work (buffered: one wake-up pending at most)
	pubMu  sync.Mutex    // serializes model builds, so generations stay in order
	// workMu serializes refreshes and .trash rescans: each reads the scans,
	// works, and writes them back.
	workMu sync.Mutex
	rootID [2]uint64 // dev, ino of the cache dir the state's handle holds (guarded by workMu)
	w      *watcher  // nil: nothing is watched (poll mode)

	rmu   sync.Mutex              // protects stale
	stale map[string]*staleFlight // folder -> the rescan for opens that found a blob replaced

	refMu      sync.Mutex // protects the following
	refChecked map[string]time.Time
	refFlights map[string]chan struct{}

	mu          sync.Mutex // protects the following
	names       []string   // top-level entries in directory order
	scans       map[string]cachecore.EntryScan
	fullPrint   map[string]uint64        // folder -> FullFingerprint taken before its scan
	pollPrint   map[string]uint64        // folder -> PollFingerprint (polled repos)
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
	work        work                         // what the refresher is to do next
	lastChange  map[string]time.Time         // folder -> when a change of it was last seen
	polled      map[string]bool              // folders polled rather than watched
	info        views.RefreshInfo            // what .status.json says of change detection
	unreachable *views.Unreachable           // set while the cache dir cannot be read
	backoff     time.Duration                // the wait before the next try while unreachable
	scanDone    *time.Time
}

// staleFlight is one rescan of a repo for opens that found its blob
// replaced; callers arriving before it starts share it.
type staleFlight struct {
	done    chan struct{}
	started bool
}

// settleState is a repo whose refs moved to revisions a download may
// still be writing (cachecore.Settle): by-ref shows them where they were.
type settleState struct {
	held map[string]string // ref -> commit shown instead ("" hides the ref)
}

type heldView struct {
	scanned *cachecore.RepoInfo
	shown   *cachecore.RepoInfo
}

// settleCheckEvery is how often settling repos are looked at again.
const settleCheckEvery = 250 * time.Millisecond

func newScanner(cacheDir string, inos *views.InoTable, viewOpts views.Options, cfg refreshConfig, logf func(string, ...any)) *scanner {
	return &scanner{
		cacheDir: cacheDir, inos: inos, viewOpts: viewOpts, mountTime: time.Now(), logf: logf, cfg: cfg,
		urgent: make(chan string, 64), full: make(chan struct{}), wake: make(chan struct{}, 1),
		scans: map[string]cachecore.EntryScan{}, fullPrint: map[string]uint64{}, pollPrint: map[string]uint64{},
		pending: map[string]chan struct{}{}, shown: map[string]map[string]string{}, settling: map[string]*settleState{},
		heldViews: map[string]heldView{}, dropped: map[string]string{}, stale: map[string]*staleFlight{},
		lastChange: map[string]time.Time{}, polled: map[string]bool{},
		refChecked: map[string]time.Time{}, refFlights: map[string]chan struct{}{},
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
		fp, _ := cachecore.FullFingerprint(s.cacheDir, name) // before: a change during the scan shows next time
		res := cachecore.ScanEntry(s.cacheDir, name)
		s.mu.Lock()
		s.scans[name], s.fullPrint[name], s.changed = res, fp, true
		s.mu.Unlock()
		s.afterScan(name, res, fp)
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
			s.mu.Lock()
			now := time.Now()
			s.scanDone = &now
			s.mu.Unlock()
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
	fp, had := s.fullPrint[name]
	_, pending := s.pending[name]
	_, settling := s.settling[name]
	kept := wasKept(s.kept, name)
	s.mu.Unlock()
	if had && !pending && !settling && !kept {
		if now, ok := cachecore.FullFingerprint(s.cacheDir, name); ok && now == fp {
			return nil, nil
		}
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
	fp, _ := cachecore.FullFingerprint(s.cacheDir, name)
	_, statErr := os.Lstat(s.cacheDir + "/" + name)
	if cachecore.Unreachable(statErr) && !errors.Is(statErr, os.ErrPermission) {
		// Not an answer (a file server down): the last good view stands.
		s.markUnreachable(statErr)
		return nil, nil
	}
	res := cachecore.ScanEntry(s.cacheDir, name)
	keep := false
	if stale && res.Repo() == nil && statErr == nil && isDir(s.cacheDir+"/"+name) {
		s.mu.Lock()
		old := s.scans[name]
		s.mu.Unlock()
		if old.Repo() != nil {
			if why := s.keptViewBroken(old.Repo()); why == "" {
				res, keep, fp = res.WithRepo(old.Repo()), true, 0
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
		delete(s.fullPrint, name)
		delete(s.pollPrint, name)
	case statErr == nil:
		if idx < 0 {
			s.names = append(s.names, name)
		}
		s.scans[name], s.fullPrint[name] = res, fp
	}
	if !stale {
		delete(s.settling, name) // what .trash did shows at once
	}
	s.changed = true
	s.mu.Unlock()
	if statErr == nil {
		s.afterScan(name, res, fp)
	}
	return s.publishStore()
}

// What checkRoot found.
const (
	rootSame        = iota // the folder the handle holds
	rootGone               // missing since this poll: its empty model is to be published
	rootStillGone          // missing, and already shown so
	rootBack               // a folder is at the path again (or another one): reopened, to be scanned afresh
	rootUnreachable        // the path could not be asked (an error other than "not found"): keep everything
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
	if cachecore.Unreachable(err) {
		// Not an answer (ENOTCONN: a file server down): the cache is
		// unknown, not gone. The last good view stands.
		s.markUnreachable(err)
		return rootUnreachable
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
	s.names, s.scans, s.fullPrint, s.pollPrint, s.kept = nil, map[string]cachecore.EntryScan{}, map[string]uint64{}, map[string]uint64{}, nil
	s.settling, s.dropped, s.heldViews = map[string]*settleState{}, map[string]string{}, map[string]heldView{}
	s.polled, s.lastChange = map[string]bool{}, map[string]time.Time{}
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
