package mount

// Trust tests of .trash: what a mount may delete for whom, and what it
// must never lose (a ref a download just moved, the cache when its state
// folder is full, a locked blob's bytes), on real mounts. Same rule as the
// other mount tests: the test process mounts and reads or writes the cache
// folder directly, but every access to the mount is a child process.

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/internal/testcache"
	"github.com/hfcachefs/hfcachefs/trash"
	"github.com/hfcachefs/hfcachefs/views"
)

// tuTree is treeState (type, mode, size, hash, owner of every entry)
// without .locks/, where download locks (huggingface_hub's and ours) come
// and go.
func tuTree(t *testing.T, cache string) map[string]string {
	t.Helper()
	out := treeState(t, cache)
	for p := range out {
		if p == "/.locks" || strings.HasPrefix(p, "/.locks/") {
			delete(out, p)
		}
	}
	return out
}

// tuStateFiles lists every file kept in the receipts folders of the
// current XDG_STATE_HOME (receipts and anything else left there).
func tuStateFiles(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_STATE_HOME"), "hfcachefs", "*", "receipts", "*"))
	return files
}

// tuNoReceipt checks that no receipt was written, in the state folder and
// in .trash.
func tuNoReceipt(t *testing.T, tm *trMount, what string) {
	t.Helper()
	if files := tuStateFiles(t); len(files) != 0 {
		t.Errorf("%s: files in the receipts folder: %v", what, files)
	}
	if names := trLs(t, tm.P(".trash")); len(names) != 0 {
		t.Errorf("%s: .trash lists %v", what, names)
	}
}

