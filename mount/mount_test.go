package mount

// End-to-end tests of real mounts. The test process mounts; only child
// processes touch the mount (see helpers_test.go).

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

// expFile is one path the mount should show under a type folder.
type expFile struct {
	repo *cachecore.RepoInfo
	rev  *cachecore.RevisionInfo
	file *cachecore.FileInfo
}

// expectedFiles lists every file path (relative to the mount root) of the
// repos of the given types: each revision's files under by-commit/<hash>/
// and under by-ref/<ref>/ for each of its refs.
func expectedFiles(info *cachecore.CacheInfo, types ...string) map[string]expFile {
	out := map[string]expFile{}
	for _, r := range info.Repos {
		if len(types) > 0 && !contains(types, r.RepoType) {
			continue
		}
		for _, rev := range r.Revisions {
			for _, f := range rev.Files {
				e := expFile{r, rev, f}
				out[repoPath(r)+"/by-commit/"+rev.CommitHash+"/"+f.RelPath] = e
				for _, ref := range rev.Refs {
					out[repoPath(r)+"/by-ref/"+ref+"/"+f.RelPath] = e
				}
			}
		}
	}
	return out
}

// topNames is what `ls MOUNT/<type>s` should list: the first segment of
// every repo id of that type.
func topNames(info *cachecore.CacheInfo, typ string) []string {
	set := map[string]bool{}
	for _, r := range info.Repos {
		if r.RepoType == typ {
			set[strings.SplitN(r.RepoID, "/", 2)[0]] = true
		}
	}
	out := []string{}
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func sortedLines(s string) []string {
	l := lines(s)
	if l == nil {
		l = []string{}
	}
	sort.Strings(l)
	return l
}

// nlinkOf is the number of paths of a repo reaching a blob.
func nlinkOf(r *cachecore.RepoInfo, blob string) int {
	n := 0
	for _, rev := range r.Revisions {
		for _, f := range rev.Files {
			if f.BlobPath == blob {
				n += 1 + len(rev.Refs)
			}
		}
	}
	return n
}

func TestMountIsReadyBeforeTheScan(t *testing.T) {
	cache, info := basicCache(t)
	m, mp := startMount(t, cache, Options{})
	// No WaitReady: listing and reading work as soon as Start returns.
	for _, typ := range cachecore.RepoTypes {
		got := sortedLines(mustRun(t, "ls", filepath.Join(mp, typ+"s")))
		if want := topNames(info, typ); !reflect.DeepEqual(got, want) {
			t.Errorf("ls %ss right after Start = %q, want %q", typ, got, want)
		}
	}
	r := findRepo(t, info, "model", "acme/tiny-model")
	f := findFile(t, findRev(t, r, mainCommit), "config.json")
	if got := catBytes(t, filepath.Join(mp, tinyModel, "by-ref/main/config.json")); !bytes.Equal(got, readBlob(t, f)) {
		t.Errorf("cat by-ref/main/config.json right after Start = %q, want the blob's bytes", got)
	}
	waitReady(t, m)
}

// TestRepoFolderAttrsBeforeItsScan asks for a repo folder's attributes
// and xattrs right after Start, for the repos scanned last of a cache with
// many repos: they must be the scan's values, not the placeholder's
// (SEMANTICS.md: a repo folder's mtime is its last_modified).
func TestRepoFolderAttrsBeforeItsScan(t *testing.T) {
	needTool(t, "getfattr")
	cache := testcache.Basic(t)
	for i := 0; i < 2000; i++ {
		copyTree(t, filepath.Join(cache, "models--gpt2"), filepath.Join(cache, fmt.Sprintf("models--org--m%d", i)))
	}
	names, err := cachecore.ListEntries(cache)
	if err != nil {
		t.Fatal(err)
	}
	var last []string // folders scanned last: the end of the listing
	for i := len(names) - 1; i >= 0 && len(last) < 5; i-- {
		if strings.HasPrefix(names[i], "models--org--m") {
			last = append(last, names[i])
		}
	}
	_, mp := startMount(t, cache, Options{})
	var paths []string
	for _, n := range last {
		paths = append(paths, filepath.Join(mp, "models/org", strings.TrimPrefix(n, "models--org--")))
	}
	xattrs := mustRun(t, "getfattr", append([]string{"-n", "user.hf.size_on_disk", "--absolute-names"}, paths...)...)
	mtimes := lines(mustRun(t, "stat", append([]string{"-c", "%Y"}, paths...)...))

	info := scan(t, cache)
	var wantX strings.Builder
	for i, n := range last {
		r := findRepo(t, info, "model", "org/"+strings.TrimPrefix(n, "models--org--"))
		fmt.Fprintf(&wantX, "# file: %s\nuser.hf.size_on_disk=\"%d\"\n\n", paths[i], r.SizeOnDisk)
		if want := strconv.FormatInt(int64(r.LastModified), 10); i >= len(mtimes) || mtimes[i] != want {
			t.Errorf("stat -c %%Y %s right after Start: %q (all: %q), want the repo's last_modified %s", paths[i], at(mtimes, i), mtimes, want)
		}
	}
	if xattrs != wantX.String() {
		t.Errorf("user.hf.size_on_disk right after Start:\n%s\nwant:\n%s", xattrs, wantX.String())
	}
}

func at(l []string, i int) string {
	if i < len(l) {
		return l[i]
	}
	return ""
}

func TestConformanceFilesReadAsTheirBlobs(t *testing.T) {
	cache, info := basicCache(t)
	_, mp := startMount(t, cache, Options{})
	all := expectedFiles(info)

	t.Run("cat-every-path", func(t *testing.T) {
		byCommit, byRef := 0, 0
		paths := make([]string, 0, len(all))
		for p := range all {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			e := all[p]
			r := run(t, "cat", filepath.Join(mp, p))
			if r.code != 0 {
				t.Errorf("cat %s: %s", p, r)
				continue
			}
			if want := readBlob(t, e.file); r.stdout != string(want) {
				t.Errorf("cat %s = %q, want the blob %s: %q", p, r.stdout, e.file.BlobPath, want)
			}
			if strings.Contains(p, "/by-commit/") {
				byCommit++
			} else {
				byRef++
			}
		}
		if byCommit == 0 || byRef == 0 {
			t.Fatalf("fixture: %d by-commit and %d by-ref paths checked", byCommit, byRef)
		}
	})

	t.Run("find-models-counts-every-path", func(t *testing.T) {
		models := expectedFiles(info, "model")
		var want []string
		for p := range models {
			want = append(want, filepath.Join(mp, p))
		}
		sort.Strings(want)
		got := sortedLines(mustRun(t, "find", filepath.Join(mp, "models"), "-type", "f"))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("find models -type f:\n got %d paths %q\nwant %d paths %q", len(got), got, len(want), want)
		}
		count := strings.TrimSpace(sh(t, `find "$1" -type f | wc -l`, filepath.Join(mp, "models")).stdout)
		if count != strconv.Itoa(len(models)) {
			t.Errorf("find models -type f | wc -l = %s, want %d", count, len(models))
		}
	})

	r := findRepo(t, info, "model", "acme/tiny-model")
	mainRev := findRev(t, r, mainCommit)
	checkCopy := func(t *testing.T, dst string) {
		t.Helper()
		seen := map[string]bool{}
		err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(dst, p)
			if !d.Type().IsRegular() {
				t.Errorf("%s is %v, want a plain file", rel, d.Type())
				return nil
			}
			f := findFile(t, mainRev, filepath.ToSlash(rel))
			got, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, readBlob(t, f)) {
				t.Errorf("copied %s = %q, want the blob's %q", rel, got, readBlob(t, f))
			}
			seen[filepath.ToSlash(rel)] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range mainRev.Files {
			if !seen[f.RelPath] {
				t.Errorf("%s missing from the copy", f.RelPath)
			}
		}
	}

	t.Run("cp-r-gives-plain-files", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "copy")
		mustRun(t, "cp", "-r", filepath.Join(mp, tinyModel, "by-ref/main"), dst)
		checkCopy(t, dst)
	})

	t.Run("tar-lists-regular-files", func(t *testing.T) {
		list := sh(t, `tar -cf - -C "$1" main | tar -tvf -`, filepath.Join(mp, tinyModel, "by-ref"))
		if list.code != 0 {
			t.Fatalf("tar: %s", list)
		}
		files, hard := 0, 0
		for _, l := range lines(list.stdout) {
			switch l[0] {
			case 'd':
			case '-':
				files++
			case 'h': // same inode as an earlier member (copy_a.txt / copy_b.txt share a blob)
				files++
				hard++
			default:
				t.Errorf("tar member is not a regular file or folder: %s", l)
			}
		}
		if files != len(mainRev.Files) {
			t.Errorf("tar lists %d files, want %d:\n%s", files, len(mainRev.Files), list.stdout)
		}
		t.Logf("tar stored %d of %d files as hard links to an earlier member (one inode per blob)", hard, files)
		dst := filepath.Join(t.TempDir(), "x")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		if r := sh(t, `tar -cf - -C "$1" main | tar -xf - -C "$2"`, filepath.Join(mp, tinyModel, "by-ref"), dst); r.code != 0 {
			t.Fatalf("tar round trip: %s", r)
		}
		checkCopy(t, filepath.Join(dst, "main"))
	})
}

