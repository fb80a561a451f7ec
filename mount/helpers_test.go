package mount

// Helpers for the mount tests (mount_test.go, resources_test.go,
// trash_test.go). The rule they enforce: the test process mounts
// (in-process with Start, or by running the built binary) but never
// touches the mount itself; every access to it is a child process (ls,
// cat, stat, du, find, getfattr, python3, bwrap...) started with its
// working directory outside the mount ("/"). What they share with the
// e2e tests (the CI rule, the binary, child processes with a hang timeout,
// daemons, mountinfo, poll) is internal/mounttest's; these are thin calls.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/mounttest"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
	"github.com/hfcachefs/hfcachefs/views"
)

// childTimeout bounds every child process: a hung FUSE server must fail
// the test, not hang the run.
const childTimeout = mounttest.ChildTimeout

// Commits of acme/tiny-model in the basic cache.
const (
	mainCommit = "eba90b51402874116c4cda2ae669ce32cc85e1c6" // main
	v1Commit   = "4a67d7bb895e9c468f402aa571ffea8548c37676" // v1.0, feature/x
	detached   = "a22712daca2fb86decd9b9c6ed06c1c90ca638fa" // no ref
)

const tinyModel = "models/acme/tiny-model"

// followDeadline is how long a change in the cache may take to show.
const followDeadline = 15 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	mounttest.RemoveBinary()
	os.Exit(code)
}

// skipOrFail skips, except under CI where a skipped mount test is a
// failure (mounttest.SkipOrFail has the rule).
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	mounttest.SkipOrFail(t, format, args...)
}

// needFuse skips (fails under CI) without a usable /dev/fuse.
func needFuse(t *testing.T) {
	t.Helper()
	mounttest.NeedFuse(t)
}

func needTool(t *testing.T, names ...string) {
	t.Helper()
	mounttest.NeedTool(t, names...)
}

func needRoot(t *testing.T, why string) {
	t.Helper()
	mounttest.NeedRoot(t, why)
}

// testLogger logs through t until the test ends, then to stderr (the
// refresher may still log while the mount is torn down).
type testLogger struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return os.Stderr.Write(p)
	}
	w.t.Logf("server: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newMountpoint makes an empty directory for a mount.
func newMountpoint(t *testing.T) string {
	t.Helper()
	mp := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	return mp
}

// startMount mounts cacheDir in-process and unmounts (lazily) at cleanup.
// The assets dir is an empty temp dir unless o sets one.
func startMount(t *testing.T, cacheDir string, o Options) (*Mount, string) {
	t.Helper()
	needFuse(t)
	mp := newMountpoint(t)
	return startMountAt(t, mp, cacheDir, o), mp
}

func startMountAt(t *testing.T, mp, cacheDir string, o Options) *Mount {
	t.Helper()
	m, _ := mountAt(t, mp, cacheDir, o)
	return m
}

// mountAt mounts cacheDir on mp in-process and registers the mount (see
// ourMounts). The function it returns unmounts (lazily if busy), once; it
// also runs at cleanup.
func mountAt(t *testing.T, mp, cacheDir string, o Options) (*Mount, func()) {
	t.Helper()
	o.CacheDir = cacheDir
	if o.AssetsDir == "" {
		o.AssetsDir = t.TempDir()
	}
	lw := &testLogger{t: t}
	m, err := Start(mp, o, log.New(lw, "", 0))
	if err != nil {
		t.Fatalf("Start(%s): %v", mp, err)
	}
	var once sync.Once
	unmount := func() {
		once.Do(func() {
			if err := m.Unmount(); err != nil {
				t.Logf("Unmount %s: %v", mp, err)
			}
			_ = syscall.Unmount(mp, syscall.MNT_DETACH)
			lw.mu.Lock()
			lw.done = true
			lw.mu.Unlock()
		})
	}
	t.Cleanup(unmount)
	registerMount(t, m.Mountpoint, 0)
	return m, unmount
}

func waitReady(t *testing.T, m *Mount) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !m.WaitReady(ctx) {
		t.Fatal("WaitReady: the first scan did not complete")
	}
}

// result is what a child process did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return mounttest.Result{Stdout: r.stdout, Stderr: r.stderr, Code: r.code}.String()
}

