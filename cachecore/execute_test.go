package cachecore

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

// Line numbers below are those of execute.go and delete.go as of this
// file's writing (the working tree over 45fee10); the function names say
// where to look once they move.
//
// Commits of the basic cache (testdata/conformance/goldens/basic):
//
//	models--acme--tiny-model: refs/main -> eba90b51, refs/v1.0 and
//	  refs/feature/x -> 4a67d7bb, refs/refs/pr/1 -> b182d9df; a22712da is
//	  detached. 4a67d7bb alone links blobs cb608f6e (15 B) and 457cb2ea
//	  (20001 B).
//	datasets--acme--tiny-dataset: refs/main -> d8818319, refs/v1 -> 955d0852.
const (
	exTinyModel   = "models--acme--tiny-model"
	exTinyDataset = "datasets--acme--tiny-dataset"
	exRev4a67     = "4a67d7bb895e9c468f402aa571ffea8548c37676"
	exRevB182     = "b182d9dfaaa3b0371d923ac6f05d09a96e70a56e"
	exRevA227     = "a22712daca2fb86decd9b9c6ed06c1c90ca638fa"
	exRevD881     = "d8818319eee349cfcb5230c99a94b6445dbf6cfb"
	exRev955d     = "955d0852cd0c532cccffa7785d06160005451066"
	exBigBlob     = "457cb2ea893144bb585309c75658893abe07e6f7fa0bfdf975f4f9a980ea5fc7"
)

