package e2e_test

// TestHostileCaches mounts odd, corrupted and hostile caches with the built
// binary and checks that neither `hfcachefs scan` nor the daemon crashes or
// hangs, that the mount serves exactly what the scan holds (bytes checked
// against the blobs) and nothing from outside the cache, and that each
// oddity shows in the scan's notices and in .status.json while the
// warnings stay exactly huggingface_hub's.

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

const (
	prC1 = "1111111111111111111111111111111111111111"
	prC2 = "2222222222222222222222222222222222222222"
)

// prCache writes a cache the way huggingface_hub lays it out.
type prCache struct {
	t   *testing.T
	dir string
}

func (c prCache) must(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

func (c prCache) write(rel string, data []byte) {
	c.t.Helper()
	p := filepath.Join(c.dir, rel)
	c.must(os.MkdirAll(filepath.Dir(p), 0o755))
	c.must(os.WriteFile(p, data, 0o644))
}

// blob writes blobs/<etag> (once) and returns the etag.
func (c prCache) blob(folder string, data []byte, lfs bool) string {
	c.t.Helper()
	etag := prEtag(data, lfs)
	if _, err := os.Lstat(filepath.Join(c.dir, folder, "blobs", etag)); err != nil {
		c.write(filepath.Join(folder, "blobs", etag), data)
	}
	return etag
}

// link makes snapshots/<commit>/<rel> a symlink to target, as is.
func (c prCache) link(folder, commit, rel, target string) {
	c.t.Helper()
	p := filepath.Join(c.dir, folder, "snapshots", commit, rel)
	c.must(os.MkdirAll(filepath.Dir(p), 0o755))
	c.must(os.Symlink(target, p))
}

// file adds a file the way hf_hub_download does: blob, then a relative
// link ../../blobs/<etag> with one more ../ per sub-folder.
func (c prCache) file(folder, commit, rel string, data []byte, lfs bool) string {
	c.t.Helper()
	etag := c.blob(folder, data, lfs)
	c.link(folder, commit, rel, strings.Repeat("../", strings.Count(rel, "/")+2)+"blobs/"+etag)
	return etag
}

func (c prCache) ref(folder, name, content string) {
	c.t.Helper()
	c.write(filepath.Join(folder, "refs", name), []byte(content))
}

// healthy adds a small healthy revision with its main ref.
func (c prCache) healthy(folder, commit string) {
	c.t.Helper()
	c.file(folder, commit, "config.json", []byte(`{"repo": "`+folder+`"}`+"\n"), false)
	c.file(folder, commit, "model.safetensors", prBytes(folder, 4096), true)
	c.ref(folder, "main", commit)
}

// prBytes is deterministic content.
func prBytes(seed string, n int) []byte {
	out := make([]byte, 0, n+32)
	s := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, s[:]...)
		s = sha256.Sum256(s[:])
	}
	return out[:n]
}

// prCheckMount runs the checks every hostile mount must pass: the daemon
// answers, .status.json has the scan's warnings and notices, a read of
// every file of models/, datasets/ and spaces/ matches the scan, and
// `ls -R` and `find` over the whole mount finish.
func prCheckMount(t *testing.T, d *prDaemon, scan prScanDoc) map[string]prEntry {
	t.Helper()
	d.checkAlive(t)
	status, _ := prStatus(t, d.mp)
	if !prEqual(status.Warnings, scan.Warnings) {
		t.Errorf(".status.json warnings %q, want the scan's %q", status.Warnings, scan.Warnings)
	}
	if !prEqual(prNoticeKeys(status.Notices), prNoticeKeys(scan.Notices)) {
		t.Errorf(".status.json notices\n%s\nwant the scan's\n%s", strings.Join(prNoticeKeys(status.Notices), "\n"), strings.Join(prNoticeKeys(scan.Notices), "\n"))
	}
	if status.Repos != len(scan.Repos) || status.SizeOnDisk != scan.SizeOnDisk {
		t.Errorf(".status.json: %d repos, %d bytes; the scan: %d repos, %d bytes", status.Repos, status.SizeOnDisk, len(scan.Repos), scan.SizeOnDisk)
	}
	walk := prWalk(t, d.mp, true, "models", "datasets", "spaces")
	for _, diff := range prCompare(t, walk, scan) {
		t.Error(diff)
	}
	for _, args := range [][]string{{"ls", "-laR", d.mp}, {"find", d.mp}} {
		if res := prRun(t, prChildTimeout, nil, args[0], args[1:]...); res.code != 0 || res.timedOut {
			t.Errorf("%s: %s", strings.Join(args, " "), res)
		}
	}
	d.checkAlive(t)
	return walk
}

