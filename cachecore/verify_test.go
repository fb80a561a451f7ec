package cachecore

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// --- hand-built caches (no Scan: it is tested elsewhere) ---

func vSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func vGitSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// vCacheDir is a fresh cache dir, resolved like Scan resolves it.
func vCacheDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func vMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// vRepo creates <cache>/<type>s--<org>--<name>/{blobs,snapshots,refs}.
func vRepo(t *testing.T, cache, repoType, repoID string) *RepoInfo {
	t.Helper()
	path := filepath.Join(cache, repoType+"s--"+strings.ReplaceAll(repoID, "/", "--"))
	for _, d := range []string{"blobs", "snapshots", "refs"} {
		vMust(t, os.MkdirAll(filepath.Join(path, d), 0o755))
	}
	return &RepoInfo{RepoID: repoID, RepoType: repoType, RepoPath: path}
}

// vBlob writes blobs/<name> (name "" means its sha256) and returns its path.
func vBlob(t *testing.T, repo *RepoInfo, name string, content []byte) string {
	t.Helper()
	if name == "" {
		name = vSHA256(content)
	}
	p := filepath.Join(repo.RepoPath, "blobs", name)
	vMust(t, os.WriteFile(p, content, 0o644))
	return p
}

// vRev returns the revision (created on first use, with a "main" ref).
func vRev(t *testing.T, repo *RepoInfo, commit string) *RevisionInfo {
	t.Helper()
	if rev := repo.Revision(commit); rev != nil {
		return rev
	}
	rev := &RevisionInfo{CommitHash: commit, SnapshotPath: filepath.Join(repo.RepoPath, "snapshots", commit)}
	vMust(t, os.MkdirAll(rev.SnapshotPath, 0o755))
	if len(repo.Revisions) == 0 {
		vMust(t, os.WriteFile(filepath.Join(repo.RepoPath, "refs", "main"), []byte(commit), 0o644))
		rev.Refs = []string{"main"}
	}
	repo.Revisions = append(repo.Revisions, rev)
	return rev
}

// vFileInfo builds the FileInfo a scan would for filePath -> blobPath.
func vFileInfo(filePath, blobPath, relPath string, outside bool) *FileInfo {
	f := &FileInfo{FileName: filepath.Base(filePath), SnapshotPath: strings.TrimSuffix(filePath, "/"+relPath), BlobPath: blobPath, RelPath: relPath}
	var st syscall.Stat_t
	if syscall.Stat(blobPath, &st) == nil {
		f.SizeOnDisk = st.Size
		f.Blob = &BlobStat{Path: blobPath, Size: st.Size, Blocks: st.Blocks, Dev: uint64(st.Dev), Ino: st.Ino,
			Mode: st.Mode, Outside: outside}
	}
	return f
}

// vLink makes snapshots/<commit>/<rel> a relative symlink to target (an
// absolute path) and records the FileInfo.
func vLink(t *testing.T, repo *RepoInfo, commit, rel, target string) *FileInfo {
	t.Helper()
	rev := vRev(t, repo, commit)
	fp := filepath.Join(rev.SnapshotPath, filepath.FromSlash(rel))
	vMust(t, os.MkdirAll(filepath.Dir(fp), 0o755))
	relTarget, err := filepath.Rel(filepath.Dir(fp), target)
	vMust(t, err)
	vMust(t, os.Symlink(relTarget, fp))
	cache := filepath.Dir(repo.RepoPath)
	outside := !(target == cache || strings.HasPrefix(target, cache+"/"))
	f := vFileInfo(fp, target, rel, outside)
	rev.Files = append(rev.Files, f)
	return f
}

