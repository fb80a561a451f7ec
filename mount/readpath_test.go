package mount

// Reads through the mount never leave the cache: every blob is opened
// beneath a handle of the cache dir (or of its repo folder), with no
// symlink on the way, and must be the file the scan saw. Someone who can
// write the cache may swap any folder for a symlink at any time.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

// as1000 is setpriv's arguments to run a child as uid/gid 1000.
var as1000 = []string{"--reuid=1000", "--regid=1000", "--clear-groups"}

// runAs1000 runs a command as uid 1000.
func runAs1000(t *testing.T, name string, args ...string) result {
	t.Helper()
	return run(t, "setpriv", append(append(append([]string(nil), as1000...), name), args...)...)
}

// chownTree gives a tree (links included, not followed) to uid:gid.
func chownTree(t *testing.T, root string, uid, gid int) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// secretDir makes a root-only folder outside the cache holding files with
// a unique marker string, named as given.
func secretDir(t *testing.T, names ...string) (dir, marker string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "secret")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	marker = fmt.Sprintf("SECRET-MARKER-%d-%d", os.Getpid(), time.Now().UnixNano())
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(marker+" "+n+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, marker
}

// readLoop reads paths in a loop for dur in one child (as uid 1000 when
// asUser), printing what each cat printed; it returns the output and the
// number of reads.
func readLoop(t *testing.T, asUser bool, dur time.Duration, paths ...string) (string, int) {
	t.Helper()
	script := `end=$(( $(date +%s) + $1 )); shift; n=0
while [ "$(date +%s)" -lt "$end" ]; do
	for p; do cat "$p" 2>&1; echo; n=$((n+1)); done
done
echo "READS $n"`
	args := append([]string{"sh", "-c", script, "sh", fmt.Sprint(int(dur.Seconds()))}, paths...)
	var r result
	if asUser {
		r = run(t, "setpriv", append(append([]string(nil), as1000...), args...)...)
	} else {
		r = run(t, args[0], args[1:]...)
	}
	var n int
	if i := strings.LastIndex(r.stdout, "READS "); i >= 0 {
		fmt.Sscan(r.stdout[i+6:], &n)
	}
	return r.stdout, n
}

// The reproduced attack: root mounts a cache owned by uid 1000 with
// --allow-other; uid 1000 links a file to a decoy blob, waits for it to be
// served, then swaps blobs/ for a symlink to a folder it cannot read.
// The mount must never serve that folder's file, before or after the
// refresher has seen the swap, and .status.json says the repo is left out.
func TestReadPathSwappedBlobsFolderNeverServesOutside(t *testing.T) {
	needRoot(t, "mounts a cache owned by uid 1000 with --allow-other and reads as uid 1000")
	needFuse(t)
	needTool(t, "setpriv")
	cache := testcache.Basic(t)
	repo := filepath.Join(cache, "models--acme--tiny-model")
	chownTree(t, cache, 1000, 1000)
	secret, marker := secretDir(t, "shadow")
	mp := newMountpoint(t)
	openToOthers(t, cache, mp)
	m := startMountAt(t, mp, cache, Options{AllowOther: true, PollInterval: 200 * time.Millisecond})
	waitReady(t, m)

	if r := runAs1000(t, "sh", "-c", `printf decoy > "$1/blobs/shadow" && ln -s ../../blobs/shadow "$1/snapshots/$2/x.txt"`,
		"sh", repo, mainCommit); r.code != 0 {
		t.Fatalf("uid 1000 adding the decoy: %s", r)
	}
	byRef := filepath.Join(mp, tinyModel, "by-ref", "main", "x.txt")
	byCommit := filepath.Join(mp, tinyModel, "by-commit", mainCommit, "x.txt")
	other := filepath.Join(mp, tinyModel, "by-ref", "main", "config.json")
	poll(t, followDeadline, "uid 1000 reads the decoy through the mount", func() (bool, string) {
		a, b := runAs1000(t, "cat", byRef), runAs1000(t, "cat", byCommit)
		return a.code == 0 && a.stdout == "decoy" && b.code == 0 && b.stdout == "decoy", a.String() + b.String()
	})

	if r := runAs1000(t, "sh", "-c", `cd "$1" && mv blobs blobs.real && ln -s "$2" blobs`, "sh", repo, secret); r.code != 0 {
		t.Fatalf("uid 1000 swapping blobs/: %s", r)
	}
	// At once (the kernel still knows the names), and for a while: the
	// refresher sees the swap within a poll.
	out, n := readLoop(t, true, 3*time.Second, byRef, byCommit, other)
	if strings.Contains(out, marker) {
		t.Fatalf("the mount served the file behind the swapped blobs/ to uid 1000 (%d reads):\n%s", n, out)
	}
	outRoot, nRoot := readLoop(t, false, 1*time.Second, byRef, byCommit, other)
	if strings.Contains(outRoot, marker) {
		t.Fatalf("the mount served the file behind the swapped blobs/ (%d reads as root):\n%s", nRoot, outRoot)
	}
	t.Logf("%d reads as uid 1000, %d as root after the swap: nothing served from outside; last outputs: %q", n, nRoot, lastLines(out, 3))

	repoPath := filepath.Join(cache, "models--acme--tiny-model")
	poll(t, followDeadline, ".status.json lists the repo as left out", func() (bool, string) {
		doc, _ := readStatus(t, mp)
		for _, l := range doc.LeftOut {
			if l.Path == repoPath && l.Reason != "" {
				if strings.Contains(l.Reason, marker) {
					t.Fatalf(".status.json quotes the secret: %+v", l)
				}
				return true, ""
			}
		}
		return false, fmt.Sprintf("left_out %+v kept %v", doc.LeftOut, doc.KeptLastGoodView)
	})
	doc, _ := readStatus(t, mp)
	t.Logf("left_out: %+v", doc.LeftOut)
	for _, k := range doc.KeptLastGoodView {
		if k == "models--acme--tiny-model" {
			t.Errorf("the repo is still shown as its last good view: %v", doc.KeptLastGoodView)
		}
	}
	// And after the refresher: still nothing.
	out, n = readLoop(t, true, 2*time.Second, byRef, byCommit, other)
	if strings.Contains(out, marker) {
		t.Fatalf("served after the refresh (%d reads):\n%s", n, out)
	}
}