// prGoldenWarnings is goldens/cases/<name>.scan.json's warnings (what
// huggingface_hub said), for a case materialized at dir.
func prGoldenWarnings(t *testing.T, name, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testcache.Conformance(), "goldens", "cases", name+".scan.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, w := range g.Warnings {
		out = append(out, strings.ReplaceAll(w, "{CACHE_DIR}", dir))
	}
	return out
}

func TestHostileCaches(t *testing.T) {
	prNeedFuse(t, prCITrue())
	prBinary(t)

	t.Run("conformance", func(t *testing.T) {
		cases := testcache.Cases(t)
		names, err := os.ReadDir(cases)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range names {
			name := e.Name()
			if strings.HasPrefix(name, "_") {
				continue // _outside: the target of symlink-outside-cache
			}
			n++
			t.Run(name, func(t *testing.T) {
				dir := prResolved(t, filepath.Join(cases, name))
				scan := prScan(t, dir, time.Minute)
				if want := prGoldenWarnings(t, name, dir); !prEqual(scan.Warnings, want) {
					t.Errorf("scan warnings %q, want huggingface_hub's %q", scan.Warnings, want)
				}
				d := prStartMount(t, dir)
				prCheckMount(t, d, scan)
			})
		}
		if n != 26 {
			t.Errorf("the case builder made %d cases, want 26", n)
		}
	})

	t.Run("odd-repos", func(t *testing.T) { prOddRepos(t) })
	t.Run("ref-symlink-outside-cache", func(t *testing.T) { prRefSymlinkOutside(t) })
	t.Run("100k-files", func(t *testing.T) { prHugeRevision(t) })
	t.Run("read-only-bind-mount", func(t *testing.T) { prReadOnlyBind(t) })
}

