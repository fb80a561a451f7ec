// Package mount runs an hfcachefs mount: options, the first scan and the
// refresher, the FUSE server, signals and unmounting.
package mount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/cachecore"
	hffs "github.com/hfcachefs/hfcachefs/fs"
	"github.com/hfcachefs/hfcachefs/trash"
	"github.com/hfcachefs/hfcachefs/views"
)

// Options are the mount's settings.
type Options struct {
	CacheDir     string
	AssetsDir    string
	ReadOnly     bool
	AllowOther   bool
	UID, GID     string // "" = the real owners
	Daemon       bool
	Debug        bool
	Watch        string        // auto, events or poll
	PollInterval time.Duration // poll mode: how often each repo's handful of paths is stat'ed
	RefTTL       time.Duration // poll mode: a by-ref lookup re-reads refs older than this
	Workers      int
	TrashHold    time.Duration
	TrimAfter    time.Duration // idle time before the kernel is asked to forget inodes; 0 never
	NonEmpty     bool          // mount over a folder that holds something
}

// AddFlags registers the mount flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.CacheDir, "cache-dir", "", "the hub cache to mount (default: HF_HUB_CACHE, HF_HOME/hub, ... as huggingface_hub)")
	fs.StringVar(&o.AssetsDir, "assets-dir", "", "the assets cache shown under assets/ (default: HF_ASSETS_CACHE, HF_HOME/assets, ...)")
	fs.BoolVar(&o.ReadOnly, "read-only", false, "no .trash: nothing can be deleted through the mount")
	fs.BoolVar(&o.AllowOther, "allow-other", false, "let other users in (implies default_permissions: the kernel checks modes)")
	fs.StringVar(&o.UID, "uid", "", "show every entry as owned by this user id")
	fs.StringVar(&o.GID, "gid", "", "show every entry as owned by this group id")
	fs.BoolVar(&o.Daemon, "daemon", false, "run in the background; return once the mount is ready (the exit status says whether it worked)")
	fs.BoolVar(&o.Debug, "debug", false, "print the FUSE protocol trace on stderr")
	fs.StringVar(&o.Watch, "watch", WatchAuto, "how changes to the cache are seen: events (inotify), poll, or auto (poll where the cache is on a network or FUSE file system, whose other clients' writes inotify cannot see)")
	fs.DurationVar(&o.PollInterval, "poll-interval", DefaultPollInterval, "poll mode (and repos inotify cannot cover): how often each repo's refs and a few folder mtimes are checked")
	fs.DurationVar(&o.RefTTL, "ref-ttl", time.Second, "poll mode: a lookup under by-ref/ re-reads the repo's refs when they were last read longer ago than this (0: only the poll)")
	fs.IntVar(&o.Workers, "scan-workers", 4, "repos scanned in parallel")
	fs.DurationVar(&o.TrashHold, "trash-hold", 0, "keep what .trash deletes aside this long (e.g. 24h), restorable; 0 deletes at once")
	fs.BoolVar(&o.NonEmpty, "nonempty", false, "mount even if the mountpoint folder is not empty (the mount hides what it holds)")
	fs.DurationVar(&o.TrimAfter, "trim-after", 10*time.Second, "once the mount has been idle this long, let the kernel forget idle inodes below repo folders and free their memory; 0 never")
}

// DefaultPollInterval is how often a polled cache is checked. A pass
// stats about 8 paths per repo (cachecore.PollPaths): with 2,000 repos,
// about 16,000 stats, or 530 a second per node at 30 s, which a shared
// file server serving many nodes can afford; a by-ref lookup re-reads its
// ref within --ref-ttl regardless, an open that finds a file gone rescans
// its repo at once, and `hfcachefs refresh` rescans on demand, so the
// interval bounds only how late new repos, revisions and deletions made
// elsewhere show in listings.
const DefaultPollInterval = 30 * time.Second

