// Package mount runs an hfcachefs mount: options, the first scan and the
// refresher, the FUSE server, signals and unmounting.
package mount

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/spf13/pflag"

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
	PollInterval time.Duration
	Workers      int
	TrashHold    time.Duration
	TrimAfter    time.Duration // idle time before the kernel is asked to forget inodes; 0 never
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
	fs.DurationVar(&o.PollInterval, "poll-interval", time.Second, "how often the cache is checked for changes")
	fs.IntVar(&o.Workers, "scan-workers", 4, "repos scanned in parallel")
	fs.DurationVar(&o.TrashHold, "trash-hold", 0, "keep what .trash deletes aside this long (e.g. 24h), restorable; 0 deletes at once")
	fs.DurationVar(&o.TrimAfter, "trim-after", 10*time.Second, "once the mount has been idle this long, let the kernel forget idle inodes below repo folders and free their memory; 0 never")
}

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
	mp, err := prepareMountpoint(mountpoint, cacheDir)
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
		o.PollInterval = time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 4
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
	} else if o.TrashHold > 0 {
		return nil, fmt.Errorf("--trash-hold needs .trash, which --read-only mounts do not have")
	}
	sc := newScanner(cacheDir, views.NewInoTable(), viewOpts, logger.Printf)
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
	m.state, m.scanner = state, sc
	var tr *trasher
	if store != nil {
		tr = &trasher{m: m, store: store, logf: logger.Printf, held: make(chan struct{}, 1)}
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
	go func() {
		sc.initial(o.Workers)
		sc.refresh(ctx, o.PollInterval)
	}()
	if tr != nil {
		go tr.purgeLoop(ctx)
	}
	state.StartTrimmer(ctx, o.TrimAfter, raw.SupportsPrune())
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
	if m.statusJSON != nil && m.statusGen == model.Gen && m.statusTrims == trim.Runs {
		return m.statusJSON
	}
	info := m.info
	info.Passthrough = m.passthrough
	info.Trim = trim
	m.statusJSON, m.statusGen, m.statusTrims = model.Status(info, m.scanner.keptRepos(), m.scanner.settlingRefs()), model.Gen, trim.Runs
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

// Unmount unmounts, lazily if the mount is busy.
func (m *Mount) Unmount() error {
	m.cancel()
	err := m.server.Unmount()
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

// prepareMountpoint checks the mountpoint, recovering one left dead by a
// killed daemon, and refuses one inside the cache directory.
func prepareMountpoint(mountpoint, cacheDir string) (string, error) {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return "", err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(abs, &st); err == syscall.ENOTCONN {
		if uerr := Unmount(abs); uerr != nil {
			return "", fmt.Errorf("mountpoint %s is a dead mount (transport endpoint is not connected) and unmounting it failed: %v", abs, uerr)
		}
	} else if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", abs, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", abs, err)
	}
	if real == cacheDir || strings.HasPrefix(real, cacheDir+"/") {
		return "", fmt.Errorf("mountpoint %s is inside the cache directory %s: huggingface_hub would see the mount as part of its cache", abs, cacheDir)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("mountpoint %s is not a directory", abs)
	}
	return real, nil
}

// Unmount unmounts a mountpoint: directly as root (lazily if busy), with
// fusermount3 otherwise.
func Unmount(mountpoint string) error {
	if os.Geteuid() == 0 {
		err := syscall.Unmount(mountpoint, 0)
		if err == syscall.EBUSY || err == syscall.ENOTCONN {
			err = syscall.Unmount(mountpoint, syscall.MNT_DETACH)
		}
		if err == nil || err == syscall.EINVAL && !isMounted(mountpoint) {
			if err != nil {
				return fmt.Errorf("%s is not mounted", mountpoint)
			}
			return nil
		}
		return fmt.Errorf("unmount %s: %w", mountpoint, err)
	}
	out, err := exec.Command("fusermount3", "-u", mountpoint).CombinedOutput()
	if err != nil {
		out2, err2 := exec.Command("fusermount3", "-uz", mountpoint).CombinedOutput()
		if err2 != nil {
			return fmt.Errorf("fusermount3 -u %s: %s%s", mountpoint, out, out2)
		}
	}
	return nil
}

// isMounted reports whether a path is a mountpoint (per /proc/self/mountinfo).
func isMounted(path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == path {
			return true
		}
	}
	return false
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
