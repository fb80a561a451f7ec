package cachecore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Fixtures for the change-detection tests: revisions and repos built by
// hand, as the scan would return them.

const (
	chgA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	chgB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	chgC = "cccccccccccccccccccccccccccccccccccccccc"
	chgD = "dddddddddddddddddddddddddddddddddddddddd"
)

func chgRev(commit string, refs []string, paths ...string) *RevisionInfo {
	rev := &RevisionInfo{CommitHash: commit, SnapshotPath: "/cache/models--org--repo/snapshots/" + commit}
	rev.Refs = append([]string(nil), refs...)
	sort.Strings(rev.Refs)
	for _, p := range paths {
		rev.Files = append(rev.Files, &FileInfo{FileName: p[strings.LastIndexByte(p, '/')+1:], SnapshotPath: rev.SnapshotPath, RelPath: p})
	}
	return rev
}

func chgRepo(revs ...*RevisionInfo) *RepoInfo {
	return &RepoInfo{RepoID: "org/repo", RepoType: "model", RepoPath: "/cache/models--org--repo", Revisions: revs}
}

// chgListing serves trees/<commit>.json listings from a map: a commit
// that is not in it has no readable listing.
func chgListing(m map[string][]string) func(string) ([]string, bool) {
	return func(commit string) ([]string, bool) {
		paths, ok := m[commit]
		return paths, ok
	}
}

func TestClassifyPath(t *testing.T) {
	const repo = "models--org--repo"
	none := Change{}
	root := func(folder string) Change { return Change{Kind: ChangeRoot, Folder: folder} }
	inRepo := func(folder string) Change { return Change{Kind: ChangeRepo, Folder: folder} }
	ref := func(folder string) Change { return Change{Kind: ChangeRepo, Folder: folder, Ref: true} }
	cases := []struct {
		name string
		rel  string
		want Change
	}{
		// The cache dir itself.
		{"root empty", "", root("")},
		{"root dot", ".", root("")},
		{"root slash", "/", root("")},
		{"root slashes", "///", root("")},
		{"root dot slash", "./", root("")},

		// Top-level entries: repo folders, stray files, other dot-dirs.
		{"repo folder", repo, root(repo)},
		{"dataset folder", "datasets--org--data", root("datasets--org--data")},
		{"space folder", "spaces--u--s", root("spaces--u--s")},
		{"kernels folder", "kernels--o--k", root("kernels--o--k")},
		{"top-level file", "version.txt", root("version.txt")},
		{"cachedir tag", "CACHEDIR.TAG", root("CACHEDIR.TAG")},
		{"ds_store at top", ".DS_Store", root(".DS_Store")},
		{"other dot dir", ".cache", root(".cache")},
		{"top-level name refs", "refs", root("refs")},
		{"top-level name like locks", ".locksmith", root(".locksmith")},
		{"top-level name like locks in repo path", ".locks-old/x", inRepo(".locks-old")},

		// upstream's lock folder, at any depth.
		{"locks folder", ".locks", none},
		{"locks folder trailing slash", ".locks/", none},
		{"locks folder leading slash", "/.locks", none},
		{"locks repo folder", ".locks/" + repo, none},
		{"lock file", ".locks/" + repo + "/" + chgA + ".lock", none},
		{"lock file sha256 etag", ".locks/" + repo + "/" + strings.Repeat("9", 64) + ".lock", none},

		// refs: the folder, its files, nested refs.
		{"refs folder", repo + "/refs", ref(repo)},
		{"refs folder trailing slash", repo + "/refs/", ref(repo)},
		{"ref main", repo + "/refs/main", ref(repo)},
		{"ref tag with dot", repo + "/refs/v1.0", ref(repo)},
		{"ref truncated hash", repo + "/refs/c0ffee0", ref(repo)},
		{"nested ref pr", repo + "/refs/refs/pr/1", ref(repo)},
		{"nested ref prefix folder", repo + "/refs/refs/pr", ref(repo)},
		{"nested ref top prefix folder", repo + "/refs/refs", ref(repo)},
		{"ref dotfile", repo + "/refs/.DS_Store", ref(repo)},
		{"ref leading and trailing slashes", "/" + repo + "/refs/main/", ref(repo)},
		{"refs-like sub name", repo + "/refsx/main", inRepo(repo)},
		{"refs below snapshots", repo + "/snapshots/" + chgA + "/refs/main", inRepo(repo)},

		// blobs: a finished blob is a change, a transfer in progress is not.
		{"blobs folder", repo + "/blobs", inRepo(repo)},
		{"blob sha1 etag", repo + "/blobs/" + chgA, inRepo(repo)},
		{"blob sha256 etag", repo + "/blobs/" + strings.Repeat("e", 64), inRepo(repo)},
		{"incomplete before v1.18", repo + "/blobs/" + chgA + ".incomplete", none},
		{"incomplete since v1.18", repo + "/blobs/" + chgA + ".0123abcd.incomplete", none},
		{"incomplete leading slash", "/" + repo + "/blobs/" + chgA + ".incomplete", none},
		{"incomplete-like but not suffix", repo + "/blobs/" + chgA + ".incomplete.bak", inRepo(repo)},
		{"incomplete name outside blobs", repo + "/snapshots/" + chgA + "/x.incomplete", inRepo(repo)},

		// snapshots.
		{"snapshots folder", repo + "/snapshots", inRepo(repo)},
		{"snapshot folder", repo + "/snapshots/" + chgA, inRepo(repo)},
		{"snapshot file", repo + "/snapshots/" + chgA + "/config.json", inRepo(repo)},
		{"snapshot nested file", repo + "/snapshots/" + chgA + "/sub/dir/file.bin", inRepo(repo)},
		{"snapshot odd name space", repo + "/snapshots/" + chgA + "/a file (1).txt", inRepo(repo)},
		{"snapshot odd name unicode", repo + "/snapshots/" + chgA + "/模型/权重.bin", inRepo(repo)},
		{"snapshot odd name newline", repo + "/snapshots/" + chgA + "/a\nb", inRepo(repo)},
		{"snapshot ds_store", repo + "/snapshots/.DS_Store", inRepo(repo)},

		// .no_exist and trees.
		{"no_exist folder", repo + "/.no_exist", inRepo(repo)},
		{"no_exist commit", repo + "/.no_exist/" + chgA, inRepo(repo)},
		{"no_exist marker", repo + "/.no_exist/" + chgA + "/sub/missing.json", inRepo(repo)},
		{"trees folder", repo + "/trees", inRepo(repo)},
		{"trees listing", repo + "/trees/" + chgA + ".json", inRepo(repo)},

		// Our own deletion staging.
		{"staging folder", repo + "/" + StagingDir, none},
		{"staging entry", repo + "/" + StagingDir + "/" + chgA, none},
		{"staging nested", repo + "/" + StagingDir + "/x/snapshots/" + chgA + "/f", none},
		{"staging name at top level", StagingDir, root(StagingDir)},

		// Other entries inside a repo folder.
		{"repo other file", repo + "/.gitattributes", inRepo(repo)},
		{"odd repo folder name", "models--org--na me\x01", root("models--org--na me\x01")},
		{"odd repo folder ref", "models--org--na me\x01/refs/main", ref("models--org--na me\x01")},
		{"dot-dot sub", repo + "/../x", inRepo(repo)},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			if got := ClassifyPath(tc.rel); got != tc.want {
				t.Errorf("ClassifyPath(%q) = %+v, want %+v", tc.rel, got, tc.want)
			}
		})
	}
}

