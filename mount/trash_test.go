package mount

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
	"github.com/hfcachefs/hfcachefs/trash"
)

// 1. Trashing the delete_c1 revision leaves exactly the cache
// huggingface_hub's own deletion left, and the receipt says what went.
func TestTrashMatchesHuggingFaceHubDeletion(t *testing.T) {
	var del trPlanDoc
	trReadJSON(t, filepath.Join(trGoldens(), "delete_c1", "delete.json"), &del)
	if len(del.Snapshots) != 1 {
		t.Fatalf("delete.json: expected one snapshot, got %v", del.Snapshots)
	}
	folder, _, _ := strings.Cut(del.Snapshots[0], "/")
	hash := filepath.Base(del.Snapshots[0])
	cache := testcache.Basic(t)
	tm := trStart(t, cache, Options{})
	rev := tm.Rev(trMountPath(folder), hash)

	if got := trXattr(t, rev, "user.hf.freed_if_trashed"); got != strconv.FormatInt(del.ExpectedFreedSize, 10) {
		t.Errorf("user.hf.freed_if_trashed of %s = %q, want %d", rev, got, del.ExpectedFreedSize)
	}
	trMust(t, "mv", rev, tm.P(".trash")+"/")

	want := trGoldenLayout(t, filepath.Join(trGoldens(), "delete_c1", "layout_after.json"), cache)
	trSameTree(t, "after mv into .trash vs huggingface_hub's layout_after.json", want, trLayout(t, cache))
	scanClean(t, cache)

	r := trReceipt(t, tm, hash)
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"blobs", trRel(t, r.CacheDir, r.Blobs), del.Blobs},
		{"refs", trRel(t, r.CacheDir, r.Refs), del.Refs},
		{"snapshots", trRel(t, r.CacheDir, r.Snapshots), del.Snapshots},
		{"repos", trRel(t, r.CacheDir, r.Repos), del.Repos},
	} {
		if !trEqual(c.got, c.want) {
			t.Errorf("receipt %s = %q, delete.json says %q", c.what, c.got, c.want)
		}
	}
	if r.BytesFreed != del.ExpectedFreedSize {
		t.Errorf("receipt bytes_freed = %d, delete.json expected_freed_size = %d", r.BytesFreed, del.ExpectedFreedSize)
	}
	var wantRefs []string
	for _, ref := range del.Refs {
		wantRefs = append(wantRefs, strings.TrimPrefix(ref, folder+"/refs/"))
	}
	if r.RepoID != "acme/tiny-model" || r.RepoType != "model" || r.WholeRepo || r.State != trash.StateDeleted ||
		len(r.Revisions) != 1 || r.Revisions[0].Commit != hash || !trEqual(r.Revisions[0].Refs, wantRefs) || r.When.IsZero() {
		t.Errorf("receipt: %+v\nwant repo model acme/tiny-model, state deleted, revision %s with refs %v", r, hash, wantRefs)
	}
}

// 2. Every single-repo plan of plans.json, done with one mv of all its
// by-commit folders, leaves the cache the plan describes.
func TestTrashPlansFromHuggingFaceHub(t *testing.T) {
	var plans []struct {
		Hashes []string  `json:"hashes"`
		Plan   trPlanDoc `json:"plan"`
	}
	trReadJSON(t, filepath.Join(trGoldens(), "plans.json"), &plans)
	ref, err := cachecore.Scan(testcache.Basic(t))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range plans {
		t.Run(fmt.Sprintf("plan%d", i), func(t *testing.T) {
			var hashes []string
			seen := map[string]bool{}
			for _, h := range p.Hashes {
				if !seen[h] {
					seen[h] = true
					hashes = append(hashes, h)
				}
			}
			// Which plans a mv can do: .trash scopes each deletion to one
			// repo and only shows revisions that exist under their exact
			// (lower-case) hash. An empty plan has nothing to move; an
			// unknown hash (0000...) or an upper-case one (upstream
			// matches exactly: not found) has no by-commit folder; a plan
			// over several repos is several deletions, not one strategy.
			if len(hashes) == 0 {
				t.Skip("no hashes: nothing to move")
			}
			repos := map[string]bool{}
			var sources []string
			for _, h := range hashes {
				var found *cachecore.RepoInfo
				for _, r := range ref.Repos {
					if r.Revision(h) != nil {
						found = r
						break
					}
				}
				if found == nil {
					t.Skipf("hash %s is not in the cache (unknown or upper-case): no by-commit folder to move", h)
				}
				repos[found.FolderName()] = true
				sources = append(sources, filepath.Join(trMountPath(found.FolderName()), "by-commit", h))
			}
			if len(repos) > 1 {
				t.Skipf("hashes of %d repos: .trash deletes within one repo", len(repos))
			}

			cache := testcache.Basic(t)
			before := trLayout(t, cache)
			tm := trStart(t, cache, Options{})
			args := []string{}
			for _, s := range sources {
				args = append(args, tm.P(s))
			}
			trMust(t, "mv", append(args, tm.P(".trash")+"/")...)

			want := trMinus(before, p.Plan.Blobs, p.Plan.Refs, p.Plan.Snapshots, p.Plan.Repos)
			trSameTree(t, fmt.Sprintf("after mv %v into .trash vs the plan", hashes), want, trLayout(t, cache))
			scanClean(t, cache)
			// One receipt per source; together they freed what the plan says.
			var freed int64
			for _, h := range hashes {
				freed += trReceipt(t, tm, h).BytesFreed
			}
			if freed != p.Plan.ExpectedFreedSize {
				t.Errorf("the receipts' bytes_freed add up to %d, the plan's expected_freed_size is %d", freed, p.Plan.ExpectedFreedSize)
			}
		})
	}
}