// tuChown chowns paths (not following symlinks), each folder with
// everything in it when recursive.
func tuChown(t *testing.T, uid int, recursive bool, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if !recursive {
			if err := os.Lchown(p, uid, uid); err != nil {
				t.Fatal(err)
			}
			continue
		}
		err := filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(q, uid, uid)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// tuAs1000 runs a child as uid/gid 1000 with no supplementary group.
func tuAs1000(t *testing.T, args ...string) result {
	t.Helper()
	return trRun(t, "setpriv", append([]string{"--reuid=1000", "--regid=1000", "--clear-groups"}, args...)...)
}

// tuSizes maps every blob of a cache (absolute path) to its size.
func tuSizes(t *testing.T, cache string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	blobs, _ := filepath.Glob(filepath.Join(cache, "*", "blobs", "*"))
	for _, b := range blobs {
		fi, err := os.Lstat(b)
		if err != nil {
			t.Fatal(err)
		}
		out[b] = fi.Size()
	}
	return out
}

// 1. A non-root caller (--allow-other) may trash only what they could
// delete by themselves: the kernel checks the folders the mount shows
// (the repo, snapshots/, the revision, the cache root for .trash), the
// daemon (root) checks the rest (refs/, blobs/, the sticky bit) before it
// touches anything. Fails before the daemon checked the caller
// (plan.CheckCaller in trasher.Trash): root deleted refs and blobs the
// user could not.
func TestTrustNonRootMayDeleteOnlyWhatTheyCould(t *testing.T) {
	needRoot(t, "chowns the cache and runs mv as uid 1000")
	needTool(t, "setpriv")

	// setup makes a basic cache whose root any user may write (the kernel
	// checks .trash against it) and mounts it with --allow-other.
	setup := func(t *testing.T) (string, *trMount) {
		cache := testcache.Basic(t)
		if err := os.Chmod(cache, 0o777); err != nil {
			t.Fatal(err)
		}
		mp := newMountpoint(t)
		openToOthers(t, cache, mp) // t.TempDir roots are 0700
		return cache, trStartAt(t, mp, cache, Options{AllowOther: true})
	}
	refused := func(t *testing.T, cache string, tm *trMount, what string) {
		t.Helper()
		before := tuTree(t, cache)
		r := tuAs1000(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", "x"))
		if r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
			t.Errorf("%s: mv into .trash as uid 1000: %s; want Permission denied", what, r)
		}
		trSameTree(t, what+": a refused mv", before, tuTree(t, cache))
		tuNoReceipt(t, tm, what)
		if !contains(trLs(t, tm.P(tinyModel, "by-commit")), v1Commit) {
			t.Errorf("%s: the revision left by-commit/", what)
		}
	}
	deleted := func(t *testing.T, cache string, tm *trMount, what string) {
		t.Helper()
		if r := tuAs1000(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", "x")); r.code != 0 {
			t.Fatalf("%s: mv into .trash as uid 1000: %s", what, r)
		}
		trWaitTrashIdle(t, tm.mp)
		for _, p := range []string{"snapshots/" + v1Commit, "refs/v1.0", "refs/feature/x"} {
			if trExists(filepath.Join(cache, trTinyFS, p)) {
				t.Errorf("%s: %s is still in the cache", what, p)
			}
		}
		if r := trReceipt(t, tm, "x"); r.State != trash.StateDeleted || len(r.Skipped) != 0 {
			t.Errorf("%s: receipt: state %s, skipped %v", what, r.State, r.Skipped)
		}
		scanClean(t, cache)
	}

	t.Run("blobs and refs", func(t *testing.T) {
		cache, tm := setup(t)
		repo := filepath.Join(cache, trTinyFS)
		// What the kernel looks at is uid 1000's: the repo folder,
		// snapshots/ and the revision (all of it); blobs/ and refs/ stay
		// root's, 0755.
		tuChown(t, 1000, false, repo, filepath.Join(repo, "snapshots"))
		tuChown(t, 1000, true, filepath.Join(repo, "snapshots", v1Commit))
		refused(t, cache, tm, "blobs/ and refs/ root's")

		// Each alone refuses it too.
		tuChown(t, 1000, true, filepath.Join(repo, "refs"))
		refused(t, cache, tm, "blobs/ root's (refs/ uid 1000's)")
		tuChown(t, 0, true, filepath.Join(repo, "refs"))
		tuChown(t, 1000, true, filepath.Join(repo, "blobs"))
		refused(t, cache, tm, "refs/ root's (blobs/ uid 1000's)")

		// Everything the deletion touches is uid 1000's: the same mv works.
		tuChown(t, 1000, true, repo)
		deleted(t, cache, tm, "the repo uid 1000's")
	})

	t.Run("sticky refs", func(t *testing.T) {
		cache, tm := setup(t)
		repo := filepath.Join(cache, trTinyFS)
		tuChown(t, 1000, true, repo)
		// refs/ is root's, 1777 (anyone may add, only owners may remove),
		// and refs/v1.0 in it is root's.
		tuChown(t, 0, false, filepath.Join(repo, "refs"), filepath.Join(repo, "refs", "v1.0"))
		if err := os.Chmod(filepath.Join(repo, "refs"), 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
		refused(t, cache, tm, "refs/ 1777 with refs/v1.0 root's")

		// The ref is uid 1000's: the sticky bit lets its owner remove it.
		tuChown(t, 1000, false, filepath.Join(repo, "refs", "v1.0"))
		deleted(t, cache, tm, "refs/ 1777 with refs/v1.0 uid 1000's")
	})
}

// 2. A ref that a download moved off the trashed revision is kept: the
// deletion is planned from the repo as it is at rename time (not the
// mount's view, stale on purpose here: no poll for an hour) and each ref
// is re-read, and moved only if it still names a trashed commit. Fails
// before the fix that planned from a fresh scan and re-read refs at
// staging: refs/main went with the revision it no longer named.
func TestTrustRefMovedByADownloadIsKept(t *testing.T) {
	needFuse(t)
	t.Run("once", func(t *testing.T) {
		cache := testcache.Basic(t)
		tm := trStart(t, cache, Options{PollInterval: time.Hour})
		refMain := filepath.Join(cache, trTinyFS, "refs", "main")
		// The mount shows main at mainCommit; a download moves it.
		writeAtomic(t, refMain, []byte(detached))
		trMust(t, "mv", tm.Rev(tinyModel, mainCommit), tm.P(".trash", "x"))
		trWaitTrashIdle(t, tm.mp)

		if b, err := os.ReadFile(refMain); err != nil || string(b) != detached {
			t.Errorf("refs/main after trashing its old commit: %q, %v; want %s", b, err, detached)
		}
		if trExists(filepath.Join(cache, trTinyFS, "snapshots", mainCommit)) {
			t.Errorf("the trashed revision %s is still in the cache", mainCommit)
		}
		if !trExists(filepath.Join(cache, trTinyFS, "snapshots", detached)) {
			t.Errorf("the revision refs/main names now is gone")
		}
		scanClean(t, cache)
		r := trReceipt(t, tm, "x")
		if len(r.Refs) != 0 || len(r.Revisions) != 1 || len(r.Revisions[0].Refs) != 0 {
			t.Errorf("receipt: refs %v, revisions %+v; want no ref (refs/main had moved)", r.Refs, r.Revisions)
		}
		poll(t, trDeadline, "by-ref/main shows the commit it moved to", func() (bool, string) {
			res := trRun(t, "getfattr", "--only-values", "--absolute-names", "-n", "user.hf.commit", tm.P(tinyModel, "by-ref", "main"))
			return res.stdout == detached, res.String()
		})
	})

	// The other way round, pinned down with the step delay hook: a
	// download moves refs/main onto the revision being trashed after the
	// deletion staged refs/main (which named it already) and before the
	// snapshot moves. The deletion must give up (EBUSY), delete nothing,
	// write no receipt, and leave the download's refs/main.
	t.Run("onto the revision while staging", func(t *testing.T) {
		cache := testcache.Basic(t)
		refMain := filepath.Join(cache, trTinyFS, "refs", "main")
		if err := os.WriteFile(refMain, []byte(v1Commit), 0o644); err != nil {
			t.Fatal(err)
		}
		tm := trStart(t, cache, Options{PollInterval: time.Hour})
		before := tuTree(t, cache)
		// Each step of the deletion waits 300ms first: refs feature/x,
		// main, v1.0 (in that order), then the snapshot.
		t.Setenv("HFCACHEFS_TEST_DELETE_STEP_DELAY", "300ms")
		mv := trSpawn(t, nil, true, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", "x"))
		poll(t, trDeadline, "the deletion stages refs/main", func() (bool, string) {
			return !trExists(refMain), "refs/main still there"
		})
		// The download writes refs/main (again naming the revision).
		tmp := filepath.Join(filepath.Dir(cache), "main.tmp")
		if err := os.WriteFile(tmp, []byte(v1Commit), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, refMain); err != nil {
			t.Fatal(err)
		}
		code := mv.Wait(t, trHang)
		out := mv.Output()
		t.Setenv("HFCACHEFS_TEST_DELETE_STEP_DELAY", "")
		trWaitTrashIdle(t, tm.mp)
		if code == 0 || !strings.Contains(out, "Device or resource busy") {
			t.Errorf("mv while a download moved refs/main onto the revision: exit %d, %q; want Device or resource busy", code, out)
		}
		trSameTree(t, "a deletion given up for a ref moved onto its revision", before, tuTree(t, cache))
		if rec, err := trStore(t, cache).Get("x"); err == nil {
			t.Errorf("a receipt was written although nothing was deleted: state %s, refs %v, snapshots %v, blobs %v", rec.State, rec.Refs, rec.Snapshots, rec.Blobs)
		}
		scanClean(t, cache)
	})

	// A "download" flips refs/main between the trashed commit T and a kept
	// one A (atomic renames, as fast as it can) around the mv, and stops
	// at a random moment after writing A. Whatever the interleaving, the
	// last A it wrote must survive: the deletion may take refs/main only
	// while it names T (or give up with EBUSY when a ref moves onto T
	// during staging).
	t.Run("race", func(t *testing.T) {
		const tCommit, aCommit = v1Commit, mainCommit
		template := testcache.Basic(t)
		// At mount time refs/main names T: the mount's view says so.
		if err := os.WriteFile(filepath.Join(template, trTinyFS, "refs", "main"), []byte(tCommit), 0o644); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewSource(time.Now().UnixNano()))
		mvTook := 20 * time.Millisecond
		outcomes := map[string]int{}
		end := time.Now().Add(10 * time.Second)
		rounds := 0
		for ; rounds < 10 || time.Now().Before(end); rounds++ {
			dir := t.TempDir()
			cache := filepath.Join(dir, "hub")
			copyTree(t, template, cache)
			dl := filepath.Join(dir, "download") // the download's temp files: same file system, outside the cache
			if err := os.Mkdir(dl, 0o755); err != nil {
				t.Fatal(err)
			}
			tm := trStart(t, cache, Options{PollInterval: time.Hour})
			refMain := filepath.Join(cache, trTinyFS, "refs", "main")

			stop := make(chan struct{})
			flipped := make(chan error, 1)
			go func() {
				commits := [2]string{aCommit, tCommit}
				for i := 0; ; i++ {
					tmp := filepath.Join(dl, fmt.Sprintf("main.%d", i))
					err := os.WriteFile(tmp, []byte(commits[i%2]), 0o644)
					if err == nil {
						err = os.Rename(tmp, refMain)
					}
					if err != nil {
						flipped <- err
						return
					}
					if i%2 == 0 { // A written last
						select {
						case <-stop:
							flipped <- nil
							return
						default:
						}
					}
				}
			}()
			delay := time.Duration(rng.Int63n(int64(2*mvTook) + 1))
			timer := time.AfterFunc(delay, func() { close(stop) })
			start := time.Now()
			r := trRun(t, "mv", tm.Rev(tinyModel, tCommit), tm.P(".trash", "x"))
			took := time.Since(start)
			mvTook = (mvTook + took) / 2
			if timer.Stop() { // else its close(stop) ran or runs now
				close(stop)
			}
			if err := <-flipped; err != nil {
				t.Fatalf("round %d: the download's rename: %v", rounds, err)
			}
			trWaitTrashIdle(t, tm.mp)

			// Failures are counted, the first few told in full: how often
			// a bug shows is worth knowing.
			bad := func(kind, format string, args ...any) {
				outcomes["BUG: "+kind]++
				if outcomes["BUG: "+kind] <= 3 {
					t.Errorf("round %d (download stopped %v after mv started): "+format, append([]any{rounds, delay}, args...)...)
				}
			}
			snapT := trExists(filepath.Join(cache, trTinyFS, "snapshots", tCommit))
			switch {
			case r.code == 0 && !snapT:
				outcomes["deleted"]++
			case r.code != 0 && strings.Contains(r.stderr, "Device or resource busy") && snapT:
				outcomes["refused (EBUSY)"]++
			case r.code == 0 && snapT:
				rec, err := trStore(t, cache).Get("x")
				if err == nil {
					bad("mv succeeded, the revision stayed", "mv succeeded but T's snapshot is still in the cache; receipt: state %s, refs %v, snapshots %v, note %q", rec.State, rec.Refs, rec.Snapshots, rec.Note)
				} else {
					bad("mv succeeded, the revision stayed", "mv succeeded but T's snapshot is still in the cache (no receipt: %v)", err)
				}
			default:
				bad("other", "mv %s; T's snapshot there: %v", r, snapT)
			}
			b, err := os.ReadFile(refMain)
			switch {
			case err != nil:
				bad("refs/main lost", "mv %q: refs/main is gone: %v", strings.TrimSpace(r.stderr), err)
			case string(b) != aCommit:
				bad("refs/main changed", "refs/main = %q, want %s (the download's last write)", b, aCommit)
			case !trExists(filepath.Join(cache, trTinyFS, "snapshots", aCommit)):
				bad("A lost", "refs/main names %s, whose snapshot is gone", aCommit)
			}
			scanClean(t, cache)
			if trExists(filepath.Join(cache, trTinyFS, ".hfcachefs-staging")) {
				bad("staging left", "a staging folder is left in the repo")
			}
			tm.Unmount()
		}
		t.Logf("%d rounds in the race (mv took ~%v): %v", rounds, mvTook.Round(time.Millisecond), outcomes)
	})
}

// 3. A full state file system (where receipts go) refuses the deletion
// before anything in the cache moves: ENOSPC, the cache and the hold area
// untouched, no receipt. Fails before the receipt was written first
// (trash.Store.Trash): the revision went and its receipt was lost.
func TestTrustStateFull(t *testing.T) {
	needRoot(t, "mounts a tmpfs")
	needFuse(t)
	state := trState(t)
	if r := trRun(t, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", state); r.code != 0 {
		t.Fatalf("mount tmpfs: %s", r)
	}
	t.Cleanup(func() { _ = syscall.Unmount(state, syscall.MNT_DETACH) })
	cache := testcache.Basic(t)
	tm := trStart(t, cache, Options{TrashHold: time.Hour})

	filler := filepath.Join(state, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !strings.Contains(err.Error(), "no space left") {
				t.Fatalf("filling the state tmpfs: %v", err)
			}
			break
		}
	}
	f.Close()

	before := tuTree(t, cache)
	r := trRun(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", "c1"))
	if r.code == 0 || !strings.Contains(r.stderr, "No space left on device") {
		t.Errorf("mv into .trash with the state folder full: %s; want No space left on device", r)
	}
	trSameTree(t, "a mv refused for a full state folder", before, tuTree(t, cache))
	for _, f := range tuStateFiles(t) {
		if strings.HasSuffix(f, ".json") {
			t.Errorf("a receipt was written for the refused mv: %s", f)
		} else {
			// trash.Store.write does not remove its temp file when the
			// write fails.
			t.Errorf("the failed receipt write left its temp file in the receipts folder: %s", f)
		}
	}
	if names := trLs(t, tm.P(".trash")); len(names) != 0 {
		t.Errorf(".trash after the refused mv: %v", names)
	}
	var held []string
	_ = filepath.WalkDir(trHoldParent(cache), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			held = append(held, p)
		}
		return nil
	})
	if len(held) != 0 {
		t.Errorf("the hold area has content after the refused mv: %v", held)
	}
	if !contains(trLs(t, tm.P(tinyModel, "by-commit")), v1Commit) {
		t.Errorf("the revision left by-commit/")
	}

	// Room again: the same mv works, and holds the revision.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	trMust(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", "c1"))
	trWaitTrashIdle(t, tm.mp)
	if rec := trReceipt(t, tm, "c1"); rec.State != trash.StateHeld || !trExists(rec.HeldIn) {
		t.Errorf("receipt after the mv with room: %+v", rec)
	}
	if trExists(filepath.Join(cache, trTinyFS, "snapshots", v1Commit)) {
		t.Errorf("the revision is still in the cache")
	}
	scanClean(t, cache)
}