func duBytes(t *testing.T, flag, path string) int64 {
	t.Helper()
	out := strings.Fields(mustRun(t, "du", flag, path))
	if len(out) < 1 {
		t.Fatalf("du %s %s: no output", flag, path)
	}
	n, err := strconv.ParseInt(out[0], 10, 64)
	if err != nil {
		t.Fatalf("du %s %s: %q", flag, path, out)
	}
	return n
}

func TestDuMatchesSizeOnDisk(t *testing.T) {
	cache, info := basicCache(t)
	_, mp := startMount(t, cache, Options{})
	perType := map[string]int64{}
	for _, r := range info.Repos {
		perType[r.RepoType] += r.SizeOnDisk
		if got := duBytes(t, "-sb", filepath.Join(mp, repoPath(r))); got != r.SizeOnDisk {
			t.Errorf("du -sb %s = %d, want size_on_disk %d", repoPath(r), got, r.SizeOnDisk)
		}
		var blocks int64
		seen := map[string]bool{}
		for _, rev := range r.Revisions {
			for _, f := range rev.Files {
				if seen[f.BlobPath] {
					continue
				}
				seen[f.BlobPath] = true
				var st syscall.Stat_t
				if err := syscall.Stat(f.BlobPath, &st); err != nil {
					t.Fatal(err)
				}
				blocks += st.Blocks * 512
			}
		}
		if got := duBytes(t, "-sB1", filepath.Join(mp, repoPath(r))); got != blocks {
			t.Errorf("du -sB1 %s = %d, want the blobs' st_blocks*512 sum %d", repoPath(r), got, blocks)
		}
	}
	for _, typ := range cachecore.RepoTypes {
		if got := duBytes(t, "-sb", filepath.Join(mp, typ+"s")); got != perType[typ] {
			t.Errorf("du -sb %ss = %d, want the sum of its repos' size_on_disk %d", typ, got, perType[typ])
		}
	}
	if perType["model"] == 0 {
		t.Fatal("fixture: no model bytes")
	}
}

