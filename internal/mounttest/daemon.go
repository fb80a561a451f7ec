package mounttest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DaemonOptions says how StartDaemon runs `hfcachefs mount`.
type DaemonOptions struct {
	Args []string // more arguments, after `mount MP --cache-dir CACHE`
	Env  []string // added to the daemon's environment

	// Foreground runs `hfcachefs mount` as our child (Daemon.Child: its
	// output kept, the lines of its stderr for WaitLine) instead of
	// `--daemon`.
	Foreground bool

	// KillAtCleanup makes the test's cleanup Kill the daemon instead of
	// Stop it.
	KillAtCleanup bool
}

// Daemon is a mount served by a separate hfcachefs process.
type Daemon struct {
	Bin, MP, Cache string
	Pid            int
	Child          *Child // the foreground daemon; nil for --daemon

	once sync.Once
}

var daemonPidRE = regexp.MustCompile(`daemon pid (\d+)`)

// StartDaemon mounts cache on mp with the binary (Binary) and returns
// once the mount is ready: `--daemon` has returned, or the foreground
// daemon has said "mounted on". The mount is ours (RegisterMount) until
// the test ends; cleanup then stops the daemon (Stop, or Kill) and
// detaches whatever is still mounted on mp.
func StartDaemon(t testing.TB, mp, cache string, o DaemonOptions) *Daemon {
	t.Helper()
	d := &Daemon{Bin: Binary(t), MP: mp, Cache: cache}
	args := append([]string{"mount", mp, "--cache-dir", cache}, o.Args...)
	cleanup := func() {
		if o.KillAtCleanup {
			d.Kill(t)
		} else {
			d.Stop(t)
		}
	}
	if o.Foreground {
		d.Child = Start(t, Options{Env: o.Env, Hang: NoHang, Lines: Stderr}, d.Bin, args...)
		d.Pid = d.Child.Pid()
		if d.Pid == 0 {
			t.Fatalf("hfcachefs %q: %s", args, d.Child.Result())
		}
		RegisterMount(t, mp, d.Pid)
		t.Cleanup(cleanup)
		d.Child.WaitLine(t, "mounted on", ChildTimeout)
		return d
	}
	args = append(args, "--daemon")
	r := Run(t, Options{Env: o.Env}, d.Bin, args...)
	if m := daemonPidRE.FindStringSubmatch(r.Stderr); m != nil {
		d.Pid, _ = strconv.Atoi(m[1])
	} else {
		d.Pid = FindDaemon(d.Bin, mp)
	}
	RegisterMount(t, mp, d.Pid)
	t.Cleanup(cleanup)
	if r.Code != 0 || r.TimedOut || r.Err != nil {
		t.Fatalf("hfcachefs %q: %s", args, r)
	}
	if d.Pid == 0 {
		t.Fatalf("hfcachefs %q: no daemon pid in its message, nor a daemon running: %s", args, r)
	}
	if ok, err := Mounted(mp); !ok {
		t.Fatalf("hfcachefs %q returned, but %s is not in /proc/self/mountinfo (%v)", args, mp, err)
	}
	return d
}

// Alive reports whether the daemon still runs; when it does not, why.
func (d *Daemon) Alive() (bool, string) {
	if d.Child != nil {
		select {
		case <-d.Child.Done():
			return false, fmt.Sprintf("the daemon exited (%s); its output:\n%s", d.Child.Result(), Clip(d.Child.Output(), 4000))
		default:
			return true, ""
		}
	}
	if d.running() {
		return true, ""
	}
	return false, fmt.Sprintf("the daemon (pid %d) no longer runs", d.Pid)
}

// running reports whether the daemon process still runs.
func (d *Daemon) running() bool {
	if d.Child != nil {
		return !d.Child.exited()
	}
	return ProcAlive(d.Pid) && ourBinary(d.Pid, d.Bin)
}

// waitExit waits at most timeout for the daemon to exit.
func (d *Daemon) waitExit(timeout time.Duration) bool {
	if d.Child != nil {
		select {
		case <-d.Child.Done():
			return true
		case <-time.After(timeout):
			return false
		}
	}
	for end := time.Now().Add(timeout); d.running(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			return false
		}
	}
	return true
}

// signal sends sig to the daemon, by pid, if it still runs (our binary).
func (d *Daemon) signal(sig syscall.Signal) {
	if d.running() {
		_ = syscall.Kill(d.Pid, sig)
	}
}

// Stop stops the daemon cleanly, once: `hfcachefs unmount MP` (the daemon
// must then exit within 10 s), else SIGTERM, then SIGKILL; then a lazy
// unmount of whatever is left on MP.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	d.once.Do(func() {
		unmounted := false
		if ok, _ := Mounted(d.MP); ok {
			r := Run(t, Options{Hang: 30 * time.Second}, d.Bin, "unmount", d.MP)
			if r.Code != 0 || r.TimedOut || r.Err != nil {
				t.Logf("hfcachefs unmount %s: %s", d.MP, r)
			} else {
				unmounted = true
			}
		}
		if !d.waitExit(10 * time.Second) {
			if unmounted {
				t.Errorf("the daemon (pid %d) did not exit within 10 s of hfcachefs unmount %s; sending SIGTERM", d.Pid, d.MP)
			}
			d.signal(syscall.SIGTERM)
			if !d.waitExit(10 * time.Second) {
				d.signal(syscall.SIGKILL)
			}
		}
		if err := LazyUnmount(d.MP); err != nil {
			t.Logf("lazy unmount of %s: %v", d.MP, err)
		}
		if !d.waitExit(10 * time.Second) {
			t.Logf("the daemon (pid %d) for %s did not exit", d.Pid, d.MP)
		}
		d.report(t)
	})
}

// Kill ends the daemon at once, once: SIGKILL (a daemon that does not die
// is stuck in the kernel: our FUSE connections are aborted to free it, and
// the test fails), then a lazy unmount of whatever is left on MP.
func (d *Daemon) Kill(t testing.TB) {
	t.Helper()
	d.once.Do(func() {
		d.signal(syscall.SIGKILL)
		if !d.waitExit(30 * time.Second) {
			diag := StuckDiag(d.Pid)
			t.Errorf("the daemon (pid %d) does not die after SIGKILL (stuck in the kernel); aborted FUSE connections %v\n%s", d.Pid, AbortOurMounts(t), diag)
			if !d.waitExit(30 * time.Second) {
				t.Errorf("the daemon (pid %d) still runs after its FUSE connection was aborted", d.Pid)
			}
		}
		if err := LazyUnmount(d.MP); err != nil {
			t.Logf("lazy unmount of %s: %v", d.MP, err)
		}
		d.report(t)
	})
}

// report fails the test on a data race the (foreground, -race) daemon
// reported, and logs its output when the test failed.
func (d *Daemon) report(t testing.TB) {
	if d.Child == nil {
		return
	}
	out := d.Child.Output()
	if strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("the daemon reported a data race:\n%s", Clip(out, 8000))
	} else if t.Failed() {
		t.Logf("the daemon's output (%s):\n%s", d.MP, Clip(out, 6000))
	}
}
