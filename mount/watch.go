package mount

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/safefs"
)

// watcher hears of changes to the cache through inotify: the cache dir
// and, per repo, the folders cachecore.WatchDirs names. It uses
// golang.org/x/sys/unix rather than fsnotify for the event detail: a
// mask without IN_MODIFY (a download's writes are not events), the
// queue overflow, and watches added through a handle opened beneath the
// cache dir (never a path string a writer could swap for a symlink).
// Reads block in the runtime's poller: no CPU while nothing changes.
type watcher struct {
	f *os.File

	change   func(cachecore.Change) // a path the views may show changed
	overflow func()                 // events were lost: everything must be checked
	rootGone func()                 // the cache dir itself was deleted or moved

	mu       sync.Mutex // protects the following
	byWD     map[int32]watchDir
	byFolder map[string]map[string]int32 // folder -> rel -> wd ("" folder: the cache dir)
	count    int
	full     bool // the watch limit was hit
}

// watchDir is one watched folder: rel beneath the repo folder (folder ""
// is the cache dir itself).
type watchDir struct{ folder, rel string }

// watchMask: entries made, removed or renamed, a file written and closed
// (a ref rewritten in place), a mode or time changed, and the folder
// itself going away. IN_ONLYDIR: a folder swapped for a file is refused.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_ONLYDIR | unix.IN_EXCL_UNLINK

// errWatchLimit: fs.inotify.max_user_watches is reached.
var errWatchLimit = errors.New("the inotify watch limit (fs.inotify.max_user_watches) is reached")

func newWatcher(change func(cachecore.Change), overflow, rootGone func()) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	return &watcher{
		f:      os.NewFile(uintptr(fd), "inotify"),
		change: change, overflow: overflow, rootGone: rootGone,
		byWD: map[int32]watchDir{}, byFolder: map[string]map[string]int32{},
	}, nil
}

// watchLimit is fs.inotify.max_user_watches (0 if unknown).
func watchLimit() int {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_user_watches")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// addFd watches the folder h holds, through /proc/self/fd: the folder
// the handle resolved, whatever is at its path now.
func (w *watcher) addFd(h *safefs.Handle, d watchDir) error {
	wd, err := unix.InotifyAddWatch(int(w.f.Fd()), "/proc/self/fd/"+strconv.Itoa(h.Fd()), watchMask)
	if err != nil {
		if err == unix.ENOSPC {
			w.mu.Lock()
			w.full = true
			w.mu.Unlock()
			return errWatchLimit
		}
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.byWD[int32(wd)]; ok {
		// The same folder watched again, maybe under another name (a
		// rename): one watch, known by its newest name.
		if m := w.byFolder[old.folder]; m != nil && m[old.rel] == int32(wd) {
			delete(m, old.rel)
		}
	} else {
		w.count++
	}
	w.byWD[int32(wd)] = d
	m := w.byFolder[d.folder]
	if m == nil {
		m = map[string]int32{}
		w.byFolder[d.folder] = m
	}
	m[d.rel] = int32(wd)
	return nil
}

// watchRoot watches the cache dir (root is its handle).
func (w *watcher) watchRoot(root *safefs.Handle) error {
	return w.addFd(root, watchDir{})
}

// syncRepo makes the watches of a repo folder the given folders (beneath
// it, "" itself): new ones added, those no longer listed removed. It
// reports whether a watch was added (what changed before it was in place
// was not heard of). On errWatchLimit the repo's watches are all removed:
// the repo is polled instead.
func (w *watcher) syncRepo(root *safefs.Handle, folder string, dirs []string) (added bool, err error) {
	w.mu.Lock()
	have := map[string]int32{}
	for rel, wd := range w.byFolder[folder] {
		have[rel] = wd
	}
	w.mu.Unlock()
	want := map[string]bool{}
	for _, d := range dirs {
		want[d] = true
	}
	for rel, wd := range have {
		if !want[rel] {
			w.remove(wd)
		}
	}
	var rh *safefs.Handle
	for _, rel := range dirs {
		if _, ok := have[rel]; ok {
			continue
		}
		if rh == nil {
			if rh, err = root.OpenDir(folder); err != nil {
				return added, err // the repo folder went away (or is a symlink: polled)
			}
			defer rh.Close()
		}
		h := rh
		if rel != "" {
			if h, err = rh.OpenDir(rel); err != nil {
				if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
					continue // not made yet: its parent's watch sees it made
				}
				return added, err
			}
		}
		err = w.addFd(h, watchDir{folder: folder, rel: rel})
		if h != rh {
			h.Close()
		}
		if err == errWatchLimit {
			w.forget(folder)
			return false, err
		}
		if err != nil {
			return added, err
		}
		added = true
	}
	return added, nil
}

// forget removes every watch of a repo folder.
func (w *watcher) forget(folder string) {
	w.mu.Lock()
	var wds []int32
	for _, wd := range w.byFolder[folder] {
		wds = append(wds, wd)
	}
	w.mu.Unlock()
	for _, wd := range wds {
		w.remove(wd)
	}
}

// forgetAll removes every watch, the cache dir's included.
func (w *watcher) forgetAll() {
	w.mu.Lock()
	var wds []int32
	for wd := range w.byWD {
		wds = append(wds, wd)
	}
	w.mu.Unlock()
	for _, wd := range wds {
		w.remove(wd)
	}
}

func (w *watcher) remove(wd int32) {
	_, _ = unix.InotifyRmWatch(int(w.f.Fd()), uint32(wd))
	w.dropWD(wd)
}

func (w *watcher) dropWD(wd int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d, ok := w.byWD[wd]
	if !ok {
		return
	}
	delete(w.byWD, wd)
	if m := w.byFolder[d.folder]; m != nil && m[d.rel] == wd {
		delete(m, d.rel)
		if len(m) == 0 {
			delete(w.byFolder, d.folder)
		}
	}
	w.count--
}

// stats reports the watches held and whether the limit was hit.
func (w *watcher) stats() (count int, full bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count, w.full
}

// watched reports whether a repo folder has watches.
func (w *watcher) watched(folder string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byFolder[folder]) > 0
}

// run reads events until the watcher is closed.
func (w *watcher) run() {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return // closed
		}
		w.dispatch(buf[:n])
	}
}

// dispatch decodes a read's events.
func (w *watcher) dispatch(buf []byte) {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
		off += unix.SizeofInotifyEvent + int(ev.Len)
		name := strings.TrimRight(string(nameBytes), "\x00")
		w.event(ev.Wd, ev.Mask, name)
	}
}

func (w *watcher) event(wd int32, mask uint32, name string) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		w.overflow()
		return
	}
	w.mu.Lock()
	d, ok := w.byWD[wd]
	w.mu.Unlock()
	if !ok {
		return
	}
	if mask&unix.IN_IGNORED != 0 {
		w.dropWD(wd) // the folder is gone (or the watch removed)
		if d.folder == "" {
			w.rootGone()
		}
		return
	}
	if d.folder == "" && mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
		w.rootGone()
		return
	}
	if mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
		// A repo's folder went away or moved: its parent's watch tells
		// the same; the repo is checked either way.
		w.change(cachecore.Change{Kind: cachecore.ChangeRepo, Folder: d.folder})
		return
	}
	rel := name
	if d.rel != "" {
		rel = d.rel + "/" + name
	}
	if d.folder != "" {
		rel = d.folder + "/" + rel
	}
	if c := cachecore.ClassifyPath(rel); c.Kind != cachecore.ChangeNone {
		w.change(c)
	}
}

// close stops run and drops every watch.
func (w *watcher) close() { w.f.Close() }