func TestSameBlobSameInodeAndModes(t *testing.T) {
	cache, info := basicCache(t)
	_, mp := startMount(t, cache, Options{})
	r := findRepo(t, info, "model", "acme/tiny-model")
	readme := findFile(t, findRev(t, r, mainCommit), "README.md")
	if findFile(t, findRev(t, r, detached), "README.md").BlobPath != readme.BlobPath {
		t.Fatal("fixture: the two README.md should share a blob")
	}
	a := strings.Fields(mustRun(t, "stat", "-c", "%i %h %s", filepath.Join(mp, tinyModel, "by-ref/main/README.md")))
	b := strings.Fields(mustRun(t, "stat", "-c", "%i %h %s", filepath.Join(mp, tinyModel, "by-commit", detached, "README.md")))
	want := []string{a[0], strconv.Itoa(nlinkOf(r, readme.BlobPath)), strconv.FormatInt(readme.SizeOnDisk, 10)}
	if !reflect.DeepEqual(a, want) || !reflect.DeepEqual(b, want) {
		t.Errorf("stat %%i %%h %%s: by-ref/main/README.md %q, by-commit/<detached>/README.md %q; want both %q", a, b, want)
	}

	// Every path of every repo: one inode per (repo, blob), st_nlink the
	// number of its paths, 0444 regular files of the blob's size; folders
	// 0555 and size 0; nothing else.
	all := expectedFiles(info)
	out := mustRun(t, "find", filepath.Join(mp, "models"), filepath.Join(mp, "datasets"), filepath.Join(mp, "spaces"),
		"-printf", `%y %i %n %s %m %p\n`)
	inoOf := map[string]string{} // repo folder + blob -> inode
	blobOf := map[string]string{}
	files := 0
	for _, l := range lines(out) {
		f := strings.SplitN(l, " ", 6)
		if len(f) != 6 {
			t.Fatalf("find output %q", l)
		}
		typ, ino, nlink, size, mode, p := f[0], f[1], f[2], f[3], f[4], strings.TrimPrefix(f[5], mp+"/")
		switch typ {
		case "d":
			if size != "0" || mode != "555" {
				t.Errorf("folder %s: size %s mode %s, want 0 and 555", p, size, mode)
			}
		case "f":
			files++
			e, ok := all[p]
			if !ok {
				t.Errorf("unexpected file %s", p)
				continue
			}
			if mode != "444" || size != strconv.FormatInt(e.file.SizeOnDisk, 10) || nlink != strconv.Itoa(nlinkOf(e.repo, e.file.BlobPath)) {
				t.Errorf("%s: mode %s size %s nlink %s; want 444, %d, %d", p, mode, size, nlink, e.file.SizeOnDisk, nlinkOf(e.repo, e.file.BlobPath))
			}
			key := e.repo.FolderName() + ":" + e.file.BlobPath
			if prev, ok := inoOf[key]; ok && prev != ino {
				t.Errorf("%s: inode %s, but another path of the same blob has %s", p, ino, prev)
			}
			inoOf[key] = ino
			if other, ok := blobOf[ino]; ok && other != key {
				t.Errorf("%s: inode %s is shared with a different blob %s", p, ino, other)
			}
			blobOf[ino] = key
		default:
			t.Errorf("%s: type %s, want only folders and regular files", p, typ)
		}
	}
	if files != len(all) {
		t.Errorf("find saw %d files, want %d", files, len(all))
	}
}

