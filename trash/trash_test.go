package trash

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

// Commits of the basic conformance cache (see cachecore/delete_test.go).
const (
	// models--acme--tiny-model, refs feature/x and v1.0; its own blobs
	// are 457cb2ea… (weights/big.bin) and cb608f6e… (config.json), the
	// others are shared with eba90b51…
	revTiny = "4a67d7bb895e9c468f402aa571ffea8548c37676"
	// models--acme--tiny-model, refs/pr/1; own blob ca95bebab…
	revPR = "b182d9dfaaa3b0371d923ac6f05d09a96e70a56e"
	// models--acme--tiny-model, no ref; its only blob is shared with main
	revNoRef = "a22712daca2fb86decd9b9c6ed06c1c90ca638fa"
	// models--acme--tiny-model, main
	revMain = "eba90b51402874116c4cda2ae669ce32cc85e1c6"
	// models--gpt2: its only revision (the whole repo goes)
	revGPT2 = "f584eba0dcc94d97dd2cc48e48a591be55492603"

	tinyRepo  = "models--acme--tiny-model"
	blobBig   = "457cb2ea893144bb585309c75658893abe07e6f7fa0bfdf975f4f9a980ea5fc7"
	blobCfg   = "cb608f6e9c4c20c8a05636c127dc423ab86452bb"
	blobPROwn = "ca95bebab8f6a8531b05155cd9c6f2c2c186167a"
)

var errStop = errors.New("stopped by the test")

// stateEnv is a cachecore.Env whose XDG_STATE_HOME is a fresh temp dir.
func stateEnv(t *testing.T) (cachecore.Env, string) {
	t.Helper()
	state := t.TempDir()
	return envOf(map[string]string{"XDG_STATE_HOME": state}), state
}

