package safefs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// markerBytes fill every file outside the cache folder: no read beneath
// the cache handle may ever return them.
const markerBytes = "OUTSIDE-MARKER: no read beneath the cache may return this"

// haveOpenat2 reports whether this kernel has openat2 (5.6+).
func haveOpenat2() bool {
	fd, err := unix.Openat2(unix.AT_FDCWD, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
	if err != nil {
		return err != unix.ENOSYS
	}
	unix.Close(fd)
	return true
}

// modes runs f once resolving with openat2 and once with the component
// walk (ForceWalk), restoring the previous mode after each.
func modes(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, m := range []struct {
		name string
		walk bool
	}{{"openat2", false}, {"walk", true}} {
		t.Run(m.name, func(t *testing.T) {
			if !m.walk && !haveOpenat2() {
				t.Skip("this kernel has no openat2: only the walk runs")
			}
			prev := noOpenat2.Load()
			ForceWalk(m.walk)
			t.Cleanup(func() { ForceWalk(prev) })
			f(t)
			if !m.walk && noOpenat2.Load() {
				t.Errorf("openat2 mode fell back to the walk")
			}
		})
	}
}

// within runs f and fails the test if it has not returned after 5 s (a
// FIFO opened for reading without O_NONBLOCK blocks until a writer comes).
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: still blocked after 5s", what)
	}
}

// snapshot describes the tree at dir (without following symlinks): path
// -> "dir", "file:<content>", "symlink:<target>" or "special:<type>".
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			m[rel] = "symlink:" + target
		case d.IsDir():
			m[rel] = "dir"
		case !d.Type().IsRegular():
			m[rel] = "special:" + d.Type().String()
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = "file:" + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", dir, err)
	}
	return m
}

// markers counts the marker files of a snapshot.
func markers(snap map[string]string) int {
	n := 0
	for _, v := range snap {
		if v == "file:"+markerBytes {
			n++
		}
	}
	return n
}

