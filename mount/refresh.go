package mount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/safefs"
	"github.com/hfcachefs/hfcachefs/views"
)

// The refresher keeps the model in step with the cache at a cost that
// follows change, not size. On a local file system inotify says which
// repo changed and only that repo is rescanned; nothing runs while
// nothing changes. Where inotify cannot see other machines' writes (NFS,
// CephFS, Lustre, GlusterFS and other FUSE clients...) a poll pass stats a
// handful of paths per repo (cachecore.PollPaths) every --poll-interval,
// and a lookup under by-ref/ re-reads that repo's refs when its last
// check is older than --ref-ttl, so a ref path stays fresh between passes.

// Watch modes (--watch).
const (
	WatchAuto   = "auto"
	WatchEvents = "events"
	WatchPoll   = "poll"
)

// refreshConfig is how the refresher learns of changes.
type refreshConfig struct {
	watch        string
	pollInterval time.Duration
	refTTL       time.Duration
}

// work is what the refresher is asked to do next.
type work struct {
	folders map[string]bool // rescan these (an event named them, a lookup or refresh asked)
	relist  bool            // list the cache dir again
	all     bool            // check every repo's full fingerprint (events lost, a refresh of all)
	poll    bool            // a poll pass over the polled repos
	root    bool            // look at the cache dir itself (it may be gone)
}

func (w *work) empty() bool {
	return len(w.folders) == 0 && !w.relist && !w.all && !w.poll && !w.root
}

// eventDebounce gathers a burst of events (a download writes a blob, a
// ref and a link within milliseconds) into one rescan.
const eventDebounce = 20 * time.Millisecond

// maxBackoff bounds the wait between two tries while the cache is
// unreachable.
const maxBackoff = 30 * time.Second

// relistEvery: a poll pass lists the cache dir again at least this often
// even when its mtime says nothing changed (a file server's cached
// attributes may lag behind).
const relistEvery = 10