// exRewriteRef rewrites a ref the way huggingface_hub does: a temporary
// file beside it, then an atomic rename over it.
func exRewriteRef(t testing.TB, ref, commit string) {
	t.Helper()
	tmp := ref + ".tmp" + strconv.Itoa(rand.IntN(1<<30))
	if err := os.WriteFile(tmp, []byte(commit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, ref); err != nil {
		t.Fatal(err)
	}
}

func exReadFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exSummary is what a scan says of the cache, timestamps left out: every
// repo, revision, ref and file (with the blob it resolves to and its
// size), and the warnings.
func exSummary(info *CacheInfo) string {
	var b strings.Builder
	for _, r := range info.Repos {
		fmt.Fprintf(&b, "repo %s %s size=%d files=%d\n", r.RepoType, r.RepoPath, r.SizeOnDisk, r.NbFiles)
		for _, rev := range r.Revisions {
			fmt.Fprintf(&b, "  rev %s size=%d refs=%v\n", rev.CommitHash, rev.SizeOnDisk, rev.Refs)
			for _, f := range rev.Files {
				fmt.Fprintf(&b, "    %s -> %s (%d)\n", f.RelPath, f.BlobPath, f.SizeOnDisk)
			}
		}
	}
	for _, w := range info.Warnings {
		fmt.Fprintf(&b, "warning %v\n", w)
	}
	return b.String()
}

// exListing lists every entry under dir, not following symlinks: type,
// symlink target, file content hash and mode. The repo deletion lock
// files (.locks/<repo>/.hfcachefs-delete.lock) an earlier version created
// and left, as huggingface_hub leaves its own, are left out.
func exListing(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(rel, ".locks/") && filepath.Base(p) == ".hfcachefs-delete.lock" {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link " + target
		case fi.IsDir():
			out[rel] = "dir " + fi.Mode().String()
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			out[rel] = "file " + fi.Mode().String() + " " + hex.EncodeToString(sum[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func exDiffListing(before, after map[string]string) []string {
	var diff []string
	for p, v := range before {
		if w, ok := after[p]; !ok {
			diff = append(diff, "gone: "+p+" ("+v+")")
		} else if w != v {
			diff = append(diff, "changed: "+p+" ("+v+" -> "+w+")")
		}
	}
	for p, v := range after {
		if _, ok := before[p]; !ok {
			diff = append(diff, "new: "+p+" ("+v+")")
		}
	}
	sort.Strings(diff)
	return diff
}

// exDiffLines lists the lines only one of two texts has.
func exDiffLines(before, after string) string {
	count := map[string]int{}
	for _, l := range strings.Split(before, "\n") {
		count[l]--
	}
	for _, l := range strings.Split(after, "\n") {
		count[l]++
	}
	var out []string
	for l, n := range count {
		switch {
		case n < 0:
			out = append(out, "- "+l)
		case n > 0:
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func exFindRepo(t testing.TB, info *CacheInfo, folder string) *RepoInfo {
	t.Helper()
	for _, r := range info.Repos {
		if filepath.Base(r.RepoPath) == folder {
			return r
		}
	}
	t.Fatalf("no repo %s in the scan", folder)
	return nil
}

// 1. A ref that moved since the plan is left in place.
//
// Guards execute.go:436-440 (stageRevisions re-reads the ref before it is
// staged: "moved to ... since the plan") and, in the "while deleting"
// case, execute.go:497-508 (stageRef reads what it moved and puts a
// rewritten ref back).
func TestExecuteLeavesARefThatMoved(t *testing.T) {
	for _, when := range []string{"since the plan", "while deleting"} {
		t.Run(when, func(t *testing.T) {
			dir := testcache.Basic(t)
			repoDir := filepath.Join(dir, exTinyDataset)
			ref := filepath.Join(repoDir, "refs", "main")
			if got := exReadFile(t, ref); got != exRevD881 {
				t.Fatalf("refs/main is %q", got)
			}
			plan := mustScan(t, dir).DeleteRevisions(exRevD881)
			if len(plan.Refs) != 1 || plan.Refs[0] != ref {
				t.Fatalf("plan refs: %v", plan.Refs)
			}
			opts := ExecuteOptions{}
			if when == "since the plan" {
				exRewriteRef(t, ref, exRev955d)
			} else {
				// Between the re-read and the move: the download's rename
				// lands just before the ref is staged.
				opts.BeforeStep = func(kind, p string) error {
					if kind == "ref" && p == ref {
						exRewriteRef(t, ref, exRev955d)
					}
					return nil
				}
			}
			rep, err := plan.Execute(opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := exReadFile(t, ref); got != exRev955d {
				t.Fatalf("refs/main must survive with %s, got %q", exRev955d, got)
			}
			found := false
			for _, s := range rep.Skipped {
				if s.Kind == "ref" && s.Path == ref && strings.Contains(s.Reason, "moved") && strings.Contains(s.Reason, when) {
					found = true
				}
			}
			if !found {
				t.Errorf("refs/main not reported skipped (moved, %s): %+v", when, rep.Skipped)
			}
			for _, d := range rep.Deleted {
				if d == ref {
					t.Errorf("refs/main reported deleted: %v", rep.Deleted)
				}
			}
			if _, err := os.Lstat(filepath.Join(repoDir, "snapshots", exRevD881)); !os.IsNotExist(err) {
				t.Errorf("revision %s should be gone: %v", exRevD881, err)
			}
			after := mustScan(t, dir)
			if len(after.Warnings) > 0 {
				t.Errorf("warnings: %v", after.Warnings)
			}
			r := exFindRepo(t, after, exTinyDataset)
			if len(r.Revisions) != 1 || r.Revisions[0].CommitHash != exRev955d || strings.Join(r.Revisions[0].Refs, ",") != "main,v1" {
				t.Errorf("dataset after: %s", exSummary(after))
			}
			assertNoStaging(t, dir)
		})
	}
}

// 2. A ref moved onto a trashed commit meanwhile: nothing is deleted.
//
// Guards execute.go:453-456 (stageRevisions: refNaming after staging the
// known refs, then rollback: the refs staged at :444 go back at :515-521)
// and :569 (abandon removes the then empty staging folder; 45fee10 left
// an empty .hfcachefs-staging behind).
func TestExecuteRefusesARefMovedOntoATrashedCommit(t *testing.T) {
	cases := map[string]string{
		"detached revision":        exRevA227, // no ref known to the plan
		"revision with known refs": exRev4a67, // v1.0 and feature/x are staged, then must come back
	}
	for name, commit := range cases {
		t.Run(name, func(t *testing.T) {
			dir := testcache.Basic(t)
			plan := mustScan(t, dir).DeleteRevisions(commit)
			if len(plan.Snapshots) != 1 {
				t.Fatalf("plan: %+v", plan)
			}
			newRef := filepath.Join(dir, exTinyModel, "refs", "new")
			exRewriteRef(t, newRef, commit)
			before := exListing(t, dir)
			rep, err := plan.Execute(ExecuteOptions{})
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("want ErrChanged, got %v (report %+v)", err, rep)
			}
			if len(rep.Deleted)+len(rep.Blobs) != 0 || rep.BytesFreed != 0 {
				t.Errorf("the report says something went: %+v", rep)
			}
			if d := exDiffListing(before, exListing(t, dir)); len(d) > 0 {
				t.Errorf("the cache changed although nothing was to be deleted:\n%s", strings.Join(d, "\n"))
			}
			assertNoStaging(t, dir)
			if w := mustScan(t, dir).Warnings; len(w) > 0 {
				t.Errorf("warnings: %v", w)
			}
		})
	}
}

// 3. Killed at any point, then FinishStaged: whole or gone.
//
// Stops before each step in turn (BeforeStep) and after Stage returns (the
// *Staged dropped without Finish). Guards the recovery: execute.go:1124
// (finishOne: no snapshot moved, rolled back) with rollback :515 putting
// back every ref found in the staged tree (45fee10 put back only the
// journal's refs, saved at :457 after all refs were staged: a kill
// between two refs lost the first, e.g. refs/feature/x of 4a67d7bb), and
// :1134-1142 (finished: refs of a revision still in snapshots/ go back).
func TestExecuteKilledAtAnyPointThenFinishStaged(t *testing.T) {
	selections := map[string][]string{
		"one revision":  {exRev4a67},
		"two revisions": {exRevB182, exRev4a67},
		"detached":      {exRevA227},
	}
	for name, hashes := range selections {
		t.Run(name, func(t *testing.T) {
			var kinds []string
			{
				dir := testcache.Basic(t)
				if _, err := mustScan(t, dir).DeleteRevisions(hashes...).Execute(ExecuteOptions{BeforeStep: func(kind, p string) error {
					kinds = append(kinds, kind+" "+p)
					return nil
				}}); err != nil {
					t.Fatal(err)
				}
			}
			firstSnap, lastSnap := -1, -1
			for i, k := range kinds {
				if strings.HasPrefix(k, "snapshot ") {
					if firstSnap < 0 {
						firstSnap = i
					}
					lastSnap = i
				}
			}
			if firstSnap < 0 {
				t.Fatalf("no snapshot step in %v", kinds)
			}
			// stopAt == len(kinds): stopped after Stage returned.
			for stopAt := 0; stopAt <= len(kinds); stopAt++ {
				where := "after Stage"
				if stopAt < len(kinds) {
					where = "before " + kinds[stopAt]
				}
				dir := testcache.Basic(t)
				beforeInfo := mustScan(t, dir)
				before := exSummary(beforeInfo)
				plan := beforeInfo.DeleteRevisions(hashes...)
				if stopAt < len(kinds) {
					n := 0
					_, err := plan.Execute(ExecuteOptions{BeforeStep: func(kind, p string) error {
						if n == stopAt {
							return errStop
						}
						n++
						return nil
					}})
					if !errors.Is(err, errStop) {
						t.Fatalf("%s: %v", where, err)
					}
				} else {
					st, err := plan.Stage(ExecuteOptions{})
					if err != nil {
						t.Fatal(err)
					}
					st.Close() // killed: no Finish
				}
				if w := mustScan(t, dir).Warnings; len(w) > 0 {
					t.Fatalf("%s: killed there, the cache scans with warnings %v", where, w)
				}
				recs, err := FinishStaged(dir, nil)
				if err != nil {
					t.Fatalf("%s: FinishStaged: %v", where, err)
				}
				for _, r := range recs {
					if r.Err != nil {
						t.Errorf("%s: recovery %s: %v", where, r.ID, r.Err)
					}
				}
				assertNoStaging(t, dir)
				after := mustScan(t, dir)
				switch {
				case stopAt <= firstSnap:
					// No snapshot had moved: rolled back, as if never run.
					if got := exSummary(after); got != before {
						t.Errorf("%s: not rolled back whole:\n%s", where, exDiffLines(before, got))
					}
					if len(recs) != 1 || !recs[0].RolledBack {
						t.Errorf("%s: recovered %+v, want one rolled back", where, recs)
					}
				case stopAt > lastSnap:
					// Every snapshot had moved: finished.
					if len(after.Warnings) > 0 {
						t.Errorf("%s: warnings %v", where, after.Warnings)
					}
					for _, h := range hashes {
						for _, r := range after.Repos {
							if r.Revision(h) != nil {
								t.Errorf("%s: revision %s survived", where, h)
							}
						}
					}
					for _, b := range plan.Blobs {
						if _, err := os.Lstat(b); !os.IsNotExist(err) {
							t.Errorf("%s: unshared blob %s survived: %v", where, b, err)
						}
					}
					if len(recs) != 1 || recs[0].RolledBack {
						t.Errorf("%s: recovered %+v, want one finished", where, recs)
					}
				default:
					// Some snapshots moved: each revision whole or gone.
					if len(after.Warnings) > 0 {
						t.Errorf("%s: warnings %v", where, after.Warnings)
					}
					exWholeOrGone(t, where, beforeInfo, after, hashes)
				}
			}
		})
	}
}

// exWholeOrGone checks that each revision of before is, after, either
// exactly as it was (refs included) or gone with its refs, and that only
// planned revisions went.
func exWholeOrGone(t *testing.T, where string, before, after *CacheInfo, planned []string) {
	t.Helper()
	plannedSet := map[string]bool{}
	for _, h := range planned {
		plannedSet[h] = true
	}
	gone := 0
	for _, r := range before.Repos {
		var ar *RepoInfo
		for _, x := range after.Repos {
			if x.RepoPath == r.RepoPath {
				ar = x
			}
		}
		for _, rev := range r.Revisions {
			var now *RevisionInfo
			if ar != nil {
				now = ar.Revision(rev.CommitHash)
			}
			if now == nil {
				gone++
				if !plannedSet[rev.CommitHash] {
					t.Errorf("%s: unplanned revision %s went", where, rev.CommitHash)
				}
				continue
			}
			one := func(x *RevisionInfo) string {
				return exSummary(&CacheInfo{Repos: []*RepoInfo{{RepoPath: r.RepoPath, Revisions: []*RevisionInfo{x}}}})
			}
			if a, b := one(rev), one(now); a != b {
				t.Errorf("%s: revision %s neither whole nor gone:\n%s---\n%s", where, rev.CommitHash, a, b)
			}
		}
	}
	if gone == 0 || gone == len(planned) {
		t.Errorf("%s: %d of %d planned revisions went, want some but not all", where, gone, len(planned))
	}
}

// 4. A blob left in place because its download lock stayed held is not
// counted as freed.
//
// Guards execute.go:752-760 (removeBlobs: a lock still held after
// LockTimeout: skipped, not counted) and :824-826 (removeBlob: only what
// was removed is counted, with the size stat'ed then).
func TestExecuteLockedBlobIsNotCounted(t *testing.T) {
	dir := testcache.Basic(t)
	info := mustScan(t, dir)
	sizes := map[string]int64{}
	for _, r := range info.Repos {
		for _, rev := range r.Revisions {
			for _, f := range rev.Files {
				sizes[f.BlobPath] = f.SizeOnDisk
			}
		}
	}
	plan := info.DeleteRevisions(exRev4a67)
	locked := filepath.Join(dir, exTinyModel, "blobs", exBigBlob)
	if len(plan.Blobs) != 2 || (plan.Blobs[0] != locked && plan.Blobs[1] != locked) {
		t.Fatalf("plan blobs: %v", plan.Blobs)
	}
	held, err := os.OpenFile(filepath.Join(dir, ".locks", exTinyModel, exBigBlob+".lock"), os.O_RDWR|os.O_CREATE, 0o664)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rep, err := plan.Execute(ExecuteOptions{LockTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("Execute gave up on the lock after %v, before LockTimeout", d)
	}
	if _, err := os.Stat(locked); err != nil {
		t.Errorf("the locked blob must stay: %v", err)
	}
	skipped := false
	for _, s := range rep.Skipped {
		if s.Path == locked && strings.Contains(s.Reason, "lock") {
			skipped = true
		}
	}
	if !skipped {
		t.Errorf("the locked blob is not skipped with a lock reason: %+v", rep.Skipped)
	}
	var sum int64
	for _, b := range rep.Blobs {
		if b == locked {
			t.Errorf("the locked blob is listed among the blobs that went: %v", rep.Blobs)
		}
		size, ok := sizes[b]
		if !ok {
			t.Errorf("reported blob %s is not in the scan", b)
		}
		sum += size
	}
	if len(rep.Blobs) != 1 {
		t.Errorf("blobs that went: %v, want the unlocked one", rep.Blobs)
	}
	if rep.BytesFreed != sum {
		t.Errorf("BytesFreed = %d, want %d (the sizes of rep.Blobs; the locked blob is %d)", rep.BytesFreed, sum, sizes[locked])
	}
	if w := mustScan(t, dir).Warnings; len(w) > 0 {
		t.Errorf("warnings: %v", w)
	}
	assertNoStaging(t, dir)
}

// 6. Restore puts back beneath handles: a snapshots folder swapped for a
// symlink to the outside is not followed.
//
// Guards delete.go:287-298 (restoreRevisions: Stat, Mkdir and Rename
// beneath the repo handle, never through a path string).
func TestRestoreRefusesASymlinkedSnapshotsFolder(t *testing.T) {
	tmp := t.TempDir()
	dir := testcache.Basic(t)
	hold := filepath.Join(tmp, "hold")
	outside := filepath.Join(tmp, "outside-snapshots")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	plan := mustScan(t, dir).DeleteRevisions(exRev4a67)
	if _, err := plan.Execute(ExecuteOptions{MoveTo: hold}); err != nil {
		t.Fatal(err)
	}
	heldSnap := filepath.Join(hold, exTinyModel, "snapshots", exRev4a67)
	if _, err := os.Stat(heldSnap); err != nil {
		t.Fatalf("the hold lacks the snapshot: %v", err)
	}
	repo := filepath.Join(dir, exTinyModel)
	if err := os.Rename(filepath.Join(repo, "snapshots"), filepath.Join(tmp, "real-snapshots")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(repo, "snapshots")); err != nil {
		t.Fatal(err)
	}
	_, err := Restore(dir, hold, nil)
	if err == nil {
		t.Errorf("Restore through a symlinked snapshots folder must fail")
	}
	if names, _ := os.ReadDir(outside); len(names) != 0 {
		t.Errorf("restored outside the cache: %v", names)
	}
	if _, err := os.Stat(heldSnap); err != nil {
		t.Errorf("the held snapshot was lost: %v", err)
	}
}

// 7. RemoveIncomplete does not reach through a symlinked blobs folder.
//
// Guards delete.go:172-179 (RemoveIncomplete: the file is stat'ed and
// removed beneath the repo handle: a symlink on the way is refused).
func TestRemoveIncompleteRefusesASymlinkedBlobsFolder(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "hub")
	outside := filepath.Join(tmp, "outside")
	healthyRepo(t, dir, "models--acme--ok")
	write(t, filepath.Join(outside, "x.incomplete"), "keep me")
	repo := filepath.Join(dir, "models--acme--ok")
	if err := os.Rename(filepath.Join(repo, "blobs"), filepath.Join(tmp, "realblobs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(repo, "blobs")); err != nil {
		t.Fatal(err)
	}
	err := RemoveIncomplete(dir, filepath.Join(repo, "blobs", "x.incomplete"))
	if err == nil {
		t.Errorf("RemoveIncomplete through a symlinked blobs folder must be refused")
	}
	if got, err := os.ReadFile(filepath.Join(outside, "x.incomplete")); err != nil || string(got) != "keep me" {
		t.Errorf("the outside file was touched: %q %v", got, err)
	}
}

// exHex40 is a valid-looking 40-hex hash of s.
func exHex40(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// exBigRepo is a repo written as huggingface_hub writes it: revision Del
// links n blobs of its own, revision Keep (refs/main) one other blob.
type exBigRepo struct {
	Cache, Folder, Dir string
	Del, Keep          string
	Etags              []string
	KeepEtag           string
}

func exWriteBigRepo(t testing.TB, cache string, n int, seed string) *exBigRepo {
	t.Helper()
	r := &exBigRepo{Cache: cache, Folder: "models--hostile--big", Del: exHex40(seed + "del"), Keep: exHex40(seed + "keep"), KeepEtag: exHex40(seed + "keepblob")}
	r.Dir = filepath.Join(cache, r.Folder)
	for _, d := range []string{"blobs", "refs", "snapshots/" + r.Del, "snapshots/" + r.Keep, "../.locks/" + r.Folder} {
		if err := os.MkdirAll(filepath.Join(r.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		etag := exHex40(seed + "blob" + strconv.Itoa(i))
		r.Etags = append(r.Etags, etag)
		if err := os.WriteFile(filepath.Join(r.Dir, "blobs", etag), []byte("blob "+strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../blobs/"+etag, filepath.Join(r.Dir, "snapshots", r.Del, "f"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "blobs", r.KeepEtag), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../blobs/"+r.KeepEtag, filepath.Join(r.Dir, "snapshots", r.Keep, "keep.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "refs", "main"), []byte(r.Keep), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// exMarkers writes one marker file per name in dir (made), each saying
// where it is.
func exMarkers(t testing.TB, dir string, names []string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("marker "+dir+"/"+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// exRaceBudget is how long each hostile-writer target runs (10 s; the
// HFCACHEFS_RACE_SECONDS environment variable shortens it while working).
func exRaceBudget() time.Duration {
	if s := os.Getenv("HFCACHEFS_RACE_SECONDS"); s != "" {
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return time.Duration(n * float64(time.Second))
		}
	}
	return 10 * time.Second
}

// exSwapper exchanges a and b (RENAME_EXCHANGE) in a loop until stopped,
// with a short random pause so the deletion gets through sometimes.
type exSwapper struct {
	a, b  string
	stop  chan struct{}
	done  chan struct{}
	swaps atomic.Int64
}

func exStartSwapper(a, b string) *exSwapper {
	s := &exSwapper{a: a, b: b, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, s.a, unix.AT_FDCWD, s.b, unix.RENAME_EXCHANGE); err == nil {
				s.swaps.Add(1)
			}
			if d := rand.IntN(300); d > 0 {
				time.Sleep(time.Duration(d) * time.Microsecond)
			}
		}
	}()
	return s
}

func (s *exSwapper) Stop() int64 {
	close(s.stop)
	<-s.done
	return s.swaps.Load()
}

// exFastTempDir is a fresh folder for big trees: on /dev/shm when it is a
// writable tmpfs (building 10,000 entries there takes milliseconds, on a
// virtual disk seconds), else t.TempDir(). The cache and the outside
// folder of a test must share it: renames do not cross file systems.
func exFastTempDir(t testing.TB) string {
	t.Helper()
	var sfs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &sfs); err == nil && sfs.Type == unix.TMPFS_MAGIC {
		if d, err := os.MkdirTemp("/dev/shm", "hfcachefs-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// 5. Never outside the cache, under a hostile writer.
//
// A writer keeps exchanging (RENAME_EXCHANGE) a folder the deletion works
// in with a symlink to a folder outside the cache that holds files of the
// same names, while the deletion runs (Execute, then FinishStaged as the
// next start would, again and again until the revision is gone or 15
// attempts). Nothing outside may be removed, changed or created. Guards
// every resolution beneath handles (each checked by replacing it with
// its path-string version, which this test then catches): the repo
// handle (execute.go:353 OpenDir, no symlink; :341 a symlinked repo
// folder refused), removeBlob's Stat and Remove beneath it (:795, :814),
// the snapshot rename (:468, which moves a symlink itself, never its
// target), lockFile's Mkdir and Open beneath the cache handle (:952-957),
// and RemoveAll of the staged tree (:668).
func TestExecuteNeverOutsideUnderAHostileWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("hostile-writer race: 4 targets x 10 s, skipped with -short")
	}
	const n = 3000
	budget := exRaceBudget()
	for _, target := range []string{"blobs", "repo folder", "snapshot", "locks"} {
		t.Run(target, func(t *testing.T) {
			base := exFastTempDir(t)
			// The outside, built once and checked after every round: files
			// named as the cache's.
			outside := filepath.Join(base, "outside")
			var snapFiles []string
			for i := range n {
				snapFiles = append(snapFiles, "f"+strconv.Itoa(i))
			}
			start := time.Now()
			var rounds, attempts, completed, errs, removed, skipped, linkStaged int
			var swaps int64
			var outsideBefore map[string]string
			for round := 0; rounds < 3 || time.Since(start) < budget; round++ {
				rounds++
				tmp := filepath.Join(base, "round"+strconv.Itoa(round))
				cache := filepath.Join(tmp, "hub")
				r := exWriteBigRepo(t, cache, n, fmt.Sprintf("%s-%d", target, round))
				if round == 0 {
					switch target {
					case "blobs":
						exMarkers(t, outside, r.Etags)
					case "repo folder":
						// A repo of the same shape.
						exMarkers(t, filepath.Join(outside, "blobs"), append(append([]string{}, r.Etags...), r.KeepEtag))
						exMarkers(t, filepath.Join(outside, "snapshots", r.Del), snapFiles)
						exMarkers(t, filepath.Join(outside, "refs"), []string{"main"})
						exMarkers(t, filepath.Join(outside, ".locks", r.Folder), []string{"marker"})
					case "snapshot":
						exMarkers(t, outside, snapFiles)
					case "locks":
						exMarkers(t, outside, []string{"marker"})
					}
					outsideBefore = exListing(t, outside)
				}
				var real, link string
				switch target {
				case "blobs":
					real, link = filepath.Join(r.Dir, "blobs"), filepath.Join(r.Dir, "blobs-link")
				case "repo folder":
					real, link = r.Dir, filepath.Join(cache, "repo-link")
				case "snapshot":
					real, link = filepath.Join(r.Dir, "snapshots", r.Del), filepath.Join(r.Dir, "snapshot-link")
				case "locks":
					real, link = filepath.Join(cache, ".locks", r.Folder), filepath.Join(cache, ".locks", "locks-link")
				}
				plan := mustScan(t, cache).DeleteRevisions(r.Del)
				if len(plan.Blobs) != n || len(plan.Snapshots) != 1 || len(plan.Repos) != 0 {
					t.Fatalf("plan: %d blobs, %d snapshots, %d repos", len(plan.Blobs), len(plan.Snapshots), len(plan.Repos))
				}
				if err := os.Symlink(outside, link); err != nil {
					t.Fatal(err)
				}
				// The real folder, whatever name the exchanges leave it.
				realFd, err := unix.Open(r.Dir, unix.O_PATH|unix.O_DIRECTORY, 0)
				if err != nil {
					t.Fatal(err)
				}

				sw := exStartSwapper(real, link)
				for range 15 {
					attempts++
					// Start at a random point of the writer's cycle: after
					// its next exchange, whichever way that one went.
					for seen, t0 := sw.swaps.Load(), time.Now(); sw.swaps.Load() == seen && time.Since(t0) < 50*time.Millisecond; {
						time.Sleep(20 * time.Microsecond)
					}
					rep, err := plan.Execute(ExecuteOptions{LockTimeout: 20 * time.Millisecond})
					if err != nil {
						errs++
					}
					removed += len(rep.Blobs)
					skipped += len(rep.Skipped)
					if _, err := FinishStaged(cache, nil); err != nil {
						errs++
					}
					if err == nil && len(rep.Skipped)+len(rep.Deleted) == 0 {
						completed++ // nothing left to delete
						break
					}
				}
				swaps += sw.Stop()
				if target == "snapshot" {
					// The writer's symlink is what went into the staging
					// folder (and was removed there), the real snapshot is
					// left under the link's name.
					if fi, err := os.Lstat(link); err == nil && fi.IsDir() {
						if _, err := os.Lstat(real); os.IsNotExist(err) {
							linkStaged++
						}
					}
				}

				if d := exDiffListing(outsideBefore, exListing(t, outside)); len(d) > 0 {
					if len(d) > 10 {
						d = append(d[:10], fmt.Sprintf("... %d more", len(d)-10))
					}
					t.Fatalf("round %d: the outside folder changed:\n%s", round, strings.Join(d, "\n"))
				}
				// The kept revision's blob is still in the real repo folder
				// (or its real blobs folder, under the other name).
				var st unix.Stat_t
				if unix.Fstatat(realFd, "blobs/"+r.KeepEtag, &st, unix.AT_SYMLINK_NOFOLLOW) != nil && unix.Fstatat(realFd, "blobs-link/"+r.KeepEtag, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
					t.Fatalf("round %d: the kept revision's blob is gone", round)
				}
				unix.Close(realFd)
				os.RemoveAll(tmp)
			}
			t.Logf("%s: %d rounds in %v, %d swaps, %d deletion attempts, %d rounds where the deletion completed, %d blobs removed (of %d), %d skips, %d errors",
				target, rounds, time.Since(start).Round(time.Millisecond), swaps, attempts, completed, removed, rounds*n, skipped, errs)
			if target == "snapshot" {
				t.Logf("snapshot: the symlink to the outside was staged (and removed) in place of the snapshot in %d rounds", linkStaged)
				if linkStaged == 0 && rounds >= 20 {
					t.Errorf("in %d rounds the writer's symlink was never what got staged: the race is not exercised", rounds)
				}
			}
			if swaps == 0 {
				t.Errorf("the writer never swapped")
			}
		})
	}
}

// 9. A journal is data anyone who can write the cache can write: finishing
// an interrupted deletion must not move what a forged journal names to
// the "hold" it names (as root: into /etc/profile.d, say). The forger is
// uid 65534 (files chowned to it, as root). Found against 45fee10, where
// FinishStaged trusted j.Hold (execute.go finishTx: whole repo renamed
// into holdDir(j.Hold) as j.Repo; revisions merged into
// holdDir(path.Dir(j.Hold))). Guards openJournal's owner check
// (execute.go:1079: written by this user or root, writable by nobody
// else): the "hold-looking" variant gets past the hold-name check
// (:1092, which does not clean ".." first), only the owner check stops it.
func TestFinishStagedDoesNotTrustAForgedJournal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write the forged journal as another user")
	}
	holds := map[string]func(tmp string) string{
		"plain hold":        func(tmp string) string { return filepath.Join(tmp, "etc", "profile.d") },
		"hold-looking hold": func(tmp string) string { return tmp + "/.hfcachefs-hold-x/../etc/profile.d" },
	}
	forge := func(t *testing.T, files map[string]string) {
		for p, data := range files {
			write(t, p, data)
			for d := p; strings.Contains(d, StagingDir) || strings.HasPrefix(filepath.Base(d), stagingPrefix); d = filepath.Dir(d) {
				if err := os.Lchown(d, 65534, 65534); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for name, hold := range holds {
		t.Run(name+", whole repo journal in .locks", func(t *testing.T) {
			tmp := t.TempDir()
			dir := testcache.Basic(t)
			victim := filepath.Join(tmp, "etc", "profile.d")
			if err := os.MkdirAll(victim, 0o755); err != nil {
				t.Fatal(err)
			}
			id := "20240101T000000-000000000000"
			data, _ := json.Marshal(&journal{Version: 1, ID: id, Repo: "evil.sh", Whole: true, Hold: hold(tmp), Created: time.Now().UTC()})
			forge(t, map[string]string{
				filepath.Join(dir, ".locks", stagingPrefix+id+".json"): string(data),
				filepath.Join(dir, ".locks", stagingPrefix+id):         "echo owned\n",
			})
			if _, err := FinishStaged(dir, nil); err != nil {
				t.Log(err)
			}
			if names, _ := os.ReadDir(victim); len(names) != 0 {
				t.Errorf("FinishStaged moved a file a forged journal named into %s: %v", victim, names[0].Name())
			}
		})
		t.Run(name+", revision journal in a repo's staging folder", func(t *testing.T) {
			tmp := t.TempDir()
			dir := testcache.Basic(t)
			victim := filepath.Join(tmp, "etc", "profile.d")
			if err := os.MkdirAll(victim, 0o755); err != nil {
				t.Fatal(err)
			}
			id := "20240101T000000-111111111111"
			data, _ := json.Marshal(&journal{Version: 1, ID: id, Repo: exTinyModel, Commits: []string{exRevA227}, Hold: hold(tmp) + "/" + exTinyModel, Created: time.Now().UTC()})
			staging := filepath.Join(dir, exTinyModel, StagingDir)
			forge(t, map[string]string{
				filepath.Join(staging, id+".json"):                              string(data),
				filepath.Join(staging, id, "snapshots", exRevA227, "README.md"): "x",
				filepath.Join(staging, id, "evil.sh"):                           "echo owned\n",
			})
			if _, err := FinishStaged(dir, nil); err != nil {
				t.Log(err)
			}
			if names, _ := os.ReadDir(victim); len(names) != 0 {
				t.Errorf("FinishStaged moved a file a forged journal named into %s: %v", victim, names[0].Name())
			}
		})
	}
}

// Restore follows a symlinked repo folder only as the scan does: a link
// owned by neither root nor the owner of what it points to (the rule of
// fs.protected_symlinks, scan.go's repo anchor) is a hostile one, and the
// scan refuses it. Guards delete.go:223-226 (Restore refuses a repo
// folder that is a symlink, then opens it with OpenDir; 45fee10 used
// root.OpenTop, which follows any symlink, and restored outside).
func TestRestoreRefusesAHostileRepoFolderSymlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to own the link as another user")
	}
	tmp := t.TempDir()
	dir := testcache.Basic(t)
	hold := filepath.Join(tmp, "hold")
	outside := healthyRepo(t, tmp, "outside-repo") // a repo of root's, outside the cache
	outsideBefore := exListing(t, outside)
	if _, err := mustScan(t, dir).DeleteRevisions(exRev4a67).Execute(ExecuteOptions{MoveTo: hold}); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, exTinyModel)
	if err := os.Rename(repo, filepath.Join(tmp, "real-repo")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, repo); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(repo, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if info := mustScan(t, dir); !hasNotice(info, NoticeOutsideCache, exTinyModel) {
		t.Fatalf("the scan should refuse the link: notices %+v", info.Notices)
	}
	_, err := Restore(dir, hold, nil)
	if d := exDiffListing(outsideBefore, exListing(t, outside)); len(d) > 0 {
		t.Errorf("Restore wrote through a link the scan refuses, outside the cache (err %v):\n%s", err, strings.Join(d, "\n"))
	}
}

// exWriteRevisionFast writes a repo like exWriteBigRepo (revision Del of
// n files, each its own blob; Keep under refs/main) with *at calls on open
// folders.
func exWriteRevisionFast(b testing.TB, cache string, n int) *exBigRepo {
	b.Helper()
	r := &exBigRepo{Cache: cache, Folder: "models--bench--big", Del: exHex40("del"), Keep: exHex40("keep"), KeepEtag: exHex40("keepblob")}
	r.Dir = filepath.Join(cache, r.Folder)
	for _, d := range []string{"blobs", "refs", "snapshots/" + r.Del, "snapshots/" + r.Keep, "../.locks/" + r.Folder} {
		if err := os.MkdirAll(filepath.Join(r.Dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	blobs, err := unix.Open(filepath.Join(r.Dir, "blobs"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(blobs)
	snap, err := unix.Open(filepath.Join(r.Dir, "snapshots", r.Del), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(snap)
	for i := range n {
		etag := fmt.Sprintf("%040x", i+1)
		fd, err := unix.Openat(blobs, etag, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		unix.Write(fd, []byte("blob "+etag))
		unix.Close(fd)
		if err := unix.Symlinkat("../../blobs/"+etag, snap, "f"+strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "blobs", r.KeepEtag), []byte("kept"), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Symlink("../../blobs/"+r.KeepEtag, filepath.Join(r.Dir, "snapshots", r.Keep, "keep.txt")); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "refs", "main"), []byte(r.Keep), 0o644); err != nil {
		b.Fatal(err)
	}
	return r
}

// 8. Stage of a 40,000-file revision (what a mv into .trash waits for:
// journal, refs, one rename of the snapshot) against the rename of the
// same folder tree. ns/op is Stage; rename-ns/op the baseline, measured
// on the same tree before it (then renamed back); stage/rename their
// ratio. Each iteration builds its cache with the timer stopped. The
// trees go in $TMPDIR (TMPDIR=/dev/shm for tmpfs).
func BenchmarkStageRevision(b *testing.B) {
	const n = 40000
	// One cache for every iteration (building 40,000 files each time made
	// -bench . run for many minutes): each staged revision is put back.
	dir := b.TempDir()
	cache := filepath.Join(dir, "hub")
	r := exWriteRevisionFast(b, cache, n)
	info, err := Scan(cache)
	if err != nil {
		b.Fatal(err)
	}
	plan := info.DeleteRevisions(r.Del)
	if len(plan.Blobs) != n || len(plan.Snapshots) != 1 {
		b.Fatalf("plan: %d blobs", len(plan.Blobs))
	}
	snap := filepath.Join(r.Dir, "snapshots", r.Del)
	moved := filepath.Join(dir, "moved")
	var renameTotal, stageTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		t0 := time.Now()
		if err := os.Rename(snap, moved); err != nil {
			b.Fatal(err)
		}
		renameTotal += time.Since(t0)
		if err := os.Rename(moved, snap); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		b.StartTimer()
		st, err := plan.Stage(ExecuteOptions{})
		b.StopTimer()
		stageTotal += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		st.Close()
		if _, err := os.Lstat(snap); !os.IsNotExist(err) {
			b.Fatalf("the snapshot was not staged: %v", err)
		}
		// Put it back as it was: the staged snapshot home, no journal.
		staged, _ := filepath.Glob(filepath.Join(r.Dir, StagingDir, "*", "snapshots", r.Del))
		if len(staged) != 1 {
			b.Fatalf("staged snapshot: %v", staged)
		}
		if err := os.Rename(staged[0], snap); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(r.Dir, StagingDir)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(renameTotal.Nanoseconds())/float64(b.N), "rename-ns/op")
	b.ReportMetric(float64(stageTotal)/float64(renameTotal), "stage/rename")
}
