package mount_test

// Helpers for the .trash tests (external test package: nothing here can
// clash with package mount's own test helpers). The rule: the test process
// mounts (in-process with mount.Start, or by running the built binary) and
// reads or writes the cache folder directly, but never touches the mount;
// every access to the mount is a child process started in "/".

import (
	"bufio"
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
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
	"github.com/hfcachefs/hfcachefs/mount"
	"github.com/hfcachefs/hfcachefs/trash"
)

// Revisions of the conformance basic cache.
const (
	trC1     = "4a67d7bb895e9c468f402aa571ffea8548c37676" // acme/tiny-model: refs v1.0, feature/x (delete_c1)
	trEba9   = "eba90b51402874116c4cda2ae669ce32cc85e1c6" // acme/tiny-model: ref main
	trA227   = "a22712daca2fb86decd9b9c6ed06c1c90ca638fa" // acme/tiny-model: no ref
	trGpt2   = "f584eba0dcc94d97dd2cc48e48a591be55492603" // gpt2's only revision
	trTiny   = "models/acme/tiny-model"                   // its folder in the mount
	trTinyFS = "models--acme--tiny-model"                 // and in the cache
)

// trChildTimeout bounds every child: a hung FUSE server fails the test.
const trChildTimeout = 2 * time.Minute

// trDeadline bounds every poll.
const trDeadline = 20 * time.Second

func trSkipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, refusing to skip: %s", msg)
	}
	t.Skip(msg)
}

func trNeedFuse(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		trSkipOrFail(t, "FUSE is not available (%v): .trash tests need /dev/fuse", err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			trSkipOrFail(t, "not root and no fusermount3: cannot mount")
		}
	}
}

func trNeedTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			trSkipOrFail(t, "%s is not installed", n)
		}
	}
}

func trNeedRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		trSkipOrFail(t, "needs root: %s", why)
	}
}

// trState points XDG_STATE_HOME at a fresh folder for this test (once),
// so that receipts never leak between tests, and returns it.
var trStates sync.Map // test name -> state dir

