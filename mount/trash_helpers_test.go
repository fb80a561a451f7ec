package mount

// Helpers for the .trash tests, on top of helpers_test.go (same rule: the
// test process mounts, in-process with Start or by running the built
// binary, and reads or writes the cache folder directly, but never touches
// the mount; every access to the mount is a child process started in "/").

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/mounttest"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
	"github.com/hfcachefs/hfcachefs/trash"
)

// More of the basic cache. helpers_test.go has acme/tiny-model's commits
// (v1Commit is the revision the goldens' delete_c1 deletes) and its folder
// in the mount, tinyModel.
const (
	trGpt2   = "f584eba0dcc94d97dd2cc48e48a591be55492603" // gpt2's only revision
	trTinyFS = "models--acme--tiny-model"                 // tinyModel's folder in the cache
)

// trDeadline bounds every poll.
const trDeadline = 20 * time.Second

// trHang is how long a child of the .trash tests may take before the test
// calls it hung (a deadlocked FUSE server): mount operations take
// milliseconds.
const trHang = 60 * time.Second

// trRun and trMust are run and mustRun bounded by trHang.
func trRun(t *testing.T, name string, args ...string) result {
	t.Helper()
	return runHang(t, trHang, nil, name, args...)
}

func trMust(t *testing.T, name string, args ...string) string {
	t.Helper()
	return mustRunHang(t, trHang, name, args...)
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

// trMount is an in-process mount.
type trMount struct {
	mp      string
	unmount func()
}

// Unmount unmounts (lazily if busy), once.
func (tm *trMount) Unmount() { tm.unmount() }

// trStart mounts cacheDir on a new mountpoint (XDG_STATE_HOME set first)
// and waits for the first full scan.
func trStart(t *testing.T, cacheDir string, o Options) *trMount {
	t.Helper()
	return trStartAt(t, newMountpoint(t), cacheDir, o)
}

func trStartAt(t *testing.T, mp, cacheDir string, o Options) *trMount {
	t.Helper()
	needFuse(t)
	trState(t)
	if o.PollInterval == 0 {
		// No refresher ticks unless a test needs one: a tick during a
		// .trash rename can deadlock the mount (see
		// TestTrashSlowDeletionWithRefresher), which would make the other
		// tests flaky for a reason they do not test.
		o.PollInterval = time.Hour
	}
	m, unmount := mountAt(t, mp, cacheDir, o)
	waitReady(t, m)
	return &trMount{mp: m.Mountpoint, unmount: unmount}
}

// P is a path in the mount.
func (tm *trMount) P(parts ...string) string {
	return filepath.Join(append([]string{tm.mp}, parts...)...)
}

// Rev is a revision's by-commit folder in the mount.
func (tm *trMount) Rev(repo, hash string) string { return tm.P(repo, "by-commit", hash) }

// trLs is `ls -A DIR`, one name a line.
func trLs(t *testing.T, dir string) []string {
	t.Helper()
	return lines(trMust(t, "ls", "-A1", dir))
}

// trXattr is one extended attribute's value, by getfattr.
func trXattr(t *testing.T, path, name string) string {
	t.Helper()
	return trMust(t, "getfattr", "--only-values", "--absolute-names", "-n", name, path)
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
	var l testcache.Layout
	trReadJSON(t, path, &l)
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

func trSameTree(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	if d := diffTrees(want, got); len(d) > 0 {
		t.Errorf("%s: the cache differs (%d):\n  %s", what, len(d), strings.Join(d, "\n  "))
	}
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
	poll(t, trDeadline, "cat "+path, func() (bool, string) {
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

// trHoldParent is where a held cache's holds go: beside the cache folder
// (testcache.Basic puts a cache at <fresh temp dir>/hub, so the hold area
// beside it is the test's own).
func trHoldParent(cacheDir string) string {
	return filepath.Join(filepath.Dir(cacheDir), ".hfcachefs-hold-"+filepath.Base(cacheDir))
}

// trChild is a long-running child process (mounttest.Child: Output,
// WaitLine, Wait) whose stdout (or stderr) lines WaitLine reads.
type trChild struct {
	*mounttest.Child
	cmd *exec.Cmd
}

// trSpawn starts a child in "/"; lines of the chosen stream (stderr when
// fromStderr) go to WaitLine. It runs until it exits or the test ends.
func trSpawn(t *testing.T, env []string, fromStderr bool, name string, args ...string) *trChild {
	t.Helper()
	lines := mounttest.Stdout
	if fromStderr {
		lines = mounttest.Stderr
	}
	c := mounttest.Start(t, mounttest.Options{Env: env, Hang: mounttest.NoHang, Lines: lines}, name, args...)
	if c.Pid() == 0 {
		t.Fatalf("start %s: %s", name, c.Result())
	}
	return &trChild{Child: c, cmd: c.Cmd}
}

// trSlowDaemon runs `hfcachefs mount` on mp in the foreground (each step
// of a .trash deletion delayed by 300ms and announced on stderr, "step: ")
// and waits until it has mounted. Cleanup kills it and unmounts lazily.
func trSlowDaemon(t *testing.T, mp, cache, pollInterval string) *trChild {
	t.Helper()
	d := mounttest.StartDaemon(t, mp, cache, mounttest.DaemonOptions{
		Args:          []string{"--assets-dir", t.TempDir(), "--poll-interval", pollInterval},
		Env:           []string{"HFCACHEFS_TEST_DELETE_STEP_DELAY=300ms"},
		Foreground:    true,
		KillAtCleanup: true,
	})
	return &trChild{Child: d.Child, cmd: d.Child.Cmd}
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

// trWaitTrashIdle waits until the mount's .status.json shows no deletion
// running in the background (a .trash move answers once the revision is
// out of the cache; its blobs may still be going).
func trWaitTrashIdle(t *testing.T, mp string) {
	t.Helper()
	poll(t, trDeadline, "the background deletions end", func() (bool, string) {
		doc, _ := readStatus(t, mp)
		return len(doc.Mount.Trash.Running) == 0, fmt.Sprintf("running: %+v", doc.Mount.Trash.Running)
	})
}