// TestClassifyPathDownloadSequence walks the paths hf_hub_download
// touches, in order, and checks which of them are changes.
func TestClassifyPathDownloadSequence(t *testing.T) {
	const repo = "models--org--repo"
	etag := strings.Repeat("f", 64)
	steps := []struct {
		rel    string
		change bool
		ref    bool
	}{
		{repo + "/blobs", true, false},
		{repo + "/snapshots/" + chgA + "/sub", true, false},
		{"CACHEDIR.TAG", true, false},
		{repo + "/refs/main", true, true},
		{".locks/" + repo, false, false},
		{".locks/" + repo + "/" + etag + ".lock", false, false},
		{repo + "/blobs/" + etag + ".1a2b3c4d.incomplete", false, false},
		{repo + "/blobs/" + etag, true, false},
		{repo + "/snapshots/" + chgA + "/sub/model.safetensors", true, false},
		{repo + "/trees/" + chgA + ".json", true, false},
	}
	for _, s := range steps {
		c := ClassifyPath(s.rel)
		if (c.Kind != ChangeNone) != s.change || c.Ref != s.ref {
			t.Errorf("ClassifyPath(%q) = %+v, want change %v ref %v", s.rel, c, s.change, s.ref)
		}
	}
}

var chgFixedDirs = []string{"", ".no_exist", "blobs", "refs", "snapshots", "trees"}

func TestWatchDirs(t *testing.T) {
	cases := []struct {
		name string
		repo *RepoInfo
		want []string
	}{
		{"nil repo", nil, chgFixedDirs},
		{"repo without revisions", chgRepo(), chgFixedDirs},
		{"empty revision", chgRepo(chgRev(chgA, nil)),
			[]string{"", ".no_exist", "blobs", "refs", "snapshots", "snapshots/" + chgA, "trees"}},
		{"flat files", chgRepo(chgRev(chgA, []string{"main"}, "README.md", "config.json")),
			[]string{"", ".no_exist", "blobs", "refs", "snapshots", "snapshots/" + chgA, "trees"}},
		{"nested file", chgRepo(chgRev(chgA, []string{"main"}, "a/b/c.txt")),
			[]string{"", ".no_exist", "blobs", "refs", "snapshots", "snapshots/" + chgA, "snapshots/" + chgA + "/a", "snapshots/" + chgA + "/a/b", "trees"}},
		{"nested files sharing folders", chgRepo(chgRev(chgA, nil, "a/b/c.txt", "a/b/d.txt", "a/e.txt", "a/f/g/h.txt", "top.txt")),
			[]string{"", ".no_exist", "blobs", "refs", "snapshots", "snapshots/" + chgA, "snapshots/" + chgA + "/a", "snapshots/" + chgA + "/a/b", "snapshots/" + chgA + "/a/f", "snapshots/" + chgA + "/a/f/g", "trees"}},
		// Files are sorted by FilePath; the early stop must hold whatever
		// the order (a shallow file first, a deep one later).
		{"shallow before deep", chgRepo(chgRev(chgA, nil, "a/x.txt", "a/b/c/d.txt")),
			[]string{"", ".no_exist", "blobs", "refs", "snapshots", "snapshots/" + chgA, "snapshots/" + chgA + "/a", "snapshots/" + chgA + "/a/b", "snapshots/" + chgA + "/a/b/c", "trees"}},
		{"deep before shallow sibling", chgRepo(chgRev(chgA, nil, "a/b/c/d.txt", "a/b/e/f.txt")),
			[]string{"", ".no_exist", "blobs", "refs", "snapshots", "snapshots/" + chgA, "snapshots/" + chgA + "/a", "snapshots/" + chgA + "/a/b", "snapshots/" + chgA + "/a/b/c", "snapshots/" + chgA + "/a/b/e", "trees"}},
		{"plain refs add no folder", chgRepo(chgRev(chgA, []string{"main", "v1.0", "c0ffee0"})),
			[]string{"", ".no_exist", "blobs", "refs", "snapshots", "snapshots/" + chgA, "trees"}},
		// refs/pr/1 is stored as refs/refs/pr/1: its folders refs/refs and
		// refs/refs/pr hold it.
		{"pr ref", chgRepo(chgRev(chgA, []string{"refs/pr/1"})),
			[]string{"", ".no_exist", "blobs", "refs", "refs/refs", "refs/refs/pr", "snapshots", "snapshots/" + chgA, "trees"}},
		{"several pr refs over revisions", chgRepo(
			chgRev(chgA, []string{"main", "refs/pr/1"}, "x/y.txt"),
			chgRev(chgB, []string{"refs/pr/2", "refs/convert/parquet"}, "x/y.txt"),
		),
			[]string{"", ".no_exist", "blobs", "refs", "refs/refs", "refs/refs/convert", "refs/refs/pr", "snapshots", "snapshots/" + chgA, "snapshots/" + chgA + "/x", "snapshots/" + chgB, "snapshots/" + chgB + "/x", "trees"}},
		{"revision without refs still watched", chgRepo(
			chgRev(chgA, []string{"main"}, "f"),
			chgRev(chgB, nil, "d/f"),
		),
			[]string{"", ".no_exist", "blobs", "refs", "snapshots", "snapshots/" + chgA, "snapshots/" + chgB, "snapshots/" + chgB + "/d", "trees"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := WatchDirs(tc.repo)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("WatchDirs =\n  %q\nwant\n  %q", got, tc.want)
			}
			chgSortedUnique(t, got)
		})
	}
}