func vVerify(t *testing.T, cache string, opts VerifyOptions) *VerifyReport {
	t.Helper()
	rep, err := Verify(context.Background(), cache, opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Checked != len(rep.Results) {
		t.Errorf("Checked = %d, want %d", rep.Checked, len(rep.Results))
	}
	ok, problems, unverifiable := 0, 0, 0
	for _, r := range rep.Results {
		switch {
		case r.Status == VerifyOK:
			ok++
		case r.Status == VerifyUnverifiable:
			unverifiable++
		case r.Status.Problem():
			problems++
		}
	}
	if rep.Problems != problems || rep.Unverifiable != unverifiable || ok+problems+unverifiable != rep.Checked {
		t.Errorf("counts: problems %d (want %d) unverifiable %d (want %d) checked %d", rep.Problems, problems, rep.Unverifiable, unverifiable, rep.Checked)
	}
	if rep.OK() != (problems == 0) {
		t.Errorf("OK() = %v with %d problems", rep.OK(), problems)
	}
	return rep
}

// vFind returns the result for the blob path, failing if absent.
func vFind(t *testing.T, rep *VerifyReport, blobPath string) VerifyResult {
	t.Helper()
	for _, r := range rep.Results {
		if r.BlobPath == blobPath {
			return r
		}
	}
	t.Fatalf("no result for %s in %+v", blobPath, rep.Results)
	return VerifyResult{}
}

const (
	vCommit1 = "1111111111111111111111111111111111111111"
	vCommit2 = "2222222222222222222222222222222222222222"
)

// --- tests ---

func TestVerifyAlgorithm(t *testing.T) {
	for name, want := range map[string]string{
		strings.Repeat("a", 64):       VerifySHA256,
		strings.Repeat("0", 40):       VerifyGitSHA1,
		strings.Repeat("A", 64):       "",
		strings.Repeat("a", 63):       "",
		strings.Repeat("a", 41):       "",
		strings.Repeat("g", 40):       "",
		strings.Repeat("a", 64) + "x": "",
		"":                            "",
		"model.safetensors":           "",
	} {
		if got := VerifyAlgorithm(name); got != want {
			t.Errorf("VerifyAlgorithm(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestVerifyAllGood(t *testing.T) {
	cache := vCacheDir(t)
	model := vRepo(t, cache, "model", "org/good")
	weights := bytes.Repeat([]byte("weights!"), 100000) // 800 kB: one chunk
	config := []byte(`{"a": 1}` + "\n")
	empty := []byte{}
	wBlob := vBlob(t, model, "", weights)
	cBlob := vBlob(t, model, vGitSHA1(config), config)
	eBlob := vBlob(t, model, vGitSHA1(empty), empty)
	vLink(t, model, vCommit1, "model.safetensors", wBlob)
	vLink(t, model, vCommit1, "config.json", cBlob)
	vLink(t, model, vCommit1, ".gitattributes", eBlob)
	// A second revision sharing the weights under two paths.
	vLink(t, model, vCommit2, "model.safetensors", wBlob)
	vLink(t, model, vCommit2, "sub/dir/copy.safetensors", wBlob)

	data := vRepo(t, cache, "dataset", "org/data")
	big := bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6, 7}, 400000) // 3.2 MB: several chunks
	bBlob := vBlob(t, data, vGitSHA1(big), big)
	vLink(t, data, vCommit1, "train.bin", bBlob)

	rep := vVerify(t, cache, VerifyOptions{Repos: []*RepoInfo{model, data}})
	if !rep.OK() || rep.Problems != 0 || rep.Unverifiable != 0 || rep.Checked != 4 {
		t.Fatalf("report = %+v", rep)
	}
	if want := int64(len(weights) + len(config) + len(big)); rep.BytesHashed != want {
		t.Errorf("BytesHashed = %d, want %d (shared blob hashed once)", rep.BytesHashed, want)
	}
	// Sorted by repo path (datasets-- < models--), then blob path.
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.BlobPath)
	}
	want := []string{bBlob}
	mb := []string{wBlob, cBlob, eBlob}
	sort.Strings(mb)
	want = append(want, mb...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}

	w := vFind(t, rep, wBlob)
	if w.Status != VerifyOK || w.Algorithm != VerifySHA256 || w.Expected != vSHA256(weights) || w.Actual != w.Expected ||
		w.Size != int64(len(weights)) || w.RepoID != "org/good" || w.RepoType != "model" || w.Detail != "" {
		t.Errorf("weights result = %+v", w)
	}
	wantPaths := []string{
		filepath.Join(model.RepoPath, "snapshots", vCommit1, "model.safetensors"),
		filepath.Join(model.RepoPath, "snapshots", vCommit2, "model.safetensors"),
		filepath.Join(model.RepoPath, "snapshots", vCommit2, "sub", "dir", "copy.safetensors"),
	}
	if !reflect.DeepEqual(w.FilePaths, wantPaths) {
		t.Errorf("FilePaths = %v, want %v", w.FilePaths, wantPaths)
	}
	for _, p := range []string{cBlob, eBlob, bBlob} {
		r := vFind(t, rep, p)
		if r.Status != VerifyOK || r.Algorithm != VerifyGitSHA1 || r.Actual != filepath.Base(p) {
			t.Errorf("git blob result = %+v", r)
		}
	}
	if d := vFind(t, rep, bBlob); d.RepoType != "dataset" || d.RepoID != "org/data" {
		t.Errorf("dataset result = %+v", d)
	}
}