func lastLines(s string, n int) []string {
	l := lines(s)
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return l
}

// A race harness: a writer swaps blobs/, a snapshot folder and the repo
// folder itself with symlinks (owned by uid 1000) to folders outside the
// cache holding marker files of the same names, with RENAME_EXCHANGE, in
// a loop, while readers walk and read every file of every view. No marker
// byte may ever be served, and the daemon must live on.
func TestReadPathRaceSwaps(t *testing.T) {
	needRoot(t, "makes symlinks owned by another user")
	needFuse(t)
	needTool(t, "python3")
	dur := 12 * time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	cache := testcache.Basic(t)
	info := scanClean(t, cache)
	repoDir := filepath.Join(cache, "models--acme--tiny-model")
	evil := filepath.Join(t.TempDir(), "evil")
	links := filepath.Join(t.TempDir(), "links")
	for _, d := range []string{evil, links} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	marker := fmt.Sprintf("RACE-MARKER-%d-%d", os.Getpid(), time.Now().UnixNano())
	// The repo copied outside, every file of it (blobs and snapshot files
	// made regular) holding the marker: whatever path is followed there
	// finds a file of the right name.
	evilRepo := filepath.Join(evil, "repo")
	copyTree(t, repoDir, evilRepo)
	err := filepath.Walk(evilRepo, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		os.Remove(p)
		return os.WriteFile(p, []byte(marker), 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ name, target string }{
		{"blobs", filepath.Join(evilRepo, "blobs")},
		{"rev", filepath.Join(evilRepo, "snapshots", mainCommit)},
		{"repo", evilRepo},
	} {
		p := filepath.Join(links, l.name)
		if err := os.Symlink(l.target, p); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, 1000, 1000); err != nil { // a cache writer's links
			t.Fatal(err)
		}
	}
	openFd := func(p string) int {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	cacheFd, repoFd, snapsFd, linksFd := openFd(cache), openFd(repoDir), openFd(filepath.Join(repoDir, "snapshots")), openFd(links)
	swaps := []struct {
		dirFd int
		name  string
	}{{repoFd, "blobs"}, {snapsFd, mainCommit}, {cacheFd, "models--acme--tiny-model"}}
	partners := []string{"blobs", "rev", "repo"}

	m, mp := startMount(t, cache, Options{ReadOnly: true, PollInterval: 100 * time.Millisecond})
	waitReady(t, m)
	// Sanity: before the race the files read as their blobs.
	tm := findRepo(t, info, "model", "acme/tiny-model")
	cfg := findFile(t, findRev(t, tm, mainCommit), "config.json")
	if got := catBytes(t, filepath.Join(mp, tinyModel, "by-ref", "main", "config.json")); string(got) != string(readBlob(t, cfg)) {
		t.Fatalf("config.json before the race: %q", got)
	}

	var stop atomic.Bool
	var swapsDone, swapErrs atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		for i := 0; !stop.Load(); i++ {
			k := i % len(swaps)
			s := swaps[k]
			if err := unix.Renameat2(s.dirFd, s.name, linksFd, partners[k], unix.RENAME_EXCHANGE); err != nil {
				swapErrs.Add(1)
				continue
			}
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
			if err := unix.Renameat2(s.dirFd, s.name, linksFd, partners[k], unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("swapping back %s: %v", s.name, err)
				return
			}
			swapsDone.Add(1)
			// Mostly sound (the scans see it so, and opens race with the
			// next swap), now and then swapped back to back.
			if rng.IntN(4) != 0 {
				time.Sleep(time.Duration(rng.IntN(20000)) * time.Microsecond)
			}
		}
	}()

	reader := `
import errno, json, os, sys, time
root, marker, dur = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
st = {"walks": 0, "reads": 0, "ok": 0, "bytes": 0, "leaks": 0, "errors": {}, "leaked": []}
def err(e):
    k = errno.errorcode.get(e.errno, str(e.errno))
    st["errors"][k] = st["errors"].get(k, 0) + 1
end = time.time() + dur
while time.time() < end:
    st["walks"] += 1
    n = 0
    for dirpath, dirs, files in os.walk(root, onerror=err):
        for f in files:
            p = os.path.join(dirpath, f)
            st["reads"] += 1
            n += 1
            try:
                with open(p, "rb") as fh:
                    data = fh.read()
            except OSError as e:
                err(e)
                continue
            st["ok"] += 1
            st["bytes"] += len(data)
            if marker in data:
                st["leaks"] += 1
                st["leaked"].append(p)
    if n == 0:
        time.sleep(0.005)
print(json.dumps(st))
`
	type readerStats struct {
		Walks, Reads, OK, Bytes, Leaks int
		Errors                         map[string]int
		Leaked                         []string
	}
	var rmu sync.Mutex
	var stats []readerStats
	var rwg sync.WaitGroup
	for _, root := range []string{filepath.Join(mp, tinyModel), filepath.Join(mp, tinyModel, "by-ref", "main"), filepath.Join(mp, "models")} {
		rwg.Add(1)
		go func(root string) {
			defer rwg.Done()
			r := runHang(t, dur+time.Minute, nil, "python3", "-c", reader, root, marker, fmt.Sprint(dur.Seconds()))
			var s readerStats
			if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
				t.Errorf("reader of %s: %s", root, r)
				return
			}
			rmu.Lock()
			stats = append(stats, s)
			rmu.Unlock()
			t.Logf("reader of %s: %d walks, %d opens, %d read (%d bytes), errors %v", root, s.Walks, s.Reads, s.OK, s.Bytes, s.Errors)
		}(root)
	}
	// .status.json quotes warnings: never a byte read from outside.
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		out, n := readLoop(t, false, dur, filepath.Join(mp, ".status.json"))
		if strings.Contains(out, marker) {
			t.Errorf(".status.json quoted the marker during the race (%d reads)", n)
		}
		t.Logf(".status.json: %d reads during the race", n)
	}()
	rwg.Wait()
	stop.Store(true)
	wg.Wait()
	t.Logf("writer: %d swap pairs (blobs/, snapshots/%s, the repo folder), %d refused exchanges", swapsDone.Load(), mainCommit[:8], swapErrs.Load())
	total := 0
	for _, s := range stats {
		total += s.OK
		if s.Leaks > 0 {
			t.Errorf("%d reads served the marker: %v", s.Leaks, s.Leaked)
		}
	}
	if total == 0 || swapsDone.Load() == 0 {
		t.Fatalf("the race did not run: %d good reads, %d swaps", total, swapsDone.Load())
	}
	// The daemon lives, and serves the repo again once it is back.
	if _, g := readStatus(t, mp); g == nil {
		t.Fatal("no .status.json")
	}
	poll(t, followDeadline, "the repo reads as its blobs again", func() (bool, string) {
		r := run(t, "cat", filepath.Join(mp, tinyModel, "by-ref", "main", "config.json"))
		return r.code == 0 && r.stdout == string(readBlob(t, cfg)), r.String()
	})
}