// prOddRepos: one repo per oddity (the scan's granularity is the repo), and
// a healthy one. What huggingface_hub's scan_cache_dir does with each (spec
// §5) decides the warnings; hfcachefs' notices must name each one it
// treats specially.
func prOddRepos(t *testing.T) {
	c := prCache{t, filepath.Join(t.TempDir(), "hub")}
	c.must(os.MkdirAll(c.dir, 0o755))
	c.dir = prResolved(t, c.dir)
	repo := func(folder string) string { return filepath.Join(c.dir, folder) }
	snap := func(folder, rel string) string { return filepath.Join(c.dir, folder, "snapshots", prC1, rel) }

	// A healthy neighbour: it must stay served whatever its neighbours do.
	c.healthy("models--acme--healthy", prC1)
	borrowedEtag := prEtag(prBytes("models--acme--healthy", 4096), true)

	// A file linking to itself / two links linking to each other:
	// Path.resolve() raises (RuntimeError "Symlink loop", or OSError ELOOP
	// on newer Pythons), which is no CorruptedCacheException, so upstream's
	// whole scan aborts: no warning; hfcachefs leaves the repo out with a
	// scan-error notice (and .status.json left_out).
	c.healthy("models--acme--loopself", prC1)
	c.link("models--acme--loopself", prC1, "self.bin", "self.bin")
	c.healthy("models--acme--looppair", prC1)
	c.link("models--acme--looppair", prC1, "a.bin", "b.bin")
	c.link("models--acme--looppair", prC1, "b.bin", "a.bin")

	// Links to /etc/passwd, absolute and relative: they resolve to an
	// existing file, so upstream counts them (no warning). hfcachefs
	// shows them mode 0000, refuses to open them (EACCES) and notices
	// outside-cache for each (and absolute-link for the repo).
	c.healthy("models--acme--passwd", prC1)
	c.link("models--acme--passwd", prC1, "passwd", "/etc/passwd")
	c.link("models--acme--passwd", prC1, "sub/escape.txt", strings.Repeat("../", 40)+"etc/passwd")

	// A link into another repo's blob: inside the cache, it resolves and
	// exists, so upstream counts it (no warning) and the mount may serve
	// it: it must be that blob's bytes. hfcachefs notices foreign-blob
	// (deleting the other repo breaks it).
	c.healthy("models--acme--borrower", prC1)
	c.link("models--acme--borrower", prC1, "borrowed.safetensors", "../../../models--acme--healthy/blobs/"+borrowedEtag)

	// A 1,000-level deep folder in a snapshot, with a file at the bottom
	// linked the huggingface_hub way (1,002 "../"). Upstream: glob("**/*")
	// is recursive in Python <= 3.12 and raises RecursionError at this depth
	// (checked with Python 3.11) — no CorruptedCacheException, so no
	// warning either way; hfcachefs serves it and notices deep-folder.
	c.healthy("models--acme--deep", prC1)
	deepRel := strings.Repeat("d/", 1000) + "leaf.txt"
	c.file("models--acme--deep", prC1, deepRel, []byte("the bottom\n"), false)

	// Names with a newline, invalid UTF-8, 255 bytes (a file and a folder):
	// legal POSIX names; upstream counts them (no warning); served as is,
	// with an odd-name notice for the newline and invalid UTF-8 ones.
	c.healthy("models--acme--names", prC1)
	oddNames := []string{"new\nline.txt", "bad\xff\xfename.bin", strings.Repeat("n", 251) + ".txt",
		"dir\nwith newline/inner.txt", strings.Repeat("D", 255) + "/x.txt"}
	for i, n := range oddNames {
		c.file("models--acme--names", prC1, n, []byte(fmt.Sprintf("odd name %d\n", i)), false)
	}

	// A blob that is a FIFO, one that is a character device like
	// /dev/null: upstream stat()s them (it never opens blobs) and counts
	// them, no warning. hfcachefs notices not-regular for each and never
	// opens them (EACCES), so a reader can neither hang nor read a device.
	fifoEtag := prEtag([]byte("fifo"), true)
	c.healthy("models--acme--fifo", prC1)
	c.must(os.MkdirAll(filepath.Join(repo("models--acme--fifo"), "blobs"), 0o755))
	c.must(syscall.Mkfifo(filepath.Join(repo("models--acme--fifo"), "blobs", fifoEtag), 0o644))
	c.link("models--acme--fifo", prC1, "pipe.bin", "../../blobs/"+fifoEtag)
	devEtag := prEtag([]byte("device"), true)
	c.healthy("models--acme--device", prC1)
	c.must(syscall.Mknod(filepath.Join(repo("models--acme--device"), "blobs", devEtag), syscall.S_IFCHR|0o644, 1<<8|3))
	c.link("models--acme--device", prC1, "null.bin", "../../blobs/"+devEtag)

	// A ref whose content is a path out of refs/: the scan reads it raw as
	// a commit hash and finds no such snapshot, which is upstream's
	// CorruptedCacheException "Reference(s) refer to missing commit
	// hashes" (the repo is left out). Nothing follows the path.
	c.healthy("models--acme--evilref", prC1)
	c.ref("models--acme--evilref", "evil", "../../snapshots/x")
	evilWarning := fmt.Sprintf("Reference(s) refer to missing commit hashes: {'../../snapshots/x': {'evil'}} (%s).", repo("models--acme--evilref"))

	// Ref names with ".." in them (refs/..foo, refs/..x/..y: a name can
	// hold ".." but never be ".."), and refs/etc, a symlinked folder to
	// /etc (glob neither yields nor enters it). Upstream: valid refs, no
	// warning; the mount shows by-ref/..foo and by-ref/..x/..y, no etc.
	c.healthy("models--acme--dotref", prC1)
	c.ref("models--acme--dotref", "..foo", prC1)
	c.ref("models--acme--dotref", "..x/..y", prC1)
	c.must(os.Symlink("/etc", filepath.Join(repo("models--acme--dotref"), "refs", "etc")))

	// A ref that is a FIFO: upstream's open().read() blocks forever (its
	// scan hangs, no warning). hfcachefs never opens it: scan-error
	// notice, repo left out, and no hang.
	c.healthy("models--acme--reffifo", prC1)
	c.must(os.Remove(filepath.Join(repo("models--acme--reffifo"), "refs", "main")))
	c.must(syscall.Mkfifo(filepath.Join(repo("models--acme--reffifo"), "refs", "main"), 0o644))

	wantNotices := []string{
		"scan-error " + repo("models--acme--loopself"),
		"scan-error " + repo("models--acme--looppair"),
		"scan-error " + repo("models--acme--reffifo"),
		"outside-cache " + snap("models--acme--passwd", "passwd"),
		"outside-cache " + snap("models--acme--passwd", "sub/escape.txt"),
		"absolute-link " + repo("models--acme--passwd"),
		"not-regular " + snap("models--acme--fifo", "pipe.bin"),
		"not-regular " + snap("models--acme--device", "null.bin"),
		"foreign-blob " + snap("models--acme--borrower", "borrowed.safetensors"),
		"deep-folder " + snap("models--acme--deep", strings.TrimSuffix(strings.Repeat("d/", 101), "/")),
		"odd-name " + snap("models--acme--names", "new\nline.txt"),
		"odd-name " + snap("models--acme--names", "bad\uFFFD\uFFFDname.bin"), // JSON carries each invalid byte as U+FFFD
		"odd-name " + snap("models--acme--names", "dir\nwith newline"),
		"outside-cache " + filepath.Join(repo("models--acme--dotref"), "refs", "etc"),
		"long-name " + snap("models--acme--names", strings.Repeat("n", 251)+".txt"),
		"long-name " + snap("models--acme--names", strings.Repeat("D", 255)),
	}
	leftOut := []string{repo("models--acme--loopself"), repo("models--acme--looppair"), repo("models--acme--reffifo"), repo("models--acme--evilref")}

	scan := prScan(t, c.dir, 2*time.Minute)
	if want := []string{evilWarning}; !prEqual(scan.Warnings, want) {
		t.Errorf("scan warnings %q, want exactly huggingface_hub's %q", scan.Warnings, want)
	}
	var gotNotices []string
	for _, n := range scan.Notices {
		gotNotices = append(gotNotices, n.Kind+" "+n.Path)
	}
	if !prEqual(gotNotices, wantNotices) {
		t.Errorf("scan notices (kind path):\n%s\nwant:\n%s", strings.Join(prSorted(gotNotices), "\n"), strings.Join(prSorted(wantNotices), "\n"))
	}
	var repos []string
	for _, r := range scan.Repos {
		repos = append(repos, r.RepoID)
	}
	wantRepos := []string{"acme/borrower", "acme/deep", "acme/device", "acme/dotref", "acme/fifo", "acme/healthy", "acme/names", "acme/passwd"}
	if !prEqual(repos, wantRepos) {
		t.Errorf("scan repos %q, want %q", prSorted(repos), wantRepos)
	}

	d := prStartMount(t, c.dir)
	walk := prCheckMount(t, d, scan)

	status, _ := prStatus(t, d.mp)
	var gotLeft []string
	for _, lo := range status.LeftOut {
		gotLeft = append(gotLeft, lo.Path)
	}
	if !prEqual(gotLeft, leftOut) {
		t.Errorf(".status.json left_out %q, want %q", prSorted(gotLeft), prSorted(leftOut))
	}
	for _, gone := range []string{"loopself", "looppair", "reffifo", "evilref"} {
		if _, ok := walk["models/acme/"+gone]; ok {
			t.Errorf("models/acme/%s is in the mount; the scan leaves it out", gone)
		}
	}

	// Nothing from outside the cache, no FIFO, no device: cat is refused
	// at once (a hang would time out), and prints nothing.
	m := filepath.Join(d.mp, "models/acme")
	for _, p := range []string{"passwd/by-commit/" + prC1 + "/passwd", "passwd/by-ref/main/sub/escape.txt",
		"fifo/by-commit/" + prC1 + "/pipe.bin", "device/by-ref/main/null.bin"} {
		res := prRun(t, 30*time.Second, nil, "cat", filepath.Join(m, p))
		if res.code == 0 || res.timedOut || !strings.Contains(res.stderr, "Permission denied") || res.stdout != "" {
			t.Errorf("cat %s: %s; want \"Permission denied\" and no bytes", p, res)
		}
	}
	// The borrowed blob is inside the cache: served, with its own bytes.
	want := prBlobSha(t, filepath.Join(repo("models--acme--healthy"), "blobs", borrowedEtag))
	if e := walk["models/acme/borrower/by-ref/main/borrowed.safetensors"]; e.Sha != want || e.Err != "" {
		t.Errorf("borrowed.safetensors: %+v, want the healthy repo's blob (sha256 %s)", e, want)
	}
	// Odd names and the deep file are served (prCheckMount compared their
	// bytes; here: they are really there).
	for _, n := range append(oddNames, deepRel) {
		p := "models/acme/" + map[bool]string{true: "deep", false: "names"}[n == deepRel] + "/by-commit/" + prC1 + "/" + n
		if e, ok := walk[p]; !ok || e.K != "f" || e.Err != "" {
			t.Errorf("%q: %+v (found %v), want a served file", prClip(p, 120), e, ok)
		}
	}
	for _, ref := range []string{"..foo", "..x/..y"} {
		if e, ok := walk["models/acme/dotref/by-ref/"+ref+"/config.json"]; !ok || e.Err != "" {
			t.Errorf("by-ref/%s/config.json: %+v (found %v)", ref, e, ok)
		}
	}
	if _, ok := walk["models/acme/dotref/by-ref/etc"]; ok {
		t.Error("by-ref/etc (refs/etc -> /etc) is in the mount")
	}
	// The CLI scan still works with the mount up, and the daemon lives.
	if again := prScan(t, c.dir, 2*time.Minute); !prEqual(again.Warnings, scan.Warnings) {
		t.Errorf("second scan warnings %q", again.Warnings)
	}
	d.checkAlive(t)
}

