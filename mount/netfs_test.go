package mount

// Change detection on a network file system, with a FUSE stand-in for one:
// an in-process go-fuse loopback of a real cache folder. Its f_type is
// FUSE's, as for GlusterFS, JuiceFS or sshfs clients, so `--watch auto`
// must poll it; and, as on a network file system, inotify on the loopback
// never hears of writes made beneath it (the tests write into the real
// folder, not through the loopback, as another node would). The hfcachefs
// daemon is the real binary (mounttest.StartDaemon), run with
// `--cache-dir LOOPBACK` and no --watch flag. Beside it, the local-disk
// case: the same cache on the test's temp disk must be watched with
// inotify ("events") and follow a ref at once.
//
// Same rule as the other mount tests: the test process serves the loopback
// and writes the real cache folder, but every access to the hfcachefs
// mount is a child process (cat, ls, getfattr, setfattr, hfcachefs
// refresh).

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/hfcachefs/hfcachefs/internal/mounttest"
)

// nfStatus is the part of .status.json these tests read (the change
// detection spec): parsed on its own, so that other fields may change.
type nfStatus struct {
	Repos    int      `json:"repos"`
	Warnings []string `json:"warnings"`
	Scan     *struct {
		State   string `json:"state"`
		Scanned int    `json:"scanned"`
		Total   int    `json:"total"`
	} `json:"scan"`
	Refresh *struct {
		Mode           string `json:"mode"`
		FSType         string `json:"fs_type"`
		PollInterval   string `json:"poll_interval"`
		RefTTL         string `json:"ref_ttl"`
		StalenessBound string `json:"staleness_bound"`
		Unreachable    *struct {
			Since string `json:"since"`
			Error string `json:"error"`
		} `json:"unreachable"`
	} `json:"refresh"`
	raw string
}

// nfReadStatus reads MP/.status.json through `cat`; the refresh object is
// required.
func nfReadStatus(t *testing.T, mp string) nfStatus {
	t.Helper()
	raw := mustRun(t, "cat", filepath.Join(mp, ".status.json"))
	var st nfStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf(".status.json is not valid JSON: %v\n%s", err, mounttest.Clip(raw, 4000))
	}
	st.raw = raw
	if st.Refresh == nil {
		t.Fatalf(".status.json has no \"refresh\" object (change detection): %s", mounttest.Clip(raw, 4000))
	}
	return st
}

// nfWaitScanned waits until .status.json says the first scan is done.
func nfWaitScanned(t *testing.T, mp string) nfStatus {
	t.Helper()
	var st nfStatus
	poll(t, time.Minute, "the first scan is done (.status.json scan.state)", func() (bool, string) {
		st = nfReadStatus(t, mp)
		if st.Scan == nil {
			return false, "no \"scan\" object: " + mounttest.Clip(st.raw, 2000)
		}
		return st.Scan.State == "done", fmt.Sprintf("scan %+v", *st.Scan)
	})
	return st
}

// nfDuration parses a duration field of .status.json.
func nfDuration(t *testing.T, field, v string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf(".status.json refresh.%s = %q: not a duration: %v", field, v, err)
	}
	return d
}

// nfCheckRefresh checks the refresh object: mode, fs_type, the intervals
// given, a staleness bound and "unreachable": null. It returns the ref TTL.
func nfCheckRefresh(t *testing.T, st nfStatus, mode, fsType string, poll time.Duration) time.Duration {
	t.Helper()
	r := st.Refresh
	if r.Mode != mode {
		t.Errorf("refresh.mode = %q, want %q (fs_type %q)", r.Mode, mode, r.FSType)
	}
	if r.FSType != fsType {
		t.Errorf("refresh.fs_type = %q, want %q", r.FSType, fsType)
	}
	if strings.TrimSpace(r.StalenessBound) == "" {
		t.Errorf("refresh.staleness_bound is empty")
	}
	if got := nfDuration(t, "poll_interval", r.PollInterval); poll != 0 && got != poll {
		t.Errorf("refresh.poll_interval = %q, want %v", r.PollInterval, poll)
	}
	ttl := nfDuration(t, "ref_ttl", r.RefTTL)
	if r.Unreachable != nil {
		t.Errorf("refresh.unreachable = %+v, want null", *r.Unreachable)
	}
	var generic map[string]map[string]any
	if err := json.Unmarshal([]byte(st.raw), &generic); err == nil {
		if _, ok := generic["refresh"]["unreachable"]; !ok {
			t.Errorf("refresh has no \"unreachable\" key (want null while the cache is reachable)")
		}
	}
	t.Logf("refresh: mode %q fs_type %q poll_interval %q ref_ttl %q staleness_bound %q", r.Mode, r.FSType, r.PollInterval, r.RefTTL, r.StalenessBound)
	return ttl
}