func TestVerifyMismatch(t *testing.T) {
	cache := vCacheDir(t)
	repo := vRepo(t, cache, "model", "org/bad")
	good := []byte("the original content of an lfs file")
	sBlob := vBlob(t, repo, "", good)
	gitGood := []byte("plain git file\n")
	gBlob := vBlob(t, repo, vGitSHA1(gitGood), gitGood)
	vLink(t, repo, vCommit1, "model.bin", sBlob)
	vLink(t, repo, vCommit1, "README.md", gBlob)

	badS := append([]byte(nil), good...)
	badS[3] ^= 0x01
	vMust(t, os.WriteFile(sBlob, badS, 0o644))
	badG := append([]byte(nil), gitGood...)
	badG[0] ^= 0x20
	vMust(t, os.WriteFile(gBlob, badG, 0o644))

	rep := vVerify(t, cache, VerifyOptions{Repos: []*RepoInfo{repo}})
	if rep.OK() || rep.Problems != 2 {
		t.Fatalf("report = %+v", rep)
	}
	s := vFind(t, rep, sBlob)
	if s.Status != VerifyMismatch || s.Expected != vSHA256(good) || s.Actual != vSHA256(badS) || s.Detail == "" {
		t.Errorf("sha256 result = %+v", s)
	}
	g := vFind(t, rep, gBlob)
	if g.Status != VerifyMismatch || g.Algorithm != VerifyGitSHA1 || g.Expected != vGitSHA1(gitGood) || g.Actual != vGitSHA1(badG) {
		t.Errorf("git-sha1 result = %+v", g)
	}
}

func TestVerifyUnverifiable(t *testing.T) {
	cache := vCacheDir(t)
	repo := vRepo(t, cache, "model", "org/odd")
	xet := []byte("a xet file whose etag is not the sha256 of its content")
	xBlob := vBlob(t, repo, "xet-"+strings.Repeat("ab", 30), xet)
	upper := []byte("uppercase hex is not an etag")
	uBlob := vBlob(t, repo, strings.ToUpper(vSHA256(upper)), upper)
	vLink(t, repo, vCommit1, "a.bin", xBlob)
	vLink(t, repo, vCommit1, "b.bin", uBlob)
	// No-symlink mode: a regular file inside the snapshot, named like an
	// etag of its own content, is still no blob.
	copied := []byte("copied into the snapshot")
	rev := vRev(t, repo, vCommit1)
	cp := filepath.Join(rev.SnapshotPath, vSHA256(copied))
	vMust(t, os.WriteFile(cp, copied, 0o644))
	rev.Files = append(rev.Files, vFileInfo(cp, cp, filepath.Base(cp), false))

	rep := vVerify(t, cache, VerifyOptions{Repos: []*RepoInfo{repo}})
	if !rep.OK() || rep.Unverifiable != 3 || rep.Checked != 3 || rep.BytesHashed != 0 {
		t.Fatalf("report = %+v", rep)
	}
	for _, p := range []string{xBlob, uBlob, cp} {
		r := vFind(t, rep, p)
		if r.Status != VerifyUnverifiable || r.Algorithm != "" || r.Expected != "" || r.Actual != "" || r.Detail == "" {
			t.Errorf("result = %+v", r)
		}
	}
	if r := vFind(t, rep, cp); !strings.Contains(r.Detail, "snapshot") || r.Size != int64(len(copied)) {
		t.Errorf("copied-file result = %+v", r)
	}
}

// vWithTimeout fails the test instead of hanging forever.
func vWithTimeout(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("timed out: a FIFO was opened for reading?")
	}
}