// Mount is a running mount.
type Mount struct {
	Mountpoint string
	CacheDir   string
	server     *fuse.Server
	state      *hffs.State
	scanner    *scanner
	cancel     context.CancelFunc
	info       views.MountInfo
	started    time.Time

	mu          sync.Mutex // protects the following
	passthrough string
	statusGen   uint64 // generation statusJSON was rendered for
	statusTrims int    // and the number of trims
	statusTrash uint64 // and the trash version
	statusLive  string // and the refresh and scan states
	trasher     *trasher
	statusJSON  []byte
}

// Start mounts the cache and returns once the kernel answers on the
// mountpoint; the first scan and the refresher run in the background.
func Start(mountpoint string, o Options, logger *log.Logger) (*Mount, error) {
	if logger == nil {
		logger = log.New(os.Stderr, "hfcachefs: ", log.LstdFlags)
	}
	if o.CacheDir == "" {
		o.CacheDir = cachecore.HubCacheDir(cachecore.OSEnv)
	}
	cacheDir, err := cachecore.ResolveDir(o.CacheDir, cachecore.OSEnv)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(cacheDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &cachecore.CacheNotFoundError{CacheDir: cacheDir}
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, &cachecore.NotADirectoryError{CacheDir: cacheDir}
	}
	assetsDir := o.AssetsDir
	if assetsDir == "" {
		assetsDir = cachecore.AssetsCacheDir(cachecore.OSEnv)
	}
	if assetsDir, err = cachecore.ResolveDir(assetsDir, cachecore.OSEnv); err != nil {
		return nil, err
	}
	mp, err := prepareMountpoint(mountpoint, cacheDir, assetsDir, o.NonEmpty)
	if err != nil {
		return nil, err
	}
	uid, err := parseID(o.UID, "--uid")
	if err != nil {
		return nil, err
	}
	gid, err := parseID(o.GID, "--gid")
	if err != nil {
		return nil, err
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	switch o.Watch {
	case "":
		o.Watch = WatchAuto
	case WatchAuto, WatchEvents, WatchPoll:
	default:
		return nil, fmt.Errorf("--watch: %q is not one of auto, events, poll", o.Watch)
	}
	if o.RefTTL < 0 {
		return nil, fmt.Errorf("--ref-ttl: %v is negative", o.RefTTL)
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}

	if os.Getenv("GOMAXPROCS") == "" {
		// Set once: left automatic, the runtime re-reads the cgroup's CPU
		// quota every second, an idle daemon's only system calls.
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	}
	if os.Getenv("GOGC") == "" {
		// The daemon keeps a node per looked-up path for as long as the
		// kernel caches it: trade a little CPU for half the GC headroom.
		debug.SetGCPercent(50)
	}
	m := &Mount{Mountpoint: mp, CacheDir: cacheDir, started: time.Now()}
	viewOpts := views.Options{ReadOnly: o.ReadOnly, AssetsDir: assetsDir}
	var store *trash.Store
	if !o.ReadOnly {
		if store, err = trash.Open(cacheDir, o.TrashHold, cachecore.OSEnv); err != nil {
			return nil, err
		}
		viewOpts.Receipts = store.Names
		// Deletions a killed daemon (or CLI) left staged are finished, or
		// rolled back, before anything of the cache is listed.
		if recs, err := store.Recover(func(msg string) { logger.Printf("recovery: %s", msg) }); err != nil {
			logger.Printf("recovery: %v", err)
		} else if len(recs) > 0 {
			logger.Printf("recovery: %d interrupted deletion(s) finished or rolled back", len(recs))
		}
	} else if o.TrashHold > 0 {
		return nil, fmt.Errorf("--trash-hold needs .trash, which --read-only mounts do not have")
	}
	sc := newScanner(cacheDir, views.NewInoTable(), viewOpts,
		refreshConfig{watch: o.Watch, pollInterval: o.PollInterval, refTTL: o.RefTTL}, logger.Printf)
	first, err := sc.skeleton()
	if err != nil {
		return nil, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	fsOpts := hffs.Options{
		UID: uid, GID: gid, CacheUID: st.Uid, CacheGID: st.Gid, CacheMode: st.Mode & 0o7777,
		AllowOther: o.AllowOther, ReadOnly: o.ReadOnly,
		EntryTimeout: time.Second, StableTimeout: time.Hour,
		StatusProvider: m.status,
	}
	m.info = views.MountInfo{Mountpoint: mp, CacheDir: cacheDir, AssetsDir: assetsDir, ReadOnly: o.ReadOnly,
		AllowOther: o.AllowOther, UID: uid, GID: gid, PollInterval: o.PollInterval.String(), Started: m.started}
	state := hffs.NewState(first, fsOpts)
	state.SetWaiters(sc.waitRepo, sc.waitFull, sc.isPending)
	sc.state = state
	// Every blob is opened beneath this handle of the cache dir (and the
	// refresher notices the cache dir renamed or deleted by it).
	if err := sc.openRoot(); err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			state.SetRoot(nil) // a failed start keeps no handle of the cache
		}
	}()
	state.SetRescan(sc.rescanStale)
	state.SetController(sc)
	m.state, m.scanner = state, sc
	var tr *trasher
	if store != nil {
		tr = &trasher{m: m, store: store, logf: logger.Printf, holdWake: make(chan struct{}, 1), running: map[string]*views.TrashProgress{}}
		m.trasher = tr
		state.SetTrasher(tr)
		m.info.TrashStateDir, m.info.TrashHold, m.info.TrashHoldDir = store.StateDir, o.TrashHold.String(), store.HoldRoot
	}

	mountOpts := fuse.MountOptions{
		FsName: "hfcachefs", Name: "hfcachefs",
		AllowOther:   o.AllowOther,
		Debug:        o.Debug,
		DirectMount:  os.Geteuid() == 0,
		MaxReadAhead: 1 << 20,
		// Extended attributes are served; ACLs and security labels are
		// not: system.posix_acl_* and security.* answer EOPNOTSUPP (not
		// go-fuse's ENODATA, nor the kernel's ACL cache, which asks once
		// per inode), and ls -l, cp -a, tar --acls stop asking for the
		// whole mount after the first answer: a cold ls -lR makes half
		// the requests.
		// READDIRPLUS only where the names are then looked up (ls -l), plain
		// READDIR for walks that need names and types only (find): no node
		// is made for a file nobody stats.
		ExtraCapabilities: fuse.CAP_READDIRPLUS_AUTO,
	}
	if o.AllowOther {
		mountOpts.Options = append(mountOpts.Options, "default_permissions")
	}
	if o.ReadOnly {
		mountOpts.Options = append(mountOpts.Options, "ro")
	}
	// The kernel opens folders by itself and caches every listing (see
	// hffs.NoOpendir): no round trip per folder on a warm walk.
	raw := hffs.WrapNoOpendir(gofs.NewNodeFS(state.Root(), &gofs.Options{
		MountOptions:   mountOpts,
		RootStableAttr: &gofs.StableAttr{Ino: 1},
		// A file that is never served shows mode 0000, not go-fuse's 0644.
		NullPermissions: true,
		Logger:          logger,
	}), state)
	server, err := fuse.NewServer(raw, mp, &mountOpts)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mp, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, fmt.Errorf("mount %s: %w", mp, err)
	}
	passthrough := probePassthrough(server)
	if passthrough != "on" {
		state.DisablePassthrough()
	}
	m.mu.Lock()
	m.server, m.passthrough = server, passthrough
	m.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	// Watches first: what changes while the first scan runs is heard of.
	sc.startWatching()
	go func() {
		sc.initial(o.Workers)
		sc.run(ctx)
	}()
	if tr != nil {
		go tr.purgeLoop(ctx)
	}
	state.StartTrimmer(ctx, o.TrimAfter, raw.SupportsPrune())
	started = true
	return m, nil
}