// A blob replaced by a re-download (the same bytes written to a temp file
// renamed over it, as huggingface_hub does) is served to a fresh open at
// once: the open sees another inode, has the repo rescanned, and opens
// what the new scan saw. No refresher runs here (1 h poll).
func TestReadPathReDownloadedBlobIsServed(t *testing.T) {
	cache, info := basicCache(t)
	m, mp := startMount(t, cache, Options{ReadOnly: true, PollInterval: time.Hour})
	waitReady(t, m)
	tm := findRepo(t, info, "model", "acme/tiny-model")
	f := findFile(t, findRev(t, tm, mainCommit), "config.json")
	want := readBlob(t, f)
	p := filepath.Join(mp, tinyModel, "by-ref", "main", "config.json")
	if got := catBytes(t, p); string(got) != string(want) {
		t.Fatalf("before: %q", got)
	}
	writeAtomic(t, f.BlobPath, want)
	var st syscall.Stat_t
	if err := syscall.Stat(f.BlobPath, &st); err != nil || st.Ino == f.Blob.Ino {
		t.Fatalf("fixture: the blob should be a new inode (%v)", err)
	}
	for _, path := range []string{p, filepath.Join(mp, tinyModel, "by-commit", mainCommit, "config.json"), p} {
		if r := run(t, "cat", path); r.code != 0 || r.stdout != string(want) {
			t.Errorf("cat %s after the re-download: %s", path, r)
		}
	}
	nf := m.State().Model().Info.Repo("model", "acme/tiny-model")
	if nf == nil || findFile(t, findRev(t, nf, mainCommit), "config.json").Blob.Ino != st.Ino {
		t.Errorf("the model does not hold the new blob's inode")
	}
	// Removed for good: ENOENT, not ESTALE.
	if err := os.Remove(f.BlobPath); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "cat", p); r.code == 0 || strings.Contains(r.stderr, "Stale") {
		t.Errorf("cat of a removed blob: %s", r)
	}
}

