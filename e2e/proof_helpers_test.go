package e2e_test

// Shared helpers of the package's tests (hostile_test.go, writers_test.go,
// npm_test.go). Every name is prefixed "pr" (the names of npm_test.go's own
// helpers start with "npm").
//
// The rules they enforce: the test process builds the binary once, mounts
// through it, and never touches the mount itself. Every access to the
// mount is a child process (python3, ls, find, cat, cmp, getfattr) with its
// working directory "/" and a timeout that kills its whole process group.
// What they share with the tests of package mount (the CI rule, the
// binary, child processes, daemons, mountinfo) is internal/mounttest's.

import (
	"bufio"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hfcachefs/hfcachefs/internal/mounttest"
)

// prChildTimeout bounds a child process that walks or reads a mount.
const prChildTimeout = mounttest.ChildTimeout

// prRepoRoot is the module root (the parent of e2e/).
func prRepoRoot() string { return mounttest.ModuleRoot() }

// prBinary builds hfcachefs once per package run (mounttest.Binary: with
// -race under go test -race, so that the daemon is checked for data races
// too).
func prBinary(t *testing.T) string {
	t.Helper()
	return mounttest.Binary(t)
}

// A test that lacks what it needs (FUSE, a tool) skips, except under CI,
// where the skip is refused: a failure. The rule for "under CI" is
// mounttest.UnderCI, for every test of the package; prCITrue and prCISet,
// which the tests pass as refuse, are both that rule.
func prCITrue() bool { return mounttest.UnderCI() }
func prCISet() bool  { return mounttest.UnderCI() }

// prSkipOrFail skips, or fails under CI (mounttest.SkipOrFail). refuse is
// prCITrue() or prCISet(): the same rule, which mounttest applies.
func prSkipOrFail(t *testing.T, refuse bool, format string, args ...any) {
	t.Helper()
	mounttest.SkipOrFail(t, format, args...)
}

// prNeedFuse skips (fails under CI; refuse as for prSkipOrFail) without
// /dev/fuse, python3 or the tools used.
func prNeedFuse(t *testing.T, refuse bool, tools ...string) {
	t.Helper()
	mounttest.NeedFuse(t)
	mounttest.NeedTool(t, append([]string{"python3"}, tools...)...)
}

// prResult is what a child process did.
type prResult struct {
	stdout, stderr string
	code           int // exit status; -1 when it did not exit normally
	timedOut       bool
}

// prResultOf is r, the reason of an abnormal end (a signal, an error,
// where a hung child was stuck) appended to its stderr.
func prResultOf(r mounttest.Result) prResult {
	res := prResult{stdout: r.Stdout, stderr: r.Stderr, code: r.Code, timedOut: r.TimedOut}
	if r.Signal != "" {
		res.stderr += "\n[signal: " + r.Signal + "]"
	}
	if r.Err != nil {
		res.stderr += "\n[run error] " + r.Err.Error()
	}
	if r.Hang != "" {
		res.stderr += "\n[hung] " + r.Hang
	}
	return res
}

func (r prResult) String() string {
	return mounttest.Result{Stdout: r.stdout, Stderr: r.stderr, Code: r.code, TimedOut: r.timedOut}.String()
}

func prClip(s string, n int) string { return mounttest.Clip(s, n) }

// prChild is a child process running in the background.
type prChild struct{ c *mounttest.Child }

// prStart starts a child with cwd "/" (never inside a mount), in its own
// process group, killed (the group: it is ours) when the timeout passes
// (mounttest.Start: our FUSE connections are aborted first).
func prStart(t *testing.T, timeout time.Duration, env []string, name string, args ...string) *prChild {
	t.Helper()
	return prStartIn(t, timeout, "/", env, name, args...)
}

// prStartIn is prStart with the working directory dir (never a mount).
func prStartIn(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) *prChild {
	t.Helper()
	return &prChild{mounttest.Start(t, mounttest.Options{Dir: dir, Env: env, Hang: timeout}, name, args...)}
}

// wait waits for the child (its timeout still applies).
func (c *prChild) wait() prResult { return prResultOf(c.c.Result()) }