// 3. A by-ref folder takes its revision and its refs; a repo folder takes
// the repo; the views show it as soon as mv returns (no polling).
func TestTrashByRefAndWholeRepoUpdateViews(t *testing.T) {
	cache := testcache.Basic(t)
	tm := trStart(t, cache, Options{})
	var plans []struct {
		Hashes []string  `json:"hashes"`
		Plan   trPlanDoc `json:"plan"`
	}
	trReadJSON(t, filepath.Join(trGoldens(), "plans.json"), &plans)
	gpt2Size := plans[5].Plan.ExpectedFreedSize // delete_revisions(gpt2's only revision) = the whole repo
	if got := trXattr(t, tm.P("models/gpt2"), "user.hf.freed_if_trashed"); got != strconv.FormatInt(gpt2Size, 10) {
		t.Errorf("user.hf.freed_if_trashed of models/gpt2 = %q, want %d", got, gpt2Size)
	}

	// by-ref/v1.0 -> .trash/v1.0
	trMust(t, "mv", tm.P(tinyModel, "by-ref", "v1.0"), tm.P(".trash")+"/")
	if byCommit := trLs(t, tm.P(tinyModel, "by-commit")); contains(byCommit, v1Commit) || len(byCommit) != 3 {
		t.Errorf("by-commit right after mv = %v, want the 3 other revisions", byCommit)
	}
	if byRef := trLs(t, tm.P(tinyModel, "by-ref")); contains(byRef, "v1.0") || contains(byRef, "feature") {
		t.Errorf("by-ref right after mv = %v, want no v1.0 and no feature/", byRef)
	}
	for _, p := range []string{"refs/v1.0", "refs/feature/x", "snapshots/" + v1Commit} {
		if trExists(filepath.Join(cache, trTinyFS, p)) {
			t.Errorf("%s is still in the cache", p)
		}
	}
	if !trExists(filepath.Join(cache, trTinyFS, "refs/main")) {
		t.Errorf("refs/main went too")
	}
	r := trReceipt(t, tm, "v1.0")
	if len(r.Revisions) != 1 || r.Revisions[0].Commit != v1Commit || !trEqual(r.Revisions[0].Refs, []string{"v1.0", "feature/x"}) || r.WholeRepo {
		t.Errorf("receipt of by-ref/v1.0: %+v", r)
	}

	// models/gpt2 -> .trash/g
	trMust(t, "mv", tm.P("models/gpt2"), tm.P(".trash", "g"))
	if trExists(filepath.Join(cache, "models--gpt2")) {
		t.Errorf("models--gpt2 is still in the cache")
	}
	if models := trLs(t, tm.P("models")); contains(models, "gpt2") {
		t.Errorf("ls models right after mv = %v, still has gpt2", models)
	}
	if r := trReceipt(t, tm, "g"); !r.WholeRepo || r.RepoID != "gpt2" || !trEqual(trRel(t, r.CacheDir, r.Repos), []string{"models--gpt2"}) || r.BytesFreed != gpt2Size {
		t.Errorf("receipt of models/gpt2: %+v", r)
	}

	// du and by-size follow at once.
	info := scanClean(t, cache)
	var modelBytes int64
	for _, repo := range info.Repos {
		if repo.RepoType == "model" {
			modelBytes += repo.SizeOnDisk
		}
	}
	du := strings.Fields(trMust(t, "du", "-sb", tm.P("models")))
	if len(du) == 0 || du[0] != strconv.FormatInt(modelBytes, 10) {
		t.Errorf("du -sb models right after the mvs = %v, want %d (the remaining model repos)", du, modelBytes)
	}
	bySize := trLs(t, tm.P("by-size"))
	tiny := info.Repo("model", "acme/tiny-model")
	wantTiny := "-" + cachecore.FormatSize(tiny.SizeOnDisk) + "-model--acme--tiny-model"
	found := false
	for _, e := range bySize {
		if strings.Contains(e, "gpt2") {
			t.Errorf("by-size still lists %s", e)
		}
		if strings.HasSuffix(e, wantTiny) {
			found = true
		}
	}
	if !found || len(bySize) != len(info.Repos) {
		t.Errorf("by-size right after the mvs = %v, want %d entries, one ending in %s", bySize, len(info.Repos), wantTiny)
	}
}