// ask queues work and wakes the refresher.
func (s *scanner) ask(f func(w *work)) {
	s.mu.Lock()
	f(&s.work)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// kick wakes the refresher so it recomputes its next deadline (a repo
// that began settling outside its loop needs its 250 ms looks).
func (s *scanner) kick() {
	s.mu.Lock()
	settling := len(s.settling) > 0
	s.mu.Unlock()
	if settling {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// onChange is the watcher's report of a changed path.
func (s *scanner) onChange(c cachecore.Change) {
	now := time.Now()
	s.mu.Lock()
	s.info.Events++
	if c.Folder != "" {
		s.lastChange[c.Folder] = now
	}
	s.mu.Unlock()
	s.ask(func(w *work) {
		if c.Kind == cachecore.ChangeRoot {
			w.relist = true
		}
		if c.Folder != "" {
			if w.folders == nil {
				w.folders = map[string]bool{}
			}
			w.folders[c.Folder] = true
		}
	})
}

func (s *scanner) onOverflow() {
	s.mu.Lock()
	s.info.Overflows++
	s.mu.Unlock()
	s.logf("refresh: the inotify queue overflowed: checking every repo once")
	s.ask(func(w *work) { w.relist, w.all = true, true })
}

func (s *scanner) onRootGone() { s.ask(func(w *work) { w.root, w.relist = true, true }) }

// startWatching chooses the mode and, for events, watches the cache dir.
func (s *scanner) startWatching() {
	kind, err := statfsKind(s.cacheDir)
	s.mu.Lock()
	s.info.PollInterval, s.info.RefTTL = s.cfg.pollInterval.String(), s.cfg.refTTL.String()
	s.info.WatchLimit = watchLimit()
	s.info.FSType = kind.Name
	s.mu.Unlock()
	mode, reason := s.cfg.watch, ""
	switch {
	case err != nil:
		mode, reason = WatchPoll, fmt.Sprintf("statfs of the cache dir failed (%v): polling", err)
		s.info.FSType = "unknown"
	case mode == WatchPoll:
		reason = "--watch poll"
	case mode == WatchEvents:
		reason = "--watch events"
		if kind.Shared {
			reason += fmt.Sprintf(" (the cache is on %s: other machines' writes are not seen)", kind.Name)
		}
	case kind.Shared:
		mode, reason = WatchPoll, fmt.Sprintf("the cache is on %s, which other machines may write: inotify does not see their writes, so the cache is polled", kind.Name)
	default:
		mode, reason = WatchEvents, fmt.Sprintf("the cache is on %s: inotify sees every change", kind.Name)
	}
	if mode == WatchEvents {
		w, werr := newWatcher(s.onChange, s.onOverflow, s.onRootGone)
		if werr == nil {
			werr = s.state.WithRoot(func(root *safefs.Handle) error {
				if root == nil {
					return syscall.ENOENT
				}
				return w.watchRoot(root)
			})
		}
		if werr != nil {
			if w != nil {
				w.close()
			}
			mode, reason = WatchPoll, fmt.Sprintf("inotify failed (%v): polling", werr)
		} else {
			s.w = w
			go w.run()
		}
	}
	s.mu.Lock()
	s.info.Mode, s.info.Reason = mode, reason
	s.mu.Unlock()
	s.logf("refresh: %s: %s", mode, reason)
}

// polling reports whether folder is polled (in poll mode every repo is).
func (s *scanner) polling(folder string) bool {
	if s.w == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polled[folder]
}

// afterScan brings a freshly scanned repo's watches (or its poll
// fingerprint) in line with the scan. before is the full fingerprint
// taken before the scan: if watches were added and the repo changed
// meanwhile, it is scanned again.
func (s *scanner) afterScan(name string, res cachecore.EntryScan, before uint64) {
	repo := res.Repo()
	linked := repo != nil && repo.Anchor != nil && repo.Anchor.Linked
	if s.w != nil && !linked && !s.isPolled(name) {
		var added bool
		err := s.state.WithRoot(func(root *safefs.Handle) error {
			if root == nil {
				return syscall.ENOENT
			}
			var err error
			added, err = s.w.syncRepo(root, name, cachecore.WatchDirs(repo))
			return err
		})
		switch {
		case errors.Is(err, errWatchLimit):
			s.setPolled(name, fmt.Sprintf("fs.inotify.max_user_watches (%d) is reached: repos it could not cover are polled every %v",
				s.info.WatchLimit, s.cfg.pollInterval))
		case err == nil && added:
			if now, ok := cachecore.FullFingerprint(s.cacheDir, name); ok && now != before {
				s.ask(func(w *work) { addFolder(w, name) })
			}
			return
		case err == nil:
			return
		}
		if err != nil && !errors.Is(err, errWatchLimit) {
			return // gone, or unreadable: the next event or rescan says
		}
	} else if s.w != nil && linked {
		// A repo folder that is a symlink (moved to another disk) is polled:
		// that disk may be a network one.
		s.setPolled(name, "")
	}
	fp, _, ok := cachecore.PollFingerprint(s.cacheDir, name, repo)
	if ok {
		s.mu.Lock()
		s.pollPrint[name] = fp
		s.mu.Unlock()
	}
}

func addFolder(w *work, name string) {
	if w.folders == nil {
		w.folders = map[string]bool{}
	}
	w.folders[name] = true
}

func (s *scanner) isPolled(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polled[name]
}

func (s *scanner) setPolled(name, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.polled[name] && why != "" && s.info.Unwatched == "" {
		s.logf("refresh: %s", why)
	}
	s.polled[name] = true
	if why != "" {
		s.info.Unwatched = why
	}
}

// run is the refresher: it waits for events, the poll timer, a settling
// repo's next look or the next try while the cache is unreachable.
func (s *scanner) run(ctx context.Context) {
	if s.w != nil {
		defer s.w.close()
		// What changed between the first scan and the watches being in
		// place: afterScan compared fingerprints for each repo already;
		// the cache dir's own listing is compared here.
		s.ask(func(w *work) { w.relist = true })
	}
	nextPoll := time.Now().Add(s.cfg.pollInterval)
	passes := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Duration(-1)
		if s.pollsAnything() {
			wait = max(time.Until(nextPoll), 0)
		}
		s.mu.Lock()
		if len(s.settling) > 0 && (wait < 0 || wait > settleCheckEvery) {
			wait = settleCheckEvery
		}
		if u := s.unreachable; u != nil {
			wait = max(time.Until(u.NextRetry), 0)
		}
		if s.missing != "" && (wait < 0 || wait > time.Second) {
			wait = time.Second // one stat a second while the cache dir is gone
		}
		s.mu.Unlock()
		timer.Stop()
		var tick <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			// A burst of events is one rescan.
			select {
			case <-ctx.Done():
				return
			case <-time.After(eventDebounce):
			}
		case <-tick:
		}
		s.mu.Lock()
		if u := s.unreachable; u != nil && time.Now().Before(u.NextRetry) {
			// Backing off: neither the poll nor events ask the file
			// server before the next try (a refresh asks at once).
			s.mu.Unlock()
			continue
		}
		wk := s.work
		s.work = work{}
		if s.missing != "" || s.unreachable != nil {
			wk.root, wk.relist = true, true
		}
		s.mu.Unlock()
		if s.pollsAnything() && !time.Now().Before(nextPoll) {
			wk.poll = true
			passes++
			if passes%relistEvery == 0 {
				wk.relist = true
			}
			nextPoll = time.Now().Add(s.cfg.pollInterval)
		}
		s.state.InvalidateLater(s.refreshStore(wk))
	}
}

// pollsAnything reports whether a poll pass has anything to look at.
func (s *scanner) pollsAnything() bool {
	if s.w == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.polled) > 0
}

