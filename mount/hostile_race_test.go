package mount

// The race harness of the hostile-writer issue, at the mount level: the
// daemon runs as root with --allow-other over a cache that uid 1000
// writes. For each target — a repo's blobs/, the repo folder itself, its
// refs/, one snapshots/<rev>/, and .locks/<repo folder> — a writer flips
// the target with a symlink (owned by uid 1000) to a root-only folder
// outside the cache holding marker files named as everything of the repo,
// while readers (root and uid 1000) read every file of both views and a
// deleter moves revision after revision into .trash/. No marker byte may
// ever be served, nothing outside may be removed, changed or created, the
// daemon must live on, and the cache must be left consistent (no ref
// naming a missing commit).
//
// The test process mounts and writes the cache directly (it is the
// hostile writer, and re-creates the trashed revisions as a download
// would, so that the deleter has work for the whole run); every access to
// the mount is a child process started in "/".

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/trash"
	"github.com/hfcachefs/hfcachefs/views"
)

const (
	hrFolder = "models--acme--race" // the raced repo's folder in the cache
	hrRepo   = "models/acme/race"   // and in the mount
	hrRevs   = 8                    // revisions of the repo; the first is main's
	hrFiles  = 30                   // files per revision
)

// hrMarkerPrefix starts every outside file: no read through the mount
// may return it.
const hrMarkerPrefix = "MARKER-"

// hrFile is a file of a revision: its path in the snapshot and its blob.
type hrFile struct{ rel, etag string }

// hrTemplate is the raced repo, written once and copied for each target.
type hrTemplate struct {
	dir   string            // the template cache (hub)
	revs  []string          // commit hashes, revs[0] is main's
	refs  map[string]string // ref name (pr/1 for refs/pr/1) -> commit
	files map[string][]hrFile
	blobs map[string][]byte // etag -> content
}

func (tp *hrTemplate) repoDir() string { return filepath.Join(tp.dir, hrFolder) }

// refOf is a ref of the revision other than main ("" if none).
func (tp *hrTemplate) refOf(commit string) string {
	for name, c := range tp.refs {
		if c == commit && name != "main" {
			return name
		}
	}
	return ""
}