// sameTree fails t unless dir is exactly as want.
func sameTree(t testing.TB, dir string, want map[string]string) {
	t.Helper()
	got := snapshot(t, dir)
	if maps.Equal(got, want) {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			t.Errorf("outside: %s is gone (was %.40q)", k, want[k])
		} else if g != want[k] {
			t.Errorf("outside: %s is now %.40q (was %.40q)", k, g, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("outside: %s appeared (%.40q)", k, got[k])
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func lstat(t testing.TB, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(path, &st))
	return st
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// fixture is a cache folder (the handle) next to an outside folder of
// markers, the cache holding every kind of trap:
//
//	cache/dir/file               "inside"
//	cache/dir/sub/deep           "deep"
//	cache/dir/fifo               a FIFO
//	cache/dir/link-out-file   -> <outside>/marker (absolute)
//	cache/dir/link-out-dir    -> <outside>
//	cache/dir/link-out-rel    -> ../../outside (relative)
//	cache/dir/link-in-file    -> file (stays inside: refused all the same)
//	cache/dir/dangling        -> <outside>/none
//	cache/link-out-dir        -> <outside> (top level)
//	cache/link-in-dir         -> dir (top level, stays inside)
//	outside/marker, outside/sub/marker, outside/sub/x   markerBytes
type fixture struct {
	root, cache, out string
	h                *Handle
	outside          map[string]string // the outside tree as made
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{root: root, cache: root + "/cache", out: root + "/outside"}
	for _, d := range []string{f.cache + "/dir/sub", f.out + "/sub"} {
		must(t, os.MkdirAll(d, 0o755))
	}
	for p, content := range map[string]string{
		f.cache + "/dir/file":     "inside",
		f.cache + "/dir/sub/deep": "deep",
		f.out + "/marker":         markerBytes,
		f.out + "/sub/marker":     markerBytes,
		f.out + "/sub/x":          markerBytes,
	} {
		must(t, os.WriteFile(p, []byte(content), 0o644))
	}
	for link, target := range map[string]string{
		"dir/link-out-file": f.out + "/marker",
		"dir/link-out-dir":  f.out,
		"dir/link-out-rel":  "../../outside",
		"dir/link-in-file":  "file",
		"dir/dangling":      f.out + "/none",
		"link-out-dir":      f.out,
		"link-in-dir":       "dir",
	} {
		must(t, os.Symlink(target, f.cache+"/"+link))
	}
	must(t, unix.Mkfifo(f.cache+"/dir/fifo", 0o644))
	h, err := OpenRoot(f.cache)
	must(t, err)
	t.Cleanup(func() { h.Close() })
	f.h = h
	f.outside = snapshot(t, f.out)
	if n := markers(f.outside); n != 3 {
		t.Fatalf("fixture: %d markers, want 3", n)
	}
	return f
}

// checkOutside fails t unless the outside folder is exactly as made.
func (f *fixture) checkOutside(t testing.TB) {
	t.Helper()
	sameTree(t, f.out, f.outside)
}

// expand replaces $CACHE and $OUT in a table's path.
func (f *fixture) expand(rel string) string {
	return strings.NewReplacer("$CACHE", f.cache, "$OUT", f.out).Replace(rel)
}

// result checks err against want: nil, ErrEscape or an errno (errors.Is),
// and that ErrEscape is never claimed for anything else.
func result(t *testing.T, op string, err, want error) bool {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: %v, want success", op, err)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s: %v, want %v", op, err, want)
	case want != ErrEscape && errors.Is(err, ErrEscape):
		t.Errorf("%s: %v claims an escape", op, err)
	default:
		return err == nil
	}
	return false
}

func subName(i int, rel string) string {
	return fmt.Sprintf("%02d_%q", i, strings.ReplaceAll(rel, "/", "|"))
}

// Shorthands of the lookup table.
var (
	E = ErrEscape
	N = error(unix.ENOENT)
	D = error(unix.ENOTDIR)
	I = error(unix.EINVAL)
)

// escapes are refused by every function with ErrEscape, before any
// resolution.
var escapes = []string{
	"", "/", "..", "../outside/marker", "dir/..", "dir/../dir/file",
	"dir/../../outside/marker", "./dir/../..", "$CACHE/dir/file",
	"$OUT/marker", "/etc/passwd", "dir//file", "dir/", "/dir/file",
	"dir/sub/../../..", "dir/./../file", "dir/./file", "./dir",
}

func TestLookups(t *testing.T) {
	type row struct {
		rel                                           string
		open, openDir, readFile, stat, readlink, list error
	}
	rows := []row{
		// Plain paths work.
		{"dir/file", nil, D, nil, nil, I, D},
		{"dir", nil, nil, I, nil, I, nil},
		{"dir/sub/deep", nil, D, nil, nil, I, D},
		// "." alone is the handle's folder; it has no entry to read a link of.
		{".", nil, nil, I, nil, E, nil},
		// A FIFO: opened without blocking, never read.
		{"dir/fifo", nil, D, I, nil, I, D},
		// A symlink last: not followed (Stat and Readlink see the link).
		{"dir/link-out-file", E, E, E, nil, nil, E},
		{"dir/link-out-dir", E, E, E, nil, nil, E},
		{"dir/link-out-rel", E, E, E, nil, nil, E},
		{"dir/link-in-file", E, E, E, nil, nil, E},
		{"dir/dangling", E, E, E, nil, nil, E},
		{"link-out-dir", E, E, E, nil, nil, E},
		{"link-in-dir", E, E, E, nil, nil, E},
		// A symlink in the middle: refused, wherever it leads.
		{"dir/link-out-dir/marker", E, E, E, E, E, E},
		{"dir/link-out-dir/sub/marker", E, E, E, E, E, E},
		{"dir/link-out-dir/sub", E, E, E, E, E, E},
		{"dir/link-out-rel/marker", E, E, E, E, E, E},
		{"link-out-dir/marker", E, E, E, E, E, E},
		{"link-out-dir/sub/x", E, E, E, E, E, E},
		{"link-in-dir/file", E, E, E, E, E, E},
		{"link-in-dir/sub/deep", E, E, E, E, E, E},
		{"dir/link-in-file/x", E, E, E, E, E, E},
		// Missing, or a file used as a folder.
		{"missing", N, N, N, N, N, N},
		{"dir/missing/file", N, N, N, N, N, N},
		{"dir/file/x", D, D, D, D, D, D},
	}
	for _, rel := range escapes {
		rows = append(rows, row{rel, E, E, E, E, E, E})
	}
	modes(t, func(t *testing.T) {
		f := newFixture(t)
		for i, r := range rows {
			t.Run(subName(i, r.rel), func(t *testing.T) {
				rel := f.expand(r.rel)
				var want unix.Stat_t // what rel is, not followed
				if r.stat == nil {
					want = lstat(t, f.cache+"/"+rel)
				}

				var fd int
				var err error
				within(t, "Open", func() { fd, err = f.h.Open(rel, unix.O_RDONLY|unix.O_NONBLOCK, 0) })
				if result(t, "Open", err, r.open) {
					var st unix.Stat_t
					must(t, unix.Fstat(fd, &st))
					unix.Close(fd)
					if st.Ino != want.Ino || st.Dev != want.Dev {
						t.Errorf("Open: opened inode %d, want %d", st.Ino, want.Ino)
					}
				}

				d, err := f.h.OpenDir(rel)
				if result(t, "OpenDir", err, r.openDir) {
					st, err := d.Fstat()
					must(t, err)
					d.Close()
					if st.Ino != want.Ino || st.Mode&unix.S_IFMT != unix.S_IFDIR {
						t.Errorf("OpenDir: opened inode %d mode %o, want folder %d", st.Ino, st.Mode, want.Ino)
					}
				}

				var b []byte
				within(t, "ReadFile", func() { b, err = f.h.ReadFile(rel, 1<<20) })
				if bytes.Contains(b, []byte(markerBytes)) {
					t.Fatalf("ReadFile returned the outside marker")
				}
				if result(t, "ReadFile", err, r.readFile) {
					if wantB, _ := os.ReadFile(f.cache + "/" + rel); !bytes.Equal(b, wantB) {
						t.Errorf("ReadFile: %q, want %q", b, wantB)
					}
				}

				st, err := f.h.Stat(rel)
				if result(t, "Stat", err, r.stat) {
					if st.Ino != want.Ino || st.Mode != want.Mode {
						t.Errorf("Stat: inode %d mode %o, want %d %o (not followed)", st.Ino, st.Mode, want.Ino, want.Mode)
					}
				}

				target, err := f.h.Readlink(rel)
				if result(t, "Readlink", err, r.readlink) {
					if w, _ := os.Readlink(f.cache + "/" + rel); target != w {
						t.Errorf("Readlink: %q, want %q", target, w)
					}
				}

				names, err := f.h.ReadDir(rel)
				if result(t, "ReadDir", err, r.list) {
					entries, err := os.ReadDir(f.cache + "/" + rel)
					must(t, err)
					var w []string
					for _, e := range entries {
						w = append(w, e.Name())
					}
					slices.Sort(names)
					if !slices.Equal(names, w) {
						t.Errorf("ReadDir: %q, want %q", names, w)
					}
				}
			})
		}
		f.checkOutside(t)
	})
}

// A FIFO is refused by ReadFile at once, with no writer and with a writer
// that never writes.
func TestReadFileFIFO(t *testing.T) {
	modes(t, func(t *testing.T) {
		f := newFixture(t)
		var err error
		within(t, "ReadFile(fifo)", func() { _, err = f.h.ReadFile("dir/fifo", 1<<20) })
		if !errors.Is(err, unix.EINVAL) {
			t.Errorf("ReadFile(fifo): %v, want EINVAL", err)
		}
		// A writer holding it open (the read end is needed to open it
		// non-blocking for writing: ours, then dropped).
		r, err := os.OpenFile(f.cache+"/dir/fifo", os.O_RDONLY|unix.O_NONBLOCK, 0)
		must(t, err)
		w, err := os.OpenFile(f.cache+"/dir/fifo", os.O_WRONLY|unix.O_NONBLOCK, 0)
		must(t, err)
		defer w.Close()
		r.Close()
		within(t, "ReadFile(fifo with a writer)", func() { _, err = f.h.ReadFile("dir/fifo", 1<<20) })
		if !errors.Is(err, unix.EINVAL) {
			t.Errorf("ReadFile(fifo with a writer): %v, want EINVAL", err)
		}
	})
}

func TestReadFileLimit(t *testing.T) {
	modes(t, func(t *testing.T) {
		f := newFixture(t)
		must(t, os.WriteFile(f.cache+"/empty", nil, 0o644))
		for _, c := range []struct {
			rel   string
			limit int64
			want  error
		}{
			{"dir/file", 6, nil},
			{"dir/file", 100, nil},
			{"dir/file", 5, unix.EFBIG},
			{"dir/file", 0, unix.EFBIG},
			{"empty", 0, nil},
		} {
			b, err := f.h.ReadFile(c.rel, c.limit)
			if c.want == nil && (err != nil || int64(len(b)) > c.limit) {
				t.Errorf("ReadFile(%s, %d): %q %v", c.rel, c.limit, b, err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("ReadFile(%s, %d): %v, want %v", c.rel, c.limit, err, c.want)
			}
		}
	})
}

// Open's flags: O_PATH of a symlink gives the link itself, O_CREAT and
// O_TRUNC never reach through one, a mode without O_CREAT is ignored.
func TestOpenFlags(t *testing.T) {
	modes(t, func(t *testing.T) {
		f := newFixture(t)

		fd, err := f.h.Open("dir/link-out-dir", unix.O_PATH, 0)
		must(t, err)
		var st unix.Stat_t
		must(t, unix.Fstat(fd, &st))
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("Open(link, O_PATH) opened mode %o, want the symlink itself", st.Mode)
		}
		if _, err := unix.Openat(fd, "marker", unix.O_RDONLY, 0); err == nil {
			t.Errorf("the O_PATH handle of a symlink resolved a name through it")
		}
		unix.Close(fd)

		for _, c := range []struct {
			rel   string
			flags int
		}{
			{"dir/dangling", unix.O_CREAT | unix.O_WRONLY},
			{"dir/link-out-file", unix.O_WRONLY | unix.O_TRUNC},
			{"dir/link-out-file", unix.O_CREAT | unix.O_WRONLY | unix.O_TRUNC},
			{"dir/link-out-file", unix.O_RDWR | unix.O_APPEND},
			{"link-out-dir/none", unix.O_CREAT | unix.O_WRONLY},
			{"dir/link-out-dir/sub/none", unix.O_CREAT | unix.O_EXCL | unix.O_WRONLY},
			{"link-out-dir/marker", unix.O_WRONLY | unix.O_TRUNC},
			{"dir/link-out-dir", unix.O_TMPFILE | unix.O_WRONLY},
			{"../outside/none", unix.O_CREAT | unix.O_WRONLY},
		} {
			fd, err := f.h.Open(c.rel, c.flags, 0o644)
			if err == nil {
				unix.Close(fd)
			}
			if !errors.Is(err, ErrEscape) {
				t.Errorf("Open(%s, %#o): %v, want ErrEscape", c.rel, c.flags, err)
			}
		}
		f.checkOutside(t)

		fd, err = f.h.Open("dir/new", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		must(t, err)
		unix.Close(fd)
		if st := lstat(t, f.cache+"/dir/new"); st.Mode != unix.S_IFREG|0o600 {
			t.Errorf("created mode %o, want %o", st.Mode, unix.S_IFREG|0o600)
		}
		// A mode with no O_CREAT: ignored, as open(2) does.
		fd, err = f.h.Open("dir/file", unix.O_RDONLY, 0o644)
		if err != nil {
			t.Errorf("Open(file, O_RDONLY, 0644): %v", err)
		} else {
			unix.Close(fd)
		}
	})
}

// A handle from OpenDir is a root of its own: ".." out of it is refused.
func TestOpenDirScope(t *testing.T) {
	modes(t, func(t *testing.T) {
		f := newFixture(t)
		sub, err := f.h.OpenDir("dir/sub")
		must(t, err)
		defer sub.Close()
		if b, err := sub.ReadFile("deep", 100); err != nil || string(b) != "deep" {
			t.Errorf("ReadFile(deep) beneath dir/sub: %q %v", b, err)
		}
		for _, rel := range []string{"../file", "..", "../sub/deep"} {
			if _, err := sub.ReadFile(rel, 100); !errors.Is(err, ErrEscape) {
				t.Errorf("ReadFile(%s) beneath dir/sub: %v, want ErrEscape", rel, err)
			}
		}
		self, err := sub.OpenDir(".")
		must(t, err)
		defer self.Close()
		a, _ := self.Fstat()
		b, _ := sub.Fstat()
		if a.Ino != b.Ino {
			t.Errorf(`OpenDir(".") is inode %d, want %d`, a.Ino, b.Ino)
		}
	})
}

func TestOpenTop(t *testing.T) {
	modes(t, func(t *testing.T) {
		f := newFixture(t)
		// A repo folder moved to another disk by its owner, a symlink left.
		moved := f.root + "/elsewhere/models--a--b"
		must(t, os.MkdirAll(moved+"/blobs", 0o755))
		must(t, os.WriteFile(moved+"/blobs/x", []byte("moved blob"), 0o644))
		must(t, os.Symlink(f.out, moved+"/blobs/trap"))
		must(t, os.Symlink(moved, f.cache+"/models--a--b"))
		must(t, os.Mkdir(f.cache+"/models--c--d", 0o755))

		for _, name := range []string{"models--a--b", "models--c--d", "dir", "link-out-dir"} {
			top, err := f.h.OpenTop(name)
			if err != nil {
				t.Errorf("OpenTop(%s): %v", name, err)
				continue
			}
			st, _ := top.Fstat()
			var want unix.Stat_t
			must(t, unix.Stat(f.cache+"/"+name, &want))
			if st.Ino != want.Ino {
				t.Errorf("OpenTop(%s): inode %d, want %d", name, st.Ino, want.Ino)
			}
			top.Close()
		}

		top, err := f.h.OpenTop("models--a--b")
		must(t, err)
		defer top.Close()
		if b, err := top.ReadFile("blobs/x", 100); err != nil || string(b) != "moved blob" {
			t.Errorf("ReadFile beneath the moved repo: %q %v", b, err)
		}
		// Beneath it, symlinks are refused as anywhere else.
		if b, err := top.ReadFile("blobs/trap/marker", 1<<20); !errors.Is(err, ErrEscape) || len(b) != 0 {
			t.Errorf("ReadFile(blobs/trap/marker) beneath the moved repo: %q %v, want ErrEscape", b, err)
		}
		if _, err := top.ReadFile("../cache/dir/file", 100); !errors.Is(err, ErrEscape) {
			t.Errorf("ReadFile(..) beneath the moved repo: %v, want ErrEscape", err)
		}

		for _, name := range []string{"", ".", "..", "/", "models--a--b/blobs", "dir/sub", "../outside", "/etc", "$OUT", "link-out-dir/sub", "dir/"} {
			if top, err := f.h.OpenTop(f.expand(name)); !errors.Is(err, ErrEscape) {
				t.Errorf("OpenTop(%q): %v, want ErrEscape", name, err)
				top.Close()
			}
		}
		if _, err := f.h.OpenTop("missing"); !errors.Is(err, unix.ENOENT) {
			t.Errorf("OpenTop(missing): %v, want ENOENT", err)
		}
		if _, err := f.h.OpenTop("dir"); err != nil {
			t.Errorf("OpenTop(dir): %v", err)
		}
		f.checkOutside(t)
	})
}

func TestMkdir(t *testing.T) {
	cases := []struct {
		rel  string
		want error
		made string // a folder that must exist after (relative to the cache)
	}{
		{"new", nil, "new"},
		{"new/a/b/c/d/e", nil, "new/a/b/c/d/e"},
		{"dir/sub", nil, "dir/sub"},
		{"dir/sub/x/y", nil, "dir/sub/x/y"},
		{"dir/./sub/z", E, ""},
		{"link-out-dir", E, ""},
		{"link-out-dir/new", E, ""},
		{"link-out-dir/sub/new", E, ""},
		{"dir/link-out-dir/new/deeper", E, ""},
		{"dir/link-out-rel/new", E, ""},
		{"dir/dangling", E, ""},
		{"dir/dangling/new", E, ""},
		{"link-in-dir/new", E, ""},
		{"dir/link-out-file", E, ""},
		{"dir/file", D, ""},
		{"dir/file/x", D, ""},
		{"dir/fifo/x", D, ""},
	}
	for _, rel := range escapes {
		cases = append(cases, struct {
			rel  string
			want error
			made string
		}{rel, E, ""})
	}
	modes(t, func(t *testing.T) {
		for i, c := range cases {
			t.Run(subName(i, c.rel), func(t *testing.T) {
				f := newFixture(t)
				before := snapshot(t, f.root)
				d, err := f.h.Mkdir(f.expand(c.rel), 0o755)
				if !result(t, "Mkdir", err, c.want) {
					if d != nil {
						t.Errorf("Mkdir failed but returned a handle")
					}
					// Nothing was made anywhere (above all, not outside).
					sameTree(t, f.root, before)
					f.checkOutside(t)
					return
				}
				defer d.Close()
				st, _ := d.Fstat()
				want := lstat(t, f.cache+"/"+c.made)
				if st.Ino != want.Ino || want.Mode&unix.S_IFMT != unix.S_IFDIR {
					t.Errorf("Mkdir returned inode %d, want the folder %s (%d)", st.Ino, c.made, want.Ino)
				}
				f.checkOutside(t)
			})
		}
	})
}

func TestRemove(t *testing.T) {
	cases := []struct {
		rel  string
		want error
	}{
		{"dir/file", nil},
		{"dir/sub/deep", nil},
		{"dir/link-out-file", nil}, // the link, not the marker
		{"dir/link-out-dir", nil},
		{"link-out-dir", nil},
		{"dir/link-in-file", nil},
		{"dir/dangling", nil},
		{"dir/fifo", nil},
		{"dir/empty", nil},
		{"dir/sub", unix.ENOTEMPTY},
		{"dir/link-out-dir/marker", E},
		{"dir/link-out-dir/sub", E},
		{"link-out-dir/marker", E},
		{"link-out-dir/sub/x", E},
		{"link-out-dir/sub", E},
		{"dir/link-out-rel/marker", E},
		{"link-in-dir/file", E},
		{"missing", N},
		{"dir/missing/x", N},
		{"dir/file/x", D},
	}
	for _, rel := range escapes {
		cases = append(cases, struct {
			rel  string
			want error
		}{rel, E})
	}
	modes(t, func(t *testing.T) {
		for i, c := range cases {
			t.Run(subName(i, c.rel), func(t *testing.T) {
				f := newFixture(t)
				must(t, os.Mkdir(f.cache+"/dir/empty", 0o755))
				before := snapshot(t, f.root)
				rel := f.expand(c.rel)
				err := f.h.Remove(rel)
				if result(t, "Remove", err, c.want) {
					if exists(f.cache + "/" + rel) {
						t.Errorf("%s still exists", rel)
					}
					delete(before, "cache/"+rel)
				}
				sameTree(t, f.root, before)
				f.checkOutside(t)
			})
		}
	})
}

func TestRemoveAll(t *testing.T) {
	type tcase struct {
		name  string
		setup func(t *testing.T, f *fixture)
		rel   string
		want  error
		gone  bool // rel no longer exists beneath the cache
	}
	deepTree := func(t *testing.T, f *fixture) {
		p := f.cache + "/tree"
		for depth := range 40 {
			p += fmt.Sprintf("/d%02d", depth)
			must(t, os.MkdirAll(p, 0o755))
			for i := range 3 {
				must(t, os.WriteFile(fmt.Sprintf("%s/f%d", p, i), []byte("x"), 0o644))
			}
		}
		must(t, unix.Mkfifo(p+"/fifo", 0o644))
		must(t, os.Chmod(p, 0o500)) // no w: root removes it all the same
		wide := f.cache + "/tree/wide"
		must(t, os.Mkdir(wide, 0o755))
		for i := range 2500 { // more than one Readdirnames batch
			must(t, os.WriteFile(fmt.Sprintf("%s/%04d", wide, i), nil, 0o644))
		}
	}
	trapTree := func(t *testing.T, f *fixture) {
		for _, d := range []string{"t/a/b/c", "t/e"} {
			must(t, os.MkdirAll(f.cache+"/"+d, 0o755))
		}
		must(t, os.WriteFile(f.cache+"/t/a/b/c/f", []byte("inside"), 0o644))
		for link, target := range map[string]string{
			"t/out":          f.out,
			"t/a/out-sub":    f.out + "/sub",
			"t/a/b/c/out":    f.out,
			"t/a/b/marker":   f.out + "/marker",
			"t/e/rel":        "../../../outside",
			"t/e/rel-sub":    "../../../outside/sub",
			"t/a/b/c/in-dir": "../../../../dir",
		} {
			must(t, os.Symlink(target, f.cache+"/"+link))
		}
	}
	cases := []tcase{
		{"deep tree", deepTree, "tree", nil, true},
		{"tree of symlinks", trapTree, "t", nil, true},
		{"nested of a tree of symlinks", trapTree, "t/a", nil, true},
		{"symlink on top", nil, "dir/link-out-dir", nil, true},
		{"top-level symlink on top", nil, "link-out-dir", nil, true},
		{"relative symlink on top", nil, "dir/link-out-rel", nil, true},
		{"symlink to a file", nil, "dir/link-out-file", nil, true},
		{"whole dir", nil, "dir", nil, true},
		{"file", nil, "dir/file", nil, true},
		{"fifo", nil, "dir/fifo", nil, true},
		{"missing", nil, "missing", nil, true},
		{"missing parent", nil, "missing/deeper/x", nil, true},
		{"through a symlink", nil, "link-out-dir/sub", E, false},
		{"through a nested symlink", nil, "dir/link-out-dir/sub", E, false},
		{"file through a symlink", nil, "dir/link-out-dir/marker", E, false},
		{"through an inside symlink", nil, "link-in-dir/sub", E, false},
		{"through a file", nil, "dir/file/x", D, false},
	}
	for _, rel := range escapes {
		cases = append(cases, tcase{"escape", nil, rel, E, false})
	}
	modes(t, func(t *testing.T) {
		for i, c := range cases {
			t.Run(subName(i, c.name+" "+c.rel), func(t *testing.T) {
				f := newFixture(t)
				if c.setup != nil {
					c.setup(t, f)
				}
				before := snapshot(t, f.root)
				rel := f.expand(c.rel)
				var err error
				within(t, "RemoveAll", func() { err = f.h.RemoveAll(rel) })
				result(t, "RemoveAll", err, c.want)
				if c.gone {
					if exists(f.cache + "/" + rel) {
						t.Errorf("%s still exists", rel)
					}
					for k := range before {
						if k == "cache/"+rel || strings.HasPrefix(k, "cache/"+rel+"/") {
							delete(before, k)
						}
					}
				}
				sameTree(t, f.root, before) // nothing else went
				f.checkOutside(t)
			})
		}
	})
}

func TestRename(t *testing.T) {
	modes(t, func(t *testing.T) {
		t.Run("noreplace", func(t *testing.T) {
			f := newFixture(t)
			before := snapshot(t, f.root)
			err := f.h.Rename("dir/file", f.h, "dir/sub/deep", unix.RENAME_NOREPLACE)
			if !errors.Is(err, unix.EEXIST) {
				t.Errorf("Rename NOREPLACE onto a file: %v, want EEXIST", err)
			}
			err = f.h.Rename("dir/file", f.h, "dir/link-out-file", unix.RENAME_NOREPLACE)
			if !errors.Is(err, unix.EEXIST) {
				t.Errorf("Rename NOREPLACE onto a symlink: %v, want EEXIST", err)
			}
			sameTree(t, f.root, before)
		})

		t.Run("same handle", func(t *testing.T) {
			f := newFixture(t)
			must(t, f.h.Rename("dir/file", f.h, "dir/sub/moved", unix.RENAME_NOREPLACE))
			if b, _ := os.ReadFile(f.cache + "/dir/sub/moved"); string(b) != "inside" || exists(f.cache+"/dir/file") {
				t.Errorf("after Rename: moved %q, dir/file exists %v", b, exists(f.cache+"/dir/file"))
			}
			// A symlink is moved as itself, its target untouched.
			must(t, f.h.Rename("dir/link-out-dir", f.h, "moved-link", 0))
			if target, err := os.Readlink(f.cache + "/moved-link"); err != nil || target != f.out {
				t.Errorf("the moved symlink: %q %v", target, err)
			}
			f.checkOutside(t)
		})

		t.Run("two handles", func(t *testing.T) {
			f := newFixture(t)
			// Two handles of one folder tree...
			a, err := f.h.OpenDir("dir")
			must(t, err)
			defer a.Close()
			b, err := f.h.OpenDir("dir/sub")
			must(t, err)
			defer b.Close()
			must(t, a.Rename("file", b, "file2", unix.RENAME_NOREPLACE))
			// ...and two roots on one file system.
			must(t, os.Mkdir(f.root+"/trash", 0o755))
			trash, err := OpenRoot(f.root + "/trash")
			must(t, err)
			defer trash.Close()
			must(t, b.Rename("file2", trash, "file3", unix.RENAME_NOREPLACE))
			if got, _ := os.ReadFile(f.root + "/trash/file3"); string(got) != "inside" {
				t.Errorf("trash/file3: %q", got)
			}
			must(t, trash.Rename("file3", f.h, "dir/file", unix.RENAME_NOREPLACE))
			must(t, f.h.Rename("dir/sub", trash, "sub", unix.RENAME_NOREPLACE))
			if got, _ := os.ReadFile(f.root + "/trash/sub/deep"); string(got) != "deep" {
				t.Errorf("trash/sub/deep: %q", got)
			}
			f.checkOutside(t)
		})

		refused := []struct{ old, new string }{
			{"link-out-dir/marker", "stolen"},
			{"link-out-dir/sub", "stolen"},
			{"dir/link-out-dir/sub/marker", "stolen"},
			{"dir/link-out-rel/marker", "stolen"},
			{"link-in-dir/file", "stolen"},
			{"dir/file", "link-out-dir/planted"},
			{"dir/file", "dir/link-out-dir/sub/planted"},
			{"dir/file", "dir/link-out-rel/planted"},
			{"dir/file", "dir/dangling/planted"},
			{"dir/file", "link-in-dir/planted"},
			{"dir/file", "../planted"},
			{"dir/file", "$OUT/planted"},
			{"dir/file", ""},
			{"../outside/marker", "stolen"},
			{"$OUT/marker", "stolen"},
			{"dir/../../outside/marker", "stolen"},
			{"", "stolen"},
		}
		for i, c := range refused {
			t.Run(subName(i, c.old+" to "+c.new), func(t *testing.T) {
				f := newFixture(t)
				before := snapshot(t, f.root)
				err := f.h.Rename(f.expand(c.old), f.h, f.expand(c.new), unix.RENAME_NOREPLACE)
				if !errors.Is(err, ErrEscape) {
					t.Errorf("Rename: %v, want ErrEscape", err)
				}
				sameTree(t, f.root, before)
			})
		}
	})
}

func TestHandleClose(t *testing.T) {
	h, err := OpenRoot(t.TempDir())
	must(t, err)
	if h.Fd() < 0 || h.Path() == "" {
		t.Errorf("Fd %d Path %q", h.Fd(), h.Path())
	}
	must(t, h.Close())
	must(t, h.Close())
	if h.Fd() != -1 {
		t.Errorf("Fd after Close: %d", h.Fd())
	}
	var nilHandle *Handle
	must(t, nilHandle.Close())
	if _, err := OpenRoot(t.TempDir() + "/missing"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("OpenRoot(missing): %v", err)
	}
}

// raceSeconds is how long each mode of TestSwapRace runs.
const raceSeconds = 10

// TestSwapRace swaps cache/repo/blobs between a real folder and a symlink
// to an outside folder of markers (RENAME_EXCHANGE, in a tight loop)
// while other goroutines read, recreate, remove and list beneath the
// cache handle: no read may return a marker, nothing outside may change.
func TestSwapRace(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the swap race runs 2×10 s")
	}
	modes(t, func(t *testing.T) { swapRace(t, raceSeconds*time.Second) })
}

func swapRace(t *testing.T, d time.Duration) {
	root := t.TempDir()
	cache, out := root+"/cache", root+"/outside"
	repo := cache + "/repo"
	must(t, os.MkdirAll(out+"/nested/deeper", 0o755))
	must(t, os.MkdirAll(repo+"/blobs", 0o755))
	// The outside folder has what the cache has, by the same names.
	for _, p := range []string{"x", "nested/x", "nested/deeper/x"} {
		must(t, os.WriteFile(out+"/"+p, []byte(markerBytes), 0o644))
	}
	for i := range 10 {
		must(t, os.WriteFile(fmt.Sprintf("%s/marker-%d", out, i), []byte(markerBytes), 0o644))
		must(t, os.WriteFile(fmt.Sprintf("%s/nested/marker-%d", out, i), []byte(markerBytes), 0o644))
	}
	outside := snapshot(t, out)
	const nMarkers = 23
	if n := markers(outside); n != nMarkers {
		t.Fatalf("%d markers, want %d", n, nMarkers)
	}
	var outIno unix.Stat_t
	must(t, unix.Stat(out+"/x", &outIno))
	must(t, os.WriteFile(repo+"/blobs/x", []byte("inside"), 0o644))
	must(t, os.Symlink(out, repo+"/alt"))

	h, err := OpenRoot(cache)
	must(t, err)
	defer h.Close()
	repoFd, err := unix.Open(repo, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(repoFd)

	var (
		stop                           atomic.Bool
		swaps, repairs                 atomic.Int64
		reads, readsOK, readsRefused   atomic.Int64
		readsMissing, readsOther       atomic.Int64
		lists, stats                   atomic.Int64
		recreates, removeAlls, removes atomic.Int64
		removeErrs                     atomic.Int64
		wg                             sync.WaitGroup
	)
	otherErrs := make(chan error, 16)
	noteOther := func(err error) {
		select {
		case otherErrs <- err:
		default:
		}
	}

	// The attacker: blobs <-> alt (a symlink to the outside), as fast as
	// it goes; whatever the cleaners removed is made again.
	wg.Add(1)
	go func() {
		defer wg.Done()
		kind := func(name string) uint32 {
			var st unix.Stat_t
			if unix.Fstatat(repoFd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
				return 0
			}
			return st.Mode & unix.S_IFMT
		}
		for !stop.Load() {
			err := unix.Renameat2(repoFd, "blobs", repoFd, "alt", unix.RENAME_EXCHANGE)
			if err == nil {
				swaps.Add(1)
				continue
			}
			if err != unix.ENOENT {
				t.Errorf("swap: %v", err)
				return
			}
			repairs.Add(1)
			kb, ka := kind("blobs"), kind("alt")
			switch {
			case kb == 0 && ka == unix.S_IFLNK:
				unix.Mkdirat(repoFd, "blobs", 0o755)
			case ka == 0 && kb == unix.S_IFLNK:
				unix.Mkdirat(repoFd, "alt", 0o755)
			case kb == 0:
				unix.Symlinkat(out, repoFd, "blobs")
			case ka == 0:
				unix.Symlinkat(out, repoFd, "alt")
			}
		}
	}()

	// Readers: the bytes of repo/blobs/x are never a marker, repo/blobs
	// never lists the outside, Stat never sees the outside x.
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				switch (i + r) % 4 {
				case 2:
					names, _ := h.ReadDir("repo/blobs")
					lists.Add(1)
					for _, n := range names {
						if strings.HasPrefix(n, "marker-") {
							t.Errorf("ReadDir(repo/blobs) listed the outside folder: %q", names)
							return
						}
					}
					continue
				case 3:
					st, err := h.Stat("repo/blobs/x")
					stats.Add(1)
					if err == nil && st.Ino == outIno.Ino && st.Dev == outIno.Dev {
						t.Errorf("Stat(repo/blobs/x) reached the outside x")
						return
					}
					continue
				}
				b, err := h.ReadFile("repo/blobs/x", 1<<20)
				reads.Add(1)
				switch {
				case bytes.Contains(b, []byte("OUTSIDE")):
					t.Errorf("ReadFile(repo/blobs/x) returned the outside marker: %q (%v)", b, err)
					return
				case err == nil:
					readsOK.Add(1)
				case errors.Is(err, ErrEscape):
					readsRefused.Add(1)
				case errors.Is(err, unix.ENOENT):
					readsMissing.Add(1)
				default:
					// ENOTDIR: a symlink met by the walk (O_DIRECTORY) and
					// swapped back to a folder before escaped looked.
					readsOther.Add(1)
					if !errors.Is(err, unix.ENOTDIR) {
						noteOther(err)
					}
				}
			}
		}()
	}

	// Cleaners: make repo/blobs/x (and a nested tree) beneath the handle,
	// then RemoveAll the folder or Remove the file.
	for c := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				if d, err := h.Mkdir("repo/blobs/nested/deeper", 0o755); err == nil {
					d.Close()
				}
				for _, p := range []string{"repo/blobs/x", "repo/blobs/nested/x", "repo/blobs/nested/deeper/x"} {
					fd, err := h.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC, 0o644)
					if err == nil {
						unix.Write(fd, []byte("inside"))
						unix.Close(fd)
					}
				}
				recreates.Add(1)
				var err error
				if (i+c)%2 == 0 {
					err = h.RemoveAll("repo/blobs")
					removeAlls.Add(1)
				} else {
					for _, p := range []string{"repo/blobs/nested/deeper/x", "repo/blobs/nested/x", "repo/blobs/x"} {
						if e := h.Remove(p); e != nil && err == nil {
							err = e
						}
					}
					removes.Add(1)
				}
				if err != nil {
					removeErrs.Add(1)
				}
			}
		}()
	}

	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	close(otherErrs)
	for err := range otherErrs {
		t.Errorf("ReadFile(repo/blobs/x): unexpected %v", err)
	}

	got := snapshot(t, out)
	sameTree(t, out, outside)
	t.Logf("%v: %d swaps (%d repairs); %d ReadFile (%d read inside bytes, %d ErrEscape, %d ENOENT, %d other), %d ReadDir, %d Stat; %d recreates, %d RemoveAll, %d Remove rounds (%d with an error); %d/%d outside markers left",
		d, swaps.Load(), repairs.Load(), reads.Load(), readsOK.Load(), readsRefused.Load(), readsMissing.Load(), readsOther.Load(),
		lists.Load(), stats.Load(), recreates.Load(), removeAlls.Load(), removes.Load(), removeErrs.Load(), markers(got), nMarkers)
	if markers(got) != nMarkers {
		t.Errorf("%d outside markers left, want %d", markers(got), nMarkers)
	}
	if swaps.Load() == 0 || readsOK.Load() == 0 || readsRefused.Load() == 0 || removeAlls.Load() == 0 || removes.Load() == 0 {
		t.Errorf("the race did not run both ways (swaps, reads of inside bytes, refusals, RemoveAll, Remove must all be > 0)")
	}
}

// BenchmarkOpen compares os.Open+Close of a cache file with Handle.Open
// (openat2, then the walk) + Close of the same file.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	rel := "models--org--name/snapshots/0123456789abcdef0123456789abcdef01234567/config.json"
	must(b, os.MkdirAll(filepath.Dir(dir+"/"+rel), 0o755))
	must(b, os.WriteFile(dir+"/"+rel, []byte("{}"), 0o644))
	h, err := OpenRoot(dir)
	must(b, err)
	defer h.Close()

	b.Run("os.Open", func(b *testing.B) {
		for b.Loop() {
			f, err := os.Open(dir + "/" + rel)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	for _, m := range []struct {
		name string
		walk bool
	}{{"Handle.Open/openat2", false}, {"Handle.Open/walk", true}} {
		b.Run(m.name, func(b *testing.B) {
			if !m.walk && !haveOpenat2() {
				b.Skip("no openat2")
			}
			prev := noOpenat2.Load()
			ForceWalk(m.walk)
			b.Cleanup(func() { ForceWalk(prev) })
			for b.Loop() {
				fd, err := h.Open(rel, unix.O_RDONLY, 0)
				if err != nil {
					b.Fatal(err)
				}
				unix.Close(fd)
			}
		})
	}
}