// 4. A hold that expires while nothing is mounted is purged by the next
// CLI command that opens the cache, not only by the next mount. Fails
// while only a mount purged (trasher.purgeLoop): the held bytes stayed on
// disk until someone mounted again.
func TestTrustHoldsExpireWithoutAMount(t *testing.T) {
	bin := binary(t)
	cache := testcache.Basic(t)
	tm := trStart(t, cache, Options{TrashHold: 2 * time.Second})
	trMust(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", "c1"))
	r := trReceipt(t, tm, "c1")
	tm.Unmount()
	if r.State != trash.StateHeld || r.HoldUntil == nil || !trExists(r.HeldIn) {
		t.Fatalf("receipt of a held deletion: %+v", r)
	}
	time.Sleep(time.Until(*r.HoldUntil) + time.Second)
	if got, err := trStore(t, cache).Get("c1"); err != nil || got.State != trash.StateHeld || !trExists(r.HeldIn) {
		t.Fatalf("with no mount and no command, the hold should still be there: %+v, %v", got, err)
	}

	trMust(t, bin, "scan", "--cache-dir", cache)
	if trExists(r.HeldIn) {
		t.Errorf("the expired hold %s is still on disk after hfcachefs scan", r.HeldIn)
	}
	if got, err := trStore(t, cache).Get("c1"); err != nil || got.State != trash.StatePurged {
		t.Errorf("receipt after hfcachefs scan: %+v, %v; want state purged", got, err)
	}
	list := trMust(t, bin, "restore", "--cache-dir", cache)
	if !strings.HasPrefix(list, "c1\tpurged\t") {
		t.Errorf("hfcachefs restore (list) = %q, want c1 purged", list)
	}
	scanClean(t, cache)
}

// 5. A receipt's name is a folder of the mount: NAME_MAX (255 bytes, not
// characters) or refused with ENAMETOOLONG before anything is deleted.
// Fails before the length check (trasher.Trash, trash.Store.Trash): the
// revision went and its receipt could not be shown.
func TestTrustLongReceiptName(t *testing.T) {
	cache := testcache.Basic(t)
	tm := trStart(t, cache, Options{})
	before := tuTree(t, cache)
	for _, name := range []string{strings.Repeat("n", 300), strings.Repeat("é", 128)} { // 300 and 256 bytes
		r := trRun(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", name))
		if r.code == 0 || !strings.Contains(r.stderr, "File name too long") {
			t.Errorf("mv into .trash/<%d bytes>: %s; want File name too long", len(name), r)
		}
	}
	trSameTree(t, "refused mvs to long names", before, tuTree(t, cache))
	tuNoReceipt(t, tm, "refused mvs to long names")

	name := strings.Repeat("é", 127) + "x" // 255 bytes
	trMust(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", name))
	trWaitTrashIdle(t, tm.mp)
	if r := trReceipt(t, tm, name); r.Name != name || r.State != trash.StateDeleted {
		t.Errorf("receipt of a 255-byte name: name %d bytes, state %s", len(r.Name), r.State)
	}
	if !contains(trLs(t, tm.P(".trash")), name) {
		t.Errorf(".trash does not list the 255-byte name")
	}
	if trExists(filepath.Join(cache, trTinyFS, "snapshots", v1Commit)) {
		t.Errorf("the revision is still in the cache")
	}
	scanClean(t, cache)
}

// 6. A blob whose download lock stays held is left in place, and the
// receipt says so: listed under skipped with the lock as reason, not
// under blobs, and bytes_freed is what really went. Fails before only
// the blobs that went were counted (removeBlobs, Store.finished): the
// plan's blobs and expected size were reported.
func TestTrustLockedBlobNotCounted(t *testing.T) {
	cache := testcache.Basic(t)
	sizes := tuSizes(t, cache)
	// 457cb... is v1Commit's weights/big.bin: no other revision links it.
	const etag = "457cb2ea893144bb585309c75658893abe07e6f7fa0bfdf975f4f9a980ea5fc7"
	blob := filepath.Join(cache, trTinyFS, "blobs", etag)
	lock, err := os.OpenFile(filepath.Join(cache, ".locks", trTinyFS, etag+".lock"), os.O_RDWR|os.O_CREATE, 0o664)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	// The defaults of `hfcachefs mount` (trStart would not poll).
	tm := trStart(t, cache, Options{PollInterval: time.Second})
	start := time.Now()
	trMust(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", "c1"))
	t.Logf("mv took %v with a blob's download lock held", time.Since(start).Round(time.Millisecond))
	trWaitTrashIdle(t, tm.mp) // the deletion waits 10 s for the lock
	t.Logf("the deletion ended %v after mv started", time.Since(start).Round(time.Millisecond))
	r := trReceipt(t, tm, "c1")
	doc, _ := readStatus(t, tm.mp)
	unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	var skipped bool
	for _, s := range r.Skipped {
		if s.Path == blob {
			skipped = true
			if s.Kind != "blob" || !strings.Contains(s.Reason, "lock") {
				t.Errorf("skipped %+v: want kind blob, a reason naming the lock", s)
			}
		}
	}
	if !skipped {
		t.Errorf("receipt skipped = %+v: the locked blob %s is not there", r.Skipped, etag)
	}
	var sum int64
	for _, b := range r.Blobs {
		if b == blob {
			t.Errorf("receipt blobs list the locked blob %s", b)
		}
		size, ok := sizes[b]
		if !ok {
			t.Errorf("receipt blob %s is no blob of the cache", b)
		}
		sum += size
	}
	if len(r.Blobs) == 0 {
		t.Errorf("receipt blobs is empty: cb608f6e... should have gone")
	}
	if r.BytesFreed != sum {
		t.Errorf("receipt bytes_freed = %d, the blobs it lists (%v) add up to %d", r.BytesFreed, r.Blobs, sum)
	}
	if l := doc.Mount.Trash.Last; l == nil || l.Name != "c1" || l.BytesFreed != sum || l.Skipped != 1 {
		t.Errorf(".status.json mount.trash.last = %+v; want c1, bytes_freed %d, 1 skipped", l, sum)
	}
	if !trExists(blob) {
		t.Errorf("the locked blob was removed")
	}
	if trExists(filepath.Join(cache, trTinyFS, "snapshots", v1Commit)) {
		t.Errorf("the revision is still in the cache")
	}
	scanClean(t, cache)
}

// 7. Trashing a revision of 40,000 files answers the rename once the
// revision is out of the cache; its blobs go in the background, which
// .status.json shows (mount.trash.running, then last). Fails before the
// deletion was staged and finished off the request path (trasher.Trash,
// syncBudget): the rename held the kernel's locks for the whole deletion.
func TestTrustBackgroundDeletionLargeRevision(t *testing.T) {
	needFuse(t)
	const (
		n      = 40000
		folder = "models--acme--many-files"
		repoID = "models/acme/many-files"
		big    = "b16b16b16b16b16b16b16b16b16b16b16b16b16b"
		small  = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
	)
	cache := filepath.Join(t.TempDir(), "hub")
	repo := filepath.Join(cache, folder)
	for _, d := range []string{"blobs", "refs", "snapshots/" + big, "snapshots/" + small} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeBlob := func(content string) string {
		sum := sha1.Sum([]byte(content))
		etag := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(repo, "blobs", etag), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return etag
	}
	var total int64
	for i := 0; i < n; i++ {
		content := strings.Repeat(fmt.Sprintf("file %d\n", i), 1+i%5)
		total += int64(len(content))
		if err := os.Symlink("../../blobs/"+writeBlob(content), filepath.Join(repo, "snapshots", big, fmt.Sprintf("f%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	keep := writeBlob("the small revision's README\n")
	if err := os.Symlink("../../blobs/"+keep, filepath.Join(repo, "snapshots", small, "README.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(small), 0o644); err != nil {
		t.Fatal(err)
	}

	tm := trStart(t, cache, Options{})
	start := time.Now()
	trMust(t, "mv", tm.Rev(repoID, big), tm.P(".trash", "big"))
	took := time.Since(start)
	t.Logf("mv of a %d-file revision into .trash took %v", n, took.Round(time.Millisecond))

	doc, _ := readStatus(t, tm.mp)
	var seen *views.TrashProgress
	for i := range doc.Mount.Trash.Running {
		if doc.Mount.Trash.Running[i].Name == "big" {
			seen = &doc.Mount.Trash.Running[i]
		}
	}
	if seen != nil {
		t.Logf("right after mv, running: %d/%d blobs", seen.BlobsDone, seen.Blobs)
		if seen.Blobs != n || seen.State != trash.StateDeleting {
			t.Errorf("mount.trash.running right after mv: %+v; want state deleting, %d blobs", *seen, n)
		}
	} else if l := doc.Mount.Trash.Last; l == nil || l.Name != "big" {
		t.Errorf(".status.json right after mv shows the deletion neither running nor last: %+v", doc.Mount.Trash)
	} else {
		t.Logf("right after mv, already ended: %+v", *l)
	}

	var last views.TrashProgress
	poll(t, 2*time.Minute, "the background deletion ends", func() (bool, string) {
		doc, _ := readStatus(t, tm.mp)
		if l := doc.Mount.Trash.Last; l != nil && l.Name == "big" && len(doc.Mount.Trash.Running) == 0 {
			last = *l
			return true, ""
		}
		return false, fmt.Sprintf("%+v", doc.Mount.Trash)
	})
	t.Logf("the deletion ended %v after mv started", time.Since(start).Round(time.Millisecond))
	if last.State != trash.StateDeleted || last.Blobs != n || last.BlobsDone != n || last.BytesFreed != total || last.Skipped != 0 || last.Error != "" {
		t.Errorf("mount.trash.last = %+v; want state deleted, blobs_done = blobs = %d, bytes_freed %d", last, n, total)
	}
	if r := trReceipt(t, tm, "big"); r.BytesFreed != total || len(r.Blobs) != n || r.State != trash.StateDeleted {
		t.Errorf("receipt: state %s, %d blobs, bytes_freed %d; want deleted, %d, %d", r.State, len(r.Blobs), r.BytesFreed, n, total)
	}
	info := scanClean(t, cache)
	if len(info.Repos) != 1 || len(info.Repos[0].Revisions) != 1 || info.Repos[0].Revisions[0].CommitHash != small {
		t.Errorf("after the deletion the cache should hold the small revision alone")
	}
	left, _ := os.ReadDir(filepath.Join(repo, "blobs"))
	if len(left) != 1 || left[0].Name() != keep {
		names := []string{}
		for _, e := range left[:min(5, len(left))] {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		t.Errorf("%d blobs left, want only %s: %v...", len(left), keep, names)
	}
	if trExists(filepath.Join(repo, ".hfcachefs-staging")) {
		t.Errorf("%s/.hfcachefs-staging is left", folder)
	}
}