func TestVerifyNotRegular(t *testing.T) {
	cache := vCacheDir(t)
	repo := vRepo(t, cache, "model", "org/fifo")
	fifo := filepath.Join(repo.RepoPath, "blobs", vSHA256([]byte("fifo")))
	vMust(t, syscall.Mkfifo(fifo, 0o644))
	vLink(t, repo, vCommit1, "pipe.bin", fifo)
	sock := filepath.Join(repo.RepoPath, "blobs", vGitSHA1([]byte("sock")))
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	vLink(t, repo, vCommit1, "sock.bin", sock)
	ok := vBlob(t, repo, "", []byte("fine"))
	vLink(t, repo, vCommit1, "ok.bin", ok)

	var rep *VerifyReport
	vWithTimeout(t, func() { rep, err = Verify(context.Background(), cache, VerifyOptions{Repos: []*RepoInfo{repo}}) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problems != 2 || rep.BytesHashed != 4 {
		t.Fatalf("report = %+v", rep)
	}
	for _, p := range []string{fifo, sock} {
		if r := vFind(t, rep, p); r.Status != VerifyNotRegular || r.Actual != "" || r.Detail == "" {
			t.Errorf("result = %+v", r)
		}
	}
	if r := vFind(t, rep, ok); r.Status != VerifyOK {
		t.Errorf("regular blob result = %+v", r)
	}
}

// TestVerifyOpenFIFO checks the race-safe open itself: a FIFO that replaced
// a blob after the lstat is opened without blocking and refused by fstat.
func TestVerifyOpenFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	vMust(t, syscall.Mkfifo(fifo, 0o644))
	vWithTimeout(t, func() {
		f, _, status, detail := verifyOpen(fifo)
		if f != nil {
			f.Close()
			t.Errorf("verifyOpen returned a FIFO")
		}
		if status != VerifyNotRegular || !strings.Contains(detail, "fifo") {
			t.Errorf("status %q detail %q", status, detail)
		}
	})
	// A symlink swapped in is refused too (O_NOFOLLOW).
	link := filepath.Join(t.TempDir(), "link")
	vMust(t, os.Symlink("/etc/hostname", link))
	if f, _, status, _ := verifyOpen(link); f != nil || status != VerifyNotRegular {
		t.Errorf("verifyOpen(symlink): status %q", status)
	}
}

func TestVerifyOutsideCache(t *testing.T) {
	cache := vCacheDir(t)
	outsideDir, err := filepath.EvalSymlinks(t.TempDir())
	vMust(t, err)
	secret := []byte("outside the cache: never read")
	outside := filepath.Join(outsideDir, vSHA256(secret))
	vMust(t, os.WriteFile(outside, secret, 0o644))
	// A file beside the cache whose path shares the cache dir as a string prefix.
	beside := cache + "-beside"
	vMust(t, os.MkdirAll(beside, 0o755))
	t.Cleanup(func() { os.RemoveAll(beside) })
	besideFile := filepath.Join(beside, vSHA256(secret))
	vMust(t, os.WriteFile(besideFile, secret, 0o644))
	old := time.Now().Add(-48 * time.Hour)
	for _, p := range []string{outside, besideFile} {
		vMust(t, os.Chtimes(p, old, time.Now())) // atime < mtime: any read updates atime (relatime)
	}

	repo := vRepo(t, cache, "model", "org/escape")
	vLink(t, repo, vCommit1, "passwd", outside)
	vLink(t, repo, vCommit1, "beside", besideFile)
	// A FileInfo built by hand, unresolved: blobs/<etag> is itself a link
	// leading out, with no Outside hint.
	inner := filepath.Join(repo.RepoPath, "blobs", vSHA256(secret))
	vMust(t, os.Symlink(outside, inner))
	rev := vRev(t, repo, vCommit1)
	fp := filepath.Join(rev.SnapshotPath, "inner")
	vMust(t, os.Symlink("../../blobs/"+vSHA256(secret), fp))
	rev.Files = append(rev.Files, &FileInfo{FileName: "inner", SnapshotPath: rev.SnapshotPath, BlobPath: inner, RelPath: "inner"})

	rep := vVerify(t, cache, VerifyOptions{Repos: []*RepoInfo{repo}})
	if rep.OK() || rep.BytesHashed != 0 || rep.Checked != 2 {
		t.Fatalf("report = %+v", rep)
	}
	for _, p := range []string{outside, besideFile} {
		r := vFind(t, rep, p)
		if r.Status != VerifyUnreadable || r.Detail != "resolves outside the cache directory" ||
			r.Expected != "" || r.Actual != "" || r.Algorithm != "" {
			t.Errorf("result = %+v", r)
		}
	}
	if r := vFind(t, rep, outside); len(r.FilePaths) != 2 {
		t.Errorf("passwd and inner both lead to %s: %v", outside, r.FilePaths)
	}
	// Never read: the atime did not move (checked only where reads move it).
	for _, p := range []string{outside, besideFile} {
		var st syscall.Stat_t
		vMust(t, syscall.Stat(p, &st))
		if st.Atim.Sec != old.Unix() {
			t.Errorf("%s was read by Verify (atime changed)", p)
		}
	}
	if _, err := os.ReadFile(outside); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	vMust(t, syscall.Stat(outside, &st))
	if st.Atim.Sec == old.Unix() {
		t.Log("this filesystem does not update atime on reads: the never-read check was vacuous")
	}
}

func TestVerifyDangling(t *testing.T) {
	cache := vCacheDir(t)
	// As a scan would leave it out, the repo comes without revisions: only
	// the snapshot walk finds the broken link.
	broken := vRepo(t, cache, "model", "org/broken")
	missing := filepath.Join(broken.RepoPath, "blobs", vSHA256([]byte("gone")))
	snap := filepath.Join(broken.RepoPath, "snapshots", vCommit1)
	vMust(t, os.MkdirAll(filepath.Join(snap, "sub"), 0o755))
	link := filepath.Join(snap, "sub", "model.bin")
	vMust(t, os.Symlink("../../../blobs/"+filepath.Base(missing), link))
	okBlob := vBlob(t, broken, "", []byte("still here"))
	vMust(t, os.Symlink("../../blobs/"+filepath.Base(okBlob), filepath.Join(snap, "fine.bin")))
	// A symlinked dir inside snapshots leading to more broken links: not followed.
	elsewhere := t.TempDir()
	vMust(t, os.Symlink("/nonexistent/blob", filepath.Join(elsewhere, "broken")))
	vMust(t, os.Symlink(elsewhere, filepath.Join(snap, "dirlink")))

	// A FileInfo whose blob vanished after the scan: one result, not two.
	other := vRepo(t, cache, "model", "org/vanished")
	b := vBlob(t, other, "", []byte("soon gone"))
	f := vLink(t, other, vCommit1, "w.bin", b)
	vMust(t, os.Remove(b))

	rep := vVerify(t, cache, VerifyOptions{Repos: []*RepoInfo{broken, other}})
	if rep.OK() || rep.Problems != 2 || rep.Checked != 2 {
		t.Fatalf("report = %+v", rep)
	}
	d := vFind(t, rep, missing)
	if d.Status != VerifyDangling || !reflect.DeepEqual(d.FilePaths, []string{link}) || d.RepoID != "org/broken" ||
		d.Expected != filepath.Base(missing) || d.Actual != "" {
		t.Errorf("walked dangling result = %+v", d)
	}
	v := vFind(t, rep, b)
	if v.Status != VerifyDangling || !reflect.DeepEqual(v.FilePaths, []string{f.FilePath()}) {
		t.Errorf("vanished result = %+v", v)
	}
}

func TestVerifyProgress(t *testing.T) {
	cache := vCacheDir(t)
	repo := vRepo(t, cache, "model", "org/progress")
	var want int64
	for i := range 6 {
		content := bytes.Repeat([]byte{byte(i)}, 300000*(i+1))
		p := vBlob(t, repo, "", content)
		vLink(t, repo, vCommit1, fmt.Sprintf("f%d", i), p)
		if i%2 == 0 { // shared: counted once
			vLink(t, repo, vCommit2, fmt.Sprintf("f%d", i), p)
		}
		want += int64(len(content))
	}
	var calls [][2]int64
	var mu sync.Mutex // only to make -race certain: Verify serializes calls
	inCall := false
	rep := vVerify(t, cache, VerifyOptions{Repos: []*RepoInfo{repo}, Workers: 3, Progress: func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if inCall {
			t.Error("concurrent progress calls")
		}
		inCall = true
		calls = append(calls, [2]int64{done, total})
		inCall = false
	}})
	if rep.BytesHashed != want {
		t.Fatalf("BytesHashed = %d, want %d", rep.BytesHashed, want)
	}
	if len(calls) < 2 || calls[0] != [2]int64{0, want} {
		t.Fatalf("calls = %v", calls)
	}
	for i, c := range calls {
		if c[1] != want || (i > 0 && c[0] < calls[i-1][0]) {
			t.Fatalf("call %d = %v (total %d): %v", i, c, want, calls)
		}
	}
	if last := calls[len(calls)-1]; last[0] != rep.BytesHashed {
		t.Errorf("last call %v, BytesHashed %d", last, rep.BytesHashed)
	}
}