// A small cache in huggingface_hub's layout: blobs named by the sha256 of
// their bytes, snapshots of relative links ../../blobs/<etag> (deeper for
// nested paths), refs holding a 40-hex commit written as huggingface_hub
// does (a temp file renamed over), and trees/<commit>.json as
// snapshot_download writes it (the listing that tells a complete
// snapshot).

// nfCommit is a 40-hex commit hash made from a seed.
func nfCommit(seed string) string {
	s := sha1.Sum([]byte(seed))
	return hex.EncodeToString(s[:])
}

// nfContent is the bytes of a file at a commit.
func nfContent(folder, commit, path string) []byte {
	return []byte(strings.Repeat(fmt.Sprintf("%s %s %s\n", folder, commit, path), 3))
}

var nfFiles = []string{"config.json", "model.safetensors", "sub/tokenizer.json"}

// nfWriteRevision writes a complete snapshot (blobs, links, listing) of
// cache/folder at commit, without touching refs.
func nfWriteRevision(t *testing.T, cache, folder, commit string) {
	t.Helper()
	repo := filepath.Join(cache, folder)
	for _, d := range []string{"blobs", "refs", "trees", "snapshots/" + commit} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	listing := map[string]any{}
	for _, p := range nfFiles {
		data := nfContent(folder, commit, p)
		sum := sha256.Sum256(data)
		etag := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(repo, "blobs", etag), data, 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(repo, "snapshots", commit, p)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		up := strings.Repeat("../", strings.Count(p, "/")+2)
		if err := os.Symlink(up+"blobs/"+etag, link); err != nil {
			t.Fatal(err)
		}
		listing[p] = map[string]any{"size": len(data), "etag": etag}
	}
	tree, _ := json.Marshal(map[string]any{"format_version": 1, "files": listing})
	writeAtomic(t, filepath.Join(repo, "trees", commit+".json"), tree)
}

// nfSetRef points refs/<ref> of cache/folder at commit (temp + rename).
func nfSetRef(t *testing.T, cache, folder, ref, commit string) {
	t.Helper()
	writeAtomic(t, filepath.Join(cache, folder, "refs", ref), []byte(commit))
}

// nfRepo writes a repo with one revision that main points to; it returns
// the commit.
func nfRepo(t *testing.T, cache, folder string) string {
	t.Helper()
	c := nfCommit(folder + "@1")
	nfWriteRevision(t, cache, folder, c)
	nfSetRef(t, cache, folder, "main", c)
	return c
}