func TestWatchDirsManyFilesStaysSortedUnique(t *testing.T) {
	var paths []string
	for i := 0; i < 500; i++ {
		paths = append(paths, fmt.Sprintf("d%d/e%d/f%d.bin", i%7, i%11, i))
	}
	sort.Strings(paths)
	got := WatchDirs(chgRepo(chgRev(chgA, []string{"main"}, paths...)))
	chgSortedUnique(t, got)
	// 6 fixed + the snapshot + 7 d folders + 7*11 d/e pairs that occur.
	pairs := map[string]bool{}
	for i := 0; i < 500; i++ {
		pairs[fmt.Sprintf("%d/%d", i%7, i%11)] = true
	}
	if want := 6 + 1 + 7 + len(pairs); len(got) != want {
		t.Errorf("len(WatchDirs) = %d, want %d", len(got), want)
	}
}

func chgSortedUnique(t *testing.T, got []string) {
	t.Helper()
	if !sort.StringsAreSorted(got) {
		t.Errorf("not sorted: %q", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Errorf("duplicate %q", got[i])
		}
	}
}

var chgFixedPolls = []string{"", ".no_exist", "blobs", "refs", "snapshots"}

func TestPollPaths(t *testing.T) {
	cases := []struct {
		name string
		repo *RepoInfo
		want []string
	}{
		{"nil repo", nil, chgFixedPolls},
		{"repo without revisions", chgRepo(), chgFixedPolls},
		{"revision without refs is not polled", chgRepo(chgRev(chgA, nil, "a/b.txt")), chgFixedPolls},
		{"main", chgRepo(chgRev(chgA, []string{"main"}, "a/b.txt", "c.txt")),
			[]string{"", ".no_exist", "blobs", "refs", "refs/main", "snapshots", "snapshots/" + chgA, "snapshots/" + chgA + "/a"}},
		{"two refs one revision", chgRepo(chgRev(chgA, []string{"main", "v1.0"}, "c.txt")),
			[]string{"", ".no_exist", "blobs", "refs", "refs/main", "refs/v1.0", "snapshots", "snapshots/" + chgA}},
		{"pr ref", chgRepo(chgRev(chgA, []string{"refs/pr/1"}, "c.txt")),
			[]string{"", ".no_exist", "blobs", "refs", "refs/refs", "refs/refs/pr", "refs/refs/pr/1", "snapshots", "snapshots/" + chgA}},
		{"refs over revisions, one without", chgRepo(
			chgRev(chgA, []string{"main", "refs/pr/1"}, "c.txt"),
			chgRev(chgB, []string{"refs/pr/2"}, "c.txt"),
			chgRev(chgC, nil, "c.txt", "d/e.txt"),
		),
			[]string{"", ".no_exist", "blobs", "refs", "refs/main", "refs/refs", "refs/refs/pr", "refs/refs/pr/1", "refs/refs/pr/2", "snapshots", "snapshots/" + chgA, "snapshots/" + chgB}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := PollPaths(tc.repo)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("PollPaths =\n  %q\nwant\n  %q", got, tc.want)
			}
			chgSortedUnique(t, got)
			for _, p := range got {
				if p == "trees" {
					t.Errorf("trees/ is polled: %q", got)
				}
			}
		})
	}
}

// TestPollPathsDoNotGrowWithFiles: a poll stats a handful of paths
// whatever the number of files of the repo's revisions.
func TestPollPathsDoNotGrowWithFiles(t *testing.T) {
	files := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, fmt.Sprintf("dir%d/sub%d/file%d.bin", i%13, i%17, i))
		}
		sort.Strings(out)
		return out
	}
	for _, refs := range [][]string{nil, {"main"}, {"main", "refs/pr/1"}} {
		t.Run(fmt.Sprintf("refs %q", refs), func(t *testing.T) {
			small := PollPaths(chgRepo(chgRev(chgA, refs, files(3)...), chgRev(chgB, nil, files(3)...)))
			big := PollPaths(chgRepo(chgRev(chgA, refs, files(3000)...), chgRev(chgB, nil, files(3000)...)))
			huge := PollPaths(chgRepo(chgRev(chgA, refs, files(30000)...), chgRev(chgB, nil, files(30000)...)))
			// Bounded: the fixed set, the refs, and at most PollSubdirsMax
			// sub-folders per shown revision, however many files and folders.
			bound := 5 + 3*len(refs) + 1 + PollSubdirsMax
			if len(refs) == 0 {
				bound = 5
			}
			for _, got := range [][]string{small, big, huge} {
				if len(got) > bound {
					t.Errorf("%d paths polled (bound %d): %q", len(got), bound, got)
				}
			}
			if !reflect.DeepEqual(big, huge) {
				t.Errorf("3000 files: %q\n30000 files: %q", big, huge)
			}
			if len(refs) > 0 && len(small) >= len(big) {
				t.Errorf("the sub-folders of the shown revision are not polled: %q vs %q", small, big)
			}
		})
	}
	// WatchDirs, unlike PollPaths, does grow with the folders.
	if w := WatchDirs(chgRepo(chgRev(chgA, []string{"main"}, files(3000)...))); len(w) < 13*17 {
		t.Errorf("WatchDirs lists %d folders for 3000 files in 13*17 folders", len(w))
	}
}

func chgStat(p string, sec, nsec int64) PathStat {
	return PathStat{Path: p, Exists: true, Mtime: syscall.Timespec{Sec: sec, Nsec: nsec}, Ctime: syscall.Timespec{Sec: sec, Nsec: nsec}, Size: 4096, Ino: 1234}
}