// markUnreachable records that the cache could not be asked; the next
// try is later each time, up to maxBackoff.
func (s *scanner) markUnreachable(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.unreachable == nil {
		s.unreachable = &views.Unreachable{Since: now}
		s.backoff = time.Second
		s.logf("refresh: %s cannot be read (%v): keeping the last good view, retrying with backoff", s.cacheDir, err)
	} else {
		s.backoff = min(s.backoff*2, maxBackoff)
	}
	s.unreachable.Error = err.Error()
	s.unreachable.NextRetry = now.Add(s.backoff)
}

// markReachable clears the unreachable state; it reports whether it was
// set (then every repo is checked: changes may have been missed).
func (s *scanner) markReachable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unreachable == nil {
		return false
	}
	s.logf("refresh: %s can be read again (unreachable since %s): checking every repo", s.cacheDir, s.unreachable.Since.Format(time.RFC3339))
	s.unreachable = nil
	return true
}

// refreshStore does one round of work (workMu taken) and stores the new
// model; the caller tells the kernel.
func (s *scanner) refreshStore(wk work) (prev, next *views.Model) {
	s.workMu.Lock()
	defer s.workMu.Unlock()
	var root syscall.Stat_t
	switch s.checkRoot(&root) {
	case rootGone:
		if s.w != nil {
			s.w.forgetAll() // a renamed cache dir's events are not this cache's
		}
		return s.publishStore() // the empty model, once
	case rootStillGone, rootUnreachable:
		return nil, nil
	case rootBack:
		wk.relist, wk.all = true, true
		if s.w != nil {
			s.w.forgetAll()
			if err := s.state.WithRoot(func(root *safefs.Handle) error { return s.w.watchRoot(root) }); err != nil {
				s.logf("refresh: watching %s again: %v", s.cacheDir, err)
			}
		}
	}
	s.mu.Lock()
	names := s.names
	oldScans := s.scans
	s.mu.Unlock()
	if s.markReachable() {
		wk.relist, wk.all = true, true
	}
	if rp := [4]int64{root.Mtim.Sec, root.Mtim.Nsec, root.Ctim.Sec, root.Ctim.Nsec}; wk.relist || rp != s.rootPrint {
		listed, err := cachecore.ListEntries(s.cacheDir)
		if err != nil {
			if cachecore.Unreachable(err) {
				s.markUnreachable(err)
			} else {
				s.logf("refresh: %v", err)
			}
			return nil, nil
		}
		names, s.rootPrint = listed, rp
	}

	var pass *views.PassInfo
	if wk.poll {
		pass = &views.PassInfo{At: time.Now()}
	}
	now := time.Now()
	var toScan []string
	for _, name := range names {
		old, had := oldScans[name]
		switch {
		case !had || wk.folders[name]:
			toScan = append(toScan, name)
		case wk.all:
			s.mu.Lock()
			fp := s.fullPrint[name]
			s.mu.Unlock()
			if cur, ok := cachecore.FullFingerprint(s.cacheDir, name); ok && cur != fp {
				toScan = append(toScan, name)
			}
		case wk.poll && s.polling(name):
			cur, paths, ok := cachecore.PollFingerprint(s.cacheDir, name, old.Repo())
			pass.Paths += paths
			s.mu.Lock()
			was := s.pollPrint[name]
			s.mu.Unlock()
			if ok && cur != was {
				pass.Changed++
				s.mu.Lock()
				s.lastChange[name] = now
				s.mu.Unlock()
				toScan = append(toScan, name)
			}
		}
	}
	if pass != nil {
		pass.Paths++ // the cache dir
		pass.Seconds = time.Since(pass.At).Seconds()
		s.mu.Lock()
		s.info.LastPass = pass
		s.mu.Unlock()
	}

	// The names gone from the listing go; the rest keep their scans.
	s.mu.Lock()
	changed := len(names) != len(s.names) || !slices.Equal(names, s.names)
	scans := make(map[string]cachecore.EntryScan, len(names))
	for _, name := range names {
		if res, ok := s.scans[name]; ok {
			scans[name] = res
		}
	}
	for name := range s.scans {
		if _, ok := scans[name]; !ok {
			delete(s.fullPrint, name)
			delete(s.pollPrint, name)
			delete(s.settling, name)
			delete(s.dropped, name)
			delete(s.lastChange, name)
			delete(s.polled, name)
			s.kept = removeName(s.kept, name)
			if s.w != nil {
				go s.w.forget(name)
			}
		}
	}
	s.names, s.scans = names, scans
	s.mu.Unlock()

	for _, name := range toScan {
		if s.scanOne(name, oldScans[name], now) {
			changed = true
		}
	}
	// Settling repos are looked at again: a quiet repo's refs follow.
	s.mu.Lock()
	var settlingNames []string
	for name := range s.settling {
		settlingNames = append(settlingNames, name)
	}
	s.mu.Unlock()
	sort.Strings(settlingNames)
	for _, name := range settlingNames {
		s.mu.Lock()
		res := s.scans[name]
		s.mu.Unlock()
		if s.settle(name, res.Repo(), now) {
			changed = true
		}
	}
	if !changed {
		return nil, nil
	}
	s.mu.Lock()
	s.changed = true
	s.mu.Unlock()
	return s.publishStore()
}

