package mount

// Helpers for the mount tests (mount_test.go, resources_test.go,
// trash_test.go). The rule they enforce: the test process mounts
// (in-process with Start, or by running the built binary) but never
// touches the mount itself; every access to it is a child process (ls,
// cat, stat, du, find, getfattr, python3, bwrap...) started with its
// working directory outside the mount ("/").

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
	"github.com/hfcachefs/hfcachefs/views"
)

// childTimeout bounds every child process: a hung FUSE server must fail
// the test, not hang the run.
const childTimeout = 2 * time.Minute

// Commits of acme/tiny-model in the basic cache.
const (
	mainCommit = "eba90b51402874116c4cda2ae669ce32cc85e1c6" // main
	v1Commit   = "4a67d7bb895e9c468f402aa571ffea8548c37676" // v1.0, feature/x
	detached   = "a22712daca2fb86decd9b9c6ed06c1c90ca638fa" // no ref
)

const tinyModel = "models/acme/tiny-model"

// followDeadline is how long a change in the cache may take to show.
const followDeadline = 15 * time.Second

var binDir string // holds the built binary; removed by TestMain

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// skipOrFail skips, except under CI=true where a skipped mount test is a
// failure.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, refusing to skip: %s", msg)
	}
	t.Skip(msg)
}

// needFuse skips (fails under CI) without a usable /dev/fuse.
func needFuse(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		skipOrFail(t, "FUSE is not available (%v): mount tests need /dev/fuse", err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			skipOrFail(t, "not root and no fusermount3: cannot mount")
		}
	}
}

func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			skipOrFail(t, "%s is not installed", n)
		}
	}
}

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: %s", why)
	}
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
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
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
// stuck.
func runHang(t *testing.T, hang time.Duration, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8", "LANGUAGE=")
	cmd.Stdin = stdin
	cmd.WaitDelay = 5 * time.Second // a grandchild keeping stdout open does not hold Wait up
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s %q: %v", name, args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(hang):
		diag := stuckDiag(cmd.Process.Pid)
		aborted := abortOurMounts(t)
		_ = cmd.Process.Kill() // our own child, by pid
		output := "(the child still runs)"
		select {
		case <-done:
			output = fmt.Sprintf("stdout: %s\nstderr: %s", stdout.String(), stderr.String())
		case <-time.After(30 * time.Second):
		}
		t.Fatalf("%s %q hung for %v (deadlocked mount?); aborted FUSE connections %v to free it.\n%s\n%s", name, args, hang, aborted, output, diag)
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s %q: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// ourMounts are the mounts of the running tests (mountpoint -> daemon
// pid, 0 for in-process), for stuckDiag and abortOurMounts.
var ourMounts = struct {
	sync.Mutex
	m map[string]int
}{m: map[string]int{}}

// registerMount adds a mount to ourMounts until the test ends; mp is as
// /proc/self/mountinfo shows it.
func registerMount(t *testing.T, mp string, pid int) {
	ourMounts.Lock()
	ourMounts.m[mp] = pid
	ourMounts.Unlock()
	t.Cleanup(func() {
		ourMounts.Lock()
		delete(ourMounts.m, mp)
		ourMounts.Unlock()
	})
}

// stuckDiag describes where a stuck child and the threads of our FUSE
// servers (this process, our daemons) wait in the kernel.
func stuckDiag(child int) string {
	var b strings.Builder
	stack, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stack", child))
	fmt.Fprintf(&b, "the child's kernel stack:\n%s", stack)
	pids := []int{os.Getpid()}
	ourMounts.Lock()
	for _, pid := range ourMounts.m {
		if pid != 0 {
			pids = append(pids, pid)
		}
	}
	ourMounts.Unlock()
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
		for _, task := range tasks {
			stat, _ := os.ReadFile(task + "/stat")
			if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] != 'D' {
				continue
			}
			stack, _ := os.ReadFile(task + "/stack")
			fmt.Fprintf(&b, "server thread %s in D state:\n%s", task, stack)
		}
	}
	return b.String()
}

// abortOurMounts aborts the FUSE connections of our mounts (through
// fusectl, mounted if need be): every request waiting on them fails.
func abortOurMounts(t *testing.T) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	ourMounts.Lock()
	ours := map[string]bool{}
	for mp := range ourMounts.m {
		ours[mp] = true
	}
	ourMounts.Unlock()
	if _, err := os.Stat("/sys/fs/fuse/connections/"); err == nil {
		if l, _ := os.ReadDir("/sys/fs/fuse/connections"); len(l) == 0 {
			_ = exec.Command("mount", "-t", "fusectl", "none", "/sys/fs/fuse/connections").Run()
		}
	}
	var aborted []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || !ours[f[4]] {
			continue
		}
		_, minor, _ := strings.Cut(f[2], ":")
		if err := os.WriteFile("/sys/fs/fuse/connections/"+minor+"/abort", []byte("1"), 0o200); err != nil {
			t.Logf("aborting the FUSE connection of %s: %v", f[4], err)
			continue
		}
		aborted = append(aborted, f[4])
	}
	return aborted
}

// mustRun runs a child and fails the test unless it exits 0.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	return mustRunHang(t, childTimeout, name, args...)
}

func mustRunHang(t *testing.T, hang time.Duration, name string, args ...string) string {
	t.Helper()
	r := runHang(t, hang, nil, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %q: %s", name, args, r)
	}
	return r.stdout
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
	end := time.Now().Add(deadline)
	for {
		ok, desc := check()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: still not so after %v; last: %s", what, deadline, desc)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	octal := regexp.MustCompile(`\\[0-7]{3}`)
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		mp := octal.ReplaceAllStringFunc(f[4], func(s string) string {
			n, _ := strconv.ParseUint(s[1:], 8, 8)
			return string([]byte{byte(n)})
		})
		if mp == path {
			return true
		}
	}
	return false
}

// binary builds the hfcachefs binary once per test run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hfcachefs-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		binPath = filepath.Join(dir, "hfcachefs")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = testcache.Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

var daemonPidRE = regexp.MustCompile(`daemon pid (\d+)`)

// startDaemon runs `hfcachefs mount --daemon` and returns the daemon's pid
// (from its message); cleanup kills it (by pid) and unmounts lazily.
func startDaemon(t *testing.T, mp, cacheDir string, extra ...string) int {
	t.Helper()
	args := append([]string{"mount", mp, "--cache-dir", cacheDir, "--daemon"}, extra...)
	r := run(t, binary(t), args...)
	if r.code != 0 {
		t.Fatalf("hfcachefs %q: %s", args, r)
	}
	m := daemonPidRE.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no daemon pid in %q", r.stderr)
	}
	pid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() {
		killIfOurs(pid)
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	})
	registerMount(t, mp, pid)
	return pid
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// killIfOurs SIGKILLs pid if it still runs our binary.
func killIfOurs(pid int) {
	if !alive(pid) {
		return
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if binPath != "" && bytes.HasPrefix(cmdline, []byte(binPath)) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// waitDead polls until pid no longer runs.
func waitDead(t *testing.T, pid int) {
	t.Helper()
	poll(t, 30*time.Second, fmt.Sprintf("process %d exits", pid), func() (bool, string) {
		return !alive(pid), "still running"
	})
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