// prRefSymlinkOutside: refs/leak is a symlink to /etc/passwd. Upstream's
// scan reads the ref through it (read_text) and reports its whole content
// as a missing commit hash: "Reference(s) refer to missing commit hashes:
// {'root:x:0:0:...\n...': {'leak'}} (...)." — a CorruptedCacheException, so
// `hfcachefs scan` must print exactly that. The mount, though, must never
// serve bytes from outside the cache: .status.json (0444; with
// --allow-other every user reads it, and the daemon may run as root, so
// the link could as well point at /etc/shadow) must not carry the file's
// content, and the repo is left out.
func prRefSymlinkOutside(t *testing.T) {
	c := prCache{t, filepath.Join(t.TempDir(), "hub")}
	c.must(os.MkdirAll(c.dir, 0o755))
	c.dir = prResolved(t, c.dir)
	c.healthy("models--acme--healthy", prC1)
	c.healthy("models--acme--refleak", prC1)
	c.must(os.Symlink("/etc/passwd", filepath.Join(c.dir, "models--acme--refleak", "refs", "leak")))
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil || len(passwd) == 0 {
		t.Skipf("no /etc/passwd to point at: %v", err)
	}
	repoPath := filepath.Join(c.dir, "models--acme--refleak")
	// Python's own repr of {content: {'leak'}}, as upstream formats it.
	want := strings.TrimRight(prMust(t, time.Minute, "python3", "-c",
		`import sys; print("Reference(s) refer to missing commit hashes: %s (%s)." % (repr({open("/etc/passwd").read(): {"leak"}}), sys.argv[1]))`, repoPath), "\n")

	scan := prScan(t, c.dir, time.Minute)
	if !prEqual(scan.Warnings, []string{want}) {
		t.Errorf("scan warnings %q, want huggingface_hub's %q", scan.Warnings, want)
	}
	d := prStartMount(t, c.dir)
	d.checkAlive(t)
	_, raw := prStatus(t, d.mp)
	firstLine := strings.SplitN(string(passwd), "\n", 2)[0]
	if strings.Contains(raw, firstLine) || strings.Contains(raw, strings.TrimSuffix(prJSONString(firstLine), `"`)[1:]) {
		t.Errorf("BUG: .status.json serves bytes of /etc/passwd (outside the cache) read through refs/leak: it contains %q", firstLine)
	}
	walk := prWalk(t, d.mp, true, "models")
	if _, ok := walk["models/acme/refleak"]; ok {
		t.Error("models/acme/refleak is in the mount")
	}
	if e, ok := walk["models/acme/healthy/by-ref/main/config.json"]; !ok || e.Err != "" {
		t.Errorf("the healthy neighbour is not served: %+v", e)
	}
	d.checkAlive(t)
}

