package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hfcachefs/hfcachefs/mount"
)

var mountCommand = &command{
	name:    "mount",
	summary: "mount the cache as a filesystem of views (by-ref, by-commit, by-size, .trash)",
	usage:   "MOUNTPOINT [--cache-dir DIR] [--read-only] [--allow-other] [--uid N] [--gid N] [--nonempty] [--daemon] [--debug]",
	help: `
Mounts the Hugging Face cache on MOUNTPOINT:

  models/<repo_id>/by-ref/<ref>/...   the revision a ref points to now (refs/pr/1: by-ref/refs/pr/1/)
  models/<repo_id>/by-commit/<hash>/  every cached revision
  datasets/..., spaces/...            the same
  by-size/                            one link per repo, largest first
  assets/                             the assets cache, read-only
  .trash/                             mv a revision or a repo here to delete it
  .status.json                        scan summary, warnings, notices, mount options

Files are plain read-only regular files (no symlinks to chase); every path to
one blob of a repo is the same inode, so du over a repo folder is its
size_on_disk. Paths follow ref changes within about two poll intervals.
See docs/SEMANTICS.md for what each system call does.

Runs in the foreground until SIGINT/SIGTERM (then unmounts, lazily if busy);
--daemon returns once the mount is ready. MOUNTPOINT must be an empty folder
(--nonempty allows a non-empty one) that is not a mount point already and
does not hold the cache or assets directory; one left dead by a killed
daemon is recovered. As root the mount is direct; other users need fusermount3.`,
}

var unmountCommand = &command{
	name:    "unmount",
	aliases: []string{"umount"},
	summary: "unmount a mount (lazily if busy; also a dead one)",
	usage:   "MOUNTPOINT",
	help:    "Unmounts an hfcachefs mount, lazily if it is busy, and recovers a mountpoint left dead by a killed daemon.\nRefuses any other mount (per /proc/self/mountinfo), even as root.",
}

func init() {
	mountCommand.run = runMount
	unmountCommand.run = runUnmount
	register(mountCommand)
	register(unmountCommand)
}

// daemonFDEnv tells a re-executed daemon which fd reports readiness.
const daemonFDEnv = "HFCACHEFS_DAEMON_READY_FD"

func runMount(env *cliEnv, args []string) error {
	fs := newFlags(env, mountCommand)
	var o mount.Options
	o.AddFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("expected one MOUNTPOINT")
	}
	mp := fs.Arg(0)
	if o.Daemon && env.getenv(daemonFDEnv) == "" {
		return startDaemon(env, args)
	}
	var ready *os.File
	if fd := env.getenv(daemonFDEnv); fd != "" {
		var n int
		fmt.Sscan(fd, &n)
		ready = os.NewFile(uintptr(n), "ready")
	}
	m, err := mount.Start(mp, o, nil)
	if err != nil {
		if ready != nil {
			fmt.Fprintf(ready, "error: %v\n", err)
			ready.Close()
		}
		return err
	}
	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close()
	} else {
		fmt.Fprintf(env.stderr, "hfcachefs: %s mounted on %s (Ctrl-C or 'hfcachefs unmount %s' to stop)\n", m.CacheDir, m.Mountpoint, m.Mountpoint)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { m.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case sig := <-sigs:
		fmt.Fprintf(env.stderr, "hfcachefs: %v: unmounting %s\n", sig, m.Mountpoint)
		if err := m.Unmount(); err != nil {
			return err
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return nil
	}
}

// startDaemon re-runs the mount in a new session and returns once it
// says whether the mount is ready.
func startDaemon(env *cliEnv, args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, append([]string{"mount"}, args...)...)
	cmd.Env = append(os.Environ(), daemonFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	if err := cmd.Start(); err != nil {
		return err
	}
	w.Close()
	devnull.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		s = strings.TrimSpace(s)
		if s == "ok" {
			fmt.Fprintf(env.stderr, "hfcachefs: mounted (daemon pid %d)\n", cmd.Process.Pid)
			_ = cmd.Process.Release()
			return nil
		}
		_ = cmd.Wait()
		if s == "" {
			return fmt.Errorf("the daemon exited before the mount was ready")
		}
		return fmt.Errorf("%s", strings.TrimPrefix(s, "error: "))
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return fmt.Errorf("the daemon did not report in 60s")
	}
}

func runUnmount(env *cliEnv, args []string) error {
	fs := newFlags(env, unmountCommand)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("expected one MOUNTPOINT")
	}
	return mount.Unmount(fs.Arg(0))
}

var _ = io.Discard
