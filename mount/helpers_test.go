package mount

// Helpers for the mount tests. The rule they enforce: the test process
// mounts (in-process with Start, or by running the built binary) but never
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
	o.CacheDir = cacheDir
	if o.AssetsDir == "" {
		o.AssetsDir = t.TempDir()
	}
	lw := &testLogger{t: t}
	m, err := Start(mp, o, log.New(lw, "", 0))
	if err != nil {
		t.Fatalf("Start(%s): %v", mp, err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Logf("Unmount %s: %v", mp, err)
		}
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
		lw.mu.Lock()
		lw.done = true
		lw.mu.Unlock()
	})
	return m
}

// result is what a child process did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
}

// run runs a child with "/" as its working directory.
func run(t *testing.T, name string, args ...string) result {
	t.Helper()
	return runIn(t, nil, name, args...)
}

func runIn(t *testing.T, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8")
	cmd.Stdin = stdin
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish in %v (hung mount?)\nstdout: %s\nstderr: %s", name, args, childTimeout, stdout.String(), stderr.String())
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

// mustRun runs a child and fails the test unless it exits 0.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	r := run(t, name, args...)
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
		time.Sleep(200 * time.Millisecond)
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
// permission bits, size, link target and a hash of regular files. Times
// are left out (reads change atimes).
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
		desc := fmt.Sprintf("%v", fi.Mode())
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
			desc += fmt.Sprintf(" %d %s", fi.Size(), sha(b))
		}
		out[strings.TrimPrefix(p, root)] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

func diffTrees(a, b map[string]string) []string {
	var diffs []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			diffs = append(diffs, "removed: "+k)
		} else if v != w {
			diffs = append(diffs, fmt.Sprintf("changed: %s: %s -> %s", k, v, w))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, "added: "+k)
		}
	}
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