func prJSONString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// prHugeRevision: one revision of 100,000 files (100 folders of 1,000
// links to 10 blobs), written with os.Symlink. The scan finishes and
// counts them; find in the mount sees every one.
func prHugeRevision(t *testing.T) {
	c := prCache{t, filepath.Join(t.TempDir(), "hub")}
	c.must(os.MkdirAll(c.dir, 0o755))
	c.dir = prResolved(t, c.dir)
	const folder = "models--acme--huge"
	var etags []string
	for i := 0; i < 10; i++ {
		etags = append(etags, c.blob(folder, prBytes(fmt.Sprint("huge", i), 1000+i), true))
	}
	start := time.Now()
	for s := 0; s < 100; s++ {
		dir := filepath.Join(c.dir, folder, "snapshots", prC1, fmt.Sprintf("shard-%03d", s))
		c.must(os.MkdirAll(dir, 0o755))
		for f := 0; f < 1000; f++ {
			c.must(os.Symlink("../../../blobs/"+etags[(s+f)%10], filepath.Join(dir, fmt.Sprintf("f-%04d.bin", f))))
		}
	}
	c.ref(folder, "main", prC1)
	t.Logf("wrote 100,000 links in %v", time.Since(start).Round(time.Millisecond))

	scan := prScan(t, c.dir, 5*time.Minute)
	if len(scan.Warnings) != 0 || len(scan.Repos) != 1 || len(scan.Repos[0].Revisions) != 1 {
		t.Fatalf("scan: warnings %q, %d repos", scan.Warnings, len(scan.Repos))
	}
	if rev := scan.Repos[0].Revisions[0]; rev.NbFiles != 100000 || scan.Repos[0].NbFiles != 10 {
		t.Errorf("scan: revision nb_files %d, repo nb_files %d; want 100000 and 10", rev.NbFiles, scan.Repos[0].NbFiles)
	}
	prWantNotice(t, scan, "large-revision", filepath.Join(c.dir, folder, "snapshots", prC1))
	d := prStartMount(t, c.dir)
	res := prRun(t, 5*time.Minute, nil, "sh", "-c", `find "$1" -type f | wc -l`, "sh", filepath.Join(d.mp, "models/acme/huge/by-commit", prC1))
	if res.code != 0 || res.timedOut || strings.TrimSpace(res.stdout) != "100000" {
		t.Errorf("find by-commit/%s -type f | wc -l: %s; want 100000", prC1, res)
	}
	// One folder read in full through by-ref/main: the right bytes.
	walk := prWalk(t, d.mp, true, "models/acme/huge/by-ref/main/shard-042")
	files := 0
	for p, e := range walk {
		if e.K != "f" {
			continue
		}
		files++
		var f int
		fmt.Sscanf(filepath.Base(p), "f-%04d.bin", &f)
		etag := etags[(42+f)%10]
		if e.Err != "" || e.Etag == nil || *e.Etag != etag || e.Sha != prBlobSha(t, filepath.Join(c.dir, folder, "blobs", etag)) {
			t.Errorf("%s: %+v, want blob %s", p, e, etag)
		}
	}
	if files != 1000 {
		t.Errorf("shard-042 has %d files in the mount, want 1000", files)
	}
	d.checkAlive(t)
}