// nfLoopback mounts a go-fuse loopback of real on a new folder, served by
// this process with no kernel caching of names or attributes (a network
// file system's client that asks the server every time), and returns that
// folder. The loopback is unmounted at cleanup, after what was started
// later (the daemon reading it) has stopped.
func nfLoopback(t *testing.T, real string) string {
	t.Helper()
	needFuse(t)
	lower := filepath.Join(t.TempDir(), "netfs")
	if err := os.Mkdir(lower, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := gofs.NewLoopbackRoot(real)
	if err != nil {
		t.Fatalf("NewLoopbackRoot(%s): %v", real, err)
	}
	var zero time.Duration
	opts := &gofs.Options{EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero}
	opts.FsName = "netfs-standin"
	opts.Name = "netfs-standin"
	opts.DirectMount = os.Geteuid() == 0
	server, err := gofs.Mount(lower, root, opts)
	if err != nil {
		t.Fatalf("mounting a loopback of %s on %s: %v", real, lower, err)
	}
	registerMount(t, lower, 0)
	t.Cleanup(func() {
		if err := server.Unmount(); err != nil {
			t.Logf("unmounting the loopback %s: %v; detaching it", lower, err)
			_ = syscall.Unmount(lower, syscall.MNT_DETACH)
		}
	})
	var st syscall.Statfs_t
	if err := syscall.Statfs(lower, &st); err != nil {
		t.Fatalf("statfs %s: %v", lower, err)
	}
	if uint32(st.Type) != 0x65735546 {
		t.Fatalf("the loopback's f_type is 0x%x, not FUSE's 0x65735546", uint32(st.Type))
	}
	return lower
}

// nfDaemon runs hfcachefs mount on a new mountpoint in the foreground (its
// output kept for a failure, its data races reported) and waits for the
// first scan.
func nfDaemon(t *testing.T, cache string, args ...string) (string, nfStatus) {
	t.Helper()
	mp := newMountpoint(t)
	mounttest.StartDaemon(t, mp, cache, mounttest.DaemonOptions{Args: args, Foreground: true})
	return mp, nfWaitScanned(t, mp)
}

// nfFollow moves a ref in the real cache and measures how long until cat
// of by-ref/<ref>/<file> through the mount shows the new commit's bytes;
// it fails past bound. Every cat meanwhile must succeed (old or new
// bytes).
func nfFollow(t *testing.T, real, mp, folder, repoPath, ref, commit string, bound time.Duration) time.Duration {
	t.Helper()
	path := filepath.Join(mp, repoPath, "by-ref", ref, "config.json")
	want := string(nfContent(folder, commit, "config.json"))
	nfSetRef(t, real, folder, ref, commit)
	start := time.Now()
	var last string
	for {
		r := run(t, "cat", path)
		elapsed := time.Since(start)
		if r.code != 0 {
			t.Errorf("cat %s failed while %s moved (a ref move must never fail a reader): %s", path, ref, r)
		} else if r.stdout == want {
			return elapsed
		}
		last = r.String()
		if elapsed > bound {
			t.Fatalf("by-ref/%s did not follow to %s within %v (the stated bound); last cat: %s", ref, commit[:12], bound, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nfLs(t *testing.T, path string) []string {
	t.Helper()
	return lines(mustRun(t, "ls", path))
}

func nfMedian(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// On a FUSE-backed cache (f_type FUSE, as a GlusterFS client mount) the
// mount polls without being told, says so, and still follows a ref within
// the ref TTL even though the background poll runs once an hour: the
// by-ref lookup re-reads the ref.
func TestNetfsAutoPollFollowsRefWithinTTL(t *testing.T) {
	real := filepath.Join(t.TempDir(), "hub")
	const folder, repo = "models--acme--netfs", "models/acme/netfs"
	c1 := nfRepo(t, real, folder)
	c2 := nfCommit(folder + "@2")
	nfWriteRevision(t, real, folder, c2)
	lower := nfLoopback(t, real)
	mp, st := nfDaemon(t, lower, "--poll-interval", "1h")
	ttl := nfCheckRefresh(t, st, "poll", "fuse", time.Hour)
	if ttl <= 0 || ttl > 10*time.Second {
		t.Fatalf("refresh.ref_ttl = %v: the default should be about 1s", ttl)
	}
	if got, want := string(catBytes(t, filepath.Join(mp, repo, "by-ref", "main", "config.json"))), string(nfContent(folder, c1, "config.json")); got != want {
		t.Fatalf("by-ref/main/config.json before the move: %q, want %q", got, want)
	}
	// inotify on the loopback never hears of a write beneath it: this is
	// the ref TTL's work (or nothing's), never the hourly poll's.
	bound := ttl + time.Second
	var lat []time.Duration
	for i, c := range []string{c2, c1, c2} {
		l := nfFollow(t, real, mp, folder, repo, "main", c, bound)
		t.Logf("ref move %d (main -> %s): by-ref/main showed the new bytes after %v (bound: ref TTL %v + 1 s)", i+1, c[:12], l.Round(time.Millisecond), ttl)
		lat = append(lat, l)
		time.Sleep(ttl) // the next move is not absorbed by this one's check
	}
	t.Logf("ref follow on the FUSE stand-in, poll interval 1h: median %v", nfMedian(lat).Round(time.Millisecond))
	// The whole file set of the new revision reads, nested file included.
	for _, p := range nfFiles {
		if got, want := string(catBytes(t, filepath.Join(mp, repo, "by-ref", "main", p))), string(nfContent(folder, c2, p)); got != want {
			t.Errorf("by-ref/main/%s after the moves: %q, want %q", p, got, want)
		}
	}
}

// With --poll-interval 2s a new repo written beneath the loopback shows
// within a poll interval (no event can tell of it).
func TestNetfsPollFindsNewRepo(t *testing.T) {
	real := filepath.Join(t.TempDir(), "hub")
	nfRepo(t, real, "models--acme--netfs")
	lower := nfLoopback(t, real)
	const every = 2 * time.Second
	mp, st := nfDaemon(t, lower, "--poll-interval", every.String())
	nfCheckRefresh(t, st, "poll", "fuse", every)
	if got := nfLs(t, filepath.Join(mp, "models", "acme")); !contains(got, "netfs") || contains(got, "fresh") {
		t.Fatalf("ls models/acme before: %q", got)
	}

	const folder = "models--acme--fresh"
	c := nfRepo(t, real, folder)
	start := time.Now()
	bound := every + time.Second
	poll(t, bound, "the new repo shows within a poll interval (+1 s)", func() (bool, string) {
		got := nfLs(t, filepath.Join(mp, "models", "acme"))
		return contains(got, "fresh"), fmt.Sprintf("ls models/acme: %q", got)
	})
	lat := time.Since(start)
	t.Logf("new repo on the FUSE stand-in: listed after %v (poll interval %v)", lat.Round(time.Millisecond), every)
	if got, want := string(catBytes(t, filepath.Join(mp, "models", "acme", "fresh", "by-ref", "main", "config.json"))), string(nfContent(folder, c, "config.json")); got != want {
		t.Errorf("the new repo's by-ref/main/config.json: %q, want %q", got, want)
	}
	// ...and a repo removed beneath it goes within a poll interval too.
	if err := os.RemoveAll(filepath.Join(real, folder)); err != nil {
		t.Fatal(err)
	}
	poll(t, bound, "the removed repo goes within a poll interval (+1 s)", func() (bool, string) {
		got := nfLs(t, filepath.Join(mp, "models", "acme"))
		return !contains(got, "fresh") && contains(got, "netfs"), fmt.Sprintf("ls models/acme: %q", got)
	})
}

// `hfcachefs refresh MOUNT` (and the user.hf.refresh attribute it reads)
// returns once the rescan is shown: with an hourly poll, a new revision
// and a new repo are listed by the very next ls.
func TestNetfsRefreshMakesChangesVisibleAtOnce(t *testing.T) {
	needTool(t, "getfattr", "setfattr")
	real := filepath.Join(t.TempDir(), "hub")
	const folder, repo = "models--acme--netfs", "models/acme/netfs"
	nfRepo(t, real, folder)
	lower := nfLoopback(t, real)
	mp, st := nfDaemon(t, lower, "--poll-interval", "1h")
	nfCheckRefresh(t, st, "poll", "fuse", time.Hour)
	bin := binary(t)
	byCommit := filepath.Join(mp, repo, "by-commit")
	nfLs(t, byCommit) // the listing is cached before the change

	// refreshes names a way to ask for a rescan; each step adds a revision
	// (no ref: only by-commit shows it, and nothing but a rescan can).
	steps := []struct {
		how  string
		args []string
	}{
		{"hfcachefs refresh MOUNT", []string{bin, "refresh", mp}},
		{"hfcachefs refresh MOUNT org/name", []string{bin, "refresh", mp, "acme/netfs"}},
		{"hfcachefs refresh MOUNT model/org/name", []string{bin, "refresh", mp, "model/acme/netfs"}},
		{"hfcachefs refresh MOUNT models--org--name", []string{bin, "refresh", mp, folder}},
		{"getfattr -n user.hf.refresh MOUNT", []string{"getfattr", "-n", "user.hf.refresh", mp}},
		{"getfattr -n user.hf.refresh MOUNT/models/org/name", []string{"getfattr", "-n", "user.hf.refresh", filepath.Join(mp, repo)}},
		{"setfattr -n user.hf.refresh -v FOLDER MOUNT", []string{"setfattr", "-n", "user.hf.refresh", "-v", folder, mp}},
	}
	for i, s := range steps {
		c := nfCommit(fmt.Sprintf("%s@refresh%d", folder, i))
		nfWriteRevision(t, real, folder, c)
		if contains(nfLs(t, byCommit), c) {
			t.Logf("%s: %s already listed before the refresh (something else rescanned)", s.how, c[:12])
		}
		start := time.Now()
		r := run(t, s.args[0], s.args[1:]...)
		took := time.Since(start)
		if r.code != 0 {
			t.Errorf("%s: %s", s.how, r)
			continue
		}
		if got := nfLs(t, byCommit); !contains(got, c) {
			t.Errorf("%s returned (in %v) but by-commit/ does not list the new revision %s: %q", s.how, took.Round(time.Millisecond), c[:12], got)
			continue
		}
		if got, want := string(catBytes(t, filepath.Join(byCommit, c, "config.json"))), string(nfContent(folder, c, "config.json")); got != want {
			t.Errorf("%s: by-commit/%s/config.json: %q, want %q", s.how, c[:12], got, want)
		}
		t.Logf("%s: returned in %v, the new revision listed at once", s.how, took.Round(time.Millisecond))
	}

	// A new repo, with the plain refresh.
	const newFolder = "models--acme--other"
	nc := nfRepo(t, real, newFolder)
	if r := run(t, bin, "refresh", mp); r.code != 0 {
		t.Fatalf("hfcachefs refresh MOUNT: %s", r)
	}
	if got := nfLs(t, filepath.Join(mp, "models", "acme")); !contains(got, "other") {
		t.Fatalf("after hfcachefs refresh, models/acme does not list the new repo: %q", got)
	}
	if got, want := string(catBytes(t, filepath.Join(mp, "models", "acme", "other", "by-ref", "main", "config.json"))), string(nfContent(newFolder, nc, "config.json")); got != want {
		t.Errorf("the new repo's by-ref/main/config.json: %q, want %q", got, want)
	}
	// A repo that is not in the cache is an error, not a silent success.
	if r := run(t, bin, "refresh", mp, "acme/no-such-repo"); r.code == 0 {
		t.Logf("hfcachefs refresh MOUNT acme/no-such-repo exits 0: %s", r)
	}
}

// The cache on the local disk: the mount watches it with inotify
// ("events") and follows a ref at once, with no poll.
func TestNetfsLocalDiskUsesEvents(t *testing.T) {
	needFuse(t)
	real := filepath.Join(t.TempDir(), "hub")
	var sfs syscall.Statfs_t
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Statfs(real, &sfs); err != nil {
		t.Fatal(err)
	}
	local := map[uint32]string{0xef53: "ext4", 0x58465342: "xfs", 0x9123683e: "btrfs", 0x01021994: "tmpfs", 0x794c7630: "overlayfs", 0x2fc12fc1: "zfs", 0xf2f52010: "f2fs"}
	fsName, ok := local[uint32(sfs.Type)]
	if !ok {
		skipOrFail(t, "the temp dir %s is on f_type 0x%x, not a local disk file system this test knows", real, uint32(sfs.Type))
	}
	const folder, repo = "models--acme--local", "models/acme/local"
	c1 := nfRepo(t, real, folder)
	c2 := nfCommit(folder + "@2")
	nfWriteRevision(t, real, folder, c2)
	mp, st := nfDaemon(t, real)
	nfCheckRefresh(t, st, "events", fsName, 0)
	if got, want := string(catBytes(t, filepath.Join(mp, repo, "by-ref", "main", "config.json"))), string(nfContent(folder, c1, "config.json")); got != want {
		t.Fatalf("by-ref/main/config.json before the move: %q, want %q", got, want)
	}
	// Target 0.5 s; the bound is generous for -race on 2 cores.
	const bound = 2 * time.Second
	var lat []time.Duration
	for i, c := range []string{c2, c1, c2} {
		l := nfFollow(t, real, mp, folder, repo, "main", c, bound)
		t.Logf("ref move %d on %s (events): by-ref/main showed the new bytes after %v (target 0.5 s, bound %v)", i+1, fsName, l.Round(time.Millisecond), bound)
		lat = append(lat, l)
	}
	t.Logf("ref follow on the local disk (events): median %v", nfMedian(lat).Round(time.Millisecond))

	// A new repo shows as promptly (the default poll is far slower).
	const nf = "models--acme--born"
	nfRepo(t, real, nf)
	start := time.Now()
	poll(t, bound, "a new repo shows through events", func() (bool, string) {
		got := nfLs(t, filepath.Join(mp, "models", "acme"))
		return contains(got, "born"), fmt.Sprintf("ls models/acme: %q", got)
	})
	t.Logf("new repo on %s (events): listed after %v", fsName, time.Since(start).Round(time.Millisecond))
}
