// Package mounttest is the harness of the real-mount tests (the tests of
// package mount and of e2e/): what they need and when a lack of it is a
// failure, the hfcachefs binary, child processes bounded by a hang
// timeout, hfcachefs daemons, and the mount table.
//
// The rule under CI: a test that lacks what it needs (/dev/fuse,
// fusermount3, root, a tool) skips, except when the environment variable
// CI is set to anything but "", "false" or "0" (as CI services set it):
// then the skip is refused and the test FAILS (SkipOrFail), so that a CI
// run that silently skipped every mount test cannot pass.
//
// The rule for the mounts: the test process mounts (in-process, or by
// running the binary) but never touches a mount itself; every access to
// a mount is a child process (Run, Start) whose working directory is "/"
// (never a mount), in its own process group, with the C locale's messages
// (strerror texts in English). A child still running after its hang
// timeout is taken to be stuck on one of our mounts (a deadlocked FUSE
// server; it may not even be killable then): its kernel stack and those
// of our FUSE servers are recorded, the FUSE connections of our mounts
// (RegisterMount) are aborted to free it, and its process group is
// killed.
//
// The package imports testing and is meant for tests only.
package mounttest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Module is the module whose root ModuleRoot finds.
const Module = "github.com/hfcachefs/hfcachefs"

// ChildTimeout is the default hang timeout of a child process: a hung
// FUSE server must fail the test, not hang the run.
const ChildTimeout = 2 * time.Minute

// UnderCI reports whether CI is set to anything but "", "false" or "0"
// (case and surrounding spaces aside): then a test that lacks what it
// needs fails instead of skipping.
func UnderCI() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("CI"))) {
	case "", "false", "0":
		return false
	}
	return true
}

// SkipOrFail skips the test, or fails it under CI (UnderCI).
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if UnderCI() {
		t.Fatalf("CI=%q: refusing to skip (a missing requirement is a failure under CI): %s", os.Getenv("CI"), msg)
	}
	t.Skip(msg)
}

// NeedFuse skips (fails under CI) without a usable /dev/fuse, or, when not
// root, without fusermount3.
func NeedFuse(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		SkipOrFail(t, "FUSE is not available (%v): mount tests need /dev/fuse", err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			SkipOrFail(t, "not root and no fusermount3: cannot mount")
		}
	}
}

// NeedTool skips (fails under CI) unless every named program is in PATH.
func NeedTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			SkipOrFail(t, "%s is not installed", n)
		}
	}
}

// NeedRoot skips (fails under CI) unless the test runs as root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root: %s", why)
	}
}

// Poll runs check until it reports true or the deadline passes; the last
// description it gave is in the failure.
func Poll(t testing.TB, deadline time.Duration, what string, check func() (bool, string)) {
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

// Clip shortens s to n bytes for a failure message.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("...(%d bytes)", len(s))
}

var (
	rootOnce sync.Once
	root     string
)

// ModuleRoot is the module's root folder: the first folder holding the
// module's go.mod, going up from the working directory (go test runs a
// test binary in its package's folder); failing that, the folder two
// levels above this file.
func ModuleRoot() string {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		for err == nil {
			if data, e := os.ReadFile(filepath.Join(dir, "go.mod")); e == nil && modulePath(data) == Module {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
		_, file, _, _ := runtime.Caller(0)
		root = filepath.Join(filepath.Dir(file), "..", "..")
	})
	return root
}

// modulePath is the module path a go.mod declares.
func modulePath(gomod []byte) string {
	for _, l := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// binPrefix names the folder of a test process's binary, followed by its
// pid.
const binPrefix = "hfcachefs-test-bin-"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds the hfcachefs binary once per test process (at most 10
// minutes), with -race when the test binary has it (the daemons are then
// checked for data races too), and returns its path. It lives in
// $TMPDIR/hfcachefs-test-bin-<pid>; RemoveBinary removes it, and folders
// left by earlier test processes that are gone are removed on the next
// build.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		removeStaleBinaries()
		dir := filepath.Join(os.TempDir(), binPrefix+strconv.Itoa(os.Getpid()))
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		// Resolved: a --daemon re-runs os.Executable(), and ourBinary
		// compares command lines with this path.
		if dir, buildErr = filepath.EvalSymlinks(dir); buildErr != nil {
			return
		}
		bin := filepath.Join(dir, "hfcachefs")
		args := []string{"build", "-o", bin}
		if RaceEnabled() {
			args = append(args, "-race")
		}
		r := Run(t, Options{Dir: ModuleRoot(), Hang: 10 * time.Minute}, "go", append(args, ".")...)
		if r.Code != 0 || r.TimedOut || r.Err != nil {
			buildErr = fmt.Errorf("go build in %s: %s", ModuleRoot(), r)
			return
		}
		binPath = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// BinaryPath is the binary Binary built, "" before.
func BinaryPath() string { return binPath }

// RemoveBinary removes the binary's folder (from a TestMain, after the
// tests).
func RemoveBinary() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

// removeStaleBinaries removes the binary folders of test processes that
// no longer run.
func removeStaleBinaries() {
	stale, _ := filepath.Glob(filepath.Join(os.TempDir(), binPrefix+"*"))
	for _, d := range stale {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), binPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(d)
		}
	}
}

// RaceEnabled reports whether the test binary was built with -race.
func RaceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return true
			}
		}
	}
	return false
}

// ourBinary reports whether pid runs bin (its argv[0]).
func ourBinary(pid int, bin string) bool {
	if pid <= 0 || bin == "" {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	return string(argv0) == bin
}