func envOf(vars map[string]string) cachecore.Env {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func scan(t *testing.T, dir string) *cachecore.CacheInfo {
	t.Helper()
	info, err := cachecore.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// scanClean scans and fails on any warning.
func scanClean(t *testing.T, dir string) *cachecore.CacheInfo {
	t.Helper()
	info := scan(t, dir)
	for _, w := range info.Warnings {
		t.Errorf("scan warning: %s", w.Message)
	}
	return info
}

// selectRevs selects revisions (all of one repo) by commit hash.
func selectRevs(t *testing.T, info *cachecore.CacheInfo, hashes ...string) cachecore.Selection {
	t.Helper()
	for _, repo := range info.Repos {
		var revs []*cachecore.RevisionInfo
		for _, h := range hashes {
			if rev := repo.Revision(h); rev != nil {
				revs = append(revs, rev)
			}
		}
		if len(revs) == len(hashes) {
			return cachecore.Selection{Repo: repo, Revisions: revs}
		}
	}
	t.Fatalf("no repo holds every one of %v", hashes)
	return cachecore.Selection{}
}

// planOf plans the deletion of revisions (all of one repo).
func planOf(t *testing.T, info *cachecore.CacheInfo, hashes ...string) *cachecore.DeleteStrategy {
	t.Helper()
	return info.PlanDeletion([]cachecore.Selection{selectRevs(t, info, hashes...)})
}

// hasRevision reports whether any repo of the scan holds the commit.
func hasRevision(info *cachecore.CacheInfo, hash string) bool {
	for _, repo := range info.Repos {
		if repo.Revision(hash) != nil {
			return true
		}
	}
	return false
}

// tree lists everything under root: type, permissions, content hash or
// link target. skip leaves out a top-level entry (e.g. ".locks").
func tree(t *testing.T, root string, skip ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		for _, s := range skip {
			if rel == s || strings.HasPrefix(rel, s+"/") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link " + target
		case info.IsDir():
			out[rel] = fmt.Sprintf("dir %o", info.Mode().Perm())
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			out[rel] = fmt.Sprintf("file %o %d %s", info.Mode().Perm(), len(data), hex.EncodeToString(sum[:]))
		default:
			out[rel] = "other " + info.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree fails with the differences between two listings.
func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for p, v := range before {
		if w, ok := after[p]; !ok {
			diffs = append(diffs, "gone:    "+p)
		} else if v != w {
			diffs = append(diffs, "changed: "+p+": "+v+" -> "+w)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			diffs = append(diffs, "new:     "+p)
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		t.Errorf("%s: the cache changed:\n  %s", what, strings.Join(diffs, "\n  "))
	}
}

// assertNoStaging checks that no transaction is left in the cache.
func assertNoStaging(t *testing.T, dir string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(dir, "*", cachecore.StagingDir))
	locks, _ := filepath.Glob(filepath.Join(dir, ".locks", ".hfcachefs-deleting-*"))
	if len(left)+len(locks) > 0 {
		t.Errorf("staging left behind: %v %v", left, locks)
	}
}

// receiptFiles lists the receipt files of a store.
func receiptFiles(t *testing.T, s *Store) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(s.ReceiptsDir(), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// rawReceipt reads a receipt file as JSON, by its keys.
func rawReceipt(t *testing.T, s *Store, name string) map[string]any {
	t.Helper()
	path := s.ReceiptFile(name)
	if path == "" {
		t.Fatalf("no receipt file for %q", name)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustGet(t *testing.T, s *Store, name string) *Receipt {
	t.Helper()
	r, err := s.Get(name)
	if err != nil {
		t.Fatalf("receipt %q: %v", name, err)
	}
	return r
}

func blobPath(cache, repo, etag string) string {
	return filepath.Join(cache, repo, "blobs", etag)
}

func size(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func sorted(l []string) []string {
	out := append([]string{}, l...)
	sort.Strings(out)
	return out
}

// trashAndComplete runs Trash then Complete, failing on any error.
func trashAndComplete(t *testing.T, s *Store, info *cachecore.CacheInfo, sel cachecore.Selection, name string, opts cachecore.ExecuteOptions) *Receipt {
	t.Helper()
	r, staged, err := s.Trash(info.PlanDeletion([]cachecore.Selection{sel}), name, opts)
	if err != nil {
		t.Fatalf("Trash %q: %v", name, err)
	}
	r, err = s.Complete(r, staged)
	if err != nil {
		t.Fatalf("Complete %q: %v", name, err)
	}
	return r
}

// mountTmpfs mounts a tmpfs on dir (made if needed) for the test's
// duration, or skips the test where mounting is not allowed.
func mountTmpfs(t *testing.T, dir, opts string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): needs root", err)
	}
	// Registered after the temp dirs above it: runs before their removal.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// fill writes into dir until its file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 512)
	for i := 0; ; i++ {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return
		}
		if i > 1<<16 {
			t.Fatalf("%s never filled up", dir)
		}
	}
}

// 1. The receipt is written (pending) before anything moves: a state
// folder that cannot take it refuses the deletion with the cache as it
// was.
func TestTrashRefusedWhenTheReceiptCannotBeWritten(t *testing.T) {
	check := func(t *testing.T, s *Store, cache string, want error) {
		t.Helper()
		info := scan(t, cache)
		before := tree(t, cache)
		stepped := false
		r, staged, err := s.Trash(planOf(t, info, revTiny), "full", cachecore.ExecuteOptions{
			BeforeStep: func(kind, p string) error { stepped = true; return nil },
		})
		if err == nil {
			staged.Close()
			t.Fatalf("Trash succeeded without a receipt: %+v", r)
		}
		if r != nil || staged != nil {
			t.Errorf("a refused Trash returns a receipt %+v or a staged deletion %v", r, staged)
		}
		if !strings.Contains(err.Error(), "receipt") {
			t.Errorf("the error does not say the receipt could not be written: %v", err)
		}
		if !errors.Is(err, want) {
			t.Errorf("error %v: want %v", err, want)
		}
		if stepped {
			t.Error("a step of the deletion ran although the receipt was not written")
		}
		sameTree(t, "after a refused Trash", before, tree(t, cache))
		assertNoStaging(t, cache)
		if s.HoldRoot != "" {
			if held, _ := os.ReadDir(s.HoldRoot); len(held) > 0 {
				t.Errorf("the hold folder has content: %v", held)
			}
		}
		if s.Exists("full") || s.ReceiptFile("full") != "" {
			t.Error("a receipt of the refused deletion is listed")
		}
		if !hasRevision(scanClean(t, cache), revTiny) {
			t.Error("the revision is gone")
		}
	}

	t.Run("full state file system", func(t *testing.T) {
		cache := testcache.Basic(t)
		state := filepath.Join(t.TempDir(), "state")
		mountTmpfs(t, state, "size=4k")
		s, err := Open(cache, time.Hour, envOf(map[string]string{"XDG_STATE_HOME": state}))
		if err != nil {
			t.Fatal(err)
		}
		fill(t, state)
		check(t, s, cache, syscall.ENOSPC)
	})

	t.Run("receipts folder replaced by a file", func(t *testing.T) {
		cache := testcache.Basic(t)
		env, _ := stateEnv(t)
		s, err := Open(cache, 0, env)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(s.ReceiptsDir()); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.ReceiptsDir(), []byte("not a folder"), 0o600); err != nil {
			t.Fatal(err)
		}
		check(t, s, cache, syscall.ENOTDIR)
	})
}

// 2. A revision trashed then completed: pending before any step, deleting
// once staged (and out of the scan), deleted at the end, with exactly
// what went.
func TestTrashAndCompleteRevision(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	sel := selectRevs(t, info, revTiny)
	repo := filepath.Join(info.CacheDir, tinyRepo)
	snapshot := filepath.Join(repo, "snapshots", revTiny)
	refV1 := filepath.Join(repo, "refs", "v1.0")
	refX := filepath.Join(repo, "refs", "feature", "x")
	// After the scan, feature/x moves to main: it stays, and the receipt
	// must not claim it.
	if err := os.WriteFile(refX, []byte(revMain), 0o644); err != nil {
		t.Fatal(err)
	}
	big, cfg := blobPath(info.CacheDir, tinyRepo, blobBig), blobPath(info.CacheDir, tinyRepo, blobCfg)
	wantFreed := size(t, big) + size(t, cfg)
	before := tree(t, info.CacheDir)

	s, err := Open(info.CacheDir, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	steps := 0
	opts := cachecore.ExecuteOptions{BeforeStep: func(kind, p string) error {
		steps++
		if steps > 1 {
			return nil
		}
		// Before the first move, the receipt is on disk, pending.
		r, err := readReceipt(s.receiptFile("gone"))
		if err != nil {
			return fmt.Errorf("no receipt before the first step (%s): %v", kind, err)
		}
		if r.State != StatePending {
			return fmt.Errorf("receipt state before the first step: %q, want pending", r.State)
		}
		if !exists(snapshot) || !exists(refV1) {
			return fmt.Errorf("something moved before the first step")
		}
		return nil
	}}
	r, staged, err := s.Trash(info.PlanDeletion([]cachecore.Selection{sel}), "gone", opts)
	if err != nil {
		t.Fatal(err)
	}
	if steps == 0 {
		t.Fatal("no step ran")
	}

	onDisk := mustGet(t, s, "gone")
	if onDisk.State != StateDeleting || r.State != StateDeleting {
		t.Errorf("after Trash: state %q on disk, %q returned; want deleting", onDisk.State, r.State)
	}
	if want := []string{refV1}; !reflect.DeepEqual(onDisk.Refs, want) {
		t.Errorf("refs %v, want only the one that went %v", onDisk.Refs, want)
	}
	if want := []string{snapshot}; !reflect.DeepEqual(onDisk.Snapshots, want) {
		t.Errorf("snapshots %v, want %v", onDisk.Snapshots, want)
	}
	if onDisk.RepoID != "acme/tiny-model" || onDisk.RepoType != "model" || onDisk.RepoFolder != tinyRepo || onDisk.WholeRepo || onDisk.CacheDir != info.CacheDir {
		t.Errorf("receipt identity: %+v", onDisk)
	}
	if len(onDisk.Revisions) != 1 || onDisk.Revisions[0].Commit != revTiny || !reflect.DeepEqual(onDisk.Revisions[0].Refs, []string{"feature/x", "v1.0"}) {
		t.Errorf("revisions: %+v", onDisk.Revisions)
	}
	skippedX := false
	for _, sk := range onDisk.Skipped {
		if sk.Path == refX && sk.Kind == "ref" {
			skippedX = true
		}
	}
	if !skippedX {
		t.Errorf("the moved ref is not among the skipped: %+v", onDisk.Skipped)
	}
	// Staged: out of the scan already.
	if mid := scanClean(t, info.CacheDir); hasRevision(mid, revTiny) {
		t.Error("the staged revision still scans")
	}

	r, err = s.Complete(r, staged)
	if err != nil {
		t.Fatal(err)
	}
	onDisk = mustGet(t, s, "gone")
	if onDisk.State != StateDeleted || r.State != StateDeleted {
		t.Errorf("after Complete: state %q on disk, %q returned; want deleted", onDisk.State, r.State)
	}
	if want := []string{big, cfg}; !reflect.DeepEqual(sorted(onDisk.Blobs), want) {
		t.Errorf("blobs %v, want %v", onDisk.Blobs, want)
	}
	for _, b := range onDisk.Blobs {
		if exists(b) {
			t.Errorf("blob %s listed as gone is still there", b)
		}
	}
	if onDisk.BytesFreed != wantFreed || onDisk.BytesFreedStr != cachecore.FormatSize(wantFreed) {
		t.Errorf("bytes freed %d (%s), want %d", onDisk.BytesFreed, onDisk.BytesFreedStr, wantFreed)
	}
	if !reflect.DeepEqual(onDisk.Refs, []string{refV1}) || !reflect.DeepEqual(onDisk.Snapshots, []string{snapshot}) {
		t.Errorf("after Complete: refs %v snapshots %v", onDisk.Refs, onDisk.Snapshots)
	}
	if onDisk.HoldUntil != nil || onDisk.HeldIn != "" {
		t.Errorf("a deletion without a hold holds: %+v", onDisk)
	}
	if !strings.Contains(onDisk.Note, "skipped") {
		t.Errorf("note %q does not mention the skipped ref", onDisk.Note)
	}

	after := scanClean(t, info.CacheDir)
	if hasRevision(after, revTiny) {
		t.Error("the revision is still in the cache")
	}
	if rev := after.Repo("model", "acme/tiny-model").Revision(revMain); rev == nil || !reflect.DeepEqual(rev.Refs, []string{"feature/x", "main"}) {
		t.Errorf("the moved ref should stay on main: %+v", rev)
	}
	assertNoStaging(t, info.CacheDir)
	// Nothing but what the receipt names went.
	for p := range before {
		abs := filepath.Join(info.CacheDir, p)
		if abs == refV1 || abs == big || abs == cfg || abs == snapshot || strings.HasPrefix(abs, snapshot+"/") {
			delete(before, p)
		}
	}
	sameTree(t, "beyond what the receipt names", before, tree(t, info.CacheDir))
	if names := s.Names(); len(names) != 1 || names["gone"] != s.ReceiptFile("gone") || !s.Exists("gone") {
		t.Errorf("names: %v", names)
	}
}

// 3. A blob whose download lock is held stays: skipped with the reason,
// not among the blobs, not counted.
func TestCompleteSkipsLockedBlob(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	big, cfg := blobPath(info.CacheDir, tinyRepo, blobBig), blobPath(info.CacheDir, tinyRepo, blobCfg)
	cfgSize := size(t, cfg)
	lock, err := os.OpenFile(filepath.Join(info.CacheDir, ".locks", tinyRepo, blobBig+".lock"), os.O_RDWR|os.O_CREATE, 0o664)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	s, err := Open(info.CacheDir, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := trashAndComplete(t, s, info, selectRevs(t, info, revTiny), "locked", cachecore.ExecuteOptions{LockTimeout: 300 * time.Millisecond})
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("did not wait for the lock: %v", waited)
	}
	if !exists(big) {
		t.Fatal("the locked blob was removed")
	}
	if exists(cfg) {
		t.Error("the unlocked blob is still there")
	}

	m := rawReceipt(t, s, "locked")
	if m["state"] != StateDeleted {
		t.Errorf("state %v", m["state"])
	}
	blobs, _ := m["blobs"].([]any)
	if len(blobs) != 1 || blobs[0] != cfg {
		t.Errorf("blobs %v: want only %s", m["blobs"], cfg)
	}
	if got, _ := m["bytes_freed"].(float64); int64(got) != cfgSize {
		t.Errorf("bytes_freed %v, want %d (the locked blob excluded)", m["bytes_freed"], cfgSize)
	}
	skipped, _ := m["skipped"].([]any)
	found := false
	for _, sk := range skipped {
		e, _ := sk.(map[string]any)
		if e["Path"] == big {
			found = true
			if reason, _ := e["Reason"].(string); e["Kind"] != "blob" || !strings.Contains(reason, "lock") {
				t.Errorf("skipped entry %v: want kind blob, a reason about the lock", e)
			}
		}
	}
	if !found {
		t.Errorf("the locked blob is not under skipped: %v", m["skipped"])
	}
	if !strings.Contains(r.Note, "1 path(s) skipped") {
		t.Errorf("note %q", r.Note)
	}
	scanClean(t, info.CacheDir)
	assertNoStaging(t, info.CacheDir)
}

// 4. Names longer than NAME_MAX bytes, and names in use, are refused
// before anything is written or moved.
func TestTrashNameRules(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	s, err := Open(info.CacheDir, time.Hour, env)
	if err != nil {
		t.Fatal(err)
	}
	before := tree(t, info.CacheDir)
	for _, name := range []string{strings.Repeat("n", 256), strings.Repeat("é", 128)} {
		_, staged, err := s.Trash(planOf(t, info, revTiny), name, cachecore.ExecuteOptions{})
		if !errors.Is(err, cachecore.ErrNameTooLong) || !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("a %d-byte name: %v, want ErrNameTooLong", len(name), err)
		}
		if staged != nil {
			staged.Close()
		}
	}
	sameTree(t, "after a too long name", before, tree(t, info.CacheDir))
	if files := receiptFiles(t, s); len(files) > 0 {
		t.Errorf("receipts written for a too long name: %v", files)
	}
	if held, _ := os.ReadDir(s.HoldRoot); len(held) > 0 {
		t.Errorf("held for a too long name: %v", held)
	}

	// 255 bytes is allowed.
	long := strings.Repeat("n", 255)
	if r := trashAndComplete(t, s, info, selectRevs(t, info, revTiny), long, cachecore.ExecuteOptions{}); r.Name != long || r.State != StateHeld {
		t.Errorf("a 255-byte name: %+v", r)
	}

	info = scan(t, info.CacheDir)
	trashAndComplete(t, s, info, selectRevs(t, info, revPR), "dup", cachecore.ExecuteOptions{})
	info = scan(t, info.CacheDir)
	before = tree(t, info.CacheDir)
	heldBefore := tree(t, s.HoldRoot)
	receipt, err := os.ReadFile(s.ReceiptFile("dup"))
	if err != nil {
		t.Fatal(err)
	}
	_, staged, err := s.Trash(planOf(t, info, revNoRef), "dup", cachecore.ExecuteOptions{})
	if !errors.Is(err, cachecore.ErrReceiptExists) {
		t.Errorf("a name in use: %v, want ErrReceiptExists", err)
	}
	if staged != nil {
		staged.Close()
	}
	sameTree(t, "after a name in use", before, tree(t, info.CacheDir))
	sameTree(t, "hold after a name in use", heldBefore, tree(t, s.HoldRoot))
	if now, _ := os.ReadFile(s.ReceiptFile("dup")); string(now) != string(receipt) {
		t.Error("the existing receipt was rewritten")
	}
}

// 5. With a hold, what is deleted is moved aside (held), can be restored
// as it was, and is purged once its hold expires.
func TestHoldRestoreAndPurge(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	s, err := Open(info.CacheDir, time.Hour, env)
	if err != nil {
		t.Fatal(err)
	}
	wantRoot := filepath.Join(filepath.Dir(info.CacheDir), ".hfcachefs-hold-hub", filepath.Base(s.StateDir))
	if s.HoldRoot != wantRoot || s.Hold != time.Hour {
		t.Fatalf("hold root %s, want %s", s.HoldRoot, wantRoot)
	}
	if st, err := os.Stat(s.HoldRoot); err != nil || !st.IsDir() {
		t.Fatalf("hold root not made: %v", err)
	}
	big, cfg := blobPath(info.CacheDir, tinyRepo, blobBig), blobPath(info.CacheDir, tinyRepo, blobCfg)
	wantHeld := size(t, big) + size(t, cfg)
	before := tree(t, info.CacheDir, ".locks")

	start := time.Now()
	r := trashAndComplete(t, s, info, selectRevs(t, info, revTiny), "held", cachecore.ExecuteOptions{})
	onDisk := mustGet(t, s, "held")
	if onDisk.State != StateHeld || r.State != StateHeld {
		t.Errorf("state %q on disk, %q returned; want held", onDisk.State, r.State)
	}
	if onDisk.HoldUntil == nil || onDisk.HoldUntil.Before(start.Add(time.Hour-time.Second)) || onDisk.HoldUntil.After(time.Now().Add(time.Hour)) {
		t.Errorf("hold until %v, want an hour from now", onDisk.HoldUntil)
	}
	if !strings.HasPrefix(onDisk.HeldIn, s.HoldRoot+"/") {
		t.Errorf("held in %q, not under %s", onDisk.HeldIn, s.HoldRoot)
	}
	for _, p := range []string{"blobs/" + blobBig, "blobs/" + blobCfg, "snapshots/" + revTiny + "/config.json", "refs/v1.0", "refs/feature/x"} {
		if !exists(filepath.Join(onDisk.HeldIn, tinyRepo, p)) {
			t.Errorf("%s is not held", p)
		}
	}
	if exists(big) || exists(cfg) || hasRevision(scanClean(t, info.CacheDir), revTiny) {
		t.Error("what is held is still in the cache")
	}
	if onDisk.BytesFreed != wantHeld {
		t.Errorf("bytes held %d, want %d", onDisk.BytesFreed, wantHeld)
	}
	if bytes, n := s.Held(); bytes != wantHeld || n != 1 {
		t.Errorf("Held() = %d, %d; want %d, 1", bytes, n, wantHeld)
	}
	if !strings.Contains(onDisk.Note, "held until") {
		t.Errorf("note %q", onDisk.Note)
	}
	assertNoStaging(t, info.CacheDir)

	r, rep, err := s.Restore("held")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != StateRestored || rep == nil || len(rep.Restored) == 0 || len(rep.Kept) != 0 {
		t.Errorf("restore: %+v %+v", r, rep)
	}
	sameTree(t, "restored", before, tree(t, info.CacheDir, ".locks"))
	if rev := scanClean(t, info.CacheDir).Repo("model", "acme/tiny-model").Revision(revTiny); rev == nil || !reflect.DeepEqual(rev.Refs, []string{"feature/x", "v1.0"}) {
		t.Errorf("restored revision: %+v", rev)
	}
	if exists(onDisk.HeldIn) {
		t.Error("the held folder stays after the restore")
	}
	if s.ReceiptFile("held") != "" {
		t.Error("the receipt stays after the restore")
	}
	if bytes, n := s.Held(); bytes != 0 || n != 0 {
		t.Errorf("Held() after restore = %d, %d", bytes, n)
	}
	if _, ok := s.NextExpiry(); ok {
		t.Error("an expiry with nothing held")
	}
	if _, _, err := s.Restore("held"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("restore twice: %v", err)
	}

	// Two more holds: the longer one first.
	info = scan(t, info.CacheDir)
	s.Hold = 2 * time.Hour
	long := trashAndComplete(t, s, info, selectRevs(t, info, revPR), "long", cachecore.ExecuteOptions{})
	s.Hold = time.Hour
	info = scan(t, info.CacheDir)
	beforeWhole := tree(t, info.CacheDir, ".locks")
	short := trashAndComplete(t, s, info, selectRevs(t, info, revGPT2), "short", cachecore.ExecuteOptions{})
	if !short.WholeRepo || short.State != StateHeld || !exists(filepath.Join(short.HeldIn, "models--gpt2", "refs", "main")) {
		t.Errorf("whole repo held: %+v", short)
	}
	if exists(filepath.Join(info.CacheDir, "models--gpt2")) {
		t.Error("the whole repo is still in the cache")
	}
	if bytes, n := s.Held(); n != 2 || bytes != long.BytesFreed+short.BytesFreed {
		t.Errorf("Held() = %d, %d; want %d, 2", bytes, n, long.BytesFreed+short.BytesFreed)
	}
	if next, ok := s.NextExpiry(); !ok || !next.Equal(*short.HoldUntil) {
		t.Errorf("NextExpiry %v %v, want the shorter hold %v", next, ok, short.HoldUntil)
	}

	// A whole repo comes back too.
	if _, _, err := s.Restore("short"); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "whole repo restored", beforeWhole, tree(t, info.CacheDir, ".locks"))
	info = scan(t, info.CacheDir)
	short = trashAndComplete(t, s, info, selectRevs(t, info, revGPT2), "short", cachecore.ExecuteOptions{})

	now := time.Now()
	if purged, err := s.PurgeExpired(now); err != nil || len(purged) != 0 {
		t.Errorf("purged before any expiry: %v %v", purged, err)
	}
	purged, err := s.PurgeExpired(now.Add(90 * time.Minute))
	if err != nil || !reflect.DeepEqual(purged, []string{"short"}) {
		t.Errorf("purged at +90m: %v %v, want [short]", purged, err)
	}
	if exists(short.HeldIn) {
		t.Error("an expired hold is still held")
	}
	if got := mustGet(t, s, "short"); got.State != StatePurged || !strings.Contains(got.Note, "expired") {
		t.Errorf("purged receipt: %q %q", got.State, got.Note)
	}
	if got := mustGet(t, s, "long"); got.State != StateHeld || !exists(long.HeldIn) {
		t.Errorf("the unexpired hold went: %+v", got)
	}
	if next, ok := s.NextExpiry(); !ok || !next.Equal(*long.HoldUntil) {
		t.Errorf("NextExpiry %v %v, want %v", next, ok, long.HoldUntil)
	}
	if _, _, err := s.Restore("short"); !errors.Is(err, ErrNoHold) {
		t.Errorf("restoring a purged receipt: %v, want ErrNoHold", err)
	}
	purged, err = s.PurgeExpired(now.Add(2*time.Hour + time.Minute))
	if err != nil || !reflect.DeepEqual(purged, []string{"long"}) {
		t.Errorf("purged at +2h: %v %v, want [long]", purged, err)
	}
	if exists(long.HeldIn) || mustGet(t, s, "long").State != StatePurged {
		t.Error("the second hold was not purged")
	}
	if bytes, n := s.Held(); bytes != 0 || n != 0 {
		t.Errorf("Held() after purging = %d, %d", bytes, n)
	}
	if _, ok := s.NextExpiry(); ok {
		t.Error("an expiry with nothing held")
	}
	if purged, _ := s.PurgeExpired(now.Add(24 * time.Hour)); len(purged) != 0 {
		t.Errorf("purged twice: %v", purged)
	}
	scanClean(t, info.CacheDir)
	assertNoStaging(t, info.CacheDir)
}

// 6a. A deletion staged, then killed (no Complete), is finished by the
// next start's Recover, and its receipt says so.
func TestRecoverFinishesStagedDeletion(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	big, cfg := blobPath(info.CacheDir, tinyRepo, blobBig), blobPath(info.CacheDir, tinyRepo, blobCfg)
	wantFreed := size(t, big) + size(t, cfg)
	s, err := Open(info.CacheDir, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	_, staged, err := s.Trash(planOf(t, info, revTiny), "killed", cachecore.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	staged.Close() // killed here
	if got := mustGet(t, s, "killed"); got.State != StateDeleting {
		t.Fatalf("state after staging %q", got.State)
	}
	if !exists(big) || !exists(cfg) {
		t.Fatal("blobs went before Complete")
	}

	s2, err := Open(info.CacheDir, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	var logged []string
	recs, err := s2.Recover(func(m string) { logged = append(logged, m) })
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Receipt != "killed" || recs[0].RolledBack || recs[0].Err != nil {
		t.Fatalf("recovered: %+v", recs)
	}
	got := mustGet(t, s2, "killed")
	if got.State != StateDeleted || !strings.Contains(got.Note, "finished after a restart") {
		t.Errorf("after Recover: state %q note %q", got.State, got.Note)
	}
	if want := []string{big, cfg}; !reflect.DeepEqual(sorted(got.Blobs), want) {
		t.Errorf("blobs %v, want %v", got.Blobs, want)
	}
	if got.BytesFreed != wantFreed {
		t.Errorf("bytes freed %d, want %d", got.BytesFreed, wantFreed)
	}
	if exists(big) || exists(cfg) {
		t.Error("blobs left after Recover")
	}
	if len(logged) == 0 {
		t.Error("nothing logged")
	}
	if hasRevision(scanClean(t, info.CacheDir), revTiny) {
		t.Error("revision still there")
	}
	assertNoStaging(t, info.CacheDir)
	// Once is enough.
	if recs, err := s2.Recover(nil); err != nil || len(recs) != 0 {
		t.Errorf("second Recover: %+v %v", recs, err)
	}
}

// 6a'. The receipt of a deletion finished after a restart still names the
// refs and snapshot (or the whole repo, and its size) that went before
// the kill.
func TestRecoverKeepsWhatWentBeforeTheRestart(t *testing.T) {
	t.Run("whole repo", func(t *testing.T) {
		cache := testcache.Basic(t)
		env, _ := stateEnv(t)
		info := scan(t, cache)
		sel := selectRevs(t, info, revGPT2)
		s, err := Open(info.CacheDir, 0, env)
		if err != nil {
			t.Fatal(err)
		}
		_, staged, err := s.Trash(info.PlanDeletion([]cachecore.Selection{sel}), "killed", cachecore.ExecuteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		staged.Close()
		s2, err := Open(info.CacheDir, 0, env)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s2.Recover(nil); err != nil {
			t.Fatal(err)
		}
		got := mustGet(t, s2, "killed")
		if got.State != StateDeleted || !got.WholeRepo {
			t.Errorf("state %q whole %v", got.State, got.WholeRepo)
		}
		if want := []string{sel.Repo.RepoPath}; !reflect.DeepEqual(got.Repos, want) {
			t.Errorf("repos after Recover %v, want %v", got.Repos, want)
		}
		if got.BytesFreed != sel.Repo.SizeOnDisk {
			t.Errorf("bytes freed after Recover %d, want the repo's %d", got.BytesFreed, sel.Repo.SizeOnDisk)
		}
		assertNoStaging(t, info.CacheDir)
	})
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	repo := filepath.Join(info.CacheDir, tinyRepo)
	s, err := Open(info.CacheDir, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	_, staged, err := s.Trash(planOf(t, info, revTiny), "killed", cachecore.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	staged.Close()
	s2, err := Open(info.CacheDir, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Recover(nil); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s2, "killed")
	if want := []string{filepath.Join(repo, "snapshots", revTiny)}; !reflect.DeepEqual(got.Snapshots, want) {
		t.Errorf("snapshots after Recover %v, want %v", got.Snapshots, want)
	}
	if want := []string{filepath.Join(repo, "refs", "feature", "x"), filepath.Join(repo, "refs", "v1.0")}; !reflect.DeepEqual(got.Refs, want) {
		t.Errorf("refs after Recover %v, want %v", got.Refs, want)
	}
}

// 6b. A deletion stopped before its snapshot moved is rolled back by
// Recover (the refs it had staged come back), and loses its receipt.
func TestRecoverRollsBackBeforeSnapshot(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	before := tree(t, info.CacheDir)
	s, err := Open(info.CacheDir, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	refV1 := filepath.Join(info.CacheDir, tinyRepo, "refs", "v1.0")
	_, staged, err := s.Trash(planOf(t, info, revTiny), "stopped", cachecore.ExecuteOptions{
		BeforeStep: func(kind, p string) error {
			if kind == "snapshot" {
				return errStop
			}
			return nil
		},
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Trash: %v, want the stop", err)
	}
	if staged != nil {
		staged.Close() // killed here
	}
	if exists(refV1) {
		t.Fatal("the refs were not staged before the stop: the test stops too early")
	}
	if !exists(filepath.Join(info.CacheDir, tinyRepo, "snapshots", revTiny)) {
		t.Fatal("the snapshot moved")
	}

	s2, err := Open(info.CacheDir, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := s2.Recover(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || !recs[0].RolledBack || recs[0].Receipt != "stopped" {
		t.Errorf("recovered: %+v", recs)
	}
	if s2.ReceiptFile("stopped") != "" || s2.Exists("stopped") {
		t.Error("the receipt of a rolled back deletion stays")
	}
	sameTree(t, "rolled back", before, tree(t, info.CacheDir))
	if !hasRevision(scanClean(t, info.CacheDir), revTiny) {
		t.Error("the revision is gone")
	}
}

// 6c. Recover drops a pending receipt no transaction names once it is
// old enough (the process died between the receipt and the journal),
// and leaves a fresh one (its Trash may be running).
func TestRecoverDropsStalePendingReceipts(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	s, err := Open(cache, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.write(&Receipt{Name: "old", State: StatePending, When: time.Now().Add(-2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.write(&Receipt{Name: "fresh", State: StatePending, When: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.write(&Receipt{Name: "done", State: StateDeleted, When: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recover(nil); err != nil {
		t.Fatal(err)
	}
	if s.ReceiptFile("old") != "" {
		t.Error("the stale pending receipt stays")
	}
	if s.ReceiptFile("fresh") == "" || s.ReceiptFile("done") == "" {
		t.Error("a fresh pending or a finished receipt was removed")
	}
}

// 7. Drop removes a receipt (purging what it holds), the name stays until
// Forget; Forget refuses a name whose receipt is still there.
func TestDropAndForget(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	s, err := Open(info.CacheDir, time.Hour, env)
	if err != nil {
		t.Fatal(err)
	}
	r := trashAndComplete(t, s, info, selectRevs(t, info, revTiny), "dropme", cachecore.ExecuteOptions{})
	if r.State != StateHeld || !exists(r.HeldIn) {
		t.Fatalf("not held: %+v", r)
	}
	if err := s.Forget("dropme"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("Forget with the receipt there: %v, want ENOTEMPTY", err)
	}
	if s.ReceiptFile("dropme") == "" {
		t.Fatal("Forget removed the receipt")
	}
	if err := s.Drop("dropme"); err != nil {
		t.Fatal(err)
	}
	if exists(r.HeldIn) {
		t.Error("Drop left what the receipt held")
	}
	if s.ReceiptFile("dropme") != "" {
		t.Error("Drop left the receipt")
	}
	if bytes, n := s.Held(); bytes != 0 || n != 0 {
		t.Errorf("Held() after Drop = %d, %d", bytes, n)
	}
	if f, ok := s.Names()["dropme"]; !ok || f != "" || !s.Exists("dropme") {
		t.Errorf("a dropped name is listed with no file until Forget: %q %v", f, ok)
	}
	info = scan(t, info.CacheDir)
	before := tree(t, info.CacheDir)
	if _, _, err := s.Trash(planOf(t, info, revPR), "dropme", cachecore.ExecuteOptions{}); !errors.Is(err, cachecore.ErrReceiptExists) {
		t.Errorf("Trash under a dropped name: %v, want ErrReceiptExists", err)
	}
	sameTree(t, "Trash under a dropped name", before, tree(t, info.CacheDir))
	if err := s.Drop("dropme"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Drop twice: %v", err)
	}
	if err := s.Forget("dropme"); err != nil {
		t.Fatal(err)
	}
	if s.Exists("dropme") {
		t.Error("a forgotten name is listed")
	}
	if err := s.Forget("dropme"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Forget twice: %v", err)
	}
	// The name is free again.
	trashAndComplete(t, s, info, selectRevs(t, info, revPR), "dropme", cachecore.ExecuteOptions{})

	// Dropping a receipt of a deletion (nothing held) removes just it.
	s0, err := Open(info.CacheDir, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	info = scan(t, info.CacheDir)
	d := trashAndComplete(t, s0, info, selectRevs(t, info, revNoRef), "plain", cachecore.ExecuteOptions{})
	if d.State != StateDeleted {
		t.Fatalf("state %q", d.State)
	}
	if err := s0.Drop("plain"); err != nil || s0.ReceiptFile("plain") != "" {
		t.Errorf("Drop of a deleted receipt: %v", err)
	}
	if got := mustGet(t, s, "dropme"); got.State != StateHeld || !exists(got.HeldIn) {
		t.Errorf("another receipt's hold was touched: %+v", got)
	}
}

// 8. A hold needs room beside the cache on its file system: a cache
// folder that is a mount root is refused.
func TestOpenHoldRefusesMountRoot(t *testing.T) {
	env, _ := stateEnv(t)
	hub := filepath.Join(t.TempDir(), "hub")
	mountTmpfs(t, hub, "size=64k")
	_, err := Open(hub, time.Hour, env)
	if err == nil || !strings.Contains(err.Error(), "mount root") || !strings.Contains(err.Error(), hub) {
		t.Fatalf("Open with a hold on a mount root: %v", err)
	}
	if exists(filepath.Join(filepath.Dir(hub), ".hfcachefs-hold-hub")) {
		t.Error("a hold folder was made beside a refused cache")
	}
	s, err := Open(hub, 0, env)
	if err != nil {
		t.Fatalf("without a hold a mount root is fine: %v", err)
	}
	if s.HoldRoot != "" {
		t.Errorf("hold root %q without a hold", s.HoldRoot)
	}
}

// Open keeps the state outside the cache, under XDG_STATE_HOME or
// ~/.local/state, one folder per cache.
func TestOpenStateFolder(t *testing.T) {
	cache := testcache.Basic(t)
	if _, err := Open(cache, 0, envOf(map[string]string{"XDG_STATE_HOME": filepath.Join(cache, "state")})); err == nil || !strings.Contains(err.Error(), "inside the cache") {
		t.Errorf("state inside the cache: %v", err)
	}
	if exists(filepath.Join(cache, "state")) {
		t.Error("a state folder was made inside the cache")
	}
	home := t.TempDir()
	s, err := Open(cache, 0, envOf(map[string]string{"HOME": home}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.StateDir, filepath.Join(home, ".local", "state", "hfcachefs")+"/") {
		t.Errorf("state dir %s not under HOME", s.StateDir)
	}
	if st, err := os.Stat(s.ReceiptsDir()); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("receipts folder: %v %v", st, err)
	}
	env, _ := stateEnv(t)
	a, err := Open(cache, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(filepath.Join(filepath.Dir(cache), "other"), 0, env)
	if err != nil {
		t.Fatal(err)
	}
	if a.StateDir == b.StateDir {
		t.Error("two caches share a state folder")
	}
	if again, _ := Open(cache, 0, env); again.StateDir != a.StateDir {
		t.Error("the state folder of a cache is not stable")
	}
}

// A plan gone stale (its revision deleted by someone else since the scan)
// stages nothing: Trash must say so and keep no receipt, not file an
// empty "deleted" one.
func TestTrashNothingLeftToDelete(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	s, err := Open(info.CacheDir, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	sel := selectRevs(t, info, revPR)
	// Someone else deleted the revision since the scan.
	other := scan(t, info.CacheDir)
	if _, err := other.DeleteRevisions(revPR).Execute(cachecore.ExecuteOptions{}); err != nil {
		t.Fatal(err)
	}
	r, staged, err := s.Trash(info.PlanDeletion([]cachecore.Selection{sel}), "stale", cachecore.ExecuteOptions{})
	if staged != nil {
		if _, cerr := s.Complete(r, staged); cerr != nil {
			t.Log(cerr)
		}
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Trash of a revision already gone: err %v, receipt %+v; want a 'nothing to delete' error", err, r)
	}
	if s.ReceiptFile("stale") != "" {
		t.Errorf("a receipt was kept for a deletion that removed nothing: %+v", mustGet(t, s, "stale"))
	}
	assertNoStaging(t, info.CacheDir)
}

// Complete may run in the background while the store is read and other
// deletions start.
func TestCompleteConcurrentWithOtherCalls(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	s, err := Open(info.CacheDir, time.Hour, env)
	if err != nil {
		t.Fatal(err)
	}
	r, staged, err := s.Trash(planOf(t, info, revTiny), "bg", cachecore.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var cerr error
	go func() {
		defer wg.Done()
		_, cerr = s.Complete(r, staged)
	}()
	for i := 0; i < 20; i++ {
		s.Names()
		s.Held()
		s.NextExpiry()
		s.Exists("bg")
	}
	r2, staged2, err := s.Trash(planOf(t, info, revGPT2), "bg2", cachecore.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Complete(r2, staged2); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if cerr != nil {
		t.Fatal(cerr)
	}
	if bytes, n := s.Held(); n != 2 || bytes != mustGet(t, s, "bg").BytesFreed+mustGet(t, s, "bg2").BytesFreed {
		t.Errorf("Held() = %d, %d", bytes, n)
	}
	scanClean(t, info.CacheDir)
	assertNoStaging(t, info.CacheDir)
}

// NextExpiry is the earliest hold of the held receipts, whatever the
// order of their files; other states do not count.
func TestNextExpiryIsTheEarliest(t *testing.T) {
	env, _ := stateEnv(t)
	s, err := Open(testcache.Basic(t), 0, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.NextExpiry(); ok {
		t.Error("an expiry with no receipt")
	}
	names := []string{"a", "b", "c"}
	sort.Slice(names, func(i, j int) bool { return s.receiptFile(names[i]) < s.receiptFile(names[j]) })
	base := time.Now().UTC().Truncate(time.Second)
	// In file order: +2h, +1h (the earliest, neither first nor last), +3h.
	for i, h := range []time.Duration{2 * time.Hour, time.Hour, 3 * time.Hour} {
		until := base.Add(h)
		if err := s.write(&Receipt{Name: names[i], State: StateHeld, HoldUntil: &until, HeldIn: filepath.Join(t.TempDir(), "held")}); err != nil {
			t.Fatal(err)
		}
	}
	purgedAt := base.Add(time.Minute)
	if err := s.write(&Receipt{Name: "gone", State: StatePurged, HoldUntil: &purgedAt}); err != nil {
		t.Fatal(err)
	}
	if next, ok := s.NextExpiry(); !ok || !next.Equal(base.Add(time.Hour)) {
		t.Errorf("NextExpiry %v %v, want %v", next, ok, base.Add(time.Hour))
	}
}

// A Trash that the cache's change stops before anything went keeps no
// receipt and leaves the cache as it was.
func TestTrashRefusedWhenTheCacheChanged(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	s, err := Open(info.CacheDir, time.Hour, env)
	if err != nil {
		t.Fatal(err)
	}
	// Since the scan, a new ref names the revision to delete.
	if err := os.WriteFile(filepath.Join(info.CacheDir, tinyRepo, "refs", "newref"), []byte(revTiny), 0o644); err != nil {
		t.Fatal(err)
	}
	before := tree(t, info.CacheDir)
	r, staged, err := s.Trash(planOf(t, info, revTiny), "changed", cachecore.ExecuteOptions{})
	if !errors.Is(err, cachecore.ErrChanged) {
		t.Errorf("Trash: %v, want ErrChanged", err)
	}
	if r != nil || staged != nil {
		t.Errorf("a refused Trash returns %+v %v", r, staged)
		if staged != nil {
			staged.Close()
		}
	}
	if s.ReceiptFile("changed") != "" || s.Exists("changed") {
		t.Error("a receipt stays for a deletion that did nothing")
	}
	sameTree(t, "after a refused Trash", before, tree(t, info.CacheDir))
	assertNoStaging(t, info.CacheDir)
	if held, _ := os.ReadDir(s.HoldRoot); len(held) > 0 {
		t.Errorf("the hold folder has content: %v", held)
	}
}

// The hold folder beside the cache must be this user's own, writable by
// nobody else, and not a symlink: the deleted files would go there.
func TestOpenHoldRefusesForeignHoldFolder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, p string)
	}{
		{"writable by others", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, 0o777); err != nil {
				t.Fatal(err)
			}
		}},
		{"another owner", func(t *testing.T, p string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a folder away")
			}
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
		{"a symlink", func(t *testing.T, p string) {
			if err := os.Symlink(t.TempDir(), p); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := testcache.Basic(t)
			env, _ := stateEnv(t)
			tc.plant(t, filepath.Join(filepath.Dir(cache), ".hfcachefs-hold-hub"))
			s, err := Open(cache, time.Hour, env)
			if err == nil || !strings.Contains(err.Error(), "refusing to hold") {
				t.Errorf("Open with a planted hold folder: %v (store %+v)", err, s)
			}
		})
	}
	// Its own hold folder, opened again, is fine.
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	for i := 0; i < 2; i++ {
		if _, err := Open(cache, time.Hour, env); err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
}

// OpenExisting finds a cache's store without making one.
func TestOpenExisting(t *testing.T) {
	cache := testcache.Basic(t)
	env, state := stateEnv(t)
	if s, ok := OpenExisting(cache, env); ok || s != nil {
		t.Errorf("a store where none was made: %+v", s)
	}
	if entries, _ := os.ReadDir(state); len(entries) > 0 {
		t.Errorf("OpenExisting made state: %v", entries)
	}
	info := scan(t, cache)
	s, err := Open(info.CacheDir, 0, env)
	if err != nil {
		t.Fatal(err)
	}
	trashAndComplete(t, s, info, selectRevs(t, info, revPR), "seen", cachecore.ExecuteOptions{})
	e, ok := OpenExisting(info.CacheDir, env)
	if !ok || e.StateDir != s.StateDir || e.CacheDir != info.CacheDir || e.HoldRoot != "" {
		t.Fatalf("OpenExisting: %+v %v", e, ok)
	}
	if r, err := e.Get("seen"); err != nil || r.State != StateDeleted {
		t.Errorf("receipt through OpenExisting: %+v %v", r, err)
	}
	if names := e.Names(); len(names) != 1 || names["seen"] == "" {
		t.Errorf("names: %v", names)
	}
	if err := e.Drop("seen"); err != nil || !e.Exists("seen") {
		t.Errorf("drop through OpenExisting: %v", err)
	}
	// A receipts path that is not a folder is no store.
	other := filepath.Join(t.TempDir(), "hub")
	dir := stateDir(other, env)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "receipts"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := OpenExisting(other, env); ok {
		t.Error("a receipts file taken for a store")
	}
}

// A receipt covers one repo: a plan over two repos, or over none, is
// refused before anything is written or moved.
func TestTrashOneRepoPerReceipt(t *testing.T) {
	cache := testcache.Basic(t)
	env, _ := stateEnv(t)
	info := scan(t, cache)
	s, err := Open(info.CacheDir, time.Hour, env)
	if err != nil {
		t.Fatal(err)
	}
	before := tree(t, info.CacheDir)
	for what, plan := range map[string]*cachecore.DeleteStrategy{
		"two repos": info.DeleteRevisions(revTiny, revGPT2),
		"no repo":   info.PlanDeletion(nil),
	} {
		r, staged, err := s.Trash(plan, "multi", cachecore.ExecuteOptions{})
		if err == nil || !strings.Contains(err.Error(), "one repo") {
			t.Errorf("%s: %v, want a refusal", what, err)
		}
		if r != nil || staged != nil {
			t.Errorf("%s: returned %+v %v", what, r, staged)
			if staged != nil {
				staged.Close()
			}
		}
	}
	sameTree(t, "after refused plans", before, tree(t, info.CacheDir))
	if files := receiptFiles(t, s); len(files) > 0 {
		t.Errorf("receipts written: %v", files)
	}
	if held, _ := os.ReadDir(s.HoldRoot); len(held) > 0 {
		t.Errorf("held: %v", held)
	}
}