func TestByRefFollowsTheCache(t *testing.T) {
	needTool(t, "getfattr")
	cache, info := basicCache(t)
	_, mp := startMount(t, cache, Options{PollInterval: 200 * time.Millisecond})
	r := findRepo(t, info, "model", "acme/tiny-model")
	repoDir := filepath.Join(mp, tinyModel)

	t.Run("rewritten-ref", func(t *testing.T) {
		oldBlob := readBlob(t, findFile(t, findRev(t, r, mainCommit), "config.json"))
		newRev := findRev(t, r, v1Commit)
		newBlob := readBlob(t, findFile(t, newRev, "config.json"))
		if bytes.Equal(oldBlob, newBlob) {
			t.Fatal("fixture: config.json should differ between the commits")
		}
		cfg := filepath.Join(repoDir, "by-ref/main/config.json")
		// Warm the kernel's caches with the old revision first.
		if got := catBytes(t, cfg); !bytes.Equal(got, oldBlob) {
			t.Fatalf("before: cat = %q, want %q", got, oldBlob)
		}
		mustRun(t, "ls", "-la", filepath.Join(repoDir, "by-ref/main"))
		writeAtomic(t, filepath.Join(r.RepoPath, "refs/main"), []byte(v1Commit))
		poll(t, followDeadline, "by-ref/main/config.json shows the new commit's bytes", func() (bool, string) {
			res := run(t, "cat", cfg)
			return res.code == 0 && res.stdout == string(newBlob), res.String()
		})
		var top []string
		for _, f := range newRev.Files {
			top = append(top, strings.SplitN(f.RelPath, "/", 2)[0])
		}
		top = sortedLines(strings.Join(dedupe(top), "\n"))
		if got := sortedLines(mustRun(t, "ls", "-A", filepath.Join(repoDir, "by-ref/main"))); !reflect.DeepEqual(got, top) {
			t.Errorf("ls by-ref/main after the move = %q, want %q", got, top)
		}
		if got := getfattrDump(t, filepath.Join(repoDir, "by-ref/main"))["user.hf.commit"]; got != v1Commit {
			t.Errorf("user.hf.commit of by-ref/main = %q, want %s", got, v1Commit)
		}
		// The old commit is still there, detached.
		if got := catBytes(t, filepath.Join(repoDir, "by-commit", mainCommit, "config.json")); !bytes.Equal(got, oldBlob) {
			t.Errorf("by-commit/<old main>/config.json = %q", got)
		}
	})

	t.Run("new-revision-appears", func(t *testing.T) {
		const newHash = "0123456789abcdef0123456789abcdef01234567"
		src := findRev(t, r, mainCommit)
		staging := filepath.Join(r.RepoPath, "staging-new-rev")
		copyTree(t, src.SnapshotPath, staging)
		if err := os.Rename(staging, filepath.Join(r.RepoPath, "snapshots", newHash)); err != nil {
			t.Fatal(err)
		}
		writeAtomic(t, filepath.Join(r.RepoPath, "refs/feature/new"), []byte(newHash))
		want := readBlob(t, findFile(t, src, "config.json"))
		poll(t, followDeadline, "by-ref/feature/new/config.json appears", func() (bool, string) {
			res := run(t, "cat", filepath.Join(repoDir, "by-ref/feature/new/config.json"))
			return res.code == 0 && res.stdout == string(want), res.String()
		})
		if got := lines(mustRun(t, "ls", filepath.Join(repoDir, "by-commit"))); !contains(got, newHash) {
			t.Errorf("ls by-commit = %q, want %s in it", got, newHash)
		}
		if got := sortedLines(mustRun(t, "ls", filepath.Join(repoDir, "by-ref/feature"))); !reflect.DeepEqual(got, []string{"new", "x"}) {
			t.Errorf("ls by-ref/feature = %q, want [new x]", got)
		}
		var wantFiles []string
		for _, f := range src.Files {
			wantFiles = append(wantFiles, filepath.Join(repoDir, "by-commit", newHash, f.RelPath))
		}
		sort.Strings(wantFiles)
		if got := sortedLines(mustRun(t, "find", filepath.Join(repoDir, "by-commit", newHash), "-type", "f")); !reflect.DeepEqual(got, wantFiles) {
			t.Errorf("files of the new revision = %q, want %q", got, wantFiles)
		}
	})

	t.Run("removed-revision-vanishes", func(t *testing.T) {
		revDir := filepath.Join(repoDir, "by-commit", detached)
		// Look it up first so the kernel caches it (it is a stable entry).
		mustRun(t, "cat", filepath.Join(revDir, "README.md"))
		if got := lines(mustRun(t, "ls", filepath.Join(repoDir, "by-commit"))); !contains(got, detached) {
			t.Fatalf("fixture: ls by-commit = %q lacks %s", got, detached)
		}
		if err := os.RemoveAll(findRev(t, r, detached).SnapshotPath); err != nil {
			t.Fatal(err)
		}
		poll(t, followDeadline, "the removed revision vanishes", func() (bool, string) {
			ls := run(t, "ls", filepath.Join(repoDir, "by-commit"))
			st := run(t, "stat", revDir)
			gone := ls.code == 0 && !contains(lines(ls.stdout), detached) &&
				st.code != 0 && strings.Contains(st.stderr, "No such file or directory")
			return gone, "ls: " + ls.String() + "\nstat: " + st.String()
		})
		if res := run(t, "cat", filepath.Join(revDir, "README.md")); res.code == 0 {
			t.Errorf("cat of a file of the removed revision still works: %s", res)
		}
	})
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func TestWritesAreRefused(t *testing.T) {
	needTool(t, "setfattr")
	cache, info := basicCache(t)
	_, mp := startMount(t, cache, Options{})
	before := treeState(t, cache)
	r := findRepo(t, info, "model", "acme/tiny-model")
	cfgBlob := readBlob(t, findFile(t, findRev(t, r, mainCommit), "config.json"))
	main := filepath.Join(mp, tinyModel, "by-ref/main")
	f := filepath.Join(main, "config.json")

	for _, c := range []struct{ name, script string }{
		{"touch-new", `touch "$1/new-file"`},
		{"touch-existing", `touch "$2"`},
		{"write-existing", `echo x > "$2"`},
		{"append-existing", `echo x >> "$2"`},
		{"truncate", `truncate -s 0 "$2"`},
		{"rm", `rm "$2"`},
		{"rm-rf-revision", `rm -rf "$1"`},
		{"mkdir", `mkdir "$1/newdir"`},
		{"mkdir-at-root", `mkdir "$3/newdir"`},
		{"rmdir", `rmdir "$1/sub/dir"`},
		{"symlink", `ln -s config.json "$1/link"`},
		{"hard-link", `ln "$2" "$1/hardlink"`},
		{"chmod", `chmod 644 "$2"`},
		{"chmod-folder", `chmod 755 "$1"`},
		{"setfattr", `setfattr -n user.x -v 1 "$2"`},
		{"setfattr-remove", `setfattr -x user.hf.etag "$2"`},
		{"rename-inside", `mv "$2" "$1/renamed.json"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := sh(t, c.script, main, f, mp)
			if res.code == 0 || !strings.Contains(res.stderr, "Read-only file system") {
				t.Errorf("%s: %s; want a failure with \"Read-only file system\"", c.script, res)
			}
		})
	}

	revDir := filepath.Join(mp, tinyModel, "by-commit", detached)
	t.Run("mv-revision-to-another-repo", func(t *testing.T) {
		res := run(t, "mv", revDir, filepath.Join(mp, "models/gpt2/by-commit/"))
		if res.code == 0 || !strings.Contains(res.stderr, "Read-only file system") {
			t.Errorf("mv to another repo: %s; want a failure with \"Read-only file system\"", res)
		}
		if got := lines(mustRun(t, "ls", filepath.Join(mp, "models/gpt2/by-commit"))); contains(got, detached) {
			t.Errorf("gpt2/by-commit now lists %s", detached)
		}
	})
	t.Run("mv-revision-within-by-commit", func(t *testing.T) {
		res := run(t, "mv", revDir, filepath.Join(mp, tinyModel, "by-commit", "renamed"))
		if res.code == 0 || !strings.Contains(res.stderr, "Read-only file system") {
			t.Errorf("mv inside by-commit: %s; want a failure with \"Read-only file system\"", res)
		}
	})

	mustRun(t, "stat", revDir)
	if got := catBytes(t, f); !bytes.Equal(got, cfgBlob) {
		t.Errorf("after the refused writes, config.json = %q, want %q", got, cfgBlob)
	}
	if d := diffTrees(before, treeState(t, cache)); len(d) > 0 {
		t.Errorf("the cache changed under refused writes:\n%s", strings.Join(d, "\n"))
	}
}

// repoDirsIn lists the repos a mount shows, as <type>s/<id>, by finding
// their by-ref folders.
func repoDirsIn(t *testing.T, mp string) []string {
	t.Helper()
	var out []string
	for _, l := range lines(mustRun(t, "find", mp, "-name", "by-ref", "-prune")) {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(l, mp+"/"), "/by-ref"))
	}
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func TestCorruptedCasesAreLeftOut(t *testing.T) {
	needFuse(t)
	cases := testcache.Cases(t)
	// broken-symlink holds only the broken repo: give it a healthy
	// neighbour, so "healthy repos stay" is checked there too.
	copyTree(t, filepath.Join(cases, "healthy", "models--acme--ok"), filepath.Join(cases, "broken-symlink", "models--acme--fine"))

	for _, name := range []string{"broken-symlink", "unknown-repo-type", "symlink-outside-cache"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(cases, name)
			info := scan(t, dir)
			if len(info.Repos) == 0 {
				t.Fatal("fixture: no healthy repo in the case")
			}
			_, mp := startMount(t, dir, Options{})

			var want []string
			for _, r := range info.Repos {
				want = append(want, repoPath(r))
			}
			sort.Strings(want)
			if got := repoDirsIn(t, mp); !reflect.DeepEqual(got, want) {
				t.Errorf("repos in the mount = %q, want the scan's %q", got, want)
			}
			for _, typ := range cachecore.RepoTypes {
				if got := sortedLines(mustRun(t, "ls", filepath.Join(mp, typ+"s"))); !reflect.DeepEqual(got, topNames(info, typ)) {
					t.Errorf("ls %ss = %q, want %q", typ, got, topNames(info, typ))
				}
			}
			if name != "symlink-outside-cache" && len(info.Warnings) == 0 {
				t.Fatal("fixture: the case should have corrupted repos")
			}
			for _, w := range info.Warnings {
				folder := filepath.Base(w.RepoPath)
				_, id, _ := strings.Cut(folder, "--")
				seg := id[strings.LastIndex(id, "--")+2:]
				if seg == "" {
					seg = id
				}
				if got := mustRun(t, "find", mp, "-name", seg); got != "" {
					t.Errorf("corrupted %s shows in the mount: %q", folder, got)
				}
			}

			doc, _ := readStatus(t, mp)
			var wantWarnings []string
			for _, w := range info.Warnings {
				wantWarnings = append(wantWarnings, w.Message)
				found := false
				for _, lo := range doc.LeftOut {
					if lo.Path == w.RepoPath && strings.Contains(lo.Reason, w.Message) {
						found = true
					}
				}
				if !found {
					t.Errorf(".status.json left_out %+v lacks %s (%s)", doc.LeftOut, w.RepoPath, w.Message)
				}
			}
			sort.Strings(wantWarnings)
			gotWarnings := append([]string(nil), doc.Warnings...)
			sort.Strings(gotWarnings)
			if !reflect.DeepEqual(gotWarnings, wantWarnings) {
				t.Errorf(".status.json warnings = %q, want %q", gotWarnings, wantWarnings)
			}
			if !sameNotices(doc.Notices, info.Notices) {
				t.Errorf(".status.json notices = %+v, want the scan's %+v", doc.Notices, info.Notices)
			}
			if doc.Repos != len(info.Repos) || doc.SizeOnDisk != info.SizeOnDisk {
				t.Errorf(".status.json repos %d size %d, want %d %d", doc.Repos, doc.SizeOnDisk, len(info.Repos), info.SizeOnDisk)
			}

			// Healthy files of the healthy repos read fine.
			for p, e := range expectedFiles(info) {
				if e.file.Blob.Outside {
					continue
				}
				if got := run(t, "cat", filepath.Join(mp, p)); got.code != 0 || got.stdout != string(readBlob(t, e.file)) {
					t.Errorf("cat %s: %s", p, got)
				}
			}

			if name == "symlink-outside-cache" {
				checkOutsideDenied(t, mp, info, doc.Notices)
			}
			if name == "unknown-repo-type" {
				kernel := false
				for _, n := range doc.Notices {
					kernel = kernel || n.Kind == cachecore.NoticeKernelRepo
				}
				if !kernel {
					t.Errorf(".status.json notices %+v do not mention the kernels-- folder", doc.Notices)
				}
			}
		})
	}
}

func sameNotices(a, b []cachecore.Notice) bool {
	key := func(l []cachecore.Notice) []string {
		out := []string{}
		for _, n := range l {
			out = append(out, n.Kind+"\x00"+n.Path+"\x00"+n.Message)
		}
		sort.Strings(out)
		return out
	}
	return reflect.DeepEqual(key(a), key(b))
}

func checkOutsideDenied(t *testing.T, mp string, info *cachecore.CacheInfo, notices []cachecore.Notice) {
	t.Helper()
	outside := 0
	for p, e := range expectedFiles(info) {
		if !e.file.Blob.Outside {
			continue
		}
		outside++
		res := run(t, "cat", filepath.Join(mp, p))
		if res.code == 0 || !strings.Contains(res.stderr, "Permission denied") {
			t.Errorf("cat %s (resolves outside the cache): %s; want \"Permission denied\"", p, res)
		}
		if strings.Contains(res.stdout, "external content") {
			t.Errorf("cat %s leaked the outside file's content", p)
		}
		mentioned := false
		for _, n := range notices {
			if n.Kind == cachecore.NoticeOutsideCache && n.Path == e.file.FilePath() {
				mentioned = true
			}
		}
		if !mentioned {
			t.Errorf(".status.json notices %+v do not mention %s", notices, e.file.FilePath())
		}
	}
	if outside == 0 {
		t.Fatal("fixture: no file resolves outside the cache")
	}
}

func TestXattrs(t *testing.T) {
	needTool(t, "getfattr")
	cache, info := basicCache(t)
	m, mp := startMount(t, cache, Options{})
	// Values after the scan; TestRepoFolderAttrsBeforeItsScan covers before.
	waitReady(t, m)
	noExistSeen := 0
	for _, r := range info.Repos {
		attrs := getfattrDump(t, filepath.Join(mp, repoPath(r)))
		want := map[string]string{
			"user.hf.repo_id":      r.RepoID,
			"user.hf.repo_type":    r.RepoType,
			"user.hf.size_on_disk": strconv.FormatInt(r.SizeOnDisk, 10),
		}
		for k, v := range want {
			if got, ok := attrs[k]; !ok || got != v {
				t.Errorf("%s %s = %q (present %v), want %q", repoPath(r), k, got, ok, v)
			}
		}
		for _, rev := range r.Revisions {
			noExist := noExistOf(t, r, rev.CommitHash)
			if noExist != "" {
				noExistSeen++
			}
			want := map[string]string{
				"user.hf.commit":       rev.CommitHash,
				"user.hf.refs":         strings.Join(rev.Refs, ","),
				"user.hf.size_on_disk": strconv.FormatInt(rev.SizeOnDisk, 10),
				"user.hf.no_exist":     noExist,
			}
			dirs := []string{repoPath(r) + "/by-commit/" + rev.CommitHash}
			for _, ref := range rev.Refs {
				dirs = append(dirs, repoPath(r)+"/by-ref/"+ref)
			}
			for _, d := range dirs {
				attrs := getfattrDump(t, filepath.Join(mp, d))
				for k, v := range want {
					if got, ok := attrs[k]; !ok || got != v {
						t.Errorf("%s %s = %q (present %v), want %q", d, k, got, ok, v)
					}
				}
			}
			for _, f := range rev.Files {
				p := repoPath(r) + "/by-commit/" + rev.CommitHash + "/" + f.RelPath
				if got := getfattrDump(t, filepath.Join(mp, p))["user.hf.etag"]; got != filepath.Base(f.BlobPath) {
					t.Errorf("%s user.hf.etag = %q, want the blob name %q", p, got, filepath.Base(f.BlobPath))
				}
			}
		}
	}
	if noExistSeen == 0 {
		t.Fatal("fixture: the basic cache should have .no_exist markers")
	}
	// security.* and system.* (POSIX ACLs included) are not supported at
	// all: ls -l, cp -a and tar --acls stop asking after one answer.
	for _, p := range []string{"", tinyModel, tinyModel + "/by-ref/main", tinyModel + "/by-ref/main/config.json"} {
		for _, name := range []string{"security.selinux", "system.posix_acl_access", "system.posix_acl_default"} {
			res := run(t, "getfattr", "-n", name, "--absolute-names", filepath.Join(mp, p))
			if res.code == 0 || !strings.Contains(res.stderr, "Operation not supported") {
				t.Errorf("getfattr -n %s /%s: %s; want \"Operation not supported\"", name, p, res)
			}
		}
	}
}

// noExistOf lists (newline-separated, sorted) the files .no_exist marks
// for a commit, read from the cache.
func noExistOf(t *testing.T, r *cachecore.RepoInfo, commit string) string {
	t.Helper()
	root := filepath.Join(r.RepoPath, ".no_exist", commit)
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

const mmapScript = `
import hashlib, mmap, sys
for p in sys.argv[1:]:
    with open(p, "rb") as f:
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            print(hashlib.sha256(m).hexdigest(), len(m), m[len(m) // 2])
`

func TestMmapReadsTheBlob(t *testing.T) {
	needTool(t, "python3")
	cache, info := basicCache(t)
	_, mp := startMount(t, cache, Options{})
	var paths, want []string
	for p, e := range expectedFiles(info, "model") {
		if !strings.Contains(p, "/by-ref/") || e.file.SizeOnDisk == 0 {
			continue // mmap of an empty file is an error in Python
		}
		b := readBlob(t, e.file)
		paths = append(paths, filepath.Join(mp, p))
		want = append(want, fmt.Sprintf("%s %d %d", sha(b), len(b), b[len(b)/2]))
	}
	if len(paths) == 0 {
		t.Fatal("fixture: nothing to mmap")
	}
	got := lines(mustRun(t, "python3", append([]string{"-c", mmapScript}, paths...)...))
	if len(got) != len(paths) {
		t.Fatalf("python printed %d lines for %d files: %q", len(got), len(paths), got)
	}
	for i := range paths {
		if got[i] != want[i] {
			t.Errorf("mmap %s: %s, want %s", paths[i], got[i], want[i])
		}
	}
}

func TestBinaryForegroundSIGTERM(t *testing.T) {
	needFuse(t)
	bin := binary(t)
	cache, info := basicCache(t)
	mp := newMountpoint(t)
	cmd := exec.Command(bin, "mount", mp, "--cache-dir", cache)
	cmd.Dir = "/"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var waitErr error
	finished := false
	t.Cleanup(func() {
		if !finished {
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	})
	poll(t, 30*time.Second, "the foreground mount is up", func() (bool, string) {
		select {
		case waitErr = <-exited:
			finished = true
			t.Fatalf("hfcachefs mount exited early: %v\n%s", waitErr, stderr.String())
		default:
		}
		if !mountinfoHas(t, mp) {
			return false, "not in mountinfo"
		}
		res := run(t, "ls", filepath.Join(mp, "models"))
		return res.code == 0, res.String()
	})
	if got := sortedLines(mustRun(t, "ls", filepath.Join(mp, "models"))); !reflect.DeepEqual(got, topNames(info, "model")) {
		t.Errorf("ls models = %q", got)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case waitErr = <-exited:
		finished = true
	case <-time.After(60 * time.Second):
		t.Fatalf("hfcachefs mount did not exit after SIGTERM\n%s", stderr.String())
	}
	if waitErr != nil {
		t.Errorf("after SIGTERM: %v (want exit 0)\n%s", waitErr, stderr.String())
	}
	if mountinfoHas(t, mp) {
		t.Errorf("%s is still mounted after SIGTERM", mp)
	}
	if got := mustRun(t, "ls", "-A", mp); got != "" {
		t.Errorf("the mountpoint after SIGTERM lists %q, want an empty folder", got)
	}
}

func TestBinaryDaemonAndUnmount(t *testing.T) {
	needFuse(t)
	bin := binary(t)
	cache, info := basicCache(t)
	mp := newMountpoint(t)
	pid := startDaemon(t, mp, cache)
	// Ready when --daemon returns: no polling here.
	if got := sortedLines(mustRun(t, "ls", filepath.Join(mp, "models"))); !reflect.DeepEqual(got, topNames(info, "model")) {
		t.Errorf("ls models right after --daemon = %q, want %q", got, topNames(info, "model"))
	}
	if !alive(pid) {
		t.Errorf("daemon %d is not running", pid)
	}
	if res := run(t, bin, "unmount", mp); res.code != 0 {
		t.Fatalf("hfcachefs unmount: %s", res)
	}
	if mountinfoHas(t, mp) {
		t.Errorf("%s is still mounted after hfcachefs unmount", mp)
	}
	waitDead(t, pid)
	if got := mustRun(t, "ls", "-A", mp); got != "" {
		t.Errorf("the mountpoint lists %q after unmount, want an empty folder", got)
	}
	if res := run(t, bin, "unmount", mp); res.code != 1 || !strings.Contains(res.stderr, "not mounted") {
		t.Errorf("unmount of a plain folder: %s; want exit 1 and \"not mounted\"", res)
	}
}

func TestBinaryKill9Recovery(t *testing.T) {
	needFuse(t)
	bin := binary(t)
	cache, info := basicCache(t)
	mp := newMountpoint(t)

	killAndCheckDead := func(t *testing.T, pid int) {
		t.Helper()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitDead(t, pid)
		poll(t, followDeadline, "the mountpoint is dead", func() (bool, string) {
			res := run(t, "ls", mp)
			return res.code != 0 && strings.Contains(res.stderr, "Transport endpoint is not connected"), res.String()
		})
		if !mountinfoHas(t, mp) {
			t.Fatalf("the dead mount is not in mountinfo")
		}
	}

	t.Run("mount-recovers", func(t *testing.T) {
		killAndCheckDead(t, startDaemon(t, mp, cache))
		startDaemon(t, mp, cache)
		if got := sortedLines(mustRun(t, "ls", filepath.Join(mp, "models"))); !reflect.DeepEqual(got, topNames(info, "model")) {
			t.Errorf("ls models on the recovered mount = %q", got)
		}
	})
	t.Run("unmount-recovers", func(t *testing.T) {
		killAndCheckDead(t, startDaemon(t, mp, cache))
		if res := run(t, bin, "unmount", mp); res.code != 0 {
			t.Fatalf("hfcachefs unmount of a dead mount: %s", res)
		}
		if mountinfoHas(t, mp) {
			t.Errorf("%s still mounted after unmount", mp)
		}
		if res := run(t, "ls", "-A", mp); res.code != 0 || res.stdout != "" {
			t.Errorf("ls of the recovered mountpoint: %s; want an empty folder", res)
		}
	})
}

func TestBinaryRefusesBadSetups(t *testing.T) {
	needFuse(t)
	bin := binary(t)
	cache, _ := basicCache(t)

	expectRefused := func(t *testing.T, mp, wantMsg string, args ...string) {
		t.Helper()
		for _, daemon := range []bool{false, true} {
			a := args
			if daemon {
				a = append(append([]string(nil), args...), "--daemon")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, bin, a...)
			cmd.Dir = "/"
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			timedOut := ctx.Err() != nil
			cancel()
			if mountinfoHas(t, mp) {
				_ = syscall.Unmount(mp, syscall.MNT_DETACH)
				t.Errorf("hfcachefs %q mounted %s; want a refusal", a, mp)
			}
			if timedOut {
				t.Errorf("hfcachefs %q did not return (it should refuse at once)", a)
				continue
			}
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != 1 || !strings.Contains(stderr.String(), wantMsg) {
				t.Errorf("hfcachefs %q: exit %d, stderr %q; want exit 1 and %q", a, code, stderr.String(), wantMsg)
			}
		}
	}

	t.Run("mountpoint-inside-the-cache", func(t *testing.T) {
		inside := filepath.Join(cache, "mnt")
		if err := os.Mkdir(inside, 0o755); err != nil {
			t.Fatal(err)
		}
		expectRefused(t, inside, "inside the cache directory", "mount", inside, "--cache-dir", cache)
		// Through a symlink from outside, too.
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(inside, link); err != nil {
			t.Fatal(err)
		}
		expectRefused(t, inside, "inside the cache directory", "mount", link, "--cache-dir", cache)
		// The cache itself.
		expectRefused(t, cache, "inside the cache directory", "mount", cache, "--cache-dir", cache)
	})
	t.Run("missing-cache-dir", func(t *testing.T) {
		mp := newMountpoint(t)
		expectRefused(t, mp, "Cache directory not found", "mount", mp, "--cache-dir", filepath.Join(t.TempDir(), "nope"))
	})
}

func TestReadOnlyHasNoTrash(t *testing.T) {
	cache, _ := basicCache(t)
	_, rw := startMount(t, cache, Options{})
	if got := lines(mustRun(t, "ls", "-a", rw)); !contains(got, ".trash") {
		t.Errorf("ls -a of a read-write mount = %q, want .trash in it", got)
	}
	_, ro := startMount(t, cache, Options{ReadOnly: true})
	got := lines(mustRun(t, "ls", "-a", ro))
	if contains(got, ".trash") {
		t.Errorf("ls -a of a --read-only mount = %q, want no .trash", got)
	}
	for _, n := range []string{".status.json", "models", "datasets", "spaces", "by-size", "assets"} {
		if !contains(got, n) {
			t.Errorf("ls -a of a --read-only mount = %q, want %s in it", got, n)
		}
	}
	if res := run(t, "stat", filepath.Join(ro, ".trash")); res.code == 0 || !strings.Contains(res.stderr, "No such file or directory") {
		t.Errorf("stat .trash on --read-only: %s", res)
	}
	if res := run(t, "touch", filepath.Join(ro, tinyModel, "by-ref/main/new")); res.code == 0 || !strings.Contains(res.stderr, "Read-only file system") {
		t.Errorf("touch on --read-only: %s", res)
	}
	// No .trash, so no deletion either: a revision moved "into .trash"
	// stays, and the cache does not change.
	before := treeState(t, cache)
	revDir := filepath.Join(ro, tinyModel, "by-commit", detached)
	if res := run(t, "mv", revDir, filepath.Join(ro, ".trash/")); res.code == 0 {
		t.Errorf("mv into .trash on --read-only succeeded: %s", res)
	}
	mustRun(t, "stat", revDir)
	if d := diffTrees(before, treeState(t, cache)); len(d) > 0 {
		t.Errorf("the cache changed under a --read-only mount:\n%s", strings.Join(d, "\n"))
	}
	doc, _ := readStatus(t, ro)
	if !doc.Mount.ReadOnly {
		t.Errorf(".status.json mount.read_only = false on a --read-only mount")
	}
}

func TestUIDGIDOverride(t *testing.T) {
	needFuse(t)
	cache, _ := basicCache(t)
	mp := newMountpoint(t)
	startDaemon(t, mp, cache, "--uid", "1000", "--gid", "1000")
	out := lines(mustRun(t, "find", mp, "-printf", `%U %G %p\n`))
	if len(out) < 20 {
		t.Fatalf("find listed only %d entries", len(out))
	}
	for _, l := range out {
		if !strings.HasPrefix(l, "1000 1000 ") {
			t.Errorf("owner: %s; want 1000 1000", l)
		}
	}
	for _, p := range []string{"", ".status.json", "by-size", tinyModel, tinyModel + "/by-ref/main", tinyModel + "/by-ref/main/config.json"} {
		if got := strings.TrimSpace(mustRun(t, "stat", "-c", "%u %g", filepath.Join(mp, p))); got != "1000 1000" {
			t.Errorf("stat -c '%%u %%g' /%s = %q, want \"1000 1000\"", p, got)
		}
	}
	doc, _ := readStatus(t, mp)
	if doc.Mount.UID == nil || *doc.Mount.UID != 1000 || doc.Mount.GID == nil || *doc.Mount.GID != 1000 {
		t.Errorf(".status.json mount uid/gid = %v/%v", doc.Mount.UID, doc.Mount.GID)
	}
}

// sandboxArgs binds what a program needs to run inside bwrap on this
// system: /usr, and /bin, /lib, /lib64, /sbin as they are (symlinks on a
// merged-/usr Debian, folders elsewhere).
func sandboxArgs(t *testing.T) []string {
	t.Helper()
	args := []string{"--ro-bind", "/usr", "/usr", "--dev", "/dev", "--proc", "/proc"}
	for _, p := range []string{"/bin", "/sbin", "/lib", "/lib64", "/lib32"} {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			args = append(args, "--symlink", target, p)
		case fi.IsDir():
			args = append(args, "--ro-bind", p, p)
		}
	}
	return args
}

var asUser1000 = []string{"--reuid", "1000", "--regid", "1000", "--clear-groups"}

func bwrapAs1000(t *testing.T, src, dst string, command ...string) result {
	t.Helper()
	args := append(append([]string(nil), asUser1000...), "bwrap", "--ro-bind", src, dst)
	args = append(append(args, sandboxArgs(t)...), command...)
	return run(t, "setpriv", args...)
}

func TestContainerExportWithBubblewrap(t *testing.T) {
	needFuse(t)
	needTool(t, "bwrap", "setpriv")
	cache, info := basicCache(t)
	r := findRepo(t, info, "model", "acme/tiny-model")
	want := string(readBlob(t, findFile(t, findRev(t, r, mainCommit), "config.json")))

	// Can uid 1000 build a sandbox here at all? If not, say exactly why.
	probeDir := t.TempDir()
	openToOthers(t, probeDir)
	if res := bwrapAs1000(t, probeDir, "/probe", "true"); res.code != 0 {
		userns, _ := os.ReadFile("/proc/sys/user/max_user_namespaces")
		t.Fatalf("bwrap cannot build a sandbox as uid 1000 on this machine (max_user_namespaces=%s): %s",
			strings.TrimSpace(string(userns)), res)
	}

	mp := newMountpoint(t)
	openToOthers(t, mp, cache)
	startDaemon(t, mp, cache, "--read-only", "--allow-other")
	t.Run("repo-folder", func(t *testing.T) {
		res := bwrapAs1000(t, filepath.Join(mp, tinyModel), "/model", "cat", "/model/by-ref/main/config.json")
		if res.code != 0 || res.stdout != want {
			t.Errorf("cat in the sandbox: %s; want %q", res, want)
		}
	})
	t.Run("by-ref-main", func(t *testing.T) {
		res := bwrapAs1000(t, filepath.Join(mp, tinyModel, "by-ref/main"), "/model", "cat", "/model/config.json")
		if res.code != 0 || res.stdout != want {
			t.Errorf("cat in the sandbox: %s; want %q", res, want)
		}
	})
	t.Run("without-allow-other", func(t *testing.T) {
		mp2 := newMountpoint(t)
		openToOthers(t, mp2)
		startDaemon(t, mp2, cache, "--read-only")
		res := bwrapAs1000(t, filepath.Join(mp2, tinyModel), "/model", "cat", "/model/by-ref/main/config.json")
		if res.code == 0 || !strings.Contains(res.stderr, "Permission denied") {
			t.Errorf("bwrap as uid 1000 without --allow-other: %s; want \"Permission denied\"", res)
		}
		direct := run(t, "setpriv", append(append([]string(nil), asUser1000...), "cat", filepath.Join(mp2, tinyModel, "by-ref/main/config.json"))...)
		if direct.code == 0 || !strings.Contains(direct.stderr, "Permission denied") {
			t.Errorf("cat as uid 1000 without --allow-other: %s; want \"Permission denied\"", direct)
		}
	})
}

func TestStatusJSON(t *testing.T) {
	cache, info := basicCache(t)
	_, mp := startMount(t, cache, Options{})
	if _, err := exec.LookPath("python3"); err == nil {
		mustRun(t, "python3", "-c", "import json,sys; json.load(open(sys.argv[1]))", filepath.Join(mp, ".status.json"))
	}
	doc, generic := readStatus(t, mp)
	revs := 0
	for _, r := range info.Repos {
		revs += len(r.Revisions)
	}
	if doc.Repos != len(info.Repos) || doc.Revisions != revs || doc.SizeOnDisk != info.SizeOnDisk {
		t.Errorf(".status.json repos %d revisions %d size_on_disk %d; want the scan's %d %d %d",
			doc.Repos, doc.Revisions, doc.SizeOnDisk, len(info.Repos), revs, info.SizeOnDisk)
	}
	mountInfo, ok := generic["mount"].(map[string]any)
	if !ok {
		t.Fatalf(".status.json has no mount object: %v", generic)
	}
	pt, ok := mountInfo["passthrough"].(string)
	if !ok || pt == "" {
		t.Errorf(".status.json mount.passthrough = %v, want a non-empty string", mountInfo["passthrough"])
	}
	t.Logf("mount.passthrough = %q", pt)
	if mountInfo["mountpoint"] != mp || mountInfo["cache_dir"] != cache {
		t.Errorf(".status.json mount.mountpoint %v cache_dir %v; want %s %s", mountInfo["mountpoint"], mountInfo["cache_dir"], mp, cache)
	}
	for _, k := range []string{"warnings", "left_out", "notices", "incomplete_files", "kept_last_good_view"} {
		if _, ok := generic[k].([]any); !ok {
			t.Errorf(".status.json %s = %v, want a list", k, generic[k])
		}
	}
}