func TestFingerprint(t *testing.T) {
	base := []PathStat{chgStat("", 1700000000, 1), chgStat("refs", 1700000001, 2), chgStat("refs/main", 1700000002, 3)}
	baseFP, ok := Fingerprint(base)
	if !ok {
		t.Fatal("base fingerprint not ok")
	}
	mod := func(f func(s []PathStat) []PathStat) []PathStat {
		c := append([]PathStat(nil), base...)
		return f(c)
	}
	enoent := &os.PathError{Op: "stat", Path: "refs/main", Err: syscall.ENOENT}
	cases := []struct {
		name   string
		stats  []PathStat
		same   bool // equal to base's fingerprint
		wantOK bool
	}{
		{"identical copy", mod(func(s []PathStat) []PathStat { return s }), true, true},
		{"mtime sec", mod(func(s []PathStat) []PathStat { s[2].Mtime.Sec++; return s }), false, true},
		{"mtime nsec", mod(func(s []PathStat) []PathStat { s[2].Mtime.Nsec++; return s }), false, true},
		{"ctime sec", mod(func(s []PathStat) []PathStat { s[1].Ctime.Sec++; return s }), false, true},
		{"ctime nsec", mod(func(s []PathStat) []PathStat { s[1].Ctime.Nsec++; return s }), false, true},
		{"size", mod(func(s []PathStat) []PathStat { s[0].Size++; return s }), false, true},
		{"ino", mod(func(s []PathStat) []PathStat { s[0].Ino++; return s }), false, true},
		{"path name", mod(func(s []PathStat) []PathStat { s[2].Path = "refs/v1"; return s }), false, true},
		{"exists to missing", mod(func(s []PathStat) []PathStat { s[2] = PathStat{Path: "refs/main", Err: syscall.ENOENT}; return s }), false, true},
		{"missing via wrapped ENOENT", mod(func(s []PathStat) []PathStat { s[2] = StatOf("refs/main", nil, enoent); return s }), false, true},
		{"missing via ENOTDIR", mod(func(s []PathStat) []PathStat { s[2] = StatOf("refs/main", nil, syscall.ENOTDIR); return s }), false, true},
		{"extra path", mod(func(s []PathStat) []PathStat { return append(s, chgStat("snapshots", 1, 1)) }), false, true},
		{"path dropped", mod(func(s []PathStat) []PathStat { return s[:2] }), false, true},
		// The hash runs over the stats in the order given: the same stats
		// in another order give another fingerprint, so the caller must
		// keep the order (PollPaths is sorted).
		{"order swapped", mod(func(s []PathStat) []PathStat { s[0], s[1] = s[1], s[0]; return s }), false, true},
		{"ENOTCONN", mod(func(s []PathStat) []PathStat { s[1] = StatOf("refs", nil, syscall.ENOTCONN); return s }), false, false},
		{"EIO", mod(func(s []PathStat) []PathStat { s[1] = StatOf("refs", nil, syscall.EIO); return s }), false, false},
		{"ETIMEDOUT", mod(func(s []PathStat) []PathStat { s[1] = StatOf("refs", nil, syscall.ETIMEDOUT); return s }), false, false},
		{"ESTALE", mod(func(s []PathStat) []PathStat { s[0] = StatOf("", nil, syscall.ESTALE); return s }), false, false},
		{"wrapped ESTALE last", mod(func(s []PathStat) []PathStat {
			s[2] = StatOf("refs/main", nil, &os.PathError{Op: "stat", Path: "refs/main", Err: syscall.ESTALE})
			return s
		}), false, false},
		// Permission denied is an answer: the same each time, and a
		// different fingerprint from the readable path.
		{"EACCES", mod(func(s []PathStat) []PathStat { s[2] = StatOf("refs/main", nil, syscall.EACCES); return s }), false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fp, ok := Fingerprint(tc.stats)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				if fp != 0 {
					t.Errorf("fp = %#x with ok false, want 0", fp)
				}
				return
			}
			if (fp == baseFP) != tc.same {
				t.Errorf("fp %#x vs base %#x: same = %v, want %v", fp, baseFP, fp == baseFP, tc.same)
			}
			if again, _ := Fingerprint(tc.stats); again != fp {
				t.Errorf("not deterministic: %#x then %#x", fp, again)
			}
		})
	}
}

func TestFingerprintEdges(t *testing.T) {
	empty, ok := Fingerprint(nil)
	if !ok {
		t.Fatal("empty not ok")
	}
	if e2, _ := Fingerprint([]PathStat{}); e2 != empty {
		t.Errorf("nil and empty differ: %#x %#x", empty, e2)
	}
	// Missing through ENOENT, ENOTDIR, EACCES: each answer hashes its own
	// way (a folder that becomes unreadable is a change), the same one
	// the same way.
	a, _ := Fingerprint([]PathStat{StatOf("x", nil, syscall.ENOENT)})
	a2, _ := Fingerprint([]PathStat{StatOf("x", nil, &os.PathError{Op: "stat", Path: "x", Err: syscall.ENOENT})})
	b, _ := Fingerprint([]PathStat{StatOf("x", nil, syscall.ENOTDIR)})
	c, _ := Fingerprint([]PathStat{{Path: "x"}})
	if a != a2 {
		t.Errorf("ENOENT bare and wrapped differ: %#x %#x", a, a2)
	}
	if a == b || a == c || b == c {
		t.Errorf("missing for different reasons hash alike: %#x %#x %#x", a, b, c)
	}
	if a == empty {
		t.Error("a missing path hashes as no path")
	}
	// An existing path with all-zero stat fields still differs from a
	// missing one.
	z, _ := Fingerprint([]PathStat{{Path: "x", Exists: true}})
	if z == a {
		t.Error("existing zero stat hashes as missing")
	}
	// Two missing paths differ from one missing path with the other name.
	two, _ := Fingerprint([]PathStat{{Path: "a"}, {Path: "b"}})
	one, _ := Fingerprint([]PathStat{{Path: "a"}})
	if two == one {
		t.Error("extra missing path not seen")
	}
}