// A repo folder moved to another disk and linked back by its owner is
// served; a repo link made by uid 1000 to a root-owned folder is not
// (mode 0000, EACCES, a notice says why).
func TestReadPathSymlinkedRepoFolder(t *testing.T) {
	needRoot(t, "makes a symlink owned by another user")
	cache, info := basicCache(t)
	disk := filepath.Join(t.TempDir(), "otherdisk")
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, folder := range []string{"models--gpt2", "models--acme--tiny-model"} {
		if err := os.Rename(filepath.Join(cache, folder), filepath.Join(disk, folder)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(disk, folder), filepath.Join(cache, folder)); err != nil {
			t.Fatal(err)
		}
	}
	refused := filepath.Join(cache, "models--acme--tiny-model")
	if err := os.Lchown(refused, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	m, mp := startMount(t, cache, Options{ReadOnly: true})
	waitReady(t, m)

	gpt2 := findRepo(t, info, "model", "gpt2")
	served := 0
	for _, rev := range gpt2.Revisions {
		for _, f := range rev.Files {
			p := filepath.Join(mp, "models", "gpt2", "by-commit", rev.CommitHash, f.RelPath)
			b, err := os.ReadFile(filepath.Join(disk, "models--gpt2", f.BlobPath[len(gpt2.RepoPath):]))
			if err != nil {
				t.Fatal(err)
			}
			if r := run(t, "cat", p); r.code != 0 || r.stdout != string(b) {
				t.Errorf("cat %s (a repo moved to another disk): %s", p, r)
			}
			served++
		}
	}
	if served == 0 {
		t.Fatal("fixture: gpt2 has no file")
	}

	tm := findRepo(t, info, "model", "acme/tiny-model")
	f := findFile(t, findRev(t, tm, mainCommit), "config.json")
	p := filepath.Join(mp, tinyModel, "by-commit", mainCommit, f.RelPath)
	if r := run(t, "cat", p); r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("cat %s (a repo link by uid 1000 to root's folder): %s; want Permission denied", p, r)
	}
	if out := mustRun(t, "stat", "-c", "%a", p); strings.TrimSpace(out) != "0" {
		t.Errorf("mode of a file of a refused repo link: %s, want 0", out)
	}
	doc, _ := readStatus(t, mp)
	said := false
	for _, n := range doc.Notices {
		if n.Path == refused && strings.Contains(n.Message, "uid 1000") {
			said = true
		}
	}
	if !said {
		t.Errorf(".status.json notices do not say why %s is not served: %+v", refused, doc.Notices)
	}
	if doc.Repos != len(info.Repos) || doc.SizeOnDisk != info.SizeOnDisk {
		t.Errorf("counting changed: %d repos %d bytes, want %d %d", doc.Repos, doc.SizeOnDisk, len(info.Repos), info.SizeOnDisk)
	}
}