// probePassthrough registers one backing file to see whether the kernel
// and our privileges allow FUSE passthrough: go-fuse turns it off for the
// whole mount after the first failed registration, so we ask once, here.
func probePassthrough(server *fuse.Server) string {
	if server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 {
		return "off: the kernel does not offer FUSE passthrough"
	}
	exe, err := os.Executable()
	if err != nil {
		return "off: " + err.Error()
	}
	f, err := os.Open(exe)
	if err != nil {
		return "off: " + err.Error()
	}
	defer f.Close()
	id, errno := server.RegisterBackingFd(&fuse.BackingMap{Fd: int32(f.Fd())})
	if errno != 0 {
		return "off: registering a backing file failed (" + errno.Error() + "; passthrough needs CAP_SYS_ADMIN): reads are spliced"
	}
	server.UnregisterBackingFd(id)
	return "on"
}

// status renders .status.json once per model generation: a getattr of it
// (every READDIRPLUS of the root) needs its size.
func (m *Mount) status() []byte {
	model := m.state.Model()
	trim := m.state.TrimInfo()
	m.mu.Lock()
	defer m.mu.Unlock()
	var trashInfo views.TrashInfo
	var trashVersion uint64
	if m.trasher != nil {
		trashInfo, trashVersion = m.trasher.info()
	}
	refresh, scan := m.scanner.refreshInfo(), m.scanner.scanInfo()
	liveKey, _ := json.Marshal([]any{refresh, scan})
	if m.statusJSON != nil && m.statusGen == model.Gen && m.statusTrims == trim.Runs && m.statusTrash == trashVersion && string(liveKey) == m.statusLive {
		return m.statusJSON
	}
	info := m.info
	info.Passthrough = m.passthrough
	info.Trim = trim
	info.Trash = trashInfo
	live := views.Live{Kept: m.scanner.keptRepos(), Settling: m.scanner.settlingRefs(), Refresh: refresh, Scan: scan}
	m.statusJSON, m.statusGen, m.statusTrims, m.statusTrash = model.StatusLive(info, live), model.Gen, trim.Runs, trashVersion
	m.statusLive = string(liveKey)
	return m.statusJSON
}