func TestFingerprintStatOf(t *testing.T) {
	st := &syscall.Stat_t{Mtim: syscall.Timespec{Sec: 5, Nsec: 6}, Ctim: syscall.Timespec{Sec: 7, Nsec: 8}, Size: 9, Ino: 10}
	got := StatOf("p", st, nil)
	want := PathStat{Path: "p", Exists: true, Mtime: st.Mtim, Ctime: st.Ctim, Size: 9, Ino: 10}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("StatOf = %+v, want %+v", got, want)
	}
	// An error wins over a stat buffer.
	got = StatOf("p", st, syscall.ENOENT)
	if got.Exists || got.Err != syscall.ENOENT || got.Size != 0 || got.Path != "p" {
		t.Errorf("StatOf with error = %+v", got)
	}
}

// chgStatPaths stats each path below dir (relative, "" the dir itself)
// as a poll does.
func chgStatPaths(t *testing.T, dir string, rels []string) []PathStat {
	t.Helper()
	out := make([]PathStat, 0, len(rels))
	for _, rel := range rels {
		p := dir
		if rel != "" {
			p = dir + "/" + rel
		}
		var st syscall.Stat_t
		err := syscall.Stat(p, &st)
		out = append(out, StatOf(rel, &st, err))
	}
	return out
}

func chgFP(t *testing.T, stats []PathStat) uint64 {
	t.Helper()
	fp, ok := Fingerprint(stats)
	if !ok {
		t.Fatalf("fingerprint not ok: %+v", stats)
	}
	return fp
}

var chgOld = time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)

func TestFingerprintRealStats(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chtimes(dir, chgOld, chgOld); err != nil {
		t.Fatal(err)
	}
	rels := []string{"", "missing"}
	before := chgStatPaths(t, dir, rels)
	if !before[0].Exists || before[1].Exists || !errors.Is(before[1].Err, syscall.ENOENT) {
		t.Fatalf("stats: %+v", before)
	}
	fp1 := chgFP(t, before)
	if fp := chgFP(t, chgStatPaths(t, dir, rels)); fp != fp1 {
		t.Fatalf("nothing changed, fingerprint did: %#x %#x", fp1, fp)
	}

	// A file made inside changes the folder's mtime (now, not 2001).
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	after := chgStatPaths(t, dir, rels)
	if after[0].Mtime == before[0].Mtime {
		t.Fatal("folder mtime did not change")
	}
	fp2 := chgFP(t, after)
	if fp2 == fp1 {
		t.Error("a file made in the folder left the fingerprint unchanged")
	}

	// The missing path appearing changes it too.
	if err := os.Mkdir(filepath.Join(dir, "missing"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "missing")} {
		if err := os.Chtimes(p, chgOld, chgOld); err != nil {
			t.Fatal(err)
		}
	}
	third := chgStatPaths(t, dir, rels)
	if !third[1].Exists {
		t.Fatalf("stats: %+v", third)
	}
	if fp3 := chgFP(t, third); fp3 == fp2 || fp3 == fp1 {
		t.Errorf("a path appearing left the fingerprint unchanged: %#x %#x %#x", fp1, fp2, fp3)
	}

	// Setting only the mtime back keeps the fingerprint changed: ctime.
	if err := os.Chtimes(dir, chgOld, chgOld); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mtim != before[0].Mtime {
		t.Fatalf("mtime not set back: %v %v", st.Mtim, before[0].Mtime)
	}
	if fp := chgFP(t, chgStatPaths(t, dir, []string{""})); fp == chgFP(t, before[:1]) {
		t.Error("mtime set back by hand: fingerprint unchanged although ctime moved")
	}
}

// chgMakeRepo lays out a repo folder as hf_hub_download leaves it:
// refs/main -> chgA, blobs/, snapshots/chgA/{top.txt, sub/a.txt}, and
// .no_exist/; every folder's times set to 2001.
func chgMakeRepo(t *testing.T) (string, *RepoInfo) {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"refs", "blobs", ".no_exist", "snapshots/" + chgA + "/sub"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(dir, "refs/main"), []byte(chgA), 0o644))
	must(os.WriteFile(filepath.Join(dir, "blobs", chgC), []byte("c"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "blobs", chgD), []byte("d"), 0o644))
	must(os.Symlink("../../blobs/"+chgC, filepath.Join(dir, "snapshots", chgA, "top.txt")))
	must(os.Symlink("../../../blobs/"+chgC, filepath.Join(dir, "snapshots", chgA, "sub/a.txt")))
	chgAge(t, dir)
	return dir, chgRepo(chgRev(chgA, []string{"main"}, "sub/a.txt", "top.txt"))
}

// chgAge sets the times of every folder and regular file below dir to
// 2001, so that any later change is a new mtime.
func chgAge(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, chgOld, chgOld)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPollPathsSeeDownloads runs download steps on a real repo folder
// and checks that the stats of PollPaths change for each.
func TestPollPathsSeeDownloads(t *testing.T) {
	steps := []struct {
		name string
		do   func(dir string) error
	}{
		{"ref rewritten in place", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "refs/main"), []byte(chgB), 0o644)
		}},
		{"ref rewritten with the same content", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "refs/main"), []byte(chgA), 0o644)
		}},
		{"new ref", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "refs/v1"), []byte(chgA), 0o644)
		}},
		{"new pr ref", func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, "refs/refs/pr"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "refs/refs/pr/1"), []byte(chgA), 0o644)
		}},
		{"ref removed", func(dir string) error { return os.Remove(filepath.Join(dir, "refs/main")) }},
		{"new revision folder", func(dir string) error {
			return os.Mkdir(filepath.Join(dir, "snapshots", chgB), 0o755)
		}},
		{"incomplete blob appears", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "blobs", chgA+".0123abcd.incomplete"), nil, 0o644)
		}},
		{"blob renamed into place", func(dir string) error {
			return os.Rename(filepath.Join(dir, "blobs", chgD), filepath.Join(dir, "blobs", chgB))
		}},
		{"top-level file added to the ref's revision", func(dir string) error {
			return os.Symlink("../../blobs/"+chgD, filepath.Join(dir, "snapshots", chgA, "new.txt"))
		}},
		{"new sub-folder in the ref's revision", func(dir string) error {
			if err := os.Mkdir(filepath.Join(dir, "snapshots", chgA, "sub2"), 0o755); err != nil {
				return err
			}
			return os.Symlink("../../../blobs/"+chgD, filepath.Join(dir, "snapshots", chgA, "sub2/x.txt"))
		}},
		{"top-level file removed from the ref's revision", func(dir string) error {
			return os.Remove(filepath.Join(dir, "snapshots", chgA, "top.txt"))
		}},
		{"no_exist commit folder", func(dir string) error {
			return os.Mkdir(filepath.Join(dir, ".no_exist", chgA), 0o755)
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			dir, repo := chgMakeRepo(t)
			polls := PollPaths(repo)
			fp1 := chgFP(t, chgStatPaths(t, dir, polls))
			if err := s.do(dir); err != nil {
				t.Fatal(err)
			}
			if fp2 := chgFP(t, chgStatPaths(t, dir, polls)); fp2 == fp1 {
				t.Errorf("%s: PollPaths %q saw nothing", s.name, polls)
			}
		})
	}
}