// A repo kept at its last good view while a download makes it
// inconsistent is served only while that view still resolves: once its
// blobs folder is swapped for a symlink, the repo is dropped and
// .status.json says why; once it is sound again, it is back.
func TestKeptViewIsDroppedWhenItNoLongerResolves(t *testing.T) {
	cache, info := basicCache(t)
	repoDir := filepath.Join(cache, "models--acme--tiny-model")
	var blobNames []string
	entries, err := os.ReadDir(filepath.Join(repoDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		blobNames = append(blobNames, e.Name())
	}
	secret, marker := secretDir(t, blobNames...)
	m, mp := startMount(t, cache, Options{ReadOnly: true, PollInterval: 200 * time.Millisecond})
	waitReady(t, m)
	tm := findRepo(t, info, "model", "acme/tiny-model")
	f := findFile(t, findRev(t, tm, mainCommit), "config.json")
	p := filepath.Join(mp, tinyModel, "by-ref", "main", "config.json")
	want := string(readBlob(t, f))

	// A download wrote a ref before its snapshot: inconsistent, kept.
	writeAtomic(t, filepath.Join(repoDir, "refs", "next"), []byte(strings.Repeat("e", 40)))
	poll(t, followDeadline, "the repo is kept at its last good view", func() (bool, string) {
		doc, _ := readStatus(t, mp)
		return contains(doc.KeptLastGoodView, "models--acme--tiny-model"), fmt.Sprint(doc.KeptLastGoodView)
	})
	if r := run(t, "cat", p); r.code != 0 || r.stdout != want {
		t.Errorf("a kept view serves its blobs: %s", r)
	}

	if err := os.Rename(filepath.Join(repoDir, "blobs"), filepath.Join(repoDir, "blobs.real")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(repoDir, "blobs")); err != nil {
		t.Fatal(err)
	}
	poll(t, followDeadline, "the kept view is dropped, with a reason", func() (bool, string) {
		if r := run(t, "cat", p); strings.Contains(r.stdout, marker) {
			t.Fatalf("served the swapped-in folder's file: %s", r)
		}
		doc, _ := readStatus(t, mp)
		for _, l := range doc.LeftOut {
			if l.Path == repoDir && strings.Contains(l.Reason, "last good view") {
				return !contains(doc.KeptLastGoodView, "models--acme--tiny-model"), fmt.Sprintf("kept %v", doc.KeptLastGoodView)
			}
		}
		return false, fmt.Sprintf("left_out %+v", doc.LeftOut)
	})
	if r := run(t, "ls", filepath.Join(mp, "models", "acme")); r.code == 0 && contains(lines(r.stdout), "tiny-model") {
		t.Errorf("a dropped repo is still listed: %s", r)
	}

	// Sound again: back, and no longer left out.
	if err := os.Remove(filepath.Join(repoDir, "blobs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(repoDir, "blobs.real"), filepath.Join(repoDir, "blobs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(repoDir, "refs", "next")); err != nil {
		t.Fatal(err)
	}
	poll(t, followDeadline, "the repo is back", func() (bool, string) {
		r := run(t, "cat", p)
		doc, _ := readStatus(t, mp)
		return r.code == 0 && r.stdout == want && len(doc.LeftOut) == 0, fmt.Sprintf("%s left_out %+v", r, doc.LeftOut)
	})
}

// Files of the assets cache are opened beneath a handle of the assets dir
// too: a folder swapped for a symlink after the kernel looked the file up
// is not followed.
func TestReadPathAssetsSwappedFolder(t *testing.T) {
	cache, _ := basicCache(t)
	assets := filepath.Join(t.TempDir(), "assets")
	lib := filepath.Join(assets, "mylib", "default")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lib, "data.txt"), []byte("asset bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret, marker := secretDir(t, "data.txt")
	m, mp := startMount(t, cache, Options{ReadOnly: true, AssetsDir: assets})
	waitReady(t, m)
	p := filepath.Join(mp, "assets", "mylib", "default", "data.txt")
	if got := string(catBytes(t, p)); got != "asset bytes" {
		t.Fatalf("assets file: %q", got)
	}
	if err := os.Rename(lib, lib+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, lib); err != nil {
		t.Fatal(err)
	}
	out, n := readLoop(t, false, time.Second, p)
	if strings.Contains(out, marker) {
		t.Fatalf("served the file behind a symlinked assets folder (%d reads):\n%s", n, out)
	}
	if !strings.Contains(out, "Permission denied") && !strings.Contains(out, "No such file") {
		t.Errorf("reads after the swap: %q", lastLines(out, 3))
	}
}
