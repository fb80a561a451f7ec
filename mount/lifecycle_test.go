package mount

// Mounting and unmounting with the real binary and real mounts: hfcachefs
// never unmounts, nor mounts over, another file system.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountsAt lists the file system types mounted on path, bottom first.
func mountsAt(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range parseMountinfo(string(data)) {
		if e.Mountpoint == path {
			types = append(types, e.FSType)
		}
	}
	return types
}

// realTempDir is t.TempDir as mountinfo spells it.
func realTempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// mountTmpfs mounts a tmpfs on a new folder; cleanup detaches it.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	needRoot(t, "mounting a tmpfs")
	needTool(t, "mount", "umount")
	dir := filepath.Join(realTempDir(t), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mount", "-t", "tmpfs", "tmpfs", dir)
	t.Cleanup(func() {
		for len(mountsAt(t, dir)) > 0 {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("detaching the tmpfs on %s: %v", dir, err)
				return
			}
		}
	})
	return dir
}

// keepBusy runs a sleep with its working directory and an open file in
// dir, until cleanup; a plain umount of dir then fails with EBUSY.
func keepBusy(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `exec sleep 3600 3>busy`)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // our child, by pid
		_ = cmd.Wait()
	})
	poll(t, 10*time.Second, "the busy child holds its file", func() (bool, string) {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", cmd.Process.Pid))
		return err == nil && target == filepath.Join(dir, "busy"), fmt.Sprint(target, err)
	})
}