func trState(t *testing.T) string {
	t.Helper()
	if v, ok := trStates.Load(t.Name()); ok && os.Getenv("XDG_STATE_HOME") == v.(string) {
		return v.(string)
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_STATE_HOME", dir)
	trStates.Store(t.Name(), dir)
	t.Cleanup(func() { trStates.Delete(t.Name()) })
	return dir
}

// trCache materializes the basic conformance cache. testcache.Basic puts
// it at <fresh temp dir>/hub, so the hold area beside it is the test's own.
func trCache(t *testing.T) string {
	t.Helper()
	return testcache.Basic(t)
}

// trLogger logs through t until the mount is torn down, then to stderr.
type trLogger struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *trLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return os.Stderr.Write(p)
	}
	w.t.Logf("server: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// trMount is an in-process mount.
type trMount struct {
	t    *testing.T
	m    *mount.Mount
	mp   string
	lw   *trLogger
	once sync.Once
}

// Unmount unmounts (lazily if busy), once.
func (tm *trMount) Unmount() {
	tm.once.Do(func() {
		if err := tm.m.Unmount(); err != nil {
			tm.t.Logf("Unmount %s: %v", tm.mp, err)
		}
		_ = syscall.Unmount(tm.mp, syscall.MNT_DETACH)
		tm.lw.mu.Lock()
		tm.lw.done = true
		tm.lw.mu.Unlock()
	})
}

func trMountpoint(t *testing.T) string {
	t.Helper()
	mp := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	return mp
}

// trStart mounts cacheDir on a new mountpoint (XDG_STATE_HOME set first)
// and waits for the first full scan.
func trStart(t *testing.T, cacheDir string, o mount.Options) *trMount {
	t.Helper()
	return trStartAt(t, trMountpoint(t), cacheDir, o)
}

func trStartAt(t *testing.T, mp, cacheDir string, o mount.Options) *trMount {
	t.Helper()
	trNeedFuse(t)
	trState(t)
	o.CacheDir = cacheDir
	if o.PollInterval == 0 {
		// No refresher ticks unless a test needs one: a tick during a
		// .trash rename can deadlock the mount (see
		// TestTrashSlowDeletionWithRefresher), which would make the other
		// tests flaky for a reason they do not test.
		o.PollInterval = time.Hour
	}
	if o.AssetsDir == "" {
		o.AssetsDir = t.TempDir()
	}
	lw := &trLogger{t: t}
	m, err := mount.Start(mp, o, log.New(lw, "", 0))
	if err != nil {
		t.Fatalf("mount.Start(%s): %v", mp, err)
	}
	tm := &trMount{t: t, m: m, mp: m.Mountpoint, lw: lw}
	t.Cleanup(tm.Unmount)
	trRegister(t, tm.mp, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !m.WaitReady(ctx) {
		t.Fatalf("the mount's first scan did not finish")
	}
	return tm
}

// P is a path in the mount.
func (tm *trMount) P(parts ...string) string {
	return filepath.Join(append([]string{tm.mp}, parts...)...)
}

// Rev is a revision's by-commit folder in the mount.
func (tm *trMount) Rev(repo, hash string) string { return tm.P(repo, "by-commit", hash) }

// trResult is what a child process did.
type trResult struct {
	stdout, stderr string
	code           int
}

func (r trResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// trHang is how long a child may take before the test calls it hung (a
// deadlocked FUSE server): mount operations take milliseconds.
const trHang = 60 * time.Second

// trRun runs a child in "/" with the C locale's messages (strerror texts
// in English). A child still running after trHang is stuck in the kernel
// on one of our mounts (it cannot even be killed then): the test aborts
// our FUSE connections to free it and fails, saying where it was stuck.
func trRun(t *testing.T, name string, args ...string) trResult {
	t.Helper()
	return trRunHang(t, trHang, name, args...)
}

func trRunHang(t *testing.T, hang time.Duration, name string, args ...string) trResult {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8", "LANGUAGE=")
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
		diag := trStuck(cmd.Process.Pid)
		aborted := trAbortOurMounts(t)
		_ = cmd.Process.Kill() // our own child, by pid
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		t.Fatalf("%s %q hung for %v (deadlocked mount?); aborted FUSE connections %v to free it.\n%s", name, args, hang, aborted, diag)
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s %q: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return trResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// Our mounts (mountpoint -> daemon pid, 0 for in-process), for trStuck
// and trAbortOurMounts.
var trOurs = struct {
	sync.Mutex
	m map[string]int
}{m: map[string]int{}}

func trRegister(t *testing.T, mp string, pid int) {
	trOurs.Lock()
	trOurs.m[mp] = pid
	trOurs.Unlock()
	t.Cleanup(func() {
		trOurs.Lock()
		delete(trOurs.m, mp)
		trOurs.Unlock()
	})
}

// trStuck describes where a stuck child and the threads of our FUSE
// servers (this process, our daemons) wait in the kernel.
func trStuck(child int) string {
	var b strings.Builder
	stack, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stack", child))
	fmt.Fprintf(&b, "the child's kernel stack:\n%s", stack)
	pids := []int{os.Getpid()}
	trOurs.Lock()
	for _, pid := range trOurs.m {
		if pid != 0 {
			pids = append(pids, pid)
		}
	}
	trOurs.Unlock()
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

// trAbortOurMounts aborts the FUSE connections of our mounts (through
// fusectl, mounted if need be): every request waiting on them fails.
func trAbortOurMounts(t *testing.T) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	trOurs.Lock()
	ours := map[string]bool{}
	for mp := range trOurs.m {
		ours[mp] = true
	}
	trOurs.Unlock()
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

func trMust(t *testing.T, name string, args ...string) string {
	t.Helper()
	r := trRun(t, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %q: %s", name, args, r)
	}
	return r.stdout
}

// trLs is `ls -A DIR`, one name a line.
func trLs(t *testing.T, dir string) []string {
	t.Helper()
	return trLines(trMust(t, "ls", "-A1", dir))
}

func trLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func trHas(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// trXattr is one extended attribute's value, by getfattr.
func trXattr(t *testing.T, path, name string) string {
	t.Helper()
	return trMust(t, "getfattr", "--only-values", "--absolute-names", "-n", name, path)
}

// trPoll runs check until it says true or the deadline passes.
func trPoll(t *testing.T, deadline time.Duration, what string, check func() (bool, string)) {
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

// trLayout is a cache's layout as the goldens record it: relative path ->
// "dir", "file" or "symlink -> target"; .locks/ is left out.
func trLayout(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+"/"))
		if rel == ".locks" {
			return filepath.SkipDir
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "symlink -> " + target
		case d.IsDir():
			out[rel] = "dir"
		default:
			out[rel] = "file"
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

// trGoldenLayout reads a layout.json as trLayout records one.
func trGoldenLayout(t *testing.T, path, cacheDir string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var l testcache.Layout
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]string{}
	for _, e := range l.Entries {
		if e.Path == ".locks" || strings.HasPrefix(e.Path, ".locks/") {
			continue
		}
		switch e.Type {
		case "symlink":
			target := e.Target
			if strings.HasPrefix(target, "{CACHE_DIR}") {
				target = cacheDir + strings.TrimPrefix(target, "{CACHE_DIR}")
			}
			out[e.Path] = "symlink -> " + target
		case "dir", "file":
			out[e.Path] = e.Type
		default:
			t.Fatalf("%s: unknown entry type %q", path, e.Type)
		}
	}
	return out
}

// trTree records a whole cache (with .locks/) byte for byte: type, mode,
// size, link target, content hash. Times are left out.
func trTree(t *testing.T, root string) map[string]string {
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
			desc += fmt.Sprintf(" %d %s", len(b), trSha(b))
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

// trDiff lists how b differs from a, sorted.
func trDiff(a, b map[string]string) []string {
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

func trSameTree(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	if d := trDiff(want, got); len(d) > 0 {
		t.Errorf("%s: the cache differs (%d):\n  %s", what, len(d), strings.Join(d, "\n  "))
	}
}

func trSha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// trScanClean scans the cache and fails on any warning.
func trScanClean(t *testing.T, cacheDir string) *cachecore.CacheInfo {
	t.Helper()
	info, err := cachecore.Scan(cacheDir)
	if err != nil {
		t.Fatalf("scan %s: %v", cacheDir, err)
	}
	for _, w := range info.Warnings {
		t.Errorf("scan of %s warns: %v", cacheDir, w)
	}
	return info
}

// trReceipt reads .trash/NAME/receipt.json through cat. It polls: right
// after the rename the kernel still binds .trash/NAME to the moved
// revision's inode until the mount's asynchronous invalidation lands (a
// bug of its own, checked by TestTrashNewNameIsTheReceiptAtOnce); the
// other tests are not about that.
func trReceipt(t *testing.T, tm *trMount, name string) trash.Receipt {
	t.Helper()
	path := tm.P(".trash", name, "receipt.json")
	var raw string
	trPoll(t, trDeadline, "cat "+path, func() (bool, string) {
		r := trRun(t, "cat", path)
		raw = r.stdout
		return r.code == 0, r.String()
	})
	var r trash.Receipt
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatalf("receipt %s is not JSON: %v\n%s", name, err, raw)
	}
	return r
}

// trStore opens the receipts of a cache (the current XDG_STATE_HOME) to
// read them without a mount.
func trStore(t *testing.T, cacheDir string) *trash.Store {
	t.Helper()
	s, err := trash.Open(cacheDir, 0, cachecore.OSEnv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// trRel makes the receipt's absolute paths relative to its cache.
func trRel(t *testing.T, cacheDir string, paths []string) []string {
	t.Helper()
	out := []string{}
	for _, p := range paths {
		rel, err := filepath.Rel(cacheDir, p)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("receipt path %s is not in the cache %s", p, cacheDir)
			continue
		}
		out = append(out, filepath.ToSlash(rel))
	}
	sort.Strings(out)
	return out
}

func trEqual(a, b []string) bool {
	a, b = append([]string{}, a...), append([]string{}, b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, "\n") == strings.Join(b, "\n") && len(a) == len(b)
}

// trExists reports whether a path (not followed) exists, outside the mount.
func trExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// trHoldRoot is where a held cache's holds go: beside the cache folder.
func trHoldParent(cacheDir string) string {
	return filepath.Join(filepath.Dir(cacheDir), ".hfcachefs-hold-"+filepath.Base(cacheDir))
}

// trBinary builds the hfcachefs binary into the test's temp dir (the
// build cache makes this cheap after the first time).
func trBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hfcachefs")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = testcache.Root()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// trChild is a long-running child process whose stdout (or stderr) lines
// arrive on a channel.
type trChild struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	err   error
	out   bytes.Buffer // every line, for failure messages
	mu    sync.Mutex
}

// trSpawn starts a child in "/"; lines of the chosen stream (stderr when
// fromStderr) go to the channel, the other stream to the test log.
func trSpawn(t *testing.T, env []string, fromStderr bool, name string, args ...string) *trChild {
	t.Helper()
	c := &trChild{lines: make(chan string, 1024), done: make(chan struct{})}
	c.cmd = exec.Command(name, args...)
	c.cmd.Dir = "/"
	c.cmd.Env = append(append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8"), env...)
	var pipe io.ReadCloser
	var err error
	if fromStderr {
		pipe, err = c.cmd.StderrPipe()
		c.cmd.Stdout = io.Discard
	} else {
		pipe, err = c.cmd.StdoutPipe()
		c.cmd.Stderr = trLockedWriter{c}
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			c.mu.Lock()
			c.out.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		c.err = c.cmd.Wait()
		close(c.lines)
		close(c.done)
	}()
	pid := c.cmd.Process.Pid
	t.Cleanup(func() {
		select {
		case <-c.done:
			return
		default:
		}
		_ = syscall.Kill(pid, syscall.SIGKILL) // our own child, by pid
		select {
		case <-c.done:
			return
		case <-time.After(30 * time.Second):
		}
		t.Errorf("%v does not die after SIGKILL (stuck in the kernel); aborted %v\n%s", c.cmd.Args, trAbortOurMounts(t), trStuck(pid))
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			t.Errorf("%v still runs after its FUSE connection was aborted", c.cmd.Args)
		}
	})
	return c
}

// trLockedWriter appends to a child's output under its lock.
type trLockedWriter struct{ c *trChild }

func (w trLockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.out.Write(p)
}

// Output is everything the child printed so far.
func (c *trChild) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// WaitLine waits for a line containing substr.
func (c *trChild) WaitLine(t *testing.T, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("child exited (%v) before printing %q:\n%s", c.err, substr, c.Output())
			}
			if strings.Contains(l, substr) {
				return l
			}
		case <-deadline:
			t.Fatalf("no line with %q after %v:\n%s", substr, timeout, c.Output())
		}
	}
}

// Wait waits for the child to exit and returns its exit code.
func (c *trChild) Wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		diag := trStuck(c.cmd.Process.Pid)
		t.Fatalf("child %v still runs after %v (aborted FUSE connections %v):\n%s\n%s", c.cmd.Args, timeout, trAbortOurMounts(t), diag, c.Output())
	}
	if c.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("child %v: %v", c.cmd.Args, c.err)
	return -1
}

// trGoldens is testdata/conformance/goldens/basic.
func trGoldens() string { return filepath.Join(testcache.Conformance(), "goldens", "basic") }

// trPlanDoc is one delete plan of the goldens (relative paths).
type trPlanDoc struct {
	Blobs             []string `json:"blobs"`
	Refs              []string `json:"refs"`
	Repos             []string `json:"repos"`
	Snapshots         []string `json:"snapshots"`
	NotFound          []string `json:"not_found"`
	ExpectedFreedSize int64    `json:"expected_freed_size"`
}

func trReadJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// trMountPath is where a cache repo folder (models--acme--tiny-model)
// shows in the mount (models/acme/tiny-model).
func trMountPath(folder string) string {
	typ, rest, _ := strings.Cut(folder, "--")
	return typ + "/" + strings.ReplaceAll(rest, "--", "/")
}

// trMinus is a layout without the given paths and everything under them.
func trMinus(layout map[string]string, gone ...[]string) map[string]string {
	out := map[string]string{}
next:
	for p, v := range layout {
		for _, l := range gone {
			for _, g := range l {
				if p == g || strings.HasPrefix(p, g+"/") {
					continue next
				}
			}
		}
		out[p] = v
	}
	return out
}