func TestVerifyCancel(t *testing.T) {
	cache := vCacheDir(t)
	repo := vRepo(t, cache, "model", "org/cancel")
	for i := range 4 {
		content := bytes.Repeat([]byte{byte(i + 1)}, 3<<20)
		vLink(t, repo, vCommit1, fmt.Sprintf("f%d", i), vBlob(t, repo, "", content))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Verify(ctx, cache, VerifyOptions{Repos: []*RepoInfo{repo}})
	if !errors.Is(err, context.Canceled) || rep != nil {
		t.Fatalf("pre-cancelled: rep %v err %v", rep, err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	var last, total int64
	rep, err = Verify(ctx, cache, VerifyOptions{Repos: []*RepoInfo{repo}, Workers: 1, Progress: func(d, tot int64) {
		last, total = d, tot
		if d > 0 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || rep != nil {
		t.Fatalf("cancelled mid-run: rep %v err %v", rep, err)
	}
	if last >= total {
		t.Errorf("hashed %d of %d bytes despite the cancel", last, total)
	}
}

func TestVerifyDeterministic(t *testing.T) {
	cache := vCacheDir(t)
	var repos []*RepoInfo
	for _, id := range []string{"z/last", "a/first", "m/mid"} {
		repo := vRepo(t, cache, "model", id)
		for i := range 5 {
			content := []byte(fmt.Sprintf("%s file %d", id, i))
			name := ""
			if i%2 == 1 {
				name = vGitSHA1(content)
			}
			vLink(t, repo, vCommit1, fmt.Sprintf("f%d", i), vBlob(t, repo, name, content))
		}
		vMust(t, os.Symlink("../../blobs/missing", filepath.Join(repo.RepoPath, "snapshots", vCommit1, "gone")))
		repos = append(repos, repo)
	}
	first := vVerify(t, cache, VerifyOptions{Repos: repos, Workers: 1})
	for _, w := range []int{2, 8} {
		again := vVerify(t, cache, VerifyOptions{Repos: repos, Workers: w})
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("workers %d: results differ", w)
		}
	}
	if first.Checked != 18 || first.Problems != 3 {
		t.Fatalf("report = %+v", first)
	}
	for i := 1; i < len(first.Results); i++ {
		if filepath.Dir(filepath.Dir(first.Results[i-1].BlobPath)) > filepath.Dir(filepath.Dir(first.Results[i].BlobPath)) {
			t.Errorf("not sorted by repo: %s before %s", first.Results[i-1].BlobPath, first.Results[i].BlobPath)
		}
	}
	// Empty but non-nil Repos checks nothing.
	if r := vVerify(t, cache, VerifyOptions{Repos: []*RepoInfo{}}); r.Checked != 0 || !r.OK() {
		t.Errorf("empty Repos: %+v", r)
	}
}

func TestVerifyCacheDirErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	var nf *CacheNotFoundError
	if _, err := Verify(context.Background(), missing, VerifyOptions{Repos: []*RepoInfo{}}); !errors.As(err, &nf) {
		t.Errorf("missing cache dir: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	vMust(t, os.WriteFile(file, nil, 0o644))
	var nd *NotADirectoryError
	if _, err := Verify(context.Background(), file, VerifyOptions{Repos: []*RepoInfo{}}); !errors.As(err, &nd) {
		t.Errorf("file as cache dir: %v", err)
	}
}
