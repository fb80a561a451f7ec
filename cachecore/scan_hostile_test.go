package cachecore

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// healthyRepo writes one small repo the way huggingface_hub does.
func healthyRepo(t *testing.T, cache, folder string) string {
	t.Helper()
	repo := filepath.Join(cache, folder)
	commit := strings.Repeat("a", 40)
	for _, p := range []string{"blobs", "refs", "snapshots/" + commit} {
		if err := os.MkdirAll(filepath.Join(repo, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(repo, "blobs", "b1"), "hello")
	write(t, filepath.Join(repo, "refs", "main"), commit)
	if err := os.Symlink("../../blobs/b1", filepath.Join(repo, "snapshots", commit, "f.txt")); err != nil {
		t.Fatal(err)
	}
	return repo
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func hasNotice(info *CacheInfo, kind, pathSuffix string) bool {
	for _, n := range info.Notices {
		if n.Kind == kind && strings.HasSuffix(n.Path, pathSuffix) {
			return true
		}
	}
	return false
}

// Where upstream's whole scan raises, only that repo is left out, with a
// notice; warnings stay exactly upstream's.
func TestScanHostileRepos(t *testing.T) {
	cache := t.TempDir()
	healthyRepo(t, cache, "models--ok--fine")
	commit := strings.Repeat("a", 40)

	loop := healthyRepo(t, cache, "models--bad--loop")
	if err := os.Symlink("x", filepath.Join(loop, "snapshots", commit, "x")); err != nil {
		t.Fatal(err)
	}
	fifoRef := healthyRepo(t, cache, "models--bad--fiforef")
	if err := syscall.Mkfifo(filepath.Join(fifoRef, "refs", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifoBlob := healthyRepo(t, cache, "models--odd--fifoblob")
	if err := syscall.Mkfifo(filepath.Join(fifoBlob, "blobs", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../blobs/pipe", filepath.Join(fifoBlob, "snapshots", commit, "pipe.bin")); err != nil {
		t.Fatal(err)
	}
	dangling := healthyRepo(t, cache, "models--bad--danglingrev")
	if err := os.Symlink("/nonexistent-dir", filepath.Join(dangling, "snapshots", strings.Repeat("b", 40))); err != nil {
		t.Fatal(err)
	}
	badUTF8 := healthyRepo(t, cache, "models--bad--utf8ref")
	write(t, filepath.Join(badUTF8, "refs", "weird"), "\xff\xfe")
	passwd := healthyRepo(t, cache, "models--odd--passwd")
	if err := os.Symlink("/etc/passwd", filepath.Join(passwd, "snapshots", commit, "passwd")); err != nil {
		t.Fatal(err)
	}

	done := make(chan *CacheInfo)
	go func() {
		info, err := Scan(cache)
		if err != nil {
			t.Error(err)
		}
		done <- info
	}()
	var info *CacheInfo
	select {
	case info = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("scan hung (a FIFO opened?)")
	}
	if len(info.Warnings) != 0 {
		t.Errorf("none of these is a CorruptedCacheException upstream: %v", info.Warnings)
	}
	var ids []string
	for _, r := range info.Repos {
		ids = append(ids, r.RepoID)
	}
	if strings.Join(ids, ",") != "odd/fifoblob,odd/passwd,ok/fine" {
		t.Errorf("served repos: %v", ids)
	}
	for _, folder := range []string{"models--bad--loop", "models--bad--fiforef", "models--bad--danglingrev", "models--bad--utf8ref"} {
		if !hasNotice(info, NoticeScanError, folder) {
			t.Errorf("no scan-error notice for %s: %+v", folder, info.Notices)
		}
	}
	if !hasNotice(info, NoticeNotRegular, "pipe.bin") {
		t.Errorf("no not-regular notice: %+v", info.Notices)
	}
	if !hasNotice(info, NoticeOutsideCache, "passwd") {
		t.Errorf("no outside-cache notice: %+v", info.Notices)
	}
}

func TestScanNoticesOrphansKernelsAndCopies(t *testing.T) {
	cache := t.TempDir()
	repo := healthyRepo(t, cache, "models--ok--fine")
	write(t, filepath.Join(repo, "blobs", "orphan"), "0123456789")
	healthyRepo(t, cache, "kernels--org--k")
	write(t, filepath.Join(repo, "snapshots", strings.Repeat("c", 40), "copied.txt"), "copy")
	info := mustScan(t, cache)
	if len(info.Warnings) != 1 || !strings.Contains(info.Warnings[0].Message, "found `kernel`") {
		t.Errorf("warnings: %v", info.Warnings)
	}
	for _, kind := range []string{NoticeOrphanedBlobs, NoticeKernelRepo, NoticeCopiedFile} {
		if !hasNotice(info, kind, "") {
			t.Errorf("missing %s notice: %+v", kind, info.Notices)
		}
	}
	if info.Repos[0].SizeOnDisk != 5+4 {
		t.Errorf("orphans are not counted, copies are: %d", info.Repos[0].SizeOnDisk)
	}
}

// A ref whose content is no commit hash is quoted in upstream's warning,
// and in what a mount shows only if reading it again beneath the repo's
// handle gives the same bytes: a folder swapped between the scan's check
// and its read could have led the read outside the cache. Here the ref
// is a link inside the cache (to a file that is no hash), which the
// handle read never follows.
func TestWarningNeverQuotesARefThatIsNoHash(t *testing.T) {
	cache := t.TempDir()
	repo := healthyRepo(t, cache, "models--a--b")
	write(t, filepath.Join(repo, "secret.txt"), "root:SECRET:19000:0:99999:7:::\n")
	if err := os.Symlink("../secret.txt", filepath.Join(repo, "refs", "leak")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(repo, "refs", "plain"), "not-a-hash")
	write(t, filepath.Join(repo, "refs", "gone"), strings.Repeat("b", 40))
	info, err := Scan(cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Warnings) != 1 {
		t.Fatalf("warnings: %v", info.Warnings)
	}
	w := info.Warnings[0]
	if !strings.Contains(w.Safe(), "not-a-hash") {
		t.Errorf("a ref read the same beneath the handle is quoted: %s", w.Safe())
	}
	if !strings.Contains(w.Message, "SECRET") {
		t.Errorf("upstream's message quotes the ref: %s", w.Message)
	}
	safe := w.Safe()
	if strings.Contains(safe, "SECRET") {
		t.Errorf("the safe message quotes a ref that is no hash: %s", safe)
	}
	if !strings.Contains(safe, "<31 bytes read through a swapped folder or link: not shown>") || !strings.Contains(safe, strings.Repeat("b", 40)) {
		t.Errorf("the safe message should name the redacted ref and keep the hash: %s", safe)
	}
}

// A ref swapped for a FIFO after the scan's check is refused at once,
// never waited on (a hostile writer could otherwise hang the refresher).
func TestReadRegularNeverBlocksOnAFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "main")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := readRegular(p, maxRefSize); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("want a refusal, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("readRegular blocked on a FIFO")
	}
	big := filepath.Join(t.TempDir(), "big")
	write(t, big, strings.Repeat("a", maxRefSize+1))
	if _, err := readRegular(big, maxRefSize); err == nil {
		t.Error("a ref larger than the limit is read whole")
	}
}

// A FIFO planted among a repo's deletion journals is never opened for
// reading in a way that waits (every CLI command looks for journals).
func TestStagedReceiptsNeverBlockOnAFIFO(t *testing.T) {
	cache := t.TempDir()
	repo := healthyRepo(t, cache, "models--a--b")
	if err := os.MkdirAll(filepath.Join(repo, StagingDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(repo, StagingDir, "x.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(repo, StagingDir, "y.json"), `{"receipt":"mine"}`)
	done := make(chan map[string]bool, 1)
	go func() { r, _ := StagedReceipts(cache); done <- r }()
	select {
	case got := <-done:
		if !got["mine"] || len(got) != 1 {
			t.Errorf("receipts: %v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("StagedReceipts blocked on a FIFO")
	}
}
