package mounttest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/internal/mountinfo"
)

// MountEntry is one line of /proc/self/mountinfo.
type MountEntry = mountinfo.Entry

// ParseMountinfo parses mountinfo text, skipping malformed lines.
func ParseMountinfo(data string) []MountEntry { return mountinfo.Parse(data) }

// Mountinfo reads /proc/self/mountinfo (/proc is never one of our mounts).
func Mountinfo() ([]MountEntry, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return ParseMountinfo(string(data)), nil
}

// Mounted reports whether something is mounted on path, per mountinfo.
// path's parent is spelled with its symlinks resolved, as mountinfo does;
// path itself is not looked at (it may be a hung mount).
func Mounted(path string) (bool, error) {
	entries, err := Mountinfo()
	if err != nil {
		return false, err
	}
	want := map[string]bool{path: true, mountinfoPath(path): true}
	for _, e := range entries {
		if want[e.Mountpoint] {
			return true, nil
		}
	}
	return false, nil
}

// mountinfoPath is path as mountinfo spells it: absolute, its parent's
// symlinks resolved (path itself is not stat'ed).
func mountinfoPath(path string) string {
	p, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		p = filepath.Join(dir, filepath.Base(p))
	}
	return p
}

// LazyUnmount detaches whatever is mounted on mp (MNT_DETACH; not root:
// fusermount3 -u -z), if anything is.
func LazyUnmount(mp string) error {
	if ok, _ := Mounted(mp); !ok {
		return nil
	}
	err := syscall.Unmount(mp, syscall.MNT_DETACH)
	if err != nil && os.Geteuid() != 0 {
		cmd := exec.Command("fusermount3", "-u", "-z", mp)
		cmd.Dir = "/"
		if out, ferr := cmd.CombinedOutput(); ferr != nil {
			return fmt.Errorf("%v; fusermount3 -u -z: %v %s", err, ferr, out)
		}
		return nil
	}
	return err
}

// ourMounts are the mounts of the running tests (mountpoint as mountinfo
// spells it -> daemon pid, 0 for in-process or unknown), for StuckDiag and
// AbortOurMounts.
var ourMounts = struct {
	sync.Mutex
	m map[string]int
}{m: map[string]int{}}

// RegisterMount adds a mount to our mounts until the test ends: pid is
// its daemon's, 0 for a mount served by the test process (or a daemon
// not known yet).
func RegisterMount(t testing.TB, mp string, pid int) {
	mp = mountinfoPath(mp)
	ourMounts.Lock()
	ourMounts.m[mp] = pid
	ourMounts.Unlock()
	t.Cleanup(func() {
		ourMounts.Lock()
		delete(ourMounts.m, mp)
		ourMounts.Unlock()
	})
}

// StuckDiag describes where a stuck process (child) and the threads of our
// FUSE servers (this process, our daemons) in D state wait in the kernel.
func StuckDiag(child int) string {
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

// AbortOurMounts aborts the FUSE connections of our mounts (through
// fusectl, mounted if need be): every request waiting on them fails. It
// returns the mountpoints done, and logs those that could not be.
func AbortOurMounts(t testing.TB) []string {
	aborted, failures := abortOurMounts()
	for _, f := range failures {
		t.Logf("aborting a FUSE connection: %s", f)
	}
	return aborted
}

func abortOurMounts() (aborted, failures []string) {
	entries, err := Mountinfo()
	if err != nil {
		return nil, []string{err.Error()}
	}
	ourMounts.Lock()
	ours := map[string]bool{}
	for mp := range ourMounts.m {
		ours[mp] = true
	}
	ourMounts.Unlock()
	const conns = "/sys/fs/fuse/connections"
	if _, err := os.Stat(conns); err == nil {
		if l, _ := os.ReadDir(conns); len(l) == 0 {
			_ = exec.Command("mount", "-t", "fusectl", "none", conns).Run()
		}
	}
	for _, e := range entries {
		if !ours[e.Mountpoint] {
			continue
		}
		_, minor, _ := strings.Cut(e.Dev, ":")
		if err := os.WriteFile(conns+"/"+minor+"/abort", []byte("1"), 0o200); err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", e.Mountpoint, err))
			continue
		}
		aborted = append(aborted, e.Mountpoint)
	}
	return aborted, failures
}

// ProcAlive reports whether pid runs (a zombie does not).
func ProcAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i >= 0 && i+2 < len(data) && data[i+2] != 'Z'
}

// KillIfOurs SIGKILLs pid if it still runs the binary Binary built.
func KillIfOurs(pid int) {
	if ProcAlive(pid) && ourBinary(pid, binPath) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// WaitDead polls (30 s at most) until pid no longer runs.
func WaitDead(t testing.TB, pid int) {
	t.Helper()
	Poll(t, 30*time.Second, fmt.Sprintf("process %d exits", pid), func() (bool, string) {
		return !ProcAlive(pid), "still running"
	})
}

// FindDaemon finds the pid of the daemon `bin mount mp ...`, 0 if none
// runs.
func FindDaemon(bin, mp string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		data, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if len(args) >= 3 && args[0] == bin && args[1] == "mount" && args[2] == mp {
			pid, _ := strconv.Atoi(filepath.Base(d))
			if ProcAlive(pid) {
				return pid
			}
		}
	}
	return 0
}
