package cachecore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

var errStop = errors.New("stopped by the test")

// TestExecuteStoppedBetweenAnyTwoSteps stops deletions before each of
// their steps in turn, as a kill would, and checks that the cache still
// scans with no warnings, then that a fresh plan finishes the job.
func TestExecuteStoppedBetweenAnyTwoSteps(t *testing.T) {
	selections := map[string][]string{
		"one revision with blobs":    {"4a67d7bb895e9c468f402aa571ffea8548c37676"},
		"two revisions":              {"b182d9dfaaa3b0371d923ac6f05d09a96e70a56e", "4a67d7bb895e9c468f402aa571ffea8548c37676"},
		"whole repo":                 {"f584eba0dcc94d97dd2cc48e48a591be55492603"},
		"whole repo and a revision":  {"eba90b51402874116c4cda2ae669ce32cc85e1c6", "d8818319eee349cfcb5230c99a94b6445dbf6cfb", "f584eba0dcc94d97dd2cc48e48a591be55492603"},
		"every revision of big repo": {"a22712daca2fb86decd9b9c6ed06c1c90ca638fa", "4a67d7bb895e9c468f402aa571ffea8548c37676", "eba90b51402874116c4cda2ae669ce32cc85e1c6", "b182d9dfaaa3b0371d923ac6f05d09a96e70a56e"},
	}
	for name, hashes := range selections {
		t.Run(name, func(t *testing.T) {
			steps := countSteps(t, hashes)
			if steps < 2 {
				t.Fatalf("only %d steps", steps)
			}
			for stopAt := 0; stopAt < steps; stopAt++ {
				dir := testcache.Basic(t)
				info := mustScan(t, dir)
				n := 0
				_, err := info.DeleteRevisions(hashes...).Execute(ExecuteOptions{BeforeStep: func(kind, path string) error {
					if n == stopAt {
						return errStop
					}
					n++
					return nil
				}})
				if !errors.Is(err, errStop) {
					t.Fatalf("stop at %d: %v", stopAt, err)
				}
				if w := mustScan(t, dir).Warnings; len(w) > 0 {
					t.Fatalf("stopped before step %d of %d: warnings %v", stopAt, steps, w)
				}
				// The next start finishes (or rolls back) what was staged;
				// then what is left can be planned again.
				if _, err := FinishStaged(dir, nil); err != nil {
					t.Fatal(err)
				}
				mid := mustScan(t, dir)
				if len(mid.Warnings) > 0 {
					t.Fatalf("after finishing what was staged: warnings %v", mid.Warnings)
				}
				assertNoStaging(t, dir)
				// What was planned and not done yet can be planned again.
				if _, err := mid.DeleteRevisions(hashes...).Execute(ExecuteOptions{}); err != nil {
					t.Fatal(err)
				}
				final := mustScan(t, dir)
				if len(final.Warnings) > 0 {
					t.Fatalf("after resuming: %v", final.Warnings)
				}
				assertNoStaging(t, dir)
				for _, repo := range final.Repos {
					for _, h := range hashes {
						if repo.Revision(h) != nil {
							t.Fatalf("revision %s survived", h)
						}
					}
				}
			}
		})
	}
}

// assertNoStaging checks that no deletion left anything behind.
func assertNoStaging(t *testing.T, dir string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(dir, "*", StagingDir))
	locks, _ := filepath.Glob(filepath.Join(dir, ".locks", stagingPrefix+"*"))
	if len(left)+len(locks) > 0 {
		t.Fatalf("staging left behind: %v %v", left, locks)
	}
}

func countSteps(t *testing.T, hashes []string) int {
	dir := testcache.Basic(t)
	n := 0
	if _, err := mustScan(t, dir).DeleteRevisions(hashes...).Execute(ExecuteOptions{BeforeStep: func(string, string) error { n++; return nil }}); err != nil {
		t.Fatal(err)
	}
	return n
}

