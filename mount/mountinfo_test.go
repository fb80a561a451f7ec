package mount

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const sampleMountinfo = `22 27 0:21 / /proc rw,relatime shared:12 - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
45 27 0:40 / /tmp/a\040b rw,nosuid,nodev,relatime shared:30 master:2 - fuse.hfcachefs hfcachefs rw,user_id=0,group_id=0
46 27 0:41 /sub /tmp/tab\011nl\012back\134slash rw - tmpfs tmp\040fs rw
47 45 0:42 / /tmp/a\040b rw - tmpfs tmpfs rw
48 27 0:43 / /tmp/bad\0 rw - tmpfs tmpfs rw
garbage line
49 27 0:44 / /tmp/no-separator rw tmpfs tmpfs rw
`

func TestMountinfoParse(t *testing.T) {
	got := parseMountinfo(sampleMountinfo)
	want := []mountEntry{
		{ID: 22, ParentID: 27, Dev: "0:21", Root: "/", Mountpoint: "/proc", FSType: "proc", Source: "proc"},
		{ID: 27, ParentID: 1, Dev: "254:0", Root: "/", Mountpoint: "/", FSType: "ext4", Source: "/dev/vda"},
		{ID: 45, ParentID: 27, Dev: "0:40", Root: "/", Mountpoint: "/tmp/a b", FSType: "fuse.hfcachefs", Source: "hfcachefs"},
		{ID: 46, ParentID: 27, Dev: "0:41", Root: "/sub", Mountpoint: "/tmp/tab\tnl\nback\\slash", FSType: "tmpfs", Source: "tmp fs"},
		{ID: 47, ParentID: 45, Dev: "0:42", Root: "/", Mountpoint: "/tmp/a b", FSType: "tmpfs", Source: "tmpfs"},
		// A cut escape stays as it is.
		{ID: 48, ParentID: 27, Dev: "0:43", Root: "/", Mountpoint: `/tmp/bad\0`, FSType: "tmpfs", Source: "tmpfs"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseMountinfo:\n got %+v\nwant %+v", got, want)
	}
}

func TestMountinfoUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:            "plain",
		`a\040b`:           "a b",
		`\040lead`:         " lead",
		`trail\040`:        "trail ",
		`x\134040`:         `x\040`, // an escaped backslash is not read again
		`bad\9999`:         `bad\9999`,
		`short\04`:         `short\04`,
		`\011\012\134\040`: "\t\n\\ ",
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMountinfoTopMount(t *testing.T) {
	entries := parseMountinfo(sampleMountinfo)
	if e := topMountAt(entries, "/tmp/a b"); e == nil || e.ID != 47 {
		t.Errorf("top mount at /tmp/a b = %+v, want the tmpfs stacked over the hfcachefs mount (47)", e)
	}
	// Listed in the other order, the stacked one still wins.
	reversed := []mountEntry{entries[4], entries[2]}
	if e := topMountAt(reversed, "/tmp/a b"); e == nil || e.ID != 47 {
		t.Errorf("top mount (reversed listing) = %+v, want 47", e)
	}
	if e := topMountAt(entries, "/tmp"); e != nil {
		t.Errorf("top mount at /tmp = %+v, want none", e)
	}

	for _, c := range []struct{ path, want string }{
		{"/proc", "refusing to unmount /proc: it is a proc mount, not an hfcachefs mount"},
		{"/", "refusing to unmount /: it is an ext4 mount, not an hfcachefs mount"},
		{"/tmp/a b", "refusing to unmount /tmp/a b: it is a tmpfs mount, not an hfcachefs mount"},
		{"/tmp", "/tmp is not mounted"},
		{"/tmp/a b", ""},
	} {
		es := entries
		if c.want == "" {
			es = entries[:3] // without the tmpfs on top
		}
		err := checkOurMount(es, c.path)
		if c.want == "" && err != nil || c.want != "" && (err == nil || err.Error() != c.want) {
			t.Errorf("checkOurMount(%q) = %v, want %q", c.path, err, c.want)
		}
	}
}

func TestMountinfoResolveMountpoint(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mk := func(p string) string {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ln := func(target, name string) string {
		name = filepath.Join(root, name)
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
		return name
	}
	mnt := mk("real/mnt")
	ln("real", "dirlink")
	ln("real/mnt", "rel")                   // relative
	ln(filepath.Join(root, "rel"), "chain") // absolute, to another link
	ln("loop2", "loop1")
	ln("loop1", "loop2")
	listed := ln("real", "listed") // a symlink listed as a mount point is not followed

	entries := []mountEntry{{ID: 1, Mountpoint: listed, FSType: "tmpfs"}}
	wd, _ := os.Getwd()
	rel, _ := filepath.Rel(wd, filepath.Join(root, "dirlink", "mnt"))
	for _, c := range []struct{ in, want string }{
		{mnt, mnt},
		{filepath.Join(root, "dirlink", "mnt"), mnt},
		{filepath.Join(root, "dirlink", "mnt") + "/", mnt},
		{filepath.Join(root, "rel"), mnt},
		{filepath.Join(root, "chain"), mnt},
		{rel, mnt},
		{filepath.Join(root, "dirlink", "missing"), filepath.Join(root, "real", "missing")},
		{listed, listed},
		{"/", "/"},
	} {
		got, err := resolveMountpoint(c.in, entries)
		if err != nil || got != c.want {
			t.Errorf("resolveMountpoint(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := resolveMountpoint(filepath.Join(root, "loop1"), nil); err == nil || !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Errorf("resolveMountpoint(a symlink loop) = %v, want ELOOP", err)
	}
}