// runBinary runs the built binary, bounded by 30 s: a refusal is immediate.
func runBinary(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Dir = "/"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("hfcachefs %q did not return in 30 s\n%s", args, stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func expectExit1(t *testing.T, r result, want string, args ...string) {
	t.Helper()
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("hfcachefs %q: %s\nwant exit 1 and %q", args, r, want)
	}
}

// killDaemon kills a daemon with SIGKILL: its mount stays, dead.
func killDaemon(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDead(t, pid)
}

func TestLifecycleUnmountRefusesOtherMounts(t *testing.T) {
	needFuse(t)
	needRoot(t, "as root, unmount(2) would unmount anything")

	t.Run("busy-tmpfs", func(t *testing.T) {
		dir := mountTmpfs(t)
		keepBusy(t, dir)
		// The old code unmounted lazily on EBUSY: check the premise.
		if err := syscall.Unmount(dir, 0); err != syscall.EBUSY {
			t.Fatalf("umount %s = %v, want EBUSY (a busy tmpfs)", dir, err)
		}
		link := filepath.Join(realTempDir(t), "link")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("refusing to unmount %s: it is a tmpfs mount, not an hfcachefs mount", dir)
		for _, p := range []string{dir, link, dir + "/"} {
			for _, cmd := range []string{"unmount", "umount"} {
				expectExit1(t, runBinary(t, cmd, p), want, cmd, p)
				if got := mountsAt(t, dir); !reflect.DeepEqual(got, []string{"tmpfs"}) {
					t.Fatalf("after hfcachefs %s %s, %s has mounts %q; want the tmpfs", cmd, p, dir, got)
				}
			}
		}
		inside := filepath.Join(dir, "sub")
		if err := os.Mkdir(inside, 0o755); err != nil {
			t.Fatal(err)
		}
		expectExit1(t, runBinary(t, "unmount", inside), inside+" is not mounted", "unmount", inside)
	})
	t.Run("proc-and-root", func(t *testing.T) {
		for p, typ := range map[string]string{"/proc": "proc", "/": ""} {
			before := mountsAt(t, p)
			if len(before) == 0 {
				t.Fatalf("%s is not a mount point here", p)
			}
			want := fmt.Sprintf("refusing to unmount %s: it is ", p)
			if typ != "" {
				want += "a " + typ + " mount, not an hfcachefs mount"
			}
			expectExit1(t, runBinary(t, "unmount", p), want, "unmount", p)
			if got := mountsAt(t, p); !reflect.DeepEqual(got, before) {
				t.Fatalf("%s has mounts %q after hfcachefs unmount, had %q", p, got, before)
			}
		}
	})
}

func TestLifecycleUnmountsLiveAndDeadMounts(t *testing.T) {
	needFuse(t)
	cache, _ := basicCache(t)

	t.Run("live", func(t *testing.T) {
		mp := newMountpoint(t)
		pid := startDaemon(t, mp, cache)
		if r := runBinary(t, "unmount", mp); r.code != 0 {
			t.Fatalf("hfcachefs unmount %s: %s", mp, r)
		}
		if got := mountsAt(t, mp); len(got) != 0 {
			t.Errorf("%s still has mounts %q", mp, got)
		}
		waitDead(t, pid)
	})
	t.Run("dead", func(t *testing.T) {
		mp := newMountpoint(t)
		killDaemon(t, startDaemon(t, mp, cache))
		if got := mountsAt(t, mp); !reflect.DeepEqual(got, []string{ourFSType}) {
			t.Fatalf("the dead mount: mountinfo has %q on %s", got, mp)
		}
		// Through a symlink: only the parent can be resolved by stat.
		link := filepath.Join(realTempDir(t), "link")
		if err := os.Symlink(mp, link); err != nil {
			t.Fatal(err)
		}
		if r := runBinary(t, "unmount", link); r.code != 0 {
			t.Fatalf("hfcachefs unmount of a dead mount: %s", r)
		}
		if got := mountsAt(t, mp); len(got) != 0 {
			t.Errorf("%s still has mounts %q", mp, got)
		}
	})
	t.Run("covered-in-process", func(t *testing.T) {
		needRoot(t, "mounting a tmpfs over the mount")
		m, mp := startMount(t, cache, Options{})
		mustRun(t, "mount", "-t", "tmpfs", "tmpfs", mp)
		t.Cleanup(func() { // before the mount's own cleanup
			if reflect.DeepEqual(mountsAt(t, mp), []string{ourFSType, "tmpfs"}) {
				_ = syscall.Unmount(mp, syscall.MNT_DETACH)
			}
		})
		// Bounded: unmounting the tmpfs instead, go-fuse would wait for
		// its server to stop, forever.
		unmount := func() error {
			done := make(chan error, 1)
			go func() { done <- m.Unmount() }()
			select {
			case err := <-done:
				return err
			case <-time.After(30 * time.Second):
				t.Fatalf("Mount.Unmount did not return; %s has mounts %q", mp, mountsAt(t, mp))
				return nil
			}
		}
		want := fmt.Sprintf("refusing to unmount %s: it is a tmpfs mount, not an hfcachefs mount", mp)
		if err := unmount(); err == nil || err.Error() != want {
			t.Errorf("Mount.Unmount under a tmpfs = %v, want %q", err, want)
		}
		if got := mountsAt(t, mp); !reflect.DeepEqual(got, []string{ourFSType, "tmpfs"}) {
			t.Fatalf("after Mount.Unmount, %s has mounts %q; want the tmpfs over ours", mp, got)
		}
		mustRun(t, "umount", mp)
		if err := unmount(); err != nil {
			t.Errorf("Mount.Unmount: %v", err)
		}
		if got := mountsAt(t, mp); len(got) != 0 {
			t.Errorf("%s still has mounts %q", mp, got)
		}
	})
}

func TestLifecycleMountRefusals(t *testing.T) {
	needFuse(t)
	cache, info := basicCache(t)

	// refused runs a mount in the foreground and as a daemon; both must
	// fail at once, leaving the mounts on mp as they were.
	refused := func(t *testing.T, mp, want string, args ...string) {
		t.Helper()
		before := mountsAt(t, mp)
		for _, extra := range [][]string{nil, {"--daemon"}} {
			a := append(append([]string{"mount"}, args...), extra...)
			expectExit1(t, runBinary(t, a...), want, a...)
			if got := mountsAt(t, mp); !reflect.DeepEqual(got, before) {
				t.Fatalf("hfcachefs %q: %s has mounts %q, had %q", a, mp, got, before)
			}
		}
	}

	t.Run("live-hfcachefs", func(t *testing.T) {
		mp := newMountpoint(t)
		startDaemon(t, mp, cache)
		refused(t, mp, fmt.Sprintf("mountpoint %s is already an hfcachefs mount: 'hfcachefs unmount %s' stops it", mp, mp),
			mp, "--cache-dir", cache)
		refused(t, mp, "is already an hfcachefs mount", mp, "--cache-dir", cache, "--nonempty")
		if got := mountsAt(t, mp); !reflect.DeepEqual(got, []string{ourFSType}) {
			t.Errorf("%s has mounts %q, want one hfcachefs mount", mp, got)
		}
		if got := sortedLines(mustRun(t, "ls", filepath.Join(mp, "models"))); !reflect.DeepEqual(got, topNames(info, "model")) {
			t.Errorf("ls models on the first mount = %q", got)
		}
	})
	t.Run("tmpfs", func(t *testing.T) {
		dir := mountTmpfs(t)
		refused(t, dir, fmt.Sprintf("mountpoint %s is already a mount point (a tmpfs mount): unmount it first", dir),
			dir, "--cache-dir", cache)
		refused(t, dir, "is already a mount point", dir, "--cache-dir", cache, "--nonempty")
	})
	t.Run("non-empty", func(t *testing.T) {
		mp := newMountpoint(t)
		if err := os.WriteFile(filepath.Join(mp, "precious"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		refused(t, mp, fmt.Sprintf("mountpoint %s is not empty: the mount would hide what it holds (pass --nonempty", mp),
			mp, "--cache-dir", cache)
		startDaemon(t, mp, cache, "--nonempty")
		if got := mountsAt(t, mp); !reflect.DeepEqual(got, []string{ourFSType}) {
			t.Errorf("%s has mounts %q, want one hfcachefs mount", mp, got)
		}
		if got := sortedLines(mustRun(t, "ls", filepath.Join(mp, "models"))); !reflect.DeepEqual(got, topNames(info, "model")) {
			t.Errorf("ls models on the --nonempty mount = %q", got)
		}
	})
	t.Run("cache-or-assets-inside", func(t *testing.T) {
		mp := newMountpoint(t)
		hub := filepath.Join(mp, "hub")
		copyTree(t, cache, hub)
		for _, extra := range [][]string{nil, {"--nonempty"}} {
			refused(t, mp, fmt.Sprintf("mountpoint %s contains the cache directory %s", mp, hub),
				append([]string{mp, "--cache-dir", hub}, extra...)...)
		}
		// Through a symlinked mountpoint, and the cache itself handed
		// through a symlink.
		link := filepath.Join(realTempDir(t), "link")
		if err := os.Symlink(mp, link); err != nil {
			t.Fatal(err)
		}
		refused(t, mp, "contains the cache directory "+hub, link, "--cache-dir", filepath.Join(link, "hub"), "--nonempty")

		assetsMP := newMountpoint(t)
		assets := filepath.Join(assetsMP, "assets")
		if err := os.Mkdir(assets, 0o755); err != nil {
			t.Fatal(err)
		}
		refused(t, assetsMP, fmt.Sprintf("mountpoint %s contains the assets directory %s", assetsMP, assets),
			assetsMP, "--cache-dir", cache, "--assets-dir", assets, "--nonempty")
		inAssets := filepath.Join(assets, "mnt")
		if err := os.Mkdir(inAssets, 0o755); err != nil {
			t.Fatal(err)
		}
		refused(t, inAssets, fmt.Sprintf("mountpoint %s is inside the assets directory %s", inAssets, assets),
			inAssets, "--cache-dir", cache, "--assets-dir", assets)
	})
	t.Run("dead-hfcachefs-is-recovered", func(t *testing.T) {
		mp := newMountpoint(t)
		killDaemon(t, startDaemon(t, mp, cache))
		// No wait for the attribute cache to expire: right after the kill.
		startDaemon(t, mp, cache)
		if got := mountsAt(t, mp); !reflect.DeepEqual(got, []string{ourFSType}) {
			t.Errorf("%s has mounts %q, want one hfcachefs mount", mp, got)
		}
		if got := sortedLines(mustRun(t, "ls", filepath.Join(mp, "models"))); !reflect.DeepEqual(got, topNames(info, "model")) {
			t.Errorf("ls models on the recovered mount = %q", got)
		}
	})
	t.Run("in-process", func(t *testing.T) {
		mp := newMountpoint(t)
		startDaemon(t, mp, cache) // another process: the test does not stat its own mount
		_, err := Start(mp, Options{CacheDir: cache, AssetsDir: t.TempDir()}, nil)
		if want := "is already an hfcachefs mount"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Start on a live mount = %v, want %q", err, want)
		}
		if got := mountsAt(t, mp); !reflect.DeepEqual(got, []string{ourFSType}) {
			t.Errorf("%s has mounts %q, want one hfcachefs mount", mp, got)
		}
	})
}