// State is the mount's shared state (for .trash and tests).
func (m *Mount) State() *hffs.State { return m.state }

// WaitReady blocks until the first full scan is in the model.
func (m *Mount) WaitReady(ctx context.Context) bool { return m.scanner.waitFull(ctx) }

// Wait blocks until the filesystem is unmounted.
func (m *Mount) Wait() {
	m.server.Wait()
	m.cancel()
}

// Unmount unmounts, lazily if the mount is busy; it refuses if the
// mountpoint's top mount is no longer an hfcachefs one (something was
// mounted over it).
func (m *Mount) Unmount() error {
	m.cancel()
	entries, err := readMountinfo()
	if err != nil {
		return fmt.Errorf("unmount %s: %w", m.Mountpoint, err)
	}
	if err := checkOurMount(entries, m.Mountpoint); err != nil {
		return err
	}
	err = m.server.Unmount()
	if err != nil {
		if lerr := Unmount(m.Mountpoint); lerr == nil {
			return nil
		}
	}
	return err
}

func parseID(s, flag string) (*uint32, error) {
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not a numeric id", flag, s)
	}
	id := uint32(v)
	return &id, nil
}

// prepareMountpoint resolves and checks the mountpoint: an empty folder
// (unless nonempty) that is no mount point, recovering one left dead by a
// killed daemon, neither inside nor above the cache or assets directory.
func prepareMountpoint(mountpoint, cacheDir, assetsDir string, nonempty bool) (string, error) {
	entries, err := readMountinfo()
	if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", mountpoint, err)
	}
	real, err := resolveMountpoint(mountpoint, entries)
	if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", mountpoint, err)
	}
	// Mountinfo first: a mount point of another file system is refused
	// without a stat (which could hang on it). The loop recovers dead
	// hfcachefs mounts, stacked ones too (older versions stacked them).
	var st syscall.Stat_t
	for i := 0; ; i++ {
		e := topMountAt(entries, real)
		if e == nil {
			break
		}
		if i == 16 {
			return "", fmt.Errorf("mountpoint %s: too many mounts stacked on it", real)
		}
		if e.FSType != ourFSType {
			return "", fmt.Errorf("mountpoint %s is already a mount point (%s %s mount): unmount it first or pick another folder", real, article(e.FSType), e.FSType)
		}
		// statfs, not stat: stat may answer from the attribute cache
		// after the daemon died.
		var sfs syscall.Statfs_t
		if err := syscall.Statfs(real, &sfs); err != syscall.ENOTCONN {
			return "", fmt.Errorf("mountpoint %s is already an hfcachefs mount: 'hfcachefs unmount %s' stops it, or pick another folder", real, real)
		}
		if uerr := Unmount(real); uerr != nil {
			return "", fmt.Errorf("mountpoint %s is a dead mount (transport endpoint is not connected) and unmounting it failed: %v", real, uerr)
		}
		if entries, err = readMountinfo(); err != nil {
			return "", fmt.Errorf("mountpoint %s: %w", real, err)
		}
	}
	if err := syscall.Stat(real, &st); err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", real, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return "", fmt.Errorf("mountpoint %s is not a directory", real)
	}
	if within(real, cacheDir) {
		return "", fmt.Errorf("mountpoint %s is inside the cache directory %s: huggingface_hub would see the mount as part of its cache", real, cacheDir)
	}
	if within(cacheDir, real) {
		return "", fmt.Errorf("mountpoint %s contains the cache directory %s: the mount would hide its own cache", real, cacheDir)
	}
	if within(real, assetsDir) {
		return "", fmt.Errorf("mountpoint %s is inside the assets directory %s: assets/ would show the mount inside itself", real, assetsDir)
	}
	if within(assetsDir, real) {
		return "", fmt.Errorf("mountpoint %s contains the assets directory %s: the mount would hide the assets it shows", real, assetsDir)
	}
	if !nonempty {
		empty, err := isEmptyDir(real)
		if err != nil {
			return "", fmt.Errorf("mountpoint %s: %w", real, err)
		}
		if !empty {
			return "", fmt.Errorf("mountpoint %s is not empty: the mount would hide what it holds (pass --nonempty to mount over it anyway)", real)
		}
	}
	return real, nil
}