// run runs a child with "/" as its working directory (see runHang),
// bounded by childTimeout.
func run(t *testing.T, name string, args ...string) result {
	t.Helper()
	return runIn(t, nil, name, args...)
}

func runIn(t *testing.T, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	return runHang(t, childTimeout, stdin, name, args...)
}

// runHang runs a child in "/" with the C locale's messages (strerror
// texts in English). A child still running after hang is stuck in the
// kernel on one of our mounts (it cannot even be killed then): the test
// aborts our FUSE connections to free it and fails, saying where it was
// stuck (mounttest.Run).
func runHang(t *testing.T, hang time.Duration, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	r := mounttest.Run(t, mounttest.Options{Stdin: stdin, Hang: hang}, name, args...)
	if r.TimedOut || r.Err != nil {
		t.Fatalf("%s %q: %s", name, args, r)
	}
	return result{stdout: r.Stdout, stderr: r.Stderr, code: r.Code}
}

// registerMount adds a mount to our mounts (mounttest.RegisterMount) until
// the test ends: pid is its daemon's, 0 for in-process.
func registerMount(t *testing.T, mp string, pid int) { mounttest.RegisterMount(t, mp, pid) }

// stuckDiag describes where a stuck child and the threads of our FUSE
// servers (this process, our daemons) wait in the kernel.
func stuckDiag(child int) string { return mounttest.StuckDiag(child) }

// abortOurMounts aborts the FUSE connections of our mounts: every request
// waiting on them fails.
func abortOurMounts(t *testing.T) []string { return mounttest.AbortOurMounts(t) }

// mustRun runs a child and fails the test unless it exits 0.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	return mustRunHang(t, childTimeout, name, args...)
}

func mustRunHang(t *testing.T, hang time.Duration, name string, args ...string) string {
	t.Helper()
	return mounttest.Must(t, hang, name, args...)
}

// sh runs a shell script; extra args are $1, $2...
func sh(t *testing.T, script string, args ...string) result {
	t.Helper()
	return run(t, "sh", append([]string{"-c", script, "sh"}, args...)...)
}

// catBytes is `cat path` through a child.
func catBytes(t *testing.T, path string) []byte {
	t.Helper()
	return []byte(mustRun(t, "cat", path))
}

// lines splits output into non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// poll runs check until it reports true or the deadline passes; the last
// description is in the failure.
func poll(t *testing.T, deadline time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	mounttest.Poll(t, deadline, what, check)
}

// scan is cachecore.Scan, failing the test on error.
func scan(t *testing.T, cacheDir string) *cachecore.CacheInfo {
	t.Helper()
	info, err := cachecore.Scan(cacheDir)
	if err != nil {
		t.Fatalf("scan %s: %v", cacheDir, err)
	}
	return info
}

// scanClean is scan, and fails the test (going on) on any warning.
func scanClean(t *testing.T, cacheDir string) *cachecore.CacheInfo {
	t.Helper()
	info := scan(t, cacheDir)
	for _, w := range info.Warnings {
		t.Errorf("scan of %s warns: %v", cacheDir, w)
	}
	return info
}

// basicCache is the conformance basic cache and its scan.
func basicCache(t *testing.T) (string, *cachecore.CacheInfo) {
	t.Helper()
	dir := testcache.Basic(t)
	return dir, scan(t, dir)
}

// repoPath is a repo's folder under the mount root (ids in the fixtures
// are clean paths).
func repoPath(r *cachecore.RepoInfo) string { return r.RepoType + "s/" + r.RepoID }

func findRepo(t *testing.T, info *cachecore.CacheInfo, typ, id string) *cachecore.RepoInfo {
	t.Helper()
	r := info.Repo(typ, id)
	if r == nil {
		t.Fatalf("fixture: no %s %s in the scan", typ, id)
	}
	return r
}

func findRev(t *testing.T, r *cachecore.RepoInfo, hash string) *cachecore.RevisionInfo {
	t.Helper()
	rev := r.Revision(hash)
	if rev == nil {
		t.Fatalf("fixture: no revision %s in %s", hash, r.RepoID)
	}
	return rev
}

func findFile(t *testing.T, rev *cachecore.RevisionInfo, rel string) *cachecore.FileInfo {
	t.Helper()
	for _, f := range rev.Files {
		if f.RelPath == rel {
			return f
		}
	}
	t.Fatalf("fixture: no file %s in revision %s", rel, rev.CommitHash)
	return nil
}