// scanOne rescans one entry (workMu held) and records the result: a repo
// that was fine and now scans corrupted keeps its last good view while
// every folder its blobs are in still resolves as scanned; a repo that
// cannot be asked (a file server down) keeps it too. It reports whether
// the model changes.
func (s *scanner) scanOne(name string, old cachecore.EntryScan, now time.Time) bool {
	fp, ok := cachecore.FullFingerprint(s.cacheDir, name)
	if !ok {
		s.markUnreachable(fmt.Errorf("%s/%s: %w", s.cacheDir, name, syscall.EIO))
		return false
	}
	res := cachecore.ScanEntry(s.cacheDir, name)
	s.mu.Lock()
	s.info.Rescans++
	s.mu.Unlock()
	kept := false
	if res.Repo() == nil && old.Repo() != nil {
		if _, err := os.Stat(s.cacheDir); cachecore.Unreachable(err) {
			s.markUnreachable(err)
			return false
		}
		if isDir(s.cacheDir + "/" + name) {
			if why := s.keptViewBroken(old.Repo()); why == "" {
				res, kept, fp = res.WithRepo(old.Repo()), true, 0
			} else {
				s.drop(name, why)
			}
		}
	}
	if res.Repo() != nil && !kept {
		s.undrop(name)
	}
	s.mu.Lock()
	s.scans[name], s.fullPrint[name] = res, fp
	switch {
	case kept && !wasKept(s.kept, name):
		s.kept = append(s.kept, name)
	case !kept && wasKept(s.kept, name):
		s.kept = removeName(s.kept, name)
	}
	s.mu.Unlock()
	if !kept {
		s.settle(name, res.Repo(), now)
	}
	s.afterScan(name, res, fp)
	return true
}