// prRun runs a child to its end (or its timeout).
func prRun(t *testing.T, timeout time.Duration, env []string, name string, args ...string) prResult {
	t.Helper()
	return prStart(t, timeout, env, name, args...).wait()
}

// prMust runs a child that must succeed in time and returns its stdout.
func prMust(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	return mounttest.Must(t, timeout, name, args...)
}

// prWriteScript writes a script into a temp dir and returns its path.
func prWriteScript(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// prDaemon is one running mount: `hfcachefs mount MP --cache-dir DIR` in
// the foreground as our child (mounttest.Daemon: its output kept, so a
// panic is seen), stopped at cleanup by `hfcachefs unmount`, then SIGTERM,
// then a lazy unmount.
type prDaemon struct {
	*mounttest.Daemon
	mp string
}

// prMountPlace prepares a mount of cache in a fresh temp folder tmp: the
// mountpoint mp (tmp/mnt) and tmp/assets; args are those of `hfcachefs
// mount` and env keeps the daemon's state and HF_HOME in tmp. mp is one
// of our mounts (mounttest.RegisterMount) from now on.
func prMountPlace(t *testing.T, cache string) (tmp, mp string, args, env []string) {
	t.Helper()
	tmp = t.TempDir()
	mp = filepath.Join(tmp, "mnt")
	for _, d := range []string{mp, filepath.Join(tmp, "assets")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	args = []string{"mount", mp, "--cache-dir", cache, "--assets-dir", filepath.Join(tmp, "assets")}
	// Receipts and holds live under XDG_STATE_HOME: keep them in the test.
	env = []string{"XDG_STATE_HOME=" + filepath.Join(tmp, "state"), "HF_HOME=" + filepath.Join(tmp, "hf")}
	mounttest.RegisterMount(t, mp, 0)
	return tmp, mp, args, env
}

// prStartMount mounts cache and waits until the mount is ready.
func prStartMount(t *testing.T, cache string, extra ...string) *prDaemon {
	t.Helper()
	d := prMountDaemon(t, cache, true, extra...)
	return &prDaemon{Daemon: d, mp: d.MP}
}

// prMountDaemon mounts cache at a prMountPlace (extra: more arguments of
// `hfcachefs mount`), as our child in the foreground or with --daemon,
// and returns once the mount is ready; cleanup stops it (Daemon.Stop).
func prMountDaemon(t *testing.T, cache string, foreground bool, extra ...string) *mounttest.Daemon {
	t.Helper()
	_, mp, args, env := prMountPlace(t, cache)
	more := args[4:len(args):len(args)] // after "mount MP --cache-dir CACHE"
	return mounttest.StartDaemon(t, mp, cache, mounttest.DaemonOptions{Args: append(more, extra...), Env: env, Foreground: foreground})
}

// checkAlive fails the test if the daemon died or stopped answering.
func (d *prDaemon) checkAlive(t *testing.T) {
	t.Helper()
	if ok, why := d.Alive(); !ok {
		t.Fatalf("the daemon crashed: %s", why)
	}
	if res := prRun(t, 30*time.Second, nil, "stat", "-c", "%s", filepath.Join(d.mp, ".status.json")); res.code != 0 {
		t.Fatalf("the mount stopped answering: stat .status.json: %s", res)
	}
}

// prNotice is one entry of the scan's (and .status.json's) notices.
type prNotice struct {
	Path    string `json:"path"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

type prScanFile struct {
	FileName   string `json:"file_name"`
	FilePath   string `json:"file_path"`
	BlobPath   string `json:"blob_path"`
	SizeOnDisk int64  `json:"size_on_disk"`
}

type prScanRev struct {
	CommitHash   string       `json:"commit_hash"`
	SnapshotPath string       `json:"snapshot_path"`
	NbFiles      int          `json:"nb_files"`
	Refs         []string     `json:"refs"`
	Files        []prScanFile `json:"files"`
}

type prScanRepo struct {
	RepoID     string            `json:"repo_id"`
	RepoType   string            `json:"repo_type"`
	RepoPath   string            `json:"repo_path"`
	SizeOnDisk int64             `json:"size_on_disk"`
	NbFiles    int               `json:"nb_files"`
	Refs       map[string]string `json:"refs"`
	Revisions  []prScanRev       `json:"revisions"`
}

// prScanDoc is `hfcachefs scan --format json`.
type prScanDoc struct {
	CacheDir        string       `json:"cache_dir"`
	SizeOnDisk      int64        `json:"size_on_disk"`
	Repos           []prScanRepo `json:"repos"`
	Warnings        []string     `json:"warnings"`
	Notices         []prNotice   `json:"notices"`
	IncompleteFiles []struct {
		FilePath string `json:"file_path"`
	} `json:"incomplete_files"`
}

// prScan runs `hfcachefs scan --format json`: it must finish in time.
func prScan(t *testing.T, cache string, timeout time.Duration) prScanDoc {
	t.Helper()
	res := prRun(t, timeout, nil, prBinary(t), "scan", "--cache-dir", cache, "--format", "json")
	if res.code != 0 || res.timedOut {
		t.Fatalf("hfcachefs scan --cache-dir %s: %s", cache, res)
	}
	var doc prScanDoc
	if err := json.Unmarshal([]byte(res.stdout), &doc); err != nil {
		t.Fatalf("scan JSON: %v\n%s", err, prClip(res.stdout, 2000))
	}
	return doc
}

// prStatusDoc is the part of .status.json the tests read.
type prStatusDoc struct {
	Generation uint64     `json:"generation"`
	Repos      int        `json:"repos"`
	Revisions  int        `json:"revisions"`
	SizeOnDisk int64      `json:"size_on_disk"`
	Warnings   []string   `json:"warnings"`
	Notices    []prNotice `json:"notices"`
	LeftOut    []struct {
		Path   string `json:"path"`
		Reason string `json:"reason"`
	} `json:"left_out"`
	KeptLastGoodView []string `json:"kept_last_good_view"`
}

// prStatus reads MP/.status.json through cat.
func prStatus(t *testing.T, mp string) (prStatusDoc, string) {
	t.Helper()
	raw := prMust(t, prChildTimeout, "cat", filepath.Join(mp, ".status.json"))
	var doc prStatusDoc
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatalf(".status.json: %v\n%s", err, prClip(raw, 2000))
	}
	return doc, raw
}

// prWalkPy walks folders of a mount without os.walk (whose recursion
// fails on deep trees), lstat'ing every entry. With "read" it opens every
// file, reads its user.hf.etag through the open fd (so name and bytes are
// the same inode, whatever a ref does meanwhile) and hashes its bytes.
// It prints one JSON object per line; paths are hex bytes, relative to
// the mount.
const prWalkPy = `import errno, hashlib, json, os, stat, sys
mp, mode = sys.argv[1], sys.argv[2]
tops = sys.argv[3:]
out = sys.stdout
def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
def emit(rel, **kw):
    kw["p"] = os.fsencode(rel).hex()
    out.write(json.dumps(kw) + "\n")
stack = list(reversed(tops))
while stack:
    rel = stack.pop()
    full = os.path.join(mp, rel)
    try:
        st = os.lstat(full)
    except OSError as e:
        emit(rel, k="?", err=ename(e)); continue
    if stat.S_ISDIR(st.st_mode):
        try:
            names = sorted(os.listdir(full))
        except OSError as e:
            emit(rel, k="d", err=ename(e)); continue
        emit(rel, k="d", err="")
        for n in reversed(names):
            stack.append(os.path.join(rel, n))
        continue
    if stat.S_ISLNK(st.st_mode):
        emit(rel, k="l", err="", target=os.fsencode(os.readlink(full)).hex()); continue
    if not stat.S_ISREG(st.st_mode):
        emit(rel, k="o", err="", mode=st.st_mode); continue
    kw = dict(k="f", size=st.st_size, mode=st.st_mode & 0o7777, err="", etag=None, sha="", n=0)
    if mode == "read":
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            kw["err"] = ename(e)
        else:
            try:
                try:
                    kw["etag"] = os.getxattr(fd, "user.hf.etag").decode("utf-8", "surrogateescape")
                except OSError as e:
                    kw["xerr"] = ename(e)
                h = hashlib.sha256()
                while True:
                    b = os.read(fd, 1 << 20)
                    if not b:
                        break
                    h.update(b)
                    kw["n"] += len(b)
                kw["sha"] = h.hexdigest()
            except OSError as e:
                kw["err"] = ename(e)
            finally:
                os.close(fd)
    emit(rel, **kw)
`

// prEntry is one line of prWalkPy's output.
type prEntry struct {
	Path   string  // decoded, relative to the mount
	K      string  `json:"k"`
	Err    string  `json:"err"`
	Size   int64   `json:"size"`
	Mode   uint32  `json:"mode"`
	Etag   *string `json:"etag"`
	XErr   string  `json:"xerr"` // getxattr(user.hf.etag) failed with this
	Sha    string  `json:"sha"`
	N      int64   `json:"n"`
	P      string  `json:"p"`
	Target string  `json:"target"`
}

// prWalk runs prWalkPy over tops (relative to mp) and returns entries by
// path.
func prWalk(t *testing.T, mp string, read bool, tops ...string) map[string]prEntry {
	t.Helper()
	script := prWriteScript(t, "walk.py", prWalkPy)
	mode := "stat"
	if read {
		mode = "read"
	}
	out := prMust(t, prChildTimeout, "python3", append([]string{script, mp, mode}, tops...)...)
	entries := map[string]prEntry{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e prEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("walk output: %v: %q", err, sc.Text())
		}
		p, err := hex.DecodeString(e.P)
		if err != nil {
			t.Fatal(err)
		}
		e.Path = string(p)
		entries[e.Path] = e
	}
	return entries
}

// prLossy is what the scan's JSON makes of a name that is not UTF-8: each
// invalid byte becomes U+FFFD.
func prLossy(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// prDisplay is where a repo shows (docs/SEMANTICS.md "Names"): a repo id that is no clean
// path is shown at <type>s/@<folder name>.
func prDisplay(r prScanRepo) string {
	folder := filepath.Base(r.RepoPath)
	clean := r.RepoID != ""
	for _, seg := range strings.Split(r.RepoID, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, "@") {
			clean = false
		}
	}
	if !clean {
		return r.RepoType + "s/@" + folder
	}
	return r.RepoType + "s/" + r.RepoID
}

// prExpFile is what the mount must show at one path, per the scan.
type prExpFile struct {
	blob   string
	size   int64
	denied string // why the mount must refuse to open it ("" = serve it)
}

// prExpected derives the mount's revision files and revision folders from
// a scan: by-commit/<hash>/<path> for every revision, by-ref/<ref>/<path>
// for every ref.
func prExpected(t *testing.T, scan prScanDoc) (files map[string]prExpFile, revDirs map[string]bool) {
	t.Helper()
	files, revDirs = map[string]prExpFile{}, map[string]bool{}
	for _, r := range scan.Repos {
		disp := prDisplay(r)
		for _, rev := range r.Revisions {
			roots := []string{disp + "/by-commit/" + rev.CommitHash}
			for _, ref := range rev.Refs {
				roots = append(roots, disp+"/by-ref/"+ref)
			}
			for _, root := range roots {
				revDirs[root] = true
				for _, f := range rev.Files {
					rel := strings.TrimPrefix(f.FilePath, rev.SnapshotPath+"/")
					e := prExpFile{blob: f.BlobPath, size: f.SizeOnDisk}
					var st syscall.Stat_t
					switch {
					case f.BlobPath != scan.CacheDir && !strings.HasPrefix(f.BlobPath, scan.CacheDir+"/"):
						e.denied = "resolves outside the cache"
					case syscall.Stat(f.BlobPath, &st) != nil:
						e.denied = "blob gone"
					case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
						e.denied = "blob is not a regular file"
					}
					files[root+"/"+rel] = e
				}
			}
		}
	}
	return files, revDirs
}

// prSha256 is the hex sha256 of data.
func prSha256(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// prEtag is the Hub's etag, the blob's name: sha256 for LFS files, else
// the git blob sha1.
func prEtag(data []byte, lfs bool) string {
	if lfs {
		return prSha256(data)
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

var prShaCache sync.Map // blob path -> sha256 hex

func prBlobSha(t *testing.T, blob string) string {
	t.Helper()
	if v, ok := prShaCache.Load(blob); ok {
		return v.(string)
	}
	data, err := os.ReadFile(blob) // the cache, read directly: never the mount
	if err != nil {
		t.Fatalf("reading blob %s: %v", blob, err)
	}
	s := prSha256(data)
	prShaCache.Store(blob, s)
	return s
}

// prCompare lists the differences between a read walk of the mount's type
// folders and what the scan says they must serve: the same files (no more,
// no fewer), each with its blob's bytes, size and etag; files outside the
// cache or on a non-regular blob refused with EACCES and no byte served;
// every revision folder there.
func prCompare(t *testing.T, walk map[string]prEntry, scan prScanDoc) []string {
	t.Helper()
	files, revDirs := prExpected(t, scan)
	var diffs []string
	seen := map[string]bool{}
	for p, e := range walk {
		lp := prLossy(p)
		if e.K == "d" {
			if e.Err != "" {
				diffs = append(diffs, fmt.Sprintf("listing %q: %s", p, e.Err))
			}
			continue
		}
		exp, ok := files[lp]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("the mount serves %q (kind %s), which the scan does not have", p, e.K))
			continue
		}
		seen[lp] = true
		if e.K != "f" {
			diffs = append(diffs, fmt.Sprintf("%q: kind %s, want a regular file", p, e.K))
			continue
		}
		if e.Size != exp.size {
			diffs = append(diffs, fmt.Sprintf("%q: size %d, want %d", p, e.Size, exp.size))
		}
		if exp.denied != "" {
			if e.Err != "EACCES" || e.N != 0 {
				diffs = append(diffs, fmt.Sprintf("%q (%s): open gave %q and served %d bytes; want EACCES and nothing served", p, exp.denied, e.Err, e.N))
			}
			if e.Mode != 0 {
				diffs = append(diffs, fmt.Sprintf("%q (%s): mode %04o; docs/SEMANTICS.md says 0000", p, exp.denied, e.Mode))
			}
			continue
		}
		if e.Err != "" {
			diffs = append(diffs, fmt.Sprintf("%q: %s", p, e.Err))
			continue
		}
		// user.hf.etag is the blob's name when the blob is a blobs/<etag>;
		// a file that is its own blob (no-symlink mode, .DS_Store dropped
		// into a revision) has none: ENODATA.
		if filepath.Base(filepath.Dir(exp.blob)) == "blobs" {
			if e.Etag == nil || *e.Etag != filepath.Base(exp.blob) {
				diffs = append(diffs, fmt.Sprintf("%q: user.hf.etag %v (%s), want %q", p, e.Etag, e.XErr, filepath.Base(exp.blob)))
			}
		} else if e.XErr != "ENODATA" {
			diffs = append(diffs, fmt.Sprintf("%q (its own blob %s): user.hf.etag %v %s, want ENODATA", p, exp.blob, e.Etag, e.XErr))
		}
		if want := prBlobSha(t, exp.blob); e.Sha != want || e.N != exp.size {
			diffs = append(diffs, fmt.Sprintf("%q: served %d bytes with sha256 %s; the blob %s has %d bytes, sha256 %s", p, e.N, e.Sha, exp.blob, exp.size, want))
		}
	}
	for p := range files {
		if !seen[p] {
			diffs = append(diffs, fmt.Sprintf("the mount lacks %q", p))
		}
	}
	dirs := map[string]bool{}
	for p, e := range walk {
		if e.K == "d" {
			dirs[prLossy(p)] = true
		}
	}
	for d := range revDirs {
		if !dirs[d] {
			diffs = append(diffs, fmt.Sprintf("the mount lacks the revision folder %q", d))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// prNoticeKeys renders notices as sortable "kind path message" lines.
func prNoticeKeys(l []prNotice) []string {
	out := []string{}
	for _, n := range l {
		out = append(out, n.Kind+" "+n.Path+" "+n.Message)
	}
	sort.Strings(out)
	return out
}

func prSorted(l []string) []string {
	out := append([]string{}, l...)
	sort.Strings(out)
	return out
}

// prEqual compares two string lists as sets of lines, order aside.
func prEqual(a, b []string) bool {
	a, b = prSorted(a), prSorted(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// prResolved is a directory with symlinks resolved (what the scan prints).
func prResolved(t *testing.T, dir string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