func hrHex40(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// hrBlob is deterministic content of a few KiB and its etag (sha256, as
// an LFS file's).
func hrBlob(name string) ([]byte, string) {
	line := fmt.Sprintf("hfcachefs race blob %s\n", name)
	n := 200 + int(hrHex40(name)[0])*40
	b := bytes.Repeat([]byte(line), n/len(line)+1)[:n]
	return b, sha(b)
}

// hrWriteTemplate writes the repo: 8 revisions of 30 files. Each has its
// own blobs, 4 blobs all revisions share, and 4 it shares with the next
// revision (so that a revision's deletion must leave what its neighbour
// links). Refs: main, v1, v2, dev, pr/1; three revisions are detached.
// .locks/<folder>/ holds a lock file per blob, as downloads leave them.
func hrWriteTemplate(t *testing.T) *hrTemplate {
	t.Helper()
	tp := &hrTemplate{
		dir:   filepath.Join(t.TempDir(), "hub"),
		refs:  map[string]string{},
		files: map[string][]hrFile{},
		blobs: map[string][]byte{},
	}
	for k := range hrRevs {
		tp.revs = append(tp.revs, hrHex40(fmt.Sprintf("race commit %d", k)))
	}
	for i, name := range []string{"main", "v1", "v2", "dev", "pr/1"} {
		tp.refs[name] = tp.revs[i]
	}
	blob := func(name string) string {
		b, etag := hrBlob(name)
		tp.blobs[etag] = b
		return etag
	}
	for k, rev := range tp.revs {
		var fl []hrFile
		fl = append(fl, hrFile{"README.md", blob("common-0")})
		for i := 1; i < 4; i++ {
			fl = append(fl, hrFile{fmt.Sprintf("common/c%d.txt", i), blob(fmt.Sprintf("common-%d", i))})
		}
		if k+1 < hrRevs {
			for i := range 4 {
				fl = append(fl, hrFile{fmt.Sprintf("pair-next/p%d.bin", i), blob(fmt.Sprintf("pair-%d-%d", k, i))})
			}
		}
		if k > 0 {
			for i := range 4 {
				fl = append(fl, hrFile{fmt.Sprintf("pair-prev/p%d.bin", i), blob(fmt.Sprintf("pair-%d-%d", k-1, i))})
			}
		}
		for i := 0; len(fl) < hrFiles; i++ {
			rel := fmt.Sprintf("weights/shard-%02d.bin", i)
			if i%3 == 0 {
				rel = fmt.Sprintf("a/b/c/deep-%02d.txt", i)
			}
			fl = append(fl, hrFile{rel, blob(fmt.Sprintf("own-%d-%d", k, i))})
		}
		tp.files[rev] = fl
	}
	repo := tp.repoDir()
	for etag, b := range tp.blobs {
		hrWrite(t, filepath.Join(repo, "blobs", etag), b)
		hrWrite(t, filepath.Join(tp.dir, ".locks", hrFolder, etag+".lock"), nil)
	}
	for _, rev := range tp.revs {
		for _, f := range tp.files[rev] {
			hrLinkBlob(t, filepath.Join(repo, "snapshots", rev), f)
		}
	}
	for name, c := range tp.refs {
		hrWrite(t, filepath.Join(repo, "refs", name), []byte(c))
	}
	info := scanClean(t, tp.dir)
	if len(info.Repos) != 1 || len(info.Repos[0].Revisions) != hrRevs {
		t.Fatalf("template: %d repos", len(info.Repos))
	}
	return tp
}

func hrWrite(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hrLinkBlob makes snapshotDir/f.rel a relative link to its blob.
func hrLinkBlob(t *testing.T, snapshotDir string, f hrFile) {
	t.Helper()
	p := filepath.Join(snapshotDir, f.rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	up := strings.Repeat("../", 2+strings.Count(f.rel, "/"))
	if err := os.Symlink(up+"blobs/"+f.etag, p); err != nil {
		t.Fatal(err)
	}
}

// hrOutside makes the root-only folder outside the cache, shaped as the
// repo (so that the repo folder's link finds a repo there) with a marker
// file for every name a path through a swapped link can end on: blobs/
// <etag>, refs/<ref>, snapshots/<rev>/<path>, locks/<etag>.lock.
func hrOutside(t *testing.T, tp *hrTemplate, dir string) string {
	t.Helper()
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	marker := hrMarkerPrefix + hex.EncodeToString(rnd[:])
	put := func(rel string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(marker+" "+rel+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for etag := range tp.blobs {
		put("blobs/" + etag)
		put("locks/" + etag + ".lock")
	}
	for name := range tp.refs {
		put("refs/" + name)
	}
	for _, rev := range tp.revs {
		for _, f := range tp.files[rev] {
			put("snapshots/" + rev + "/" + f.rel)
		}
	}
	return marker
}

// hrListing records a tree without following links: path -> type, mode,
// owner, and a hash of each regular file.
func hrListing(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("%o %d:%d", st.Mode, st.Uid, st.Gid)
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + sha(b)
		}
		out[strings.TrimPrefix(p, root)] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", root, err)
	}
	return out
}

// hrTarget is what the writer swaps: real is the cache path, link the
// symlink beside it (to dest, outside) it is exchanged with.
type hrTarget struct {
	name       string
	real, link string
	dest       string
}

func hrTargets(tp *hrTemplate, cache, outside string) []hrTarget {
	repo := filepath.Join(cache, hrFolder)
	snap := tp.revs[1] // v1's revision: the deleter trashes it too
	return []hrTarget{
		{"blobs", filepath.Join(repo, "blobs"), filepath.Join(repo, "blobs.link"), filepath.Join(outside, "blobs")},
		{"repo_folder", repo, repo + ".link", outside},
		{"refs", filepath.Join(repo, "refs"), filepath.Join(repo, "refs.link"), filepath.Join(outside, "refs")},
		{"snapshot", filepath.Join(repo, "snapshots", snap), filepath.Join(repo, "snapshots", snap+".link"), filepath.Join(outside, "snapshots", snap)},
		{"locks", filepath.Join(cache, ".locks", hrFolder), filepath.Join(cache, ".locks", hrFolder+".link"), filepath.Join(outside, "locks")},
	}
}

// hrKind is what is at p: "dir", "link", "none" or "other".
func hrKind(p string) string {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "none"
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "link"
	}
	return "other"
}

// hrReplenished is what the writer found and did when asked to re-create
// the trashed revisions.
type hrReplenished struct {
	restored int
	dangling []string          // refs naming a commit whose snapshot is gone
	broken   map[string]string // revision in the cache -> its blobs that are gone
	errs     []string
}

// hrWriter is the hostile writer. Its goroutine alone changes the cache
// (the daemon aside): exchanges, repairs, and re-creating revisions.
type hrWriter struct {
	tp        *hrTemplate
	cache     string
	tg        hrTarget
	stop      atomic.Bool
	swaps     atomic.Int64 // exchanges that took
	swapErrs  atomic.Int64
	repairs   atomic.Int64 // the link or the real folder put back after a deletion took one
	anomalies []string     // read once done
	replenish chan chan hrReplenished
	done      chan struct{}
}

func (w *hrWriter) exchange() error {
	return unix.Renameat2(unix.AT_FDCWD, w.tg.real, unix.AT_FDCWD, w.tg.link, unix.RENAME_EXCHANGE)
}

func (w *hrWriter) makeLink() error {
	if err := os.Symlink(w.tg.dest, w.tg.link); err != nil {
		return err
	}
	return os.Lchown(w.tg.link, 1000, 1000) // a cache writer's link
}

// settle brings the target to its real state: the real folder at its
// name and the link beside it. It reports whether the target can be
// swapped (false while its revision is trashed).
func (w *hrWriter) settle() bool {
	real, link := hrKind(w.tg.real), hrKind(w.tg.link)
	switch {
	case real == "dir" && link == "link":
		return true
	case real == "link" && link == "dir":
		if err := w.exchange(); err != nil {
			w.note("swapping back: %v", err)
			return false
		}
		w.swaps.Add(1)
		return true
	case real == "none" && link == "dir":
		// A deletion took the link while it stood at the real name (a
		// snapshot staged while swapped): the real folder is under the
		// link's name. Put it back.
		w.repairs.Add(1)
		if err := os.Rename(w.tg.link, w.tg.real); err != nil {
			w.note("putting the real folder back: %v", err)
			return false
		}
		if err := w.makeLink(); err != nil {
			w.note("re-making the link: %v", err)
		}
		return true
	case real == "dir" && link == "none":
		w.repairs.Add(1)
		if err := w.makeLink(); err != nil {
			w.note("re-making the link: %v", err)
			return false
		}
		return true
	case real == "none" && link == "link":
		return false // trashed for real: swapped again once re-created
	case real == "link" && link == "none":
		w.repairs.Add(1)
		w.note("the real folder vanished while swapped (the link is at the real name)")
		if err := os.Rename(w.tg.real, w.tg.link); err != nil {
			w.note("moving the link back: %v", err)
		}
		return false
	case real == "none" && link == "none":
		w.repairs.Add(1)
		if err := w.makeLink(); err != nil {
			w.note("re-making the link: %v", err)
		}
		return false
	}
	w.note("unexpected state: %s is %s, %s is %s", w.tg.real, real, w.tg.link, link)
	return false
}

func (w *hrWriter) note(format string, args ...any) {
	if len(w.anomalies) < 50 {
		w.anomalies = append(w.anomalies, fmt.Sprintf(format, args...))
	}
}

func (w *hrWriter) run() {
	defer close(w.done)
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for !w.stop.Load() {
		select {
		case reply := <-w.replenish:
			w.settle()
			r := w.doReplenish()
			w.settle()
			reply <- r
			continue
		default:
		}
		if !w.settle() {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if err := w.exchange(); err != nil {
			w.swapErrs.Add(1)
			continue
		}
		w.swaps.Add(1)
		// Swapped: mostly for a few ms (opens and plans race with the
		// way back), now and then for a few polls of the refresher (a
		// scan that sees it whole). Sound about two thirds of the time,
		// so that the repo is shown and the deleter gets through.
		hold := time.Duration(rng.IntN(3000)) * time.Microsecond
		if rng.IntN(50) == 0 {
			hold = time.Duration(50+rng.IntN(200)) * time.Millisecond
		}
		time.Sleep(hold)
		if err := w.exchange(); err != nil {
			w.swapErrs.Add(1) // settle repairs
			continue
		}
		w.swaps.Add(1)
		if rng.IntN(4) != 0 {
			time.Sleep(time.Duration(rng.IntN(20000)) * time.Microsecond)
		}
	}
	w.settle()
}

// doReplenish (the target settled, no deletion running) first records
// every ref naming a commit whose snapshot is gone, then re-creates the
// trashed revisions as a download would: blobs, snapshot, refs, given to
// uid 1000.
func (w *hrWriter) doReplenish() hrReplenished {
	r := hrReplenished{broken: map[string]string{}}
	repo := filepath.Join(w.cache, hrFolder)
	for rev, etags := range w.broken() {
		r.broken[rev] = fmt.Sprintf("%d blob(s) gone, e.g. %s", len(etags), etags[0])
		if err := w.mend(etags); err != nil {
			r.errs = append(r.errs, err.Error())
		}
	}
	fail := func(err error) {
		if err != nil && len(r.errs) < 10 {
			r.errs = append(r.errs, err.Error())
		}
	}
	_ = filepath.WalkDir(filepath.Join(repo, "refs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		c := strings.TrimSpace(string(b))
		if hrKind(filepath.Join(repo, "snapshots", c)) == "none" {
			rel, _ := filepath.Rel(repo, p)
			r.dangling = append(r.dangling, rel+" -> "+c)
		}
		return nil
	})
	mine := func(p string) { fail(os.Lchown(p, 1000, 1000)) }
	mkdirs := func(dir string) {
		var todo []string
		for d := dir; hrKind(d) == "none"; d = filepath.Dir(d) {
			todo = append(todo, d)
		}
		for i := len(todo) - 1; i >= 0; i-- {
			if err := os.Mkdir(todo[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				fail(err)
				return
			}
			mine(todo[i])
		}
	}
	for _, rev := range w.tp.revs {
		snap := filepath.Join(repo, "snapshots", rev)
		if hrKind(snap) != "none" {
			continue
		}
		r.restored++
		for _, f := range w.tp.files[rev] {
			bp := filepath.Join(repo, "blobs", f.etag)
			if hrKind(bp) == "none" {
				fail(os.WriteFile(bp, w.tp.blobs[f.etag], 0o644))
				mine(bp)
			}
		}
		for _, f := range w.tp.files[rev] {
			p := filepath.Join(snap, f.rel)
			mkdirs(filepath.Dir(p))
			up := strings.Repeat("../", 2+strings.Count(f.rel, "/"))
			fail(os.Symlink(up+"blobs/"+f.etag, p))
			mine(p)
		}
	}
	for name, c := range w.tp.refs {
		p := filepath.Join(repo, "refs", name)
		if hrKind(p) != "none" {
			continue
		}
		mkdirs(filepath.Dir(p))
		tmp := p + ".tmp-race"
		fail(os.WriteFile(tmp, []byte(c), 0o644))
		mine(tmp)
		fail(os.Rename(tmp, p))
	}
	return r
}

// broken lists, for each revision whose snapshot folder is in the cache,
// the blobs its files link to that are gone.
func (w *hrWriter) broken() map[string][]string {
	repo := filepath.Join(w.cache, hrFolder)
	out := map[string][]string{}
	for _, rev := range w.tp.revs {
		if hrKind(filepath.Join(repo, "snapshots", rev)) != "dir" {
			continue
		}
		for _, f := range w.tp.files[rev] {
			if hrKind(filepath.Join(repo, "blobs", f.etag)) == "none" {
				out[rev] = append(out[rev], f.etag)
			}
		}
	}
	return out
}

// mend writes blobs again (as a download would), uid 1000's.
func (w *hrWriter) mend(etags []string) error {
	for _, etag := range etags {
		p := filepath.Join(w.cache, hrFolder, "blobs", etag)
		if err := os.WriteFile(p, w.tp.blobs[etag], 0o644); err != nil {
			return err
		}
		if err := os.Lchown(p, 1000, 1000); err != nil {
			return err
		}
	}
	return nil
}

// expectedBroken tells whether a revision may have lost blobs: the
// swapped snapshot's, once a deletion of it took the writer's link (the
// revision was trashed: its blobs went) and the writer put the real
// folder, which the deletion never saw, back in place.
func (w *hrWriter) expectedBroken(rev string) bool {
	return w.tg.name == "snapshot" && rev == w.tp.revs[1] && w.repairs.Load() > 0
}

// hrResult is what a child did.
type hrResult struct {
	stdout, stderr string
	code           int
}

// hrRun runs a child in "/" (as uid 1000 when asUser) from any
// goroutine: it never stops the test. A child still running after hang
// is stuck on the mount: our FUSE connections are aborted to free it,
// and the test fails saying where it was stuck; hung is then true.
func hrRun(t *testing.T, hang time.Duration, asUser bool, name string, args ...string) (r hrResult, hung bool) {
	if asUser {
		args = append(append(append([]string(nil), as1000...), name), args...)
		name = "setpriv"
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8", "LANGUAGE=")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return hrResult{stderr: err.Error(), code: -1}, false
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(hang):
		diag := stuckDiag(cmd.Process.Pid)
		aborted := abortOurMounts(t)
		_ = cmd.Process.Kill() // our own child, by pid
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		t.Errorf("%s %q hung for %v (deadlocked mount?); aborted FUSE connections %v to free it.\nstdout: %s\nstderr: %s\n%s",
			name, args, hang, aborted, stdout.String(), stderr.String(), diag)
		return hrResult{stdout: stdout.String(), stderr: stderr.String(), code: -1}, true
	}
	r = hrResult{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else {
			r.code, r.stderr = -1, err.Error()
		}
	}
	return r, false
}

// hrReader walks roots in a loop for dur and reads every file, and
// .status.json once a walk; it prints its counts as JSON.
const hrReader = `
import errno, json, os, sys, time
marker, status, dur = sys.argv[1].encode(), sys.argv[2], float(sys.argv[3])
roots = sys.argv[4:]
st = {"walks": 0, "reads": 0, "ok": 0, "bytes": 0, "leaks": 0, "status_reads": 0, "errors": {}, "leaked": []}
def err(e):
    k = errno.errorcode.get(e.errno, str(e.errno))
    st["errors"][k] = st["errors"].get(k, 0) + 1
def check(p, data):
    i = data.find(marker)
    if i >= 0:
        st["leaks"] += 1
        if len(st["leaked"]) < 5:
            st["leaked"].append(p + ": ..." + data[max(0, i-300):i+700].decode("utf-8", "replace") + "...")
end = time.time() + dur
while time.time() < end:
    st["walks"] += 1
    n = 0
    for root in roots:
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
                check(p, data)
    try:
        with open(status, "rb") as fh:
            check(status, fh.read())
            st["status_reads"] += 1
    except OSError as e:
        err(e)
    if n == 0:
        time.sleep(0.01)
print(json.dumps(st))
`

type hrReaderStats struct {
	Walks, Reads, OK, Bytes, Leaks int
	StatusReads                    int `json:"status_reads"`
	Errors                         map[string]int
	Leaked                         []string
}

// hrErrno names the error of a failed mv by its message.
func hrErrno(stderr string) string {
	for _, e := range []struct{ msg, name string }{
		{"Device or resource busy", "EBUSY"},
		{"Permission denied", "EACCES"},
		{"No such file or directory", "ENOENT"},
		{"Operation not permitted", "EPERM"},
		{"Read-only file system", "EROFS"},
		{"File exists", "EEXIST"},
		{"Invalid argument", "EINVAL"},
		{"Input/output error", "EIO"},
		{"Too many levels of symbolic links", "ELOOP"},
		{"Directory not empty", "ENOTEMPTY"},
		{"Stale file handle", "ESTALE"},
		{"Transport endpoint is not connected", "ENOTCONN"},
		{"Not a directory", "ENOTDIR"},
		{"Resource temporarily unavailable", "EAGAIN"},
	} {
		if strings.Contains(stderr, e.msg) {
			return e.name
		}
	}
	return "other"
}

// hrDeleterStats is what the deleter did.
type hrDeleterStats struct {
	attempts, successes, byRef, asUser, replenishes, restored int
	failures                                                  map[string]int
	examples                                                  map[string]string
	dangling, replenishErrs                                   []string
	broken                                                    []hrBrokenRev
}

// hrBrokenRev is a revision in the cache some of whose blobs are gone.
type hrBrokenRev struct{ rev, what string }

// hrRow is one line of the report.
type hrRow struct {
	target                            string
	swaps, swapErrs, repairs          int64
	reads, okReads, bytes, leaks      int
	statusReads                       int
	mvAttempts, mvOK, mvByRef, mvUser int
	replenishes, restored             int
	skips                             int
	failures                          map[string]int
	verdict                           string
}

// hrSeconds is the time per target: HFCACHEFS_RACE_SECONDS, default 10
// (2 with -short).
func hrSeconds(t *testing.T) time.Duration {
	t.Helper()
	if s := os.Getenv("HFCACHEFS_RACE_SECONDS"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 {
			t.Fatalf("HFCACHEFS_RACE_SECONDS=%q: want a positive number of seconds", s)
		}
		return time.Duration(f * float64(time.Second))
	}
	if testing.Short() {
		return 2 * time.Second
	}
	return 10 * time.Second
}

// hrPython is a python3 that uid 1000 can run too.
func hrPython(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/usr/bin/python3"); err == nil && fi.Mode()&0o001 != 0 {
		return "/usr/bin/python3"
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		skipOrFail(t, "python3 is not installed")
	}
	return p
}

func TestHostileRaceEveryTarget(t *testing.T) {
	needRoot(t, "mounts a cache owned by uid 1000 with --allow-other, reads as uid 1000, owns links as uid 1000")
	needFuse(t)
	needTool(t, "setpriv", "mv", "ls")
	py := hrPython(t)
	dur := hrSeconds(t)
	tp := hrWriteTemplate(t)
	var rows []hrRow
	for i, name := range []string{"blobs", "repo_folder", "refs", "snapshot", "locks"} {
		t.Run(name, func(t *testing.T) {
			row := hrRow{target: name, failures: map[string]int{}}
			defer func() { // also after a t.Fatal
				row.verdict = "PASS"
				if t.Failed() {
					row.verdict = "FAIL"
				}
				rows = append(rows, row)
			}()
			hrRaceTarget(t, tp, i, py, dur, &row)
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v per target\n", dur)
	fmt.Fprintf(&b, "%-12s %7s %8s %7s %8s %8s %10s %6s %8s %8s %7s %5s %6s  %-5s %s\n",
		"target", "swaps", "swapErr", "repair", "opens", "reads", "bytes", "leaks", "mv", "mv ok", "replen", "skips", "status", "", "mv failures")
	for _, r := range rows {
		var fails []string
		for k, v := range r.failures {
			fails = append(fails, fmt.Sprintf("%s:%d", k, v))
		}
		sort.Strings(fails)
		fmt.Fprintf(&b, "%-12s %7d %8d %7d %8d %8d %10d %6d %8d %8d %7d %5d %6d  %-5s %s\n",
			r.target, r.swaps, r.swapErrs, r.repairs, r.reads, r.okReads, r.bytes, r.leaks,
			r.mvAttempts, r.mvOK, r.replenishes, r.skips, r.statusReads, r.verdict, strings.Join(fails, " "))
	}
	t.Logf("hostile race, per target:\n%s", b.String())
}

// hrRaceTarget runs the race on one target and checks what it left.
func hrRaceTarget(t *testing.T, tp *hrTemplate, idx int, py string, dur time.Duration, row *hrRow) {
	base := t.TempDir()
	cache := filepath.Join(base, "hub")
	copyTree(t, tp.dir, cache)
	chownTree(t, cache, 1000, 1000)
	outside := filepath.Join(base, "outside")
	marker := hrOutside(t, tp, outside)
	outsideBefore := hrListing(t, outside)
	tg := hrTargets(tp, cache, outside)[idx]
	if err := os.Symlink(tg.dest, tg.link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(tg.link, 1000, 1000); err != nil {
		t.Fatal(err)
	}

	mp := newMountpoint(t)
	openToOthers(t, mp) // uid 1000 reads through it
	state := trState(t)
	tm := trStartAt(t, mp, cache, Options{AllowOther: true, PollInterval: 200 * time.Millisecond})
	readme := tp.blobs[tp.files[tp.revs[0]][0].etag]
	if got := trMust(t, "cat", tm.P(hrRepo, "by-ref", "main", "README.md")); got != string(readme) {
		t.Fatalf("by-ref/main/README.md before the race: %q", got)
	}
	if r := trRun(t, "setpriv", append(append([]string(nil), as1000...), "cat", tm.P(hrRepo, "by-commit", tp.revs[2], "README.md"))...); r.code != 0 || r.stdout != string(readme) {
		t.Fatalf("uid 1000 reading before the race: %s", r)
	}

	w := &hrWriter{tp: tp, cache: cache, tg: tg, replenish: make(chan chan hrReplenished), done: make(chan struct{})}
	var writerStopped sync.Once
	stopWriter := func() {
		writerStopped.Do(func() {
			w.stop.Store(true)
			<-w.done
		})
	}
	go w.run()
	t.Cleanup(stopWriter)

	var wg sync.WaitGroup
	var rmu sync.Mutex
	var stats []hrReaderStats
	readers := []struct {
		asUser bool
		roots  []string
	}{
		{false, []string{tm.P("models")}},
		{false, []string{tm.P(hrRepo, "by-commit"), tm.P(hrRepo, "by-ref")}},
		{true, []string{tm.P(hrRepo, "by-ref"), tm.P(hrRepo, "by-commit")}},
	}
	for _, rd := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"-c", hrReader, hrMarkerPrefix, tm.P(".status.json"), fmt.Sprint(dur.Seconds())}, rd.roots...)
			r, hung := hrRun(t, dur+trHang, rd.asUser, py, args...)
			if hung {
				return
			}
			var s hrReaderStats
			if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
				t.Errorf("reader of %v (uid 1000: %v): %v\nstdout: %s\nstderr: %s", rd.roots, rd.asUser, err, r.stdout, r.stderr)
				return
			}
			rmu.Lock()
			stats = append(stats, s)
			rmu.Unlock()
			who := "root"
			if rd.asUser {
				who = "uid 1000"
			}
			t.Logf("reader (%s) of %v: %d walks, %d opens, %d read (%d bytes), .status.json %d, errors %v",
				who, rd.roots, s.Walks, s.Reads, s.OK, s.Bytes, s.StatusReads, s.Errors)
			if s.Leaks > 0 {
				t.Errorf("reader (%s) got marker bytes %d times: %q", who, s.Leaks, s.Leaked)
			}
		}()
	}

	var ds hrDeleterStats
	ds.failures, ds.examples = map[string]int{}, map[string]string{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		hrDelete(t, tm, tp, w, dur, &ds)
	}()
	wg.Wait()

	// The deleter has stopped: the background deletions end (the writer
	// still swapping), then the writer stops with the real folder in place.
	trWaitTrashIdle(t, tm.mp)
	stopWriter()
	for _, a := range w.anomalies {
		t.Logf("writer: %s", a)
	}
	switch k := hrKind(tg.real); {
	case k == "dir":
	case k == "none" && tg.name == "snapshot" && hrKind(tg.link) == "link":
		t.Logf("at the end the swapped revision is trashed")
	default:
		t.Fatalf("after the writer: %s is %s, want the real folder", tg.real, k)
	}
	if hrKind(tg.link) == "link" {
		if err := os.Remove(tg.link); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Errorf("after the writer: %s is %s, want its link", tg.link, hrKind(tg.link))
	}

	row.swaps, row.swapErrs, row.repairs = w.swaps.Load(), w.swapErrs.Load(), w.repairs.Load()
	for _, s := range stats {
		row.reads += s.Reads
		row.okReads += s.OK
		row.bytes += s.Bytes
		row.leaks += s.Leaks
		row.statusReads += s.StatusReads
	}
	row.mvAttempts, row.mvOK, row.mvByRef, row.mvUser = ds.attempts, ds.successes, ds.byRef, ds.asUser
	row.replenishes, row.restored = ds.replenishes, ds.restored
	row.failures = ds.failures

	// Nothing outside was removed, changed or created.
	if d := diffTrees(outsideBefore, hrListing(t, outside)); len(d) > 0 {
		if len(d) > 20 {
			d = append(d[:20], fmt.Sprintf("... %d more", len(d)-20))
		}
		t.Errorf("the outside folder changed:\n  %s", strings.Join(d, "\n  "))
	}
	// The daemon lives.
	readStatus(t, tm.mp)

	// Receipts: what the deletions skipped.
	skipReasons := map[string]int{}
	states := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(state, "hfcachefs", "*", "receipts", "*.json"))
	for _, f := range files {
		var rc trash.Receipt
		data, err := os.ReadFile(f)
		if err != nil || json.Unmarshal(data, &rc) != nil {
			t.Errorf("receipt %s: %v", f, err)
			continue
		}
		states[rc.State]++
		row.skips += len(rc.Skipped)
		for _, s := range rc.Skipped {
			reason := s.Reason
			if len(reason) > 300 {
				reason = reason[:300] + "..."
			}
			skipReasons[s.Kind+": "+hrGeneric(reason, tp)]++
		}
	}
	if len(files) != ds.successes {
		t.Logf("%d receipts for %d successful moves", len(files), ds.successes)
	}

	// Revisions in the cache whose blobs are gone (seen during the run
	// before each re-creation, or now): only the swapped snapshot's after
	// a deletion took the link (mended, so that the scan checks the rest).
	for rev, etags := range w.broken() {
		ds.broken = append(ds.broken, hrBrokenRev{rev, fmt.Sprintf("at the end: %d blob(s) gone, e.g. %s", len(etags), etags[0])})
		if w.expectedBroken(rev) {
			if err := w.mend(etags); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, b := range ds.broken {
		if w.expectedBroken(b.rev) {
			t.Logf("revision %s, trashed while its snapshot was swapped and put back by the writer: %s (expected: its blobs went with it)", b.rev, b.what)
		} else {
			t.Errorf("revision %s lost blobs it links to: %s", b.rev, b.what)
		}
	}
	// The cache, the writer gone: no ref naming a missing commit (seen
	// during the run before each re-creation, or now).
	info := scan(t, cache)
	for _, d := range ds.dangling {
		t.Errorf("during the race, after a deletion: ref %s names a commit whose snapshot is gone", d)
	}
	for _, e := range ds.replenishErrs {
		t.Errorf("re-creating the trashed revisions: %s", e)
	}
	for _, warn := range info.Warnings {
		msg := warn.Error()
		if strings.Contains(msg, "Reference(s) refer to missing commit hashes") {
			t.Errorf("after the race the cache has a ref naming a missing commit: %s", msg)
		} else {
			t.Errorf("after the race the scan warns: %s", msg)
		}
	}
	if len(info.Repos) != 1 || info.Repos[0].Revision(tp.revs[0]) == nil {
		t.Errorf("after the race: %d repos, main's revision kept: %v", len(info.Repos), len(info.Repos) == 1 && info.Repos[0].Revision(tp.revs[0]) != nil)
	} else {
		rev := info.Repos[0].Revision(tp.revs[0])
		if len(rev.Files) != hrFiles {
			t.Errorf("main's revision has %d files after the race, want %d", len(rev.Files), hrFiles)
		}
	}
	// And the mount serves the repo again.
	poll(t, followDeadline, "by-ref/main reads as its blob again", func() (bool, string) {
		r := trRun(t, "cat", tm.P(hrRepo, "by-ref", "main", "README.md"))
		return r.code == 0 && r.stdout == string(readme), r.String()
	})
	if r := trRun(t, "cat", tm.P(".status.json")); r.code != 0 || !json.Valid([]byte(r.stdout)) {
		t.Errorf("the final cat of .status.json: %s", r)
	} else if strings.Contains(r.stdout, marker) {
		t.Errorf("the final .status.json quotes an outside file (%s)", marker)
	}

	var fails, reasons, st []string
	for k, v := range ds.failures {
		fails = append(fails, fmt.Sprintf("%s %d (e.g. %s)", k, v, strings.TrimSpace(ds.examples[k])))
	}
	for k, v := range skipReasons {
		reasons = append(reasons, fmt.Sprintf("%4d  %s", v, k))
	}
	for k, v := range states {
		st = append(st, fmt.Sprintf("%s:%d", k, v))
	}
	sort.Strings(fails)
	sort.Strings(reasons)
	sort.Strings(st)
	t.Logf("%s: %d swaps (%d refused, %d repairs after a deletion took the link or the folder); "+
		"%d opens, %d reads, %d bytes, %d marker reads, %d .status.json reads; "+
		"mv: %d attempts (%d by-ref, %d as uid 1000), %d succeeded, %d re-creations of %d revisions; receipts %v, %d skips",
		tg.name, row.swaps, row.swapErrs, row.repairs, row.reads, row.okReads, row.bytes, row.leaks, row.statusReads,
		row.mvAttempts, row.mvByRef, row.mvUser, row.mvOK, row.replenishes, row.restored, st, row.skips)
	if len(fails) > 0 {
		t.Logf("mv failures:\n  %s", strings.Join(fails, "\n  "))
	}
	if len(reasons) > 0 {
		t.Logf("skips by reason:\n  %s", strings.Join(reasons, "\n  "))
	}
	if row.swaps == 0 || row.okReads == 0 || row.mvAttempts == 0 {
		t.Errorf("the race did not run: %d swaps, %d good reads, %d mv", row.swaps, row.okReads, row.mvAttempts)
	}
}

// hrGeneric makes a skip reason countable: hashes, etags and temp paths
// replaced.
func hrGeneric(reason string, tp *hrTemplate) string {
	for _, rev := range tp.revs {
		reason = strings.ReplaceAll(reason, rev, "<commit>")
	}
	for etag := range tp.blobs {
		reason = strings.ReplaceAll(reason, etag, "<etag>")
	}
	if i := strings.Index(reason, os.TempDir()+"/"); i >= 0 {
		if j := strings.Index(reason[i:], "/hub/"); j >= 0 {
			reason = reason[:i] + "CACHE/" + reason[i+j+5:]
		}
	}
	return reason
}

// hrDelete is the deleter: until dur has passed, it moves revision after
// revision (by-commit of every revision but main's, once a by-ref) into
// .trash/, every third move as uid 1000. When no revision but main's is
// left, it waits for the background deletions to end and has the writer
// re-create the trashed revisions.
func hrDelete(t *testing.T, tm *trMount, tp *hrTemplate, w *hrWriter, dur time.Duration, ds *hrDeleterStats) {
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 11))
	end := time.Now().Add(dur)
	byCommit := tm.P(hrRepo, "by-commit")
	deletable := map[string]bool{}
	for _, rev := range tp.revs[1:] {
		deletable[rev] = true
	}
	listed := func() []string {
		r, hung := hrRun(t, trHang, false, "ls", "-1", byCommit)
		if hung || r.code != 0 {
			return nil
		}
		var out []string
		for _, n := range lines(r.stdout) {
			if deletable[n] {
				out = append(out, n)
			}
		}
		return out
	}
	idle := func() bool {
		for t0 := time.Now(); time.Since(t0) < trDeadline; time.Sleep(100 * time.Millisecond) {
			r, hung := hrRun(t, trHang, false, "cat", tm.P(".status.json"))
			if hung {
				return false
			}
			var doc views.StatusDoc
			if r.code == 0 && json.Unmarshal([]byte(r.stdout), &doc) == nil && len(doc.Mount.Trash.Running) == 0 {
				return true
			}
		}
		t.Errorf("the background deletions did not end in %v", trDeadline)
		return false
	}
	for time.Now().Before(end) {
		cands := listed()
		if len(cands) == 0 {
			if !idle() {
				return
			}
			reply := make(chan hrReplenished, 1)
			select {
			case w.replenish <- reply:
			case <-w.done:
				return
			}
			r := <-reply
			ds.replenishes++
			ds.restored += r.restored
			ds.dangling = append(ds.dangling, r.dangling...)
			for rev, what := range r.broken {
				ds.broken = append(ds.broken, hrBrokenRev{rev, "during the race: " + what})
			}
			ds.replenishErrs = append(ds.replenishErrs, r.errs...)
			for t0 := time.Now(); len(listed()) == 0 && time.Since(t0) < followDeadline && time.Now().Before(end); {
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		src := filepath.Join(byCommit, cands[rng.IntN(len(cands))])
		if ds.byRef == 0 && ds.attempts >= 2 {
			for _, c := range cands {
				if ref := tp.refOf(c); ref != "" {
					src = tm.P(hrRepo, "by-ref", ref)
					if strings.HasPrefix(ref, "pr/") {
						src = tm.P(hrRepo, "by-ref", "refs", ref)
					}
					ds.byRef++
					break
				}
			}
		}
		asUser := ds.attempts%3 == 2
		if asUser {
			ds.asUser++
		}
		ds.attempts++
		dst := tm.P(".trash", fmt.Sprintf("race-%d", ds.attempts))
		r, hung := hrRun(t, trHang, asUser, "mv", src, dst)
		if hung {
			return
		}
		if r.code == 0 {
			ds.successes++
			continue
		}
		k := hrErrno(r.stderr)
		ds.failures[k]++
		if _, ok := ds.examples[k]; !ok {
			ds.examples[k] = r.stderr
		}
	}
}