func readBlob(t *testing.T, f *cachecore.FileInfo) []byte {
	t.Helper()
	b, err := os.ReadFile(f.BlobPath)
	if err != nil {
		t.Fatalf("reading the blob directly: %v", err)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// treeState records a directory tree without following symlinks: type,
// permission bits, size, link target, a hash of regular files, and owner.
// Times are left out (reads change atimes).
func treeState(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %d %s", len(b), sha(b))
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc += fmt.Sprintf(" %d:%d", st.Uid, st.Gid)
		out[strings.TrimPrefix(p, root)] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

// diffTrees lists how b differs from a, sorted.
func diffTrees(a, b map[string]string) []string {
	var diffs []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing: %s (%s)", k, v))
		} else if v != w {
			diffs = append(diffs, fmt.Sprintf("changed: %s: %s -> %s", k, v, w))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra: %s (%s)", k, v))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// copyTree copies a directory, recreating symlinks as they are (relative
// targets keep working at the same depth).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// writeAtomic writes a file as huggingface_hub does: a temp file in the
// same folder renamed over the target.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp-hfcachefs-test"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// readStatus reads .status.json through `cat`.
func readStatus(t *testing.T, mp string) (views.StatusDoc, map[string]any) {
	t.Helper()
	raw := catBytes(t, filepath.Join(mp, ".status.json"))
	var doc views.StatusDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf(".status.json is not valid JSON: %v\n%s", err, raw)
	}
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatalf(".status.json: %v", err)
	}
	return doc, generic
}

// getfattrDump parses `getfattr -d -m - --absolute-names PATH`.
func getfattrDump(t *testing.T, path string) map[string]string {
	t.Helper()
	out := mustRun(t, "getfattr", "-d", "-m", "-", "--absolute-names", path)
	attrs := map[string]string{}
	for _, l := range lines(out) {
		if strings.HasPrefix(l, "#") {
			continue
		}
		name, value, ok := strings.Cut(l, "=")
		if !ok {
			attrs[name] = ""
			continue
		}
		attrs[name] = unescapeGetfattr(t, value)
	}
	return attrs
}

// unescapeGetfattr decodes getfattr's text encoding: "quoted", with
// \ooo octal escapes and \\.
func unescapeGetfattr(t *testing.T, v string) string {
	t.Helper()
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		t.Fatalf("getfattr value not in text encoding: %q", v)
	}
	v = v[1 : len(v)-1]
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			if v[i+1] == '\\' {
				b.WriteByte('\\')
				i++
				continue
			}
			if i+3 < len(v) {
				if n, err := strconv.ParseUint(v[i+1:i+4], 8, 8); err == nil {
					b.WriteByte(byte(n))
					i += 3
					continue
				}
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// mountinfoHas reports whether path is a mountpoint per
// /proc/self/mountinfo (read here: /proc is not the mount).
func mountinfoHas(t *testing.T, path string) bool {
	t.Helper()
	ok, err := mounttest.Mounted(path)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// binary builds the hfcachefs binary once per test run.
func binary(t *testing.T) string {
	t.Helper()
	return mounttest.Binary(t)
}

// startDaemon runs `hfcachefs mount --daemon` and returns the daemon's pid
// (from its message); cleanup kills it (by pid) and unmounts lazily.
func startDaemon(t *testing.T, mp, cacheDir string, extra ...string) int {
	t.Helper()
	return mounttest.StartDaemon(t, mp, cacheDir, mounttest.DaemonOptions{Args: extra, KillAtCleanup: true}).Pid
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool { return mounttest.ProcAlive(pid) }

// killIfOurs SIGKILLs pid if it still runs our binary.
func killIfOurs(pid int) { mounttest.KillIfOurs(pid) }

// waitDead polls until pid no longer runs.
func waitDead(t *testing.T, pid int) {
	t.Helper()
	mounttest.WaitDead(t, pid)
}

// openToOthers makes a temp path and its parents traversable by others
// (t.TempDir's root is 0700).
func openToOthers(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		for d := p; d != "/" && d != "." && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
			fi, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, fi.Mode().Perm()|0o055); err != nil {
				t.Fatal(err)
			}
		}
	}
}