// TestPollPathsFileInExistingSubFolder: a file added to an existing
// sub-folder of a revision a ref shows, its blob already present (what
// snapshot_download does for each file of a new commit sharing blobs with
// an old one: hf_hub_download(revision=<commit>) writes no ref and no
// blob), changes only that sub-folder. PollPaths does not stat it, so the
// poll sees nothing, although change.go says "a file added to a revision
// a ref shows changes that revision's folder" (true only at its top
// level). mount/scanner.go's printEntry stats every snapshot folder and
// sees it. PollPaths now stats the sub-folders of shown revisions (up to
// PollSubdirsMax each), so the poll sees it.
func TestPollPathsFileInExistingSubFolder(t *testing.T) {
	dir, repo := chgMakeRepo(t)
	polls := PollPaths(repo)
	fp1 := chgFP(t, chgStatPaths(t, dir, polls))
	sub := filepath.Join(dir, "snapshots", chgA, "sub")
	var st1, st2 syscall.Stat_t
	if err := syscall.Stat(sub, &st1); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../blobs/"+chgD, filepath.Join(sub, "b.txt")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(sub, &st2); err != nil {
		t.Fatal(err)
	}
	if st1.Mtim == st2.Mtim {
		t.Fatal("the sub-folder's mtime did not change")
	}
	if fp2 := chgFP(t, chgStatPaths(t, dir, polls)); fp2 == fp1 {
		t.Errorf("snapshots/<commit>/sub/b.txt added to the revision refs/main shows; PollPaths %q do not change", polls)
	}
}