func mustScan(t *testing.T, dir string) *CacheInfo {
	t.Helper()
	info, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestExecuteNeverDeletesOutsideTheCache(t *testing.T) {
	root := testcache.Cases(t)
	dir := filepath.Join(root, "symlink-outside-cache")
	outside := filepath.Join(root, "_outside", "external.bin")
	info := mustScan(t, dir)
	plan := info.DeleteRevisions("3333333333333333333333333333333333333333")
	if len(plan.Blobs) != 1 || plan.Blobs[0] != outside {
		t.Fatalf("the plan lists the outside blob as upstream does: %v", plan.Blobs)
	}
	rep, err := plan.Execute(ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("the file outside the cache was touched: %v", err)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].Path != outside || !strings.Contains(rep.Skipped[0].Reason, "outside") {
		t.Errorf("skips: %+v", rep.Skipped)
	}
	if _, err := os.Lstat(filepath.Join(dir, "models--acme--ok", "snapshots", strings.Repeat("3", 40))); !os.IsNotExist(err) {
		t.Errorf("the snapshot inside the cache should be gone: %v", err)
	}
	if n := len(mustScan(t, dir).Notices); n != 0 {
		t.Errorf("after deletion no notice should remain, got %d", n)
	}
}

func TestScanNoticesOutsideLinks(t *testing.T) {
	root := testcache.Cases(t)
	info := mustScan(t, filepath.Join(root, "symlink-outside-cache"))
	found := false
	for _, n := range info.Notices {
		if n.Kind == NoticeOutsideCache && strings.HasSuffix(n.Path, "external.bin") {
			found = true
		}
	}
	if !found || len(info.Warnings) != 0 {
		t.Errorf("notices %v warnings %v", info.Notices, info.Warnings)
	}
	for _, f := range info.Repos[0].Revisions[2].Files {
		if !f.Blob.Outside {
			t.Errorf("%s should be marked outside", f.FilePath())
		}
	}
}

// A repo folder moved to another disk and linked back: deleting the repo
// removes the link only; deleting one revision refuses to reach through it.
func TestSymlinkedRepoFolder(t *testing.T) {
	tmp := t.TempDir()
	cache := filepath.Join(tmp, "hub")
	other := filepath.Join(tmp, "otherdisk")
	basic := testcache.Basic(t)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(basic, "models--acme--tiny-model"), other); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, filepath.Join(cache, "models--acme--tiny-model")); err != nil {
		t.Fatal(err)
	}
	info := mustScan(t, cache)
	if len(info.Repos) != 1 || info.Repos[0].NbFiles != 12 {
		t.Fatalf("a symlinked repo folder scans as upstream: %+v", info.Repos)
	}
	rep, err := info.DeleteRevisions("4a67d7bb895e9c468f402aa571ffea8548c37676").Execute(ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 0 || len(rep.Skipped) == 0 {
		t.Errorf("partial deletion through a linked repo folder must be refused: %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(other, "snapshots", "4a67d7bb895e9c468f402aa571ffea8548c37676")); err != nil {
		t.Errorf("outside snapshot touched: %v", err)
	}
	var all []string
	for _, rev := range info.Repos[0].Revisions {
		all = append(all, rev.CommitHash)
	}
	if _, err := info.DeleteRevisions(all...).Execute(ExecuteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(cache, "models--acme--tiny-model")); !os.IsNotExist(err) {
		t.Errorf("the link should be gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "refs", "main")); err != nil {
		t.Errorf("the link's target must stay: %v", err)
	}
}

func TestExecuteWaitsForTheDownloadLock(t *testing.T) {
	dir := testcache.Basic(t)
	info := mustScan(t, dir)
	plan := info.DeleteRevisions("4a67d7bb895e9c468f402aa571ffea8548c37676")
	blob := plan.Blobs[0]
	lockDir := filepath.Join(dir, ".locks", "models--acme--tiny-model")
	held, err := os.OpenFile(filepath.Join(lockDir, filepath.Base(blob)+".lock"), os.O_RDWR|os.O_CREATE, 0o664)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	rep, err := plan.Execute(ExecuteOptions{LockTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(blob); err != nil {
		t.Errorf("a blob whose download lock is held must stay: %v", err)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].Path != blob {
		t.Errorf("skipped: %+v", rep.Skipped)
	}
	if _, err := os.Stat(plan.Blobs[1]); !os.IsNotExist(err) {
		t.Errorf("the unlocked blob should be gone: %v", err)
	}
	if w := mustScan(t, dir).Warnings; len(w) > 0 {
		t.Errorf("warnings: %v", w)
	}
}

func TestExecuteRechecksLinksUnderTheLock(t *testing.T) {
	dir := testcache.Basic(t)
	info := mustScan(t, dir)
	plan := info.DeleteRevisions("4a67d7bb895e9c468f402aa571ffea8548c37676")
	blob := plan.Blobs[0]
	// A download links the blob from another revision after the plan.
	link := filepath.Join(dir, "models--acme--tiny-model", "snapshots", "eba90b51402874116c4cda2ae669ce32cc85e1c6", "new.bin")
	if err := os.Symlink("../../blobs/"+filepath.Base(blob), link); err != nil {
		t.Fatal(err)
	}
	rep, err := plan.Execute(ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(link); err != nil {
		t.Fatalf("the new link must still resolve: %v", err)
	}
	if len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0].Reason, "links to it") {
		t.Errorf("skipped: %+v", rep.Skipped)
	}
}

func TestExecuteToleratesMissingPaths(t *testing.T) {
	dir := testcache.Basic(t)
	plan := mustScan(t, dir).DeleteRevisions("4a67d7bb895e9c468f402aa571ffea8548c37676")
	if _, err := plan.Execute(ExecuteOptions{}); err != nil {
		t.Fatal(err)
	}
	var logged []string
	rep, err := plan.Execute(ExecuteOptions{Log: func(m string) { logged = append(logged, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 0 || len(rep.Missing) != len(plan.Blobs)+len(plan.Refs)+len(plan.Snapshots) {
		t.Errorf("second run: %+v", rep)
	}
	if len(logged) == 0 || !strings.HasPrefix(logged[0], "Couldn't delete ref: file not found (") {
		t.Errorf("logs: %v", logged)
	}
}

func TestRemoveIncompleteRefusesOtherFiles(t *testing.T) {
	root := testcache.Cases(t)
	dir := filepath.Join(root, "incomplete-blobs")
	info := mustScan(t, dir)
	if len(info.IncompleteFiles) != 2 {
		t.Fatalf("incomplete: %+v", info.IncompleteFiles)
	}
	for _, bad := range []string{filepath.Join(dir, "notarepo.incomplete"), filepath.Join(dir, "models--acme--ok", "refs", "main"), filepath.Join(root, "_outside", "x.incomplete")} {
		if err := RemoveIncomplete(dir, bad); err == nil {
			t.Errorf("%s should be refused", bad)
		}
	}
	for _, f := range info.IncompleteFiles {
		if err := RemoveIncomplete(dir, f.FilePath); err != nil {
			t.Error(err)
		}
	}
	if n := len(mustScan(t, dir).IncompleteFiles); n != 0 {
		t.Errorf("%d incomplete files left", n)
	}
}