// 4. A taken name in .trash is EEXIST with or without RENAME_NOREPLACE and
// deletes nothing; any other rename flag is EINVAL.
func TestTrashNameTakenAndRenameFlags(t *testing.T) {
	needTool(t, "python3")
	cache := testcache.Basic(t)
	tm := trStart(t, cache, Options{})
	trMust(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", "dup"))
	before := treeState(t, cache)

	// GNU mv -T: renameat2(RENAME_NOREPLACE) onto .trash/dup.
	r := trRun(t, "mv", "-T", tm.Rev(tinyModel, mainCommit), tm.P(".trash", "dup"))
	if r.code == 0 || !strings.Contains(r.stderr, "File exists") {
		t.Errorf("mv -T onto a taken .trash name: %s; want File exists", r)
	}
	script := `
import ctypes, os, sys
src, taken, new = sys.argv[1:4]
libc = ctypes.CDLL(None, use_errno=True)
def renameat2(a, b, flags):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), flags) == 0:
        return "ok"
    return os.strerror(ctypes.get_errno())
try:
    os.rename(src, taken)
    print("os.rename: ok")
except OSError as e:
    print("os.rename:", e.strerror)
print("noreplace:", renameat2(src, taken, 1))
print("exchange:", renameat2(src, taken, 2))
print("whiteout:", renameat2(src, new, 4))
print("noreplace|exchange:", renameat2(src, taken, 3))
`
	out := trMust(t, "python3", "-c", script, tm.Rev(tinyModel, mainCommit), tm.P(".trash", "dup"), tm.P(".trash", "new"))
	for _, want := range []string{
		"os.rename: File exists",
		"noreplace: File exists",
		"exchange: Invalid argument",
		"whiteout: Invalid argument",
		"noreplace|exchange: Invalid argument",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("python renames: want %q in:\n%s", want, out)
		}
	}
	trSameTree(t, "after refused renames onto a taken name / with flags", before, treeState(t, cache))
	if names := trLs(t, tm.P(".trash")); !trEqual(names, []string{"dup"}) {
		t.Errorf(".trash = %v, want [dup]", names)
	}
	if !contains(trLs(t, tm.P(tinyModel, "by-commit")), mainCommit) {
		t.Errorf("%s left by-commit", mainCommit)
	}
}

// 5. Every refused rename fails with its errno and changes nothing.
func TestTrashRefusedRenamesChangeNothing(t *testing.T) {
	cache := testcache.Basic(t)
	tm := trStart(t, cache, Options{})
	trMust(t, "mv", tm.Rev(tinyModel, detached), tm.P(".trash", "r1")) // a receipt to move out of
	bySize := trLs(t, tm.P("by-size"))
	if len(bySize) == 0 {
		t.Fatal("by-size is empty")
	}
	const eperm, erofs = "Operation not permitted", "Read-only file system"
	eba9 := tm.Rev(tinyModel, mainCommit)
	cases := []struct {
		what, src, dst, want string
	}{
		{"a file into .trash", filepath.Join(eba9, "config.json"), tm.P(".trash") + "/", eperm},
		{"a file deeper down into .trash", filepath.Join(eba9, "sub/dir/file.txt"), tm.P(".trash", "f"), eperm},
		{"a folder inside a revision into .trash", filepath.Join(eba9, "sub"), tm.P(".trash") + "/", eperm},
		{"a by-size link into .trash", tm.P("by-size", bySize[0]), tm.P(".trash") + "/", eperm},
		{"a by-ref prefix folder into .trash", tm.P(tinyModel, "by-ref", "feature"), tm.P(".trash") + "/", eperm},
		{"by-commit/ itself into .trash", tm.P(tinyModel, "by-commit"), tm.P(".trash", "bc"), eperm},
		{"a revision into a receipt folder", eba9, tm.P(".trash", "r1") + "/", eperm},
		{"a receipt's file out of it", tm.P(".trash", "r1", "receipt.json"), tm.P(".trash", "y"), eperm},
		{"a receipt without a hold back to its repo", tm.P(".trash", "r1"), tm.P(tinyModel, "by-commit") + "/", eperm},
		{"a receipt anywhere else", tm.P(".trash", "r1"), tm.P("models") + "/", eperm},
		{"a revision to another repo", eba9, tm.P("models/gpt2/by-commit") + "/", erofs},
		{"a revision renamed in by-commit", eba9, tm.P(tinyModel, "by-commit", "renamed"), erofs},
		{"a revision to by-ref", eba9, tm.P(tinyModel, "by-ref", "mine"), erofs},
		{"a repo renamed", tm.P("models/gpt2"), tm.P("models/gpt3"), erofs},
		{"a repo to another type", tm.P("models/gpt2"), tm.P("datasets") + "/", erofs},
		{"a repo into another repo", tm.P("models/gpt2"), tm.P(tinyModel) + "/", erofs},
		{"a file inside the views", filepath.Join(eba9, "config.json"), filepath.Join(eba9, "config2.json"), erofs},
		{"a by-size link renamed", tm.P("by-size", bySize[0]), tm.P("by-size", "x"), erofs},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			before := treeState(t, cache)
			r := trRun(t, "mv", c.src, c.dst)
			if r.code == 0 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("mv %s %s: %s; want failure with %q", c.src, c.dst, r, c.want)
			}
			trSameTree(t, "after a refused rename", before, treeState(t, cache))
		})
	}
	if names := trLs(t, tm.P(".trash")); !trEqual(names, []string{"r1"}) {
		t.Errorf(".trash = %v, want [r1]", names)
	}
}