func TestUnreachable(t *testing.T) {
	wrap := func(e error) error { return &os.PathError{Op: "stat", Path: "/cache/x", Err: e} }
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"ENOENT", syscall.ENOENT, false},
		{"ENOTDIR", syscall.ENOTDIR, false},
		{"wrapped ENOENT", wrap(syscall.ENOENT), false},
		{"wrapped ENOTDIR", wrap(syscall.ENOTDIR), false},
		{"fmt wrapped ENOENT", fmt.Errorf("scan: %w", wrap(syscall.ENOENT)), false},
		{"fs.ErrNotExist", fs.ErrNotExist, false},
		{"ENOTCONN", syscall.ENOTCONN, true},
		{"EIO", syscall.EIO, true},
		{"EACCES", syscall.EACCES, false}, // an answer: the path is there, not readable
		{"ELOOP", syscall.ELOOP, false},
		{"ESTALE", syscall.ESTALE, true},
		{"ETIMEDOUT", syscall.ETIMEDOUT, true},
		{"EHOSTDOWN", syscall.EHOSTDOWN, true},
		{"wrapped ENOTCONN", wrap(syscall.ENOTCONN), true},
		{"wrapped EIO", wrap(syscall.EIO), true},
		{"wrapped EACCES", wrap(syscall.EACCES), false},
		{"wrapped ESTALE", wrap(syscall.ESTALE), true},
		{"wrapped ETIMEDOUT", wrap(syscall.ETIMEDOUT), true},
		{"plain error", errors.New("boom"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unreachable(tc.err); got != tc.want {
				t.Errorf("Unreachable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestUnreachableRealStat: what syscall.Stat and os.Stat return for a
// missing path, or a path below a file, is not unreachable.
func TestUnreachableRealStat(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	for _, p := range []string{filepath.Join(dir, "nope"), filepath.Join(file, "below")} {
		if err := syscall.Stat(p, &st); err == nil || Unreachable(err) {
			t.Errorf("syscall.Stat(%s): %v, unreachable %v", p, err, Unreachable(err))
		}
		if _, err := os.Stat(p); err == nil || Unreachable(err) {
			t.Errorf("os.Stat(%s): %v, unreachable %v", p, err, Unreachable(err))
		}
	}
}

func TestSettle(t *testing.T) {
	listing := chgListing
	cases := []struct {
		name string
		in   SettleInput
		want map[string]string
	}{
		{"nil repo", SettleInput{Shown: map[string]string{"main": chgA}}, nil},
		{"no refs", SettleInput{Repo: chgRepo(chgRev(chgA, nil, "f"))}, nil},
		{"ref unchanged", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgA, []string{"main"}, "f")),
		}, nil},
		{"ref unchanged although its revision lost files and a download runs", SettleInput{
			Shown:       map[string]string{"main": chgA},
			Repo:        chgRepo(chgRev(chgA, []string{"main"})),
			Listing:     listing(map[string][]string{chgA: {"f", "g"}}),
			Downloading: true,
		}, nil},
		{"moved to a complete revision, not quiet, downloading", SettleInput{
			Shown:       map[string]string{"main": chgA},
			Repo:        chgRepo(chgRev(chgA, nil, "a/x", "f"), chgRev(chgB, []string{"main"}, "a/x", "f")),
			Downloading: true,
		}, nil},
		{"moved to a revision holding more than before", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgA, nil, "f"), chgRev(chgB, []string{"main"}, "f", "g")),
		}, nil},
		{"moved to an empty revision from an empty one", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgA, nil), chgRev(chgB, []string{"main"})),
		}, nil},
		{"moved to a revision lacking a path, not quiet", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgA, nil, "a/x", "f"), chgRev(chgB, []string{"main"}, "f")),
		}, map[string]string{"main": chgA}},
		{"lacking a path, quiet just short", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgA, nil, "a/x", "f"), chgRev(chgB, []string{"main"}, "f")),
			Quiet: SettleQuiet - time.Nanosecond,
		}, map[string]string{"main": chgA}},
		{"lacking a path, quiet exactly SettleQuiet", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgA, nil, "a/x", "f"), chgRev(chgB, []string{"main"}, "f")),
			Quiet: SettleQuiet,
		}, nil},
		{"lacking a path, long quiet", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgA, nil, "a/x", "f"), chgRev(chgB, []string{"main"}, "f")),
			Quiet: time.Hour,
		}, nil},
		{"lacking a path, quiet but downloading", SettleInput{
			Shown:       map[string]string{"main": chgA},
			Repo:        chgRepo(chgRev(chgA, nil, "a/x", "f"), chgRev(chgB, []string{"main"}, "f")),
			Quiet:       time.Hour,
			Downloading: true,
		}, map[string]string{"main": chgA}},
		{"listing complete though before had more", SettleInput{
			Shown:   map[string]string{"main": chgA},
			Repo:    chgRepo(chgRev(chgA, nil, "a/x", "f", "old"), chgRev(chgB, []string{"main"}, "f")),
			Listing: listing(map[string][]string{chgB: {"f"}}),
		}, nil},
		{"empty listing is complete", SettleInput{
			Shown:   map[string]string{"main": chgA},
			Repo:    chgRepo(chgRev(chgA, nil, "f"), chgRev(chgB, []string{"main"})),
			Listing: listing(map[string][]string{chgB: {}}),
		}, nil},
		{"listing lists a missing path", SettleInput{
			Shown:   map[string]string{"main": chgA},
			Repo:    chgRepo(chgRev(chgA, nil, "f"), chgRev(chgB, []string{"main"}, "f")),
			Listing: listing(map[string][]string{chgB: {"f", "sub/model.bin"}}),
		}, map[string]string{"main": chgA}},
		{"listing lists a missing path, downloading", SettleInput{
			Shown:       map[string]string{"main": chgA},
			Repo:        chgRepo(chgRev(chgA, nil, "f"), chgRev(chgB, []string{"main"}, "f")),
			Listing:     listing(map[string][]string{chgB: {"f", "sub/model.bin"}}),
			Downloading: true,
		}, map[string]string{"main": chgA}},
		{"listing lists a missing path, quiet", SettleInput{
			Shown:   map[string]string{"main": chgA},
			Repo:    chgRepo(chgRev(chgA, nil, "f"), chgRev(chgB, []string{"main"}, "f")),
			Listing: listing(map[string][]string{chgB: {"f", "sub/model.bin"}}),
			Quiet:   SettleQuiet,
		}, nil},
		{"listing of another commit only: falls back, complete", SettleInput{
			Shown:   map[string]string{"main": chgA},
			Repo:    chgRepo(chgRev(chgA, nil, "f"), chgRev(chgB, []string{"main"}, "f")),
			Listing: listing(map[string][]string{chgA: {"f", "never"}}),
		}, nil},
		{"listing not ok: falls back, lacking a path", SettleInput{
			Shown:   map[string]string{"main": chgA},
			Repo:    chgRepo(chgRev(chgA, nil, "f", "g"), chgRev(chgB, []string{"main"}, "f")),
			Listing: listing(nil),
		}, map[string]string{"main": chgA}},
		{"listing not ok with paths: ignored", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgA, nil, "f", "g"), chgRev(chgB, []string{"main"}, "f")),
			Listing: func(string) ([]string, bool) {
				return []string{"f"}, false
			},
		}, map[string]string{"main": chgA}},
		{"new ref, no listing", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgA, []string{"main", "v1"}, "f")),
		}, map[string]string{"v1": ""}},
		{"new ref, no listing, downloading and quiet", SettleInput{
			Shown:       map[string]string{},
			Repo:        chgRepo(chgRev(chgA, []string{"v1"}, "f")),
			Quiet:       time.Hour,
			Downloading: true,
		}, map[string]string{"v1": ""}},
		{"new ref, no listing, quiet", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgA, []string{"main", "v1"}, "f")),
			Quiet: SettleQuiet,
		}, nil},
		{"new ref, complete listing", SettleInput{
			Shown:   map[string]string{"main": chgA},
			Repo:    chgRepo(chgRev(chgA, []string{"main"}, "f"), chgRev(chgB, []string{"refs/pr/1"}, "f", "g")),
			Listing: listing(map[string][]string{chgB: {"f", "g"}}),
		}, nil},
		{"new ref, incomplete listing", SettleInput{
			Shown:   map[string]string{"main": chgA},
			Repo:    chgRepo(chgRev(chgA, []string{"main"}, "f"), chgRev(chgB, []string{"refs/pr/1"}, "f")),
			Listing: listing(map[string][]string{chgB: {"f", "g"}}),
		}, map[string]string{"refs/pr/1": ""}},
		// With no Shown at all every ref is new: hidden until quiet. The
		// first model must not go through Settle (or must pass Quiet).
		{"nil shown hides every ref", SettleInput{
			Repo: chgRepo(chgRev(chgA, []string{"main", "v1"}, "f"), chgRev(chgB, []string{"refs/pr/1"}, "f")),
		}, map[string]string{"main": "", "v1": "", "refs/pr/1": ""}},
		{"shown commit deleted from the scan", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgB, []string{"main"}, "f")),
		}, map[string]string{"main": ""}},
		{"shown commit deleted, complete listing", SettleInput{
			Shown:   map[string]string{"main": chgA},
			Repo:    chgRepo(chgRev(chgB, []string{"main"}, "f")),
			Listing: listing(map[string][]string{chgB: {"f"}}),
		}, nil},
		{"shown commit deleted, quiet", SettleInput{
			Shown: map[string]string{"main": chgA},
			Repo:  chgRepo(chgRev(chgB, []string{"main"}, "f")),
			Quiet: SettleQuiet,
		}, nil},
		{"hidden last time, still no listing", SettleInput{
			Shown: map[string]string{"v1": ""},
			Repo:  chgRepo(chgRev(chgA, []string{"v1"}, "f")),
		}, map[string]string{"v1": ""}},
		{"ref removed from the scan is not held", SettleInput{
			Shown: map[string]string{"main": chgA, "gone": chgA},
			Repo:  chgRepo(chgRev(chgA, []string{"main"}, "f")),
		}, nil},
		{"several refs: one follows, one held, one unchanged", SettleInput{
			Shown: map[string]string{"main": chgA, "dev": chgA, "v1": chgC},
			Repo: chgRepo(
				chgRev(chgA, nil, "f", "g"),
				chgRev(chgB, []string{"main"}, "f", "g", "h"), // complete
				chgRev(chgC, []string{"v1"}, "f"),             // unchanged
				chgRev(chgD, []string{"dev"}, "f"),            // lacks g
			),
		}, map[string]string{"dev": chgA}},
		{"several refs on one moved revision, one of them new", SettleInput{
			Shown: map[string]string{"main": chgA, "refs/pr/1": chgA},
			Repo:  chgRepo(chgRev(chgA, nil, "f", "g"), chgRev(chgB, []string{"main", "refs/pr/1", "v2"}, "f")),
		}, map[string]string{"main": chgA, "refs/pr/1": chgA, "v2": ""}},
		{"several refs, listing settles one revision only", SettleInput{
			Shown: map[string]string{"main": chgA, "dev": chgA},
			Repo: chgRepo(
				chgRev(chgA, nil, "f", "g"),
				chgRev(chgB, []string{"main"}, "f"),
				chgRev(chgC, []string{"dev"}, "f"),
			),
			Listing: listing(map[string][]string{chgB: {"f"}, chgC: {"f", "g"}}),
		}, map[string]string{"dev": chgA}},
		{"several refs, quiet releases all", SettleInput{
			Shown: map[string]string{"main": chgA, "dev": chgA},
			Repo: chgRepo(
				chgRev(chgA, nil, "f", "g"),
				chgRev(chgB, []string{"main", "new"}, "f"),
				chgRev(chgC, []string{"dev"}, "f"),
			),
			Quiet: 2 * SettleQuiet,
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Settle(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Settle = %v, want %v", got, tc.want)
			}
			if got != nil && len(got) == 0 {
				t.Error("an empty non-nil map: want nil when every ref follows")
			}
		})
	}
}

