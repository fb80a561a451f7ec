package cachecore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/hfcachefs/hfcachefs/internal/safefs"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

// benchCache is a synthetic cache (scripts/gencache) kept in the temp
// dir across runs, so that runs before and after a change scan the same
// tree: 500 repos x 3 revisions x 30 files.
var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

func benchScanCache(b *testing.B) string {
	b.Helper()
	benchOnce.Do(func() {
		const repos, revisions, files = 500, 3, 30
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("hfcachefs-bench-scan-%d-%d-%d", repos, revisions, files))
		if _, err := os.Stat(filepath.Join(dir, "CACHEDIR.TAG")); err == nil {
			benchDir = dir
			return
		}
		os.RemoveAll(dir)
		bin := filepath.Join(b.TempDir(), "gencache")
		build := exec.Command("go", "build", "-o", bin, "./scripts/gencache")
		build.Dir = testcache.Root()
		if out, err := build.CombinedOutput(); err != nil {
			benchErr = fmt.Errorf("go build gencache: %v\n%s", err, out)
			return
		}
		gen := exec.Command(bin, "-out", dir, "-repos", fmt.Sprint(repos), "-revisions", fmt.Sprint(revisions), "-files", fmt.Sprint(files))
		if out, err := gen.CombinedOutput(); err != nil {
			benchErr = fmt.Errorf("gencache: %v\n%s", err, out)
			return
		}
		benchDir = dir
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDir
}

// BenchmarkScan scans a 500-repo, 45k-file synthetic cache.
func BenchmarkScan(b *testing.B) {
	dir := benchScanCache(b)
	if _, err := Scan(dir); err != nil { // warm the kernel's caches
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Scan(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// openTestCache is a small cache: one repo, one file f.txt -> blob b1.
func openTestCache(t *testing.T) (cache string, info *CacheInfo, f *FileInfo, root *safefs.Handle) {
	t.Helper()
	cache, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	healthyRepo(t, cache, "models--acme--tiny")
	info = mustScan(t, cache)
	if len(info.Repos) != 1 || len(info.Repos[0].Revisions) != 1 || len(info.Repos[0].Revisions[0].Files) != 1 {
		t.Fatalf("fixture: %+v", info.Repos)
	}
	f = info.Repos[0].Revisions[0].Files[0]
	if root, err = safefs.OpenRoot(info.CacheDir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return cache, info, f, root
}

// readFd reads an fd OpenBlob returned, and closes it.
func readFd(t *testing.T, fd int) string {
	t.Helper()
	f := os.NewFile(uintptr(fd), "blob")
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBlobStatStays96Bytes(t *testing.T) {
	// One per distinct blob of every scanned repo: a size class more is
	// 16 bytes per blob of a daemon's model.
	if n := unsafe.Sizeof(BlobStat{}); n > 96 {
		t.Errorf("BlobStat is %d bytes, more than 96", n)
	}
}

func TestOpenBlobServesTheScannedBlob(t *testing.T) {
	_, info, f, root := openTestCache(t)
	b := f.Blob
	if b.Outside || b.Base != BaseRepo || b.Rel() != "blobs/b1" || b.Repo == nil || b.Repo.Folder != "models--acme--tiny" || b.Repo.Linked {
		t.Fatalf("blob placed as %+v (rel %q), anchor %+v", b, b.Rel(), b.Repo)
	}
	if a := info.Repos[0].Anchor; a != b.Repo || len(a.Dirs) != 1 || a.Dirs[0].Rel != "blobs" || a.Dirs[0].Base != BaseRepo {
		t.Fatalf("anchor %+v", a)
	}
	fd, err := OpenBlob(root, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFd(t, fd); got != "hello" {
		t.Errorf("read %q", got)
	}
	if err := CheckAnchor(root, info.Repos[0]); err != nil {
		t.Errorf("CheckAnchor of an unchanged repo: %v", err)
	}
}

// The attack: the blobs folder swapped for a symlink to a folder outside
// the cache holding a file of the blob's name.
func TestOpenBlobRefusesASymlinkedBlobsFolder(t *testing.T) {
	cache, info, f, root := openTestCache(t)
	outside := t.TempDir()
	write(t, filepath.Join(outside, "b1"), "SECRET")
	repo := filepath.Join(cache, "models--acme--tiny")
	if err := os.Rename(filepath.Join(repo, "blobs"), filepath.Join(repo, "blobs.real")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(repo, "blobs")); err != nil {
		t.Fatal(err)
	}
	for _, walk := range []bool{false, true} {
		safefs.ForceWalk(walk)
		fd, err := OpenBlob(root, f)
		if err == nil {
			t.Fatalf("walk=%v: opened through the symlink: %q", walk, readFd(t, fd))
		}
		if !errors.Is(err, ErrOutsideCache) || errors.Is(err, ErrStale) {
			t.Errorf("walk=%v: err = %v, want ErrOutsideCache", walk, err)
		}
		if err := CheckAnchor(root, info.Repos[0]); !errors.Is(err, ErrOutsideCache) {
			t.Errorf("walk=%v: CheckAnchor = %v, want ErrOutsideCache", walk, err)
		}
	}
	safefs.ForceWalk(false)
	// A symlink swapped in for the blob itself.
	if err := os.Remove(filepath.Join(repo, "blobs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(repo, "blobs.real"), filepath.Join(repo, "blobs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(repo, "blobs", "b1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "b1"), filepath.Join(repo, "blobs", "b1")); err != nil {
		t.Fatal(err)
	}
	if fd, err := OpenBlob(root, f); err == nil || !errors.Is(err, ErrOutsideCache) {
		if err == nil {
			t.Fatalf("opened a symlinked blob: %q", readFd(t, fd))
		}
		t.Errorf("symlinked blob: err = %v, want ErrOutsideCache", err)
	}
}

// A re-download (write to a temp file, rename over the blob) is another
// inode: ErrStale, and a new scan serves it.
func TestOpenBlobStaleAfterReplace(t *testing.T) {
	cache, _, f, root := openTestCache(t)
	blob := filepath.Join(cache, "models--acme--tiny", "blobs", "b1")
	write(t, blob+".tmp", "hello")
	if err := os.Rename(blob+".tmp", blob); err != nil {
		t.Fatal(err)
	}
	if fd, err := OpenBlob(root, f); !errors.Is(err, ErrStale) || errors.Is(err, ErrOutsideCache) {
		if err == nil {
			syscall.Close(fd)
		}
		t.Fatalf("after a replace: err = %v, want ErrStale", err)
	}
	f2 := mustScan(t, cache).Repos[0].Revisions[0].Files[0]
	fd, err := OpenBlob(root, f2)
	if err != nil {
		t.Fatalf("the new scan's blob: %v", err)
	}
	if got := readFd(t, fd); got != "hello" {
		t.Errorf("read %q", got)
	}
	// Gone altogether: ErrStale too (wrapping ENOENT).
	if err := os.Remove(blob); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBlob(root, f2); !errors.Is(err, ErrStale) || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("a removed blob: err = %v, want ErrStale and ENOENT", err)
	}
	// A FIFO at the blob's path is never opened for reading (no block).
	if err := syscall.Mkfifo(blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBlob(root, f2); !errors.Is(err, ErrStale) {
		t.Errorf("a FIFO swapped in: err = %v, want ErrStale", err)
	}
}

// The repo folder replaced by another folder (or by a symlink to one):
// the handle opened at the top is not the folder scanned.
func TestOpenBlobRepoFolderReplaced(t *testing.T) {
	cache, info, f, root := openTestCache(t)
	repo := filepath.Join(cache, "models--acme--tiny")
	other := filepath.Join(t.TempDir(), "copy")
	if err := os.Rename(repo, other); err != nil {
		t.Fatal(err)
	}
	// Same names, other inodes: a copy put back.
	healthyRepo(t, cache, "models--acme--tiny")
	if _, err := OpenBlob(root, f); !errors.Is(err, ErrStale) {
		t.Errorf("a replaced repo folder: err = %v, want ErrStale", err)
	}
	if err := CheckAnchor(root, info.Repos[0]); !errors.Is(err, ErrStale) {
		t.Errorf("CheckAnchor of a replaced repo folder: %v, want ErrStale", err)
	}
	// The old folder linked back: the same folder, so served (a root-owned link).
	if err := os.RemoveAll(repo); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, repo); err != nil {
		t.Fatal(err)
	}
	fd, err := OpenBlob(root, f)
	if err != nil {
		t.Fatalf("the scanned folder behind a symlink: %v", err)
	}
	if got := readFd(t, fd); got != "hello" {
		t.Errorf("read %q", got)
	}
}

// A repo folder that is a symlink (moved to another disk): followed at
// the top when its owner may, its blobs served beneath it; refused (every
// file Outside, one notice) when the link's owner is neither root nor the
// target's owner. Sizes and warnings are the same either way.
func TestSymlinkedRepoFolderIsFollowedOnlyForItsOwner(t *testing.T) {
	cache, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	disk, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	real := healthyRepo(t, disk, "models--acme--moved")
	link := filepath.Join(cache, "models--acme--moved")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	info := mustScan(t, cache)
	f := info.Repos[0].Revisions[0].Files[0]
	if b := f.Blob; b.Outside || b.Base != BaseRepo || !b.Repo.Linked || b.Repo.Real != real || b.Rel() != "blobs/b1" {
		t.Fatalf("blob of a followed repo link: %+v anchor %+v", b, b.Repo)
	}
	if hasNotice(info, NoticeOutsideCache, "") {
		t.Errorf("notices for a followed repo link: %+v", info.Notices)
	}
	root, err := safefs.OpenRoot(cache)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	fd, err := OpenBlob(root, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFd(t, fd); got != "hello" {
		t.Errorf("read %q", got)
	}
	size := info.SizeOnDisk

	if os.Geteuid() != 0 {
		t.Skip("needs root to make a link owned by another user")
	}
	if err := os.Lchown(link, 1000, 1000); err != nil { // the target stays root's
		t.Fatal(err)
	}
	info = mustScan(t, cache)
	f = info.Repos[0].Revisions[0].Files[0]
	if b := f.Blob; !b.Outside || b.Base != BaseNone || b.Repo.Linked || !b.Repo.Refused {
		t.Fatalf("blob of a refused repo link: %+v anchor %+v", b, b.Repo)
	}
	if info.SizeOnDisk != size || len(info.Warnings) != 0 {
		t.Errorf("size %d (was %d), warnings %v: counting must not change", info.SizeOnDisk, size, info.Warnings)
	}
	n := 0
	for _, no := range info.Notices {
		if no.Kind == NoticeOutsideCache {
			n++
			if no.Path != link || !strings.Contains(no.Message, "uid 1000") {
				t.Errorf("notice %+v", no)
			}
		}
	}
	if n != 1 {
		t.Errorf("want one notice for the refused link, got %+v", info.Notices)
	}
	if _, err := OpenBlob(root, f); !errors.Is(err, ErrOutsideCache) {
		t.Errorf("OpenBlob of a refused link's blob: %v", err)
	}
	// The link's owner owning the target: followed.
	if err := os.Chown(real, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if b := mustScan(t, cache).Repos[0].Revisions[0].Files[0].Blob; b.Outside || !b.Repo.Linked {
		t.Errorf("a link to its owner's folder should be followed: %+v", b.Repo)
	}
}

// The newer library's shared blob store: a repo blob is a symlink to
// <cache>/blobs/<2hex>/<hash>, opened beneath the cache dir.
func TestOpenBlobSharedStore(t *testing.T) {
	cache, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := healthyRepo(t, cache, "models--acme--shared")
	hash := strings.Repeat("ab", 32)
	write(t, filepath.Join(cache, "blobs", "ab", hash), "hello")
	b1 := filepath.Join(repo, "blobs", "b1")
	if err := os.Remove(b1); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../blobs/ab/"+hash, b1); err != nil {
		t.Fatal(err)
	}
	info := mustScan(t, cache)
	r := info.Repo("model", "acme/shared")
	if r == nil {
		t.Fatalf("no repo: %+v", info)
	}
	f := r.Revisions[0].Files[0]
	if b := f.Blob; b.Outside || b.Base != BaseCache || b.Rel() != "blobs/ab/"+hash {
		t.Fatalf("shared blob placed as %+v rel %q", b, b.Rel())
	}
	root, err := safefs.OpenRoot(cache)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	fd, err := OpenBlob(root, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFd(t, fd); got != "hello" {
		t.Errorf("read %q", got)
	}
	if err := CheckAnchor(root, r); err != nil {
		t.Errorf("CheckAnchor: %v", err)
	}
	// The store's folder swapped for a symlink: refused.
	store := filepath.Join(cache, "blobs", "ab")
	if err := os.Rename(store, store+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ab.real", store); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBlob(root, f); !errors.Is(err, ErrOutsideCache) {
		t.Errorf("through a symlinked store folder: %v", err)
	}
	if err := CheckAnchor(root, r); !errors.Is(err, ErrOutsideCache) {
		t.Errorf("CheckAnchor through a symlinked store folder: %v", err)
	}
}

// BenchmarkOpenBlob is the cost of one open beneath handles (the repo
// folder opened per call, then the blob, two fstats).
func BenchmarkOpenBlob(b *testing.B) {
	dir := benchScanCache(b)
	info, err := Scan(dir)
	if err != nil {
		b.Fatal(err)
	}
	root, err := safefs.OpenRoot(info.CacheDir)
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	f := info.Repos[0].Revisions[0].Files[0]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fd, err := OpenBlob(root, f)
		if err != nil {
			b.Fatal(err)
		}
		syscall.Close(fd)
	}
}

// BenchmarkOpenPath is the old open by path, for comparison.
func BenchmarkOpenPath(b *testing.B) {
	dir := benchScanCache(b)
	info, err := Scan(dir)
	if err != nil {
		b.Fatal(err)
	}
	f := info.Repos[0].Revisions[0].Files[0]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fd, err := syscall.Open(f.BlobPath, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		var st syscall.Stat_t
		_ = syscall.Fstat(fd, &st)
		syscall.Close(fd)
	}
}

// verify hashes the blobs of a repo folder linked by its owner beneath that
// folder (as the mount serves them), and never those of a link it does not
// follow, nor a blob behind a blobs folder swapped for a symlink.
func TestVerifyThroughHandles(t *testing.T) {
	cache, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	disk, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("verified bytes")
	etag := vSHA256(content)
	mk := func(parent, folder string) string {
		repo := healthyRepo(t, parent, folder)
		os.Remove(filepath.Join(repo, "blobs", "b1"))
		snap := filepath.Join(repo, "snapshots", strings.Repeat("a", 40))
		os.Remove(filepath.Join(snap, "f.txt"))
		write(t, filepath.Join(repo, "blobs", etag), string(content))
		if err := os.Symlink("../../blobs/"+etag, filepath.Join(snap, "f.txt")); err != nil {
			t.Fatal(err)
		}
		return repo
	}
	moved := mk(disk, "models--acme--moved")
	if err := os.Symlink(moved, filepath.Join(cache, "models--acme--moved")); err != nil {
		t.Fatal(err)
	}
	plain := mk(cache, "models--acme--plain")

	rep, err := Verify(context.Background(), cache, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Checked != 2 || rep.BytesHashed != 2*int64(len(content)) {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range rep.Results {
		if r.Status != VerifyOK {
			t.Errorf("%s: %s %s", r.BlobPath, r.Status, r.Detail)
		}
	}

	// A blobs folder swapped for a symlink (to the same bytes, even)
	// after the check, before the hashing: the open beneath the cache dir
	// refuses it.
	if err := os.Rename(filepath.Join(plain, "blobs"), filepath.Join(plain, "blobs.real")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("blobs.real", filepath.Join(plain, "blobs")); err != nil {
		t.Fatal(err)
	}
	root, err := safefs.OpenRoot(cache)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if f, _, status, detail := verifyOpenAt(root, "models--acme--plain/blobs/"+etag); f != nil || status != VerifyUnreadable {
		if f != nil {
			f.Close()
		}
		t.Errorf("verify's open through a symlinked blobs folder: %q %q", status, detail)
	}
	if f, _, status, _ := verifyOpenAt(root, "models--acme--plain/blobs.real/"+etag); f == nil {
		t.Errorf("verify's open of a plain path: %q", status)
	} else {
		f.Close()
	}

	if os.Geteuid() != 0 {
		return
	}
	if err := os.Lchown(filepath.Join(cache, "models--acme--moved"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(context.Background(), cache, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if strings.HasPrefix(r.BlobPath, moved+"/") && (r.Status != VerifyUnreadable || r.Detail != VerifyDetailOutside || r.Actual != "") {
			t.Errorf("a link not followed: %+v", r)
		}
	}
}

// A warning served by the mount (.status.json) never quotes a ref read
// from outside what the mount serves: through a symlinked refs/ folder,
// or through a repo folder link it does not follow.
func TestWarningsNeverQuoteRefsFromOutside(t *testing.T) {
	cache, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	write(t, filepath.Join(secret, "key"), "PRIVATE-KEY-MATERIAL")
	repo := healthyRepo(t, cache, "models--acme--refsdir")
	if err := os.RemoveAll(filepath.Join(repo, "refs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(repo, "refs")); err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		info := mustScan(t, cache)
		if len(info.Warnings) != 1 {
			t.Fatalf("%s: warnings %v", what, info.Warnings)
		}
		w := info.Warnings[0]
		if !strings.Contains(w.Message, "PRIVATE-KEY-MATERIAL") {
			t.Errorf("%s: the message should stay upstream's: %q", what, w.Message)
		}
		if strings.Contains(w.Safe(), "PRIVATE-KEY-MATERIAL") {
			t.Errorf("%s: the served message quotes the outside file: %q", what, w.Safe())
		}
	}
	check("a symlinked refs/ folder")

	if os.Geteuid() != 0 {
		return
	}
	// A repo link by uid 1000 to a root-owned repo-like folder.
	if err := os.RemoveAll(repo); err != nil {
		t.Fatal(err)
	}
	other := healthyRepo(t, t.TempDir(), "models--x--y")
	write(t, filepath.Join(other, "refs", "main"), "PRIVATE-KEY-MATERIAL")
	if err := os.Symlink(other, repo); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(repo, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	check("a repo link not followed")
}