// prTreeDigest lists a tree (type, mode, size, mtime, link target) so two
// states can be compared.
func prTreeDigest(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		target := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ = os.Readlink(p)
		}
		lines = append(lines, fmt.Sprintf("%q %v %d %d %q", strings.TrimPrefix(p, root), fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), target))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// prReadOnlyBind mounts a cache that sits on a read-only bind mount: the
// views work; every .trash deletion fails cleanly (EROFS or EACCES) and
// leaves the cache and the views as they were.
func prReadOnlyBind(t *testing.T) {
	if os.Geteuid() != 0 {
		prSkipOrFail(t, prCITrue(), "bind mounts need root")
	}
	tmp := t.TempDir()
	c := prCache{t, filepath.Join(tmp, "hub")}
	c.healthy("models--acme--ok", prC1)
	c.file("models--acme--ok", prC2, "config.json", []byte(`{"v": 2}`+"\n"), false)
	c.file("models--acme--ok", prC2, "sub/model.safetensors", prBytes("models--acme--ok", 4096), true)
	c.ref("models--acme--ok", "main", prC2)
	c.ref("models--acme--ok", "v1", prC1)
	c.write("models--acme--ok/.no_exist/"+prC2+"/tokenizer.json", nil)
	c.healthy("datasets--acme--data", prC1)
	ro := filepath.Join(tmp, "ro")
	c.must(os.Mkdir(ro, 0o755))
	if res := prRun(t, time.Minute, nil, "mount", "--bind", c.dir, ro); res.code != 0 {
		prSkipOrFail(t, prCITrue(), "mount --bind: %s", res)
	}
	// Registered before the hfcachefs mount: cleanups run last-in first-out.
	t.Cleanup(func() {
		if err := syscall.Unmount(ro, 0); err != nil {
			_ = syscall.Unmount(ro, syscall.MNT_DETACH)
		}
	})
	if res := prRun(t, time.Minute, nil, "mount", "-o", "remount,bind,ro", ro); res.code != 0 {
		t.Fatalf("mount -o remount,bind,ro: %s", res)
	}
	if err := os.WriteFile(filepath.Join(ro, "probe"), nil, 0o644); err == nil || !os.IsPermission(err) && !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("the bind mount is writable (%v)", err)
	}
	before := prTreeDigest(t, c.dir)

	scan := prScan(t, ro, time.Minute)
	if len(scan.Warnings) != 0 || len(scan.Repos) != 2 {
		t.Fatalf("scan of the read-only cache: warnings %q, %d repos", scan.Warnings, len(scan.Repos))
	}
	prWantNotice(t, scan, "read-only", ro)
	d := prStartMount(t, ro)
	prCheckMount(t, d, scan)

	mv := prWriteScript(t, "mv.py", `import errno, os, sys
mp = sys.argv[1]
for src, dst in zip(sys.argv[2::2], sys.argv[3::2]):
    try:
        os.rename(os.path.join(mp, src), os.path.join(mp, dst))
        print("OK")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
`)
	pairs := []string{
		"models/acme/ok/by-commit/" + prC1, ".trash/rev",
		"models/acme/ok/by-ref/main", ".trash/ref",
		"models/acme/ok", ".trash/repo",
		"datasets/acme/data", ".trash/data",
	}
	out := prMust(t, prChildTimeout, "python3", append([]string{mv, d.mp}, pairs...)...)
	for i, got := range strings.Fields(out) {
		if got != "EROFS" && got != "EACCES" {
			t.Errorf("rename %s -> %s on a read-only cache: %s, want EROFS or EACCES", pairs[2*i], pairs[2*i+1], got)
		}
	}
	if n := len(strings.Fields(out)); n != len(pairs)/2 {
		t.Errorf("mv.py printed %q", out)
	}
	if after := prTreeDigest(t, c.dir); after != before {
		t.Errorf("the cache changed under a read-only bind mount:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	t.Logf("renames into .trash on the read-only cache: %q", strings.Fields(out))
	if ls := prMust(t, time.Minute, "ls", "-A", filepath.Join(d.mp, ".trash")); strings.TrimSpace(ls) != "" {
		name := strings.Fields(ls)[0]
		receipt := prRun(t, time.Minute, nil, "cat", filepath.Join(d.mp, ".trash", name, "receipt.json"))
		t.Errorf("BUG: .trash after deletions that all failed lists %q (a failed deletion leaves a receipt); .trash/%s/receipt.json: %s", strings.Fields(ls), name, prClip(receipt.stdout, 1500))
	}
	// The views are intact.
	prCheckMount(t, d, prScan(t, ro, time.Minute))
}

// prWantNotice fails unless the scan has a notice of that kind and path.
func prWantNotice(t *testing.T, scan prScanDoc, kind, path string) {
	t.Helper()
	for _, n := range scan.Notices {
		if n.Kind == kind && n.Path == path {
			return
		}
	}
	t.Errorf("no %s notice for %s among %+v", kind, path, scan.Notices)
}