// TestSettleFollowsDownloadSteps replays a snapshot_download of a new
// commit: the ref moves first, the listing lands, then the files one by
// one; by-ref keeps the old commit until the last file is in.
func TestSettleFollowsDownloadSteps(t *testing.T) {
	old := chgRev(chgA, nil, "config.json", "model.bin")
	want := []string{"config.json", "model.bin", "sub/tokenizer.json"}
	var trees map[string][]string
	for i := 0; i <= len(want); i++ {
		rev := chgRev(chgB, []string{"main"}, want[:i]...)
		in := SettleInput{
			Shown:       map[string]string{"main": chgA},
			Repo:        chgRepo(old, rev),
			Listing:     chgListing(trees),
			Downloading: i < len(want),
		}
		held := Settle(in)
		if i < len(want) && held["main"] != chgA {
			t.Errorf("%d of %d files: held %v, want main held at the old commit", i, len(want), held)
		}
		if i == len(want) && held != nil {
			t.Errorf("all files in: held %v", held)
		}
		trees = map[string][]string{chgB: want} // written before the first file
	}
}

func TestMissing(t *testing.T) {
	before := chgRev(chgA, []string{"main"}, "a/x", "b", "z")
	cases := []struct {
		name    string
		rev     *RevisionInfo
		before  *RevisionInfo
		listing func(string) ([]string, bool)
		want    []string
	}{
		{"nothing to compare", chgRev(chgB, nil, "f"), nil, nil, nil},
		{"nothing to compare, listing not ok", chgRev(chgB, nil, "f"), nil, chgListing(nil), nil},
		{"nil listing func falls back on before", chgRev(chgB, nil, "b"), before, nil, []string{"a/x", "z"}},
		{"listing not ok falls back on before", chgRev(chgB, nil, "b"), before, chgListing(map[string][]string{chgA: {"q"}}), []string{"a/x", "z"}},
		{"before fully held", chgRev(chgB, nil, "a/x", "b", "z", "extra"), before, nil, nil},
		{"listing wins over before", chgRev(chgB, nil, "b"), before, chgListing(map[string][]string{chgB: {"b", "new/one"}}), []string{"new/one"}},
		{"listing complete though before had more", chgRev(chgB, nil, "b"), before, chgListing(map[string][]string{chgB: {"b"}}), nil},
		{"empty listing", chgRev(chgB, nil), before, chgListing(map[string][]string{chgB: {}}), nil},
		{"listing sorted output", chgRev(chgB, nil, "m"), nil, chgListing(map[string][]string{chgB: {"z", "m", "a/b", "A", "a"}}), []string{"A", "a", "a/b", "z"}},
		{"before sorted output", chgRev(chgB, nil), chgRev(chgA, nil, "z", "b/c", "a"), nil, []string{"a", "b/c", "z"}},
		{"empty revision vs listing", chgRev(chgB, nil), nil, chgListing(map[string][]string{chgB: {"x/y", "w"}}), []string{"w", "x/y"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Missing(tc.rev, tc.before, tc.listing)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Missing = %q, want %q", got, tc.want)
			}
			if !sort.StringsAreSorted(got) {
				t.Errorf("not sorted: %q", got)
			}
			// complete agrees with Missing, except with nothing to compare
			// against: unknown, so not complete, yet nothing listed missing.
			comparable := tc.before != nil
			if tc.listing != nil {
				if _, ok := tc.listing(tc.rev.CommitHash); ok {
					comparable = true
				}
			}
			if c := complete(tc.rev, tc.before, tc.listing); comparable && c != (len(got) == 0) {
				t.Errorf("complete = %v but Missing = %q", c, got)
			} else if !comparable && c {
				t.Error("complete with nothing to compare against")
			}
		})
	}
}