// 6. Readers holding a file of a trashed revision open keep reading its
// bytes after the deletion.
func TestTrashOpenReadersKeepReading(t *testing.T) {
	needTool(t, "python3")
	cache := testcache.Basic(t)
	// A 4 MiB file only this revision has, so its blob is deleted with it.
	big := make([]byte, 4<<20)
	rand.New(rand.NewSource(1)).Read(big)
	sum := sha256.Sum256(big)
	blob := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(cache, trTinyFS, "blobs", blob), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../blobs/"+blob, filepath.Join(cache, trTinyFS, "snapshots", v1Commit, "weights", "huge.bin")); err != nil {
		t.Fatal(err)
	}
	tm := trStart(t, cache, Options{})
	stop := filepath.Join(t.TempDir(), "stop")
	reader := `
import hashlib, os, sys, time
path, want, stop = sys.argv[1:4]
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
def once():
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # read through the mount, not the page cache
    except OSError:
        pass
    h, off = hashlib.sha256(), 0
    while off < size:
        b = os.pread(fd, min(1 << 20, size - off), off)
        if not b:
            break
        h.update(b)
        off += len(b)
    return h.hexdigest() == want and off == size
print("ready", flush=True)
n, end = 0, time.time() + 300
while not os.path.exists(stop):
    n += 1
    if not once():
        print("BAD before the deletion, read", n, flush=True)
        sys.exit(1)
    if time.time() > end:
        sys.exit(2)
for i in range(20):
    if not once():
        print("BAD after the deletion, read", i + 1, flush=True)
        sys.exit(1)
print("done", n, flush=True)
`
	file := tm.P(tinyModel, "by-commit", v1Commit, "weights", "huge.bin")
	var readers []*trChild
	for i := 0; i < 3; i++ {
		readers = append(readers, trSpawn(t, nil, false, "python3", "-c", reader, file, blob, stop))
	}
	for _, r := range readers {
		r.WaitLine(t, "ready", childTimeout)
	}
	trMust(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash")+"/")
	if trExists(filepath.Join(cache, trTinyFS, "blobs", blob)) || trExists(filepath.Join(cache, trTinyFS, "snapshots", v1Commit)) {
		t.Fatalf("the revision or its blob is still in the cache after mv")
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, r := range readers {
		if code := r.Wait(t, childTimeout); code != 0 || !strings.Contains(r.Output(), "done") {
			t.Errorf("reader %d: exit %d:\n%s", i, code, r.Output())
		}
	}
}

// trTrashHeld trashes the C1 revision on a held mount and checks that the
// hold area has it and the cache does not.
func trTrashHeld(t *testing.T, tm *trMount, cache, name string) trash.Receipt {
	t.Helper()
	trMust(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", name))
	r := trReceipt(t, tm, name)
	if r.State != trash.StateHeld || r.HoldUntil == nil || !strings.HasPrefix(r.HeldIn, trHoldParent(cache)+"/") {
		t.Fatalf("receipt of a held deletion: %+v (hold area should be under %s)", r, trHoldParent(cache))
	}
	if trExists(filepath.Join(cache, trTinyFS, "snapshots", v1Commit)) || trExists(filepath.Join(cache, trTinyFS, "refs", "v1.0")) {
		t.Errorf("the trashed revision is still in the cache")
	}
	for _, p := range append(append(append([]string{}, r.Snapshots...), r.Blobs...), r.Refs...) {
		rel, _ := filepath.Rel(r.CacheDir, p)
		if !trExists(filepath.Join(r.HeldIn, rel)) {
			t.Errorf("%s is not in the hold area %s", rel, r.HeldIn)
		}
	}
	scanClean(t, cache)
	return r
}

// trReceiptFiles lists the receipt files kept for any cache.
func trReceiptFiles(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_STATE_HOME"), "hfcachefs", "*", "receipts", "*.json"))
	return files
}

// 7a. A held deletion moved back out of .trash is a byte-identical round
// trip.
func TestTrashHoldRestoreByMv(t *testing.T) {
	cache := testcache.Basic(t)
	before := treeState(t, cache)
	tm := trStart(t, cache, Options{TrashHold: time.Hour})
	r := trTrashHeld(t, tm, cache, "c1")

	trMust(t, "mv", tm.P(".trash", "c1"), tm.P(tinyModel, "by-commit")+"/")
	trSameTree(t, "after the restore by mv", before, treeState(t, cache))
	scanClean(t, cache)
	if names := trLs(t, tm.P(".trash")); len(names) != 0 {
		t.Errorf(".trash after the restore = %v, want empty", names)
	}
	if files := trReceiptFiles(t); len(files) != 0 {
		t.Errorf("receipt files left after the restore: %v", files)
	}
	if trExists(r.HeldIn) {
		t.Errorf("the hold %s is still there after the restore", r.HeldIn)
	}
	if !contains(trLs(t, tm.P(tinyModel, "by-commit")), v1Commit) || !contains(trLs(t, tm.P(tinyModel, "by-ref")), "v1.0") {
		t.Errorf("the restored revision is not back in by-commit/by-ref right after mv")
	}
}

// 7b. hfcachefs restore NAME puts a hold back, with no mount or under a
// running one.
func TestTrashHoldRestoreCLI(t *testing.T) {
	bin := binary(t)
	for _, mounted := range []bool{false, true} {
		t.Run(fmt.Sprintf("mounted=%v", mounted), func(t *testing.T) {
			cache := testcache.Basic(t)
			before := treeState(t, cache)
			// The mount must poll to see what the CLI does behind its back.
			tm := trStart(t, cache, Options{TrashHold: time.Hour, PollInterval: time.Second})
			r := trTrashHeld(t, tm, cache, "c1")
			if !mounted {
				tm.Unmount()
			}
			list := trMust(t, bin, "restore", "--cache-dir", cache)
			if !strings.HasPrefix(list, "c1\theld until ") {
				t.Errorf("hfcachefs restore (list) = %q", list)
			}
			out := trMust(t, bin, "restore", "c1", "--cache-dir", cache)
			if !strings.Contains(out, "Restored model/acme/tiny-model") {
				t.Errorf("hfcachefs restore c1: %q", out)
			}
			trSameTree(t, "after hfcachefs restore", before, treeState(t, cache))
			scanClean(t, cache)
			if files := trReceiptFiles(t); len(files) != 0 {
				t.Errorf("receipt files left after the restore: %v", files)
			}
			if trExists(r.HeldIn) {
				t.Errorf("the hold %s is still there after the restore", r.HeldIn)
			}
			if mounted {
				// The CLI writes the cache behind the mount's back: the
				// mount sees it on its next poll, hence polling here.
				poll(t, trDeadline, "the mount shows the restored revision", func() (bool, string) {
					bc, tr := trLs(t, tm.P(tinyModel, "by-commit")), trLs(t, tm.P(".trash"))
					return contains(bc, v1Commit) && len(tr) == 0, fmt.Sprintf("by-commit %v, .trash %v", bc, tr)
				})
			}
		})
	}
}

// 7c. A ref that moved while its revision was held stays where it is; the
// CLI says so.
func TestTrashHoldRestoreKeepsMovedRef(t *testing.T) {
	bin := binary(t)
	cache := testcache.Basic(t)
	before := treeState(t, cache)
	tm := trStart(t, cache, Options{TrashHold: time.Hour, PollInterval: time.Second})
	trTrashHeld(t, tm, cache, "c1")
	refV1 := filepath.Join(cache, trTinyFS, "refs", "v1.0")
	if err := os.WriteFile(refV1+".tmp", []byte(mainCommit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(refV1+".tmp", refV1); err != nil {
		t.Fatal(err)
	}

	r := trRun(t, bin, "restore", "c1", "--cache-dir", cache)
	if r.code != 0 {
		t.Fatalf("hfcachefs restore c1: %s", r)
	}
	if !strings.Contains(r.stderr, "Note: ref v1.0 moved meanwhile to "+mainCommit) {
		t.Errorf("hfcachefs restore says nothing about the moved ref v1.0: %s", r)
	}
	if b, _ := os.ReadFile(refV1); string(b) != mainCommit {
		t.Errorf("refs/v1.0 = %q after the restore, want it left at %s", b, mainCommit)
	}
	after := treeState(t, cache)
	// .locks/ aside (huggingface_hub's download locks and ours stay there).
	for _, m := range []map[string]string{before, after} {
		for p := range m {
			if strings.HasPrefix(p, "/.locks/") {
				delete(m, p)
			}
		}
	}
	if d := diffTrees(before, after); len(d) != 1 || !strings.HasPrefix(d[0], "changed: /"+trTinyFS+"/refs/v1.0:") {
		t.Errorf("after restore, want only refs/v1.0 changed; differences:\n  %s", strings.Join(d, "\n  "))
	}
	scanClean(t, cache)
	// The CLI wrote the cache behind the mount's back: poll.
	poll(t, trDeadline, "the mount shows by-ref/v1.0 at its new commit and by-ref/feature/x back", func() (bool, string) {
		v1 := trRun(t, "getfattr", "--only-values", "--absolute-names", "-n", "user.hf.commit", tm.P(tinyModel, "by-ref", "v1.0"))
		fx := trRun(t, "getfattr", "--only-values", "--absolute-names", "-n", "user.hf.commit", tm.P(tinyModel, "by-ref", "feature", "x"))
		return v1.stdout == mainCommit && fx.stdout == v1Commit, v1.String() + "; " + fx.String()
	})
}

// 8. An expired hold is purged by the running mount, or at the next mount
// start when it expired while unmounted.
func TestTrashHoldExpiry(t *testing.T) {
	t.Run("while mounted", func(t *testing.T) {
		cache := testcache.Basic(t)
		tm := trStart(t, cache, Options{TrashHold: 2 * time.Second})
		r := trTrashHeld(t, tm, cache, "c1")
		holdRoot := filepath.Dir(r.HeldIn)
		poll(t, trDeadline, "the expired hold is purged", func() (bool, string) {
			got := trReceipt(t, tm, "c1")
			left, _ := os.ReadDir(holdRoot)
			return got.State == trash.StatePurged && len(left) == 0, fmt.Sprintf("state %s, %d left in %s", got.State, len(left), holdRoot)
		})
		scanClean(t, cache)
		if trExists(filepath.Join(cache, trTinyFS, "snapshots", v1Commit)) {
			t.Errorf("the purged revision is back in the cache")
		}
	})
	t.Run("at the next mount", func(t *testing.T) {
		cache := testcache.Basic(t)
		hold := 3 * time.Second
		mp := newMountpoint(t)
		tm := trStartAt(t, mp, cache, Options{TrashHold: hold})
		r := trTrashHeld(t, tm, cache, "c1")
		tm.Unmount()
		time.Sleep(time.Until(*r.HoldUntil) + time.Second) // let it expire while nothing is mounted
		if got, err := trStore(t, cache).Get("c1"); err != nil || got.State != trash.StateHeld || !trExists(r.HeldIn) {
			t.Fatalf("with no mount the hold should still be there: %+v, %v", got, err)
		}
		tm2 := trStartAt(t, mp, cache, Options{TrashHold: hold})
		// The purge runs in the background from mount start: poll.
		poll(t, trDeadline, "the hold that expired while unmounted is purged at mount start", func() (bool, string) {
			got := trReceipt(t, tm2, "c1")
			return got.State == trash.StatePurged && !trExists(r.HeldIn), "state " + got.State
		})
		scanClean(t, cache)
	})
}

// 9. rm -r of a receipt drops it; with a hold, the held data goes at once.
func TestTrashRemoveReceipt(t *testing.T) {
	for _, hold := range []time.Duration{time.Hour, 0} {
		t.Run(fmt.Sprintf("hold=%v", hold), func(t *testing.T) {
			cache := testcache.Basic(t)
			tm := trStart(t, cache, Options{TrashHold: hold})
			trMust(t, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash", "c1"))
			r := trReceipt(t, tm, "c1")
			if hold > 0 && !trExists(r.HeldIn) {
				t.Fatalf("nothing held: %+v", r)
			}
			before := treeState(t, cache)
			trMust(t, "rm", "-r", tm.P(".trash", "c1"))
			if hold > 0 && trExists(r.HeldIn) {
				t.Errorf("rm -r of the receipt left the hold %s", r.HeldIn)
			}
			if names := trLs(t, tm.P(".trash")); len(names) != 0 {
				t.Errorf(".trash after rm -r = %v", names)
			}
			if files := trReceiptFiles(t); len(files) != 0 {
				t.Errorf("receipt files left after rm -r: %v", files)
			}
			trSameTree(t, "rm -r of a receipt", before, treeState(t, cache))
			scanClean(t, cache)
		})
	}
}

// 10. A --read-only mount has no .trash.
func TestTrashAbsentOnReadOnlyMount(t *testing.T) {
	cache := testcache.Basic(t)
	tm := trStart(t, cache, Options{ReadOnly: true})
	if names := trLs(t, tm.P()); contains(names, ".trash") {
		t.Errorf("ls -a of a --read-only mount shows .trash: %v", names)
	}
	before := treeState(t, cache)
	for _, dst := range []string{tm.P(".trash") + "/", tm.P(".trash"), tm.P(".trash", "x")} {
		if r := trRun(t, "mv", tm.Rev(tinyModel, v1Commit), dst); r.code == 0 {
			t.Errorf("mv to %s on a --read-only mount worked: %s", dst, r)
		}
	}
	trSameTree(t, "mv on a --read-only mount", before, treeState(t, cache))
	if !contains(trLs(t, tm.P(tinyModel, "by-commit")), v1Commit) {
		t.Errorf("the revision left by-commit")
	}
}

// 11. With --allow-other the kernel lets exactly the users who may write
// the cache move things into .trash.
func TestTrashPermissionsAllowOther(t *testing.T) {
	needRoot(t, "creates a group and runs mv as other users")
	needTool(t, "groupadd", "groupdel", "getent", "setpriv")
	group := fmt.Sprintf("hfct%d", os.Getpid()%1000000)
	trMust(t, "groupadd", group)
	t.Cleanup(func() { trRun(t, "groupdel", group) })
	ent := strings.Split(strings.TrimSpace(trMust(t, "getent", "group", group)), ":")
	if len(ent) < 3 {
		t.Fatalf("getent group %s: %v", group, ent)
	}
	gid, _ := strconv.Atoi(ent[2])

	cache := testcache.Basic(t)
	err := filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, 0, gid); err != nil {
			return err
		}
		switch {
		case d.Type()&os.ModeSymlink != 0:
			return nil
		case d.IsDir():
			return os.Chmod(p, 0o775)
		}
		return os.Chmod(p, 0o664)
	})
	if err != nil {
		t.Fatal(err)
	}
	mp := newMountpoint(t)
	openToOthers(t, cache, mp) // t.TempDir roots are 0700
	tm := trStartAt(t, mp, cache, Options{AllowOther: true})
	member := []string{"--reuid", "52341", "--regid", strconv.Itoa(gid), "--groups", strconv.Itoa(gid)}
	other := []string{"--reuid", "52342", "--regid", "52342", "--clear-groups"}

	before := treeState(t, cache)
	for _, src := range []string{tm.Rev(tinyModel, v1Commit), tm.P("models/gpt2"), tm.P(tinyModel, "by-ref", "main")} {
		r := trRun(t, "setpriv", append(other, "mv", src, tm.P(".trash")+"/")...)
		if r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
			t.Errorf("mv %s into .trash as a non-member: %s; want Permission denied", src, r)
		}
	}
	trSameTree(t, "refused mvs by a non-member", before, treeState(t, cache))

	if r := trRun(t, "setpriv", append(member, "mv", tm.Rev(tinyModel, v1Commit), tm.P(".trash")+"/")...); r.code != 0 {
		t.Fatalf("mv into .trash as a member of %s: %s", group, r)
	}
	if trExists(filepath.Join(cache, trTinyFS, "snapshots", v1Commit)) {
		t.Errorf("the member's mv did not delete the revision")
	}
	if r := trRun(t, "setpriv", append(member, "mv", tm.P("models/gpt2"), tm.P(".trash", "g"))...); r.code != 0 {
		t.Errorf("mv of a repo into .trash as a member of %s: %s", group, r)
	}
	if trExists(filepath.Join(cache, "models--gpt2")) {
		t.Errorf("the member's mv did not delete models--gpt2")
	}
	scanClean(t, cache)
}

// 12. A .trash deletion killed between two steps (kill -9 of the daemon)
// leaves a cache that scans clean, and a new mount on the same mountpoint
// works and can finish the job.
func TestTrashKilledMidDeletionScansClean(t *testing.T) {
	needFuse(t)
	cases := []struct {
		name     string
		src, dst string // in the mount
		killAt   int    // kill when the daemon announces this step (1-based): steps before it are done
	}{
		{"revision after one ref", tinyModel + "/by-commit/" + v1Commit, ".trash/", 2},
		{"revision after its refs", tinyModel + "/by-commit/" + v1Commit, ".trash/", 3},
		{"revision after its snapshot", tinyModel + "/by-commit/" + v1Commit, ".trash/", 4},
		{"revision after one blob", tinyModel + "/by-commit/" + v1Commit, ".trash/", 5},
		{"repo before it moved", "models/gpt2", ".trash/g", 1},
		{"repo after it was staged", "models/gpt2", ".trash/g", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			trState(t)
			cache := testcache.Basic(t)
			mp := newMountpoint(t)
			// --poll-interval 1h: no refresher tick during the slow
			// deletion (a tick then deadlocks the daemon, which a kill -9
			// cannot end: TestTrashSlowDeletionWithRefresher). This test
			// is about what a kill between steps leaves on disk.
			daemon := trSlowDaemon(t, mp, cache, "1h")

			mv := trSpawn(t, nil, true, "mv", filepath.Join(mp, c.src), filepath.Join(mp, c.dst))
			var steps []string
			for len(steps) < c.killAt {
				steps = append(steps, daemon.WaitLine(t, "step: ", childTimeout))
			}
			if err := syscall.Kill(daemon.cmd.Process.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			daemon.Wait(t, trHang)
			if code := mv.Wait(t, trHang); code == 0 {
				t.Logf("mv succeeded although the daemon was killed at %q", steps[len(steps)-1])
			}
			t.Logf("killed at %q", steps[len(steps)-1])
			scanClean(t, cache)

			// The same mountpoint, now dead, takes a new mount.
			tm := trStartAt(t, mp, cache, Options{})
			if names := trLs(t, tm.P("models")); len(names) == 0 {
				t.Fatalf("the new mount shows no models")
			}
			if strings.HasPrefix(c.src, "models/gpt2") {
				if contains(trLs(t, tm.P("models")), "gpt2") {
					trMust(t, "mv", tm.P(c.src), tm.P(c.dst))
				}
				trWaitTrashIdle(t, tm.mp)
				// Another deletion also clears what the killed one left in .locks.
				trMust(t, "mv", tm.Rev(tinyModel, detached), tm.P(".trash", "a"))
				if trExists(filepath.Join(cache, "models--gpt2")) {
					t.Errorf("models--gpt2 is still in the cache")
				}
				left, _ := filepath.Glob(filepath.Join(cache, ".locks", ".hfcachefs-deleting-*"))
				if len(left) > 0 {
					t.Errorf("staging folders left in .locks after a later deletion: %v", left)
				}
			} else {
				want := trGoldenLayout(t, filepath.Join(trGoldens(), "delete_c1", "layout_after.json"), cache)
				if contains(trLs(t, tm.P(tinyModel, "by-commit")), v1Commit) {
					// Finishing the deletion through the new mount gives
					// huggingface_hub's result.
					trMust(t, "mv", tm.P(c.src), tm.P(".trash", "again"))
					trWaitTrashIdle(t, tm.mp)
					if files := trReceiptFiles(t); len(files) == 0 {
						t.Errorf("no receipt after the finished deletion")
					}
				} else {
					// The snapshot went before the kill: the revision is
					// gone, and what the deletion had not reached yet are
					// blobs no snapshot links to (which no scan warns about,
					// and no mount can trash any more).
					var del trPlanDoc
					trReadJSON(t, filepath.Join(trGoldens(), "delete_c1", "delete.json"), &del)
					for _, b := range del.Blobs {
						if trExists(filepath.Join(cache, b)) {
							want[b] = "file"
							t.Logf("left behind by the kill: %s", b)
						}
					}
				}
				trSameTree(t, "a killed deletion (finished by a new mount if it can) vs layout_after.json", want, trLayout(t, cache))
			}
			scanClean(t, cache)
		})
	}
}

// 12b. A deletion slower than the poll interval (a blob whose download
// lock is held, a big repo; here the step delay hook) must not deadlock
// the mount: the refresher sees the half-done deletion and invalidates
// kernel entries of the folders the in-flight rename holds locked.
func TestTrashSlowDeletionWithRefresher(t *testing.T) {
	needFuse(t)
	trState(t)
	cache := testcache.Basic(t)
	mp := newMountpoint(t)
	// A separate daemon: if it deadlocks, this test process is not stuck with it.
	trSlowDaemon(t, mp, cache, "100ms")

	// The deletion takes 5 steps of 300ms; if mv is not done in 20 s the
	// mount is deadlocked: runHang aborts the connection and fails.
	if r := runHang(t, 20*time.Second, nil, "mv", filepath.Join(mp, tinyModel, "by-commit", v1Commit), filepath.Join(mp, ".trash")+"/"); r.code != 0 {
		t.Fatalf("mv: %s", r)
	}
	trWaitTrashIdle(t, mp)
	want := trGoldenLayout(t, filepath.Join(trGoldens(), "delete_c1", "layout_after.json"), cache)
	trSameTree(t, "after a slow deletion", want, trLayout(t, cache))
	scanClean(t, cache)
	if names := trLs(t, filepath.Join(mp, tinyModel, "by-commit")); contains(names, v1Commit) {
		t.Errorf("by-commit still shows %s: %v", v1Commit, names)
	}
}

// The rename's new name is the receipt as soon as mv returns, and a
// restored name is the revision or repo again: checked by the same shell
// right after mv (a user's next command), for revisions, refs and repos,
// a few rounds (what is checked is a race the mount must not lose).
func TestTrashNewNameIsTheReceiptAtOnce(t *testing.T) {
	cache := testcache.Basic(t)
	tm := trStart(t, cache, Options{TrashHold: time.Hour})
	trashSh := `mv "$1" "$2" || exit 9; cat "$2/receipt.json" >/dev/null 2>&1 || { echo "no receipt.json: inode $(stat -c %i "$2"), ls -A: [$(ls -A "$2" 2>&1)]; 2 s later: inode $(sleep 2; stat -c %i "$2"), ls -A: [$(ls -A "$2" 2>&1)]"; exit 1; }`
	restoreSh := `mv "$1" "$2" || exit 9; out=$(ls -A "$3" 2>&1); [ "$out" = "$4" ] || { echo "ls -A $3 right after the restore: $out"; exit 1; }`
	for round := 0; round < 10; round++ {
		for _, c := range []struct {
			what, src, name, back, shown, want string
		}{
			{"a revision", tm.Rev(tinyModel, detached), "rev", tm.P(tinyModel, "by-commit") + "/", tm.Rev(tinyModel, detached), "README.md"},
			{"a whole repo", tm.P("models/gpt2"), "repo", tm.P("models") + "/", tm.P("models/gpt2"), "by-commit\nby-ref"},
			{"a repo's only revision", tm.Rev("models/gpt2", trGpt2), "last", tm.P("models") + "/", tm.P("models/gpt2"), "by-commit\nby-ref"},
			{"a revision by its ref", tm.P(tinyModel, "by-ref", "v1.0"), "ref", tm.P(tinyModel, "by-commit") + "/", tm.Rev(tinyModel, v1Commit), "config.json\nmodel.safetensors\nsub\nweights"},
		} {
			name := fmt.Sprintf("%s%d", c.name, round)
			want := c.want
			if r := trRun(t, "sh", "-c", trashSh, "sh", c.src, tm.P(".trash", name)); r.code != 0 {
				t.Errorf("round %d, %s into .trash/%s: right after mv: %s", round, c.what, name, r)
				if r.code == 9 {
					continue // the mv itself failed: nothing to restore
				}
			}
			if r := trRun(t, "sh", "-c", restoreSh, "sh", tm.P(".trash", name), c.back, c.shown, want); r.code != 0 {
				t.Errorf("round %d, restoring %s from .trash/%s: %s", round, c.what, name, r)
			}
			// Whatever the kernel showed, the next round needs the names
			// settled: wait for them (not what this test checks).
			poll(t, trDeadline, "the restored name settles", func() (bool, string) {
				r := trRun(t, "ls", "-A1", c.shown)
				out := strings.TrimSpace(r.stdout)
				return r.code == 0 && out == want, r.String()
			})
		}
	}
	scanClean(t, cache)
}