// settle applies cachecore.Settle to a repo: refs that moved to a revision
// whose snapshot is not complete yet stay where by-ref showed them. It
// reports whether what by-ref shows changed.
func (s *scanner) settle(name string, repo *cachecore.RepoInfo, now time.Time) bool {
	s.mu.Lock()
	st := s.settling[name]
	shown := s.shown[name]
	quiet := now.Sub(s.lastChange[name])
	s.mu.Unlock()
	if repo == nil {
		s.mu.Lock()
		delete(s.settling, name)
		s.mu.Unlock()
		return st != nil
	}
	in := cachecore.SettleInput{
		Shown: shown, Repo: repo, Quiet: quiet,
		Listing: func(commit string) ([]string, bool) { return cachecore.TreeListing(repo, commit) },
	}
	if quiet >= cachecore.SettleQuiet {
		in.Downloading = cachecore.Downloading(repo.RepoPath, now)
	}
	held := cachecore.Settle(in)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(held) == 0 {
		delete(s.settling, name)
		return st != nil
	}
	s.settling[name] = &settleState{held: held}
	return st == nil || !maps.Equal(st.held, held)
}

// RefLookup is the by-ref freshness check (hffs.Controller): where the
// repo is polled, its refs are read again (a read, not a stat: an NFS
// client revalidates on open) when the last check is older than the ref
// TTL, and the repo is rescanned at once if one moved. Lookups of one
// repo arriving meanwhile wait for the same check.
func (s *scanner) RefLookup(ctx context.Context, folder string) {
	if s.cfg.refTTL <= 0 || !s.polling(folder) || s.isPending(folder) {
		return
	}
	s.refMu.Lock()
	if ch := s.refFlights[folder]; ch != nil {
		s.refMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	if time.Since(s.refChecked[folder]) < s.cfg.refTTL {
		s.refMu.Unlock()
		return
	}
	ch := make(chan struct{})
	s.refFlights[folder] = ch
	s.refMu.Unlock()
	defer func() {
		s.refMu.Lock()
		s.refChecked[folder] = time.Now()
		delete(s.refFlights, folder)
		s.refMu.Unlock()
		close(ch)
	}()
	s.mu.Lock()
	repo := s.scans[folder].Repo()
	s.mu.Unlock()
	if repo == nil || s.refsCurrent(folder, repo) {
		return
	}
	s.mu.Lock()
	s.lastChange[folder] = time.Now()
	s.mu.Unlock()
	// Stored before the lookup goes on; the kernel hears of it later (a
	// FUSE request must not wait for a notification).
	s.state.InvalidateLater(s.refreshStore(work{folders: map[string]bool{folder: true}}))
	s.kick()
}

// refsCurrent reads a repo's ref files beneath its folder and reports
// whether they still name what the scan saw (and no ref came or went:
// refs/ and its prefix folders have the mtimes of the scan... which a
// read cannot tell, so a new ref is seen by the poll, or by a lookup of
// it: an unknown name is looked for on disk).
func (s *scanner) refsCurrent(folder string, repo *cachecore.RepoInfo) bool {
	want := refsOf(repo)
	current := true
	_ = s.state.WithRoot(func(root *safefs.Handle) error {
		if root == nil {
			return nil
		}
		rh, err := root.OpenDir(folder)
		if err != nil {
			current = !errors.Is(err, syscall.ENOENT)
			return nil
		}
		defer rh.Close()
		for ref, commit := range want {
			data, err := rh.ReadFile("refs/"+ref, 4096)
			if err != nil {
				if !cachecore.Unreachable(err) || errors.Is(err, syscall.ESTALE) {
					current = false // gone: rescan
				}
				continue
			}
			// What the scan reads of a ref (upstream's raw text): the same
			// bytes the scan matched against a snapshot folder.
			if text, err := cachecore.RefContent(data); err != nil || text != commit {
				current = false
			}
		}
		names, err := rh.ReadDir("refs")
		if err == nil {
			for _, n := range names {
				if _, ok := want[n]; !ok && n != "refs" {
					current = false // a new top-level ref
				}
			}
		}
		return nil
	})
	return current
}

// Refresh is the refresh control (hffs.Controller; `hfcachefs refresh`):
// the named folders are rescanned at once (nil: the cache dir is listed
// again and every repo whose full fingerprint changed is rescanned), and
// the model is stored before it returns.
func (s *scanner) Refresh(ctx context.Context, folders []string) (string, error) {
	if !s.waitFull(ctx) {
		return "", syscall.EINTR
	}
	wk := work{relist: true}
	if folders == nil {
		wk.all = true
	} else {
		wk.folders = map[string]bool{}
		for _, f := range folders {
			wk.folders[f] = true
		}
	}
	s.mu.Lock()
	before := s.info.Rescans
	for _, f := range folders {
		// Asked for by name after a download: its refs need no quiet
		// time (a transfer still writing a blob holds them all the same).
		delete(s.lastChange, f)
	}
	s.mu.Unlock()
	start := time.Now()
	prev, next := s.refreshStore(wk)
	// Answered once the kernel has dropped what it cached of the old view
	// (this refresh's and any earlier one still queued): the caller's next
	// lookup must see the new one.
	s.state.InvalidateWait(prev, next, refreshNotifyWait)
	s.kick()
	s.mu.Lock()
	rescanned := s.info.Rescans - before
	unreach := s.unreachable
	gen := s.gen
	s.mu.Unlock()
	if unreach != nil {
		return "", syscall.EIO
	}
	out, _ := json.Marshal(map[string]any{
		"rescanned": rescanned, "changed": next != nil, "generation": gen,
		"seconds": float64(time.Since(start).Microseconds()) / 1e6,
	})
	return string(out) + "\n", nil
}

// refreshNotifyWait bounds how long a refresh waits for the kernel to be
// told (a notification waits for a folder lock a slow request may hold).
const refreshNotifyWait = 5 * time.Second

// refreshInfo is .status.json's "refresh" object.
func (s *scanner) refreshInfo() *views.RefreshInfo {
	var count int
	var full bool
	if s.w != nil {
		count, full = s.w.stats()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	info := s.info
	info.Watches = count
	info.PolledRepos = len(s.polled)
	if s.w == nil {
		info.PolledRepos = len(s.scans)
	} else if len(s.polled) > 0 {
		info.Mode = WatchEvents + "+" + WatchPoll
	}
	if full && info.Unwatched == "" {
		info.Unwatched = "the inotify watch limit is reached"
	}
	if s.unreachable != nil {
		u := *s.unreachable
		info.Unreachable = &u
	}
	switch {
	case info.Mode == WatchEvents:
		info.StalenessBound = fmt.Sprintf("a change shows about %v after inotify reports it (plus the repo's rescan)", eventDebounce)
	case s.w == nil:
		info.StalenessBound = fmt.Sprintf("by-ref/<ref> re-reads its ref when looked up more than %v after the last check; anything else shows within %v plus one poll pass", s.cfg.refTTL, s.cfg.pollInterval)
	default:
		info.StalenessBound = fmt.Sprintf("watched repos: about %v after inotify reports a change; the %d polled repos: by-ref within %v of a lookup, anything else within %v plus one poll pass",
			eventDebounce, len(s.polled), s.cfg.refTTL, s.cfg.pollInterval)
	}
	if info.LastPass != nil {
		p := *info.LastPass
		info.LastPass = &p
	}
	return &info
}

// scanInfo is .status.json's "scan" object.
func (s *scanner) scanInfo() *views.ScanInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := &views.ScanInfo{State: "running", Scanned: len(s.scans), Total: len(s.names), Started: s.mountTime, Done: s.scanDone}
	if s.scanDone != nil {
		info.State, info.Scanned = "done", len(s.names)
	}
	info.BySizePartial = s.scanDone == nil
	return info
}