// within reports whether path is dir or below it (both clean, absolute).
func within(path, dir string) bool {
	return dir == "/" || path == dir || strings.HasPrefix(path, dir+"/")
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return len(names) == 0, err
}

// Unmount unmounts an hfcachefs mount, and nothing else (per
// /proc/self/mountinfo): directly as root (lazily if busy), with
// fusermount3 otherwise.
func Unmount(mountpoint string) error {
	entries, err := readMountinfo()
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mountpoint, err)
	}
	mp, err := resolveMountpoint(mountpoint, entries)
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mountpoint, err)
	}
	if err := checkOurMount(entries, mp); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		// NOFOLLOW: unmount the path checked, even if it became a symlink.
		err := unix.Unmount(mp, unix.UMOUNT_NOFOLLOW)
		if err == unix.EBUSY || err == unix.ENOTCONN {
			err = unix.Unmount(mp, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH)
		}
		if err == unix.EINVAL && !isMounted(mp) {
			return fmt.Errorf("%s is not mounted", mp)
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
		return nil
	}
	out, err := exec.Command("fusermount3", "-u", mp).CombinedOutput()
	if err != nil {
		out2, err2 := exec.Command("fusermount3", "-uz", mp).CombinedOutput()
		if err2 != nil {
			return fmt.Errorf("fusermount3 -u %s: %s%s", mp, out, out2)
		}
	}
	return nil
}
