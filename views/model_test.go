package views

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

const (
	mainCommit = "eba90b51402874116c4cda2ae669ce32cc85e1c6"
	v1Commit   = "4a67d7bb895e9c468f402aa571ffea8548c37676"
	prCommit   = "b182d9dfaaa3b0371d923ac6f05d09a96e70a56e"
	detached   = "a22712daca2fb86decd9b9c6ed06c1c90ca638fa"
)

func basicModel(t *testing.T, opts Options) (*Model, *cachecore.CacheInfo) {
	t.Helper()
	info, err := cachecore.Scan(testcache.Basic(t))
	if err != nil {
		t.Fatal(err)
	}
	return Build(1, info, NewInoTable(), opts, time.Now()), info
}

func TestFSConformsToIOFS(t *testing.T) {
	m, _ := basicModel(t, Options{})
	fsys := FS{Model: m, Status: func() []byte { return m.Status(MountInfo{}, nil, nil) }}
	err := fstest.TestFS(fsys,
		".status.json",
		"models/acme/tiny-model/by-ref/main/config.json",
		"models/acme/tiny-model/by-ref/refs/pr/1/config.json",
		"models/acme/tiny-model/by-ref/feature/x/weights/big.bin",
		"models/acme/tiny-model/by-commit/"+mainCommit+"/sub/dir/file.txt",
		"models/acme/tiny-model/by-commit/"+mainCommit+"/données/résumé ✓.txt",
		"models/acme/tiny-model/by-commit/"+detached+"/README.md",
		"models/gpt2/by-ref/main/model.safetensors",
		"datasets/acme/tiny-dataset/by-ref/v1/data/train.csv",
		"spaces/acme/tiny-space/by-ref/main/app.py",
	)
	if err != nil {
		t.Fatal(err)
	}
	// by-size links lead to the repo folders.
	viaLink, err := fs.ReadFile(fsys, "by-size/0001-25.3K-model--acme--tiny-model/by-ref/main/config.json")
	direct, _ := fs.ReadFile(fsys, "models/acme/tiny-model/by-ref/main/config.json")
	if err != nil || !bytes.Equal(viaLink, direct) {
		t.Errorf("through by-size: %v", err)
	}
}

// Every file of every revision reads as its blob, through by-commit and
// through each ref.
func TestEveryFileReadsAsItsBlob(t *testing.T) {
	m, info := basicModel(t, Options{})
	fsys := FS{Model: m}
	n := 0
	for _, repo := range info.Repos {
		base := typeFolder(repo.RepoType) + "/" + repo.RepoID
		for _, rev := range repo.Revisions {
			paths := []string{base + "/by-commit/" + rev.CommitHash}
			for _, ref := range rev.Refs {
				paths = append(paths, base+"/by-ref/"+ref)
			}
			for _, f := range rev.Files {
				want, err := os.ReadFile(f.BlobPath)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range paths {
					got, err := fs.ReadFile(fsys, p+"/"+f.RelPath)
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("%s/%s: %v", p, f.RelPath, err)
					}
					n++
				}
			}
		}
	}
	if n < 30 {
		t.Errorf("only %d reads", n)
	}
}

// du counts each inode once: the distinct inodes below a repo folder add
// up to the repo's size_on_disk.
func TestRepoFolderSumsToSizeOnDisk(t *testing.T) {
	m, info := basicModel(t, Options{})
	fsys := FS{Model: m}
	for _, repo := range info.Repos {
		seen := map[uint64]int64{}
		links := map[uint64]int{}
		root := typeFolder(repo.RepoType) + "/" + repo.RepoID
		err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, _ := d.Info()
			e := fi.Sys().(Entry)
			if e.Kind == KindDir {
				if e.Size != 0 {
					t.Errorf("%s: folders report size 0", p)
				}
				return nil
			}
			seen[e.Ino] = e.Size
			links[e.Ino]++
			if uint32(links[e.Ino]) > e.Nlink {
				t.Errorf("%s: more paths than st_nlink %d", p, e.Nlink)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for ino, size := range seen {
			sum += size
			if e := uint32(links[ino]); e != lookupNlink(t, m, repo, ino) {
				t.Errorf("%s ino %d: %d paths, st_nlink %d", repo.RepoID, ino, e, lookupNlink(t, m, repo, ino))
			}
		}
		if sum != repo.SizeOnDisk {
			t.Errorf("%s: distinct inodes sum to %d, size_on_disk %d", repo.RepoID, sum, repo.SizeOnDisk)
		}
	}
}

func lookupNlink(t *testing.T, m *Model, repo *cachecore.RepoInfo, ino uint64) uint32 {
	rv := m.repos[repo.FolderName()]
	for _, rev := range repo.Revisions {
		for _, f := range rev.Files {
			if e := m.fileEntry(rv, f); e.Ino == ino {
				return e.Nlink
			}
		}
	}
	t.Fatalf("ino %d not found", ino)
	return 0
}

func TestSameBlobSameInode(t *testing.T) {
	m, _ := basicModel(t, Options{})
	a, _ := m.Resolve("models/acme/tiny-model/by-ref/main/README.md")
	b, _ := m.Resolve("models/acme/tiny-model/by-commit/" + detached + "/README.md")
	c, _ := m.Resolve("models/acme/tiny-model/by-commit/" + mainCommit + "/README.md")
	if a.Ino == 0 || a.Ino != b.Ino || b.Ino != c.Ino || a.Nlink != 3 {
		t.Errorf("README.md: inos %d %d %d nlink %d", a.Ino, b.Ino, c.Ino, a.Nlink)
	}
	x, _ := m.Resolve("models/acme/tiny-model/by-ref/main/copy_a.txt")
	y, _ := m.Resolve("models/acme/tiny-model/by-ref/main/copy_b.txt")
	if x.Ino != y.Ino || x.Nlink != 4 {
		t.Errorf("two paths of one blob in a revision: %d %d nlink %d", x.Ino, y.Ino, x.Nlink)
	}
	d1, _ := m.Resolve("models/acme/tiny-model/by-ref/main")
	d2, _ := m.Resolve("models/acme/tiny-model/by-commit/" + mainCommit)
	if d1.Ino == d2.Ino || d1.Loc.Commit != mainCommit || d1.Loc.ViaRef != "main" {
		t.Errorf("by-ref folders are their own inodes: %+v %+v", d1, d2)
	}
}

func TestByRefFollowsTheRefWithANewInode(t *testing.T) {
	dir := testcache.Basic(t)
	inos := NewInoTable()
	info, _ := cachecore.Scan(dir)
	m1 := Build(1, info, inos, Options{}, time.Now())
	before, _ := m1.Resolve("models/acme/tiny-model/by-ref/main")
	if err := os.WriteFile(filepath.Join(dir, "models--acme--tiny-model", "refs", "main"), []byte(v1Commit), 0o644); err != nil {
		t.Fatal(err)
	}
	info, _ = cachecore.Scan(dir)
	m2 := Build(2, info, inos, Options{}, time.Now())
	after, _ := m2.Resolve("models/acme/tiny-model/by-ref/main")
	if after.Loc.Commit != v1Commit || after.Ino == before.Ino {
		t.Errorf("moved ref: %+v -> %+v", before, after)
	}
	// The old folder keeps showing the revision it showed (a bind mount
	// of it is pinned), as long as that revision exists.
	if _, ok := m2.Lookup(before.Loc, "tokenizer.json"); !ok {
		t.Error("the pinned folder lost its revision")
	}
	again, _ := m2.Resolve("models/acme/tiny-model/by-commit/" + mainCommit + "/config.json")
	old, _ := m1.Resolve("models/acme/tiny-model/by-commit/" + mainCommit + "/config.json")
	if again.Ino != old.Ino {
		t.Error("inode numbers must be stable across generations")
	}
}

func TestBySizeRanksLargestFirst(t *testing.T) {
	m, _ := basicModel(t, Options{})
	entries, _ := m.ReadDir(Loc{Role: RoleBySize})
	var names, targets []string
	for _, e := range entries {
		names = append(names, e.Name)
		targets = append(targets, e.Target)
	}
	want := []string{"0001-25.3K-model--acme--tiny-model", "0002-4.2K-model--gpt2", "0003-3.1K-dataset--acme--tiny-dataset", "0004-1.5K-space--acme--tiny-space"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("by-size: %v", names)
	}
	if targets[0] != "../models/acme/tiny-model" || targets[1] != "../models/gpt2" {
		t.Errorf("targets: %v", targets)
	}
}

func TestTopLevelAndReadOnly(t *testing.T) {
	m, _ := basicModel(t, Options{})
	names, _ := m.names(Root())
	if strings.Join(names, " ") != ".status.json .trash assets by-size datasets models spaces" {
		t.Errorf("root: %v", names)
	}
	ro, _ := basicModel(t, Options{ReadOnly: true})
	if _, ok := ro.Resolve(".trash"); ok {
		t.Error("read-only mounts have no .trash")
	}
	refs, _ := m.names(Loc{Role: RoleRefs, Folder: "models--acme--tiny-model"})
	if strings.Join(refs, " ") != "feature main refs v1.0" {
		t.Errorf("by-ref: %v", refs)
	}
}

func TestXattrs(t *testing.T) {
	m, info := basicModel(t, Options{})
	repo, _ := m.Resolve("models/acme/tiny-model")
	checks := map[string]string{XattrRepoID: "acme/tiny-model", XattrRepoType: "model", XattrSizeOnDisk: "25279", XattrFreedIfTrashed: "25279"}
	for k, want := range checks {
		if got, ok := m.Xattr(repo, k); !ok || got != want {
			t.Errorf("repo %s = %q", k, got)
		}
	}
	rev, _ := m.Resolve("models/acme/tiny-model/by-ref/v1.0")
	plan := info.DeleteRevisions(v1Commit)
	checks = map[string]string{XattrCommit: v1Commit, XattrRefs: "feature/x,v1.0", XattrSizeOnDisk: fmt.Sprint(info.Repo("model", "acme/tiny-model").Revision(v1Commit).SizeOnDisk),
		XattrNoExist: "sub/nope/missing.bin", XattrFreedIfTrashed: "20015"}
	if plan.ExpectedFreedSize != 20015 {
		t.Fatalf("plan: %d", plan.ExpectedFreedSize)
	}
	for k, want := range checks {
		if got, ok := m.Xattr(rev, k); !ok || got != want {
			t.Errorf("revision %s = %q, want %q", k, got, want)
		}
	}
	f, _ := m.Resolve("models/acme/tiny-model/by-ref/main/config.json")
	if got, _ := m.Xattr(f, XattrEtag); got != "0ca55ad4fe2a8697f9be5d522c7e1924bea2956e" {
		t.Errorf("etag %q", got)
	}
	if len(m.Xattrs(f)) != 1 || len(m.Xattrs(repo)) != 4 || len(m.Xattrs(rev)) != 5 {
		t.Error("xattr lists")
	}
}

func TestOutsideAndNonRegularFilesAreDenied(t *testing.T) {
	root := testcache.Cases(t)
	info, err := cachecore.Scan(filepath.Join(root, "symlink-outside-cache"))
	if err != nil {
		t.Fatal(err)
	}
	m := Build(1, info, NewInoTable(), Options{}, time.Now())
	e, ok := m.Resolve("models/acme/ok/by-commit/" + strings.Repeat("3", 40) + "/external.bin")
	if !ok || e.Denied == "" || e.Mode != 0 {
		t.Fatalf("%+v", e)
	}
	_, err = FS{Model: m}.Open("models/acme/ok/by-commit/" + strings.Repeat("3", 40) + "/external.bin")
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("open: %v", err)
	}
}

// Names that collide get the documented rules: a repo that is also an
// org folder holds both; an org repo named like a view gets "@repo"; an
// id that is no clean path sits at "@<folder name>".
func TestNameCollisions(t *testing.T) {
	mk := func(id string) *cachecore.RepoInfo {
		folder := "models--" + strings.ReplaceAll(id, "/", "--")
		return &cachecore.RepoInfo{RepoID: id, RepoType: "model", RepoPath: "/c/" + folder,
			Revisions: []*cachecore.RevisionInfo{{CommitHash: "c1", Refs: []string{"main"}}}}
	}
	info := &cachecore.CacheInfo{Repos: []*cachecore.RepoInfo{mk(""), mk("gpt2"), mk("gpt2/by-ref"), mk("gpt2/small"), mk("a//b")}}
	m := Build(1, info, NewInoTable(), Options{}, time.Now())
	names, _ := m.names(Loc{Role: RoleRepo, Type: "model", Path: "gpt2", Folder: "models--gpt2"})
	if strings.Join(names, " ") != "by-commit by-ref by-ref@repo small" {
		t.Errorf("gpt2/: %v", names)
	}
	for _, p := range []string{"models/gpt2/by-ref/main", "models/gpt2/by-ref@repo/by-ref/main", "models/gpt2/small/by-commit/c1", "models/@models--/by-ref/main", "models/@models--a----b/by-commit/c1"} {
		if _, ok := m.Resolve(p); !ok {
			t.Errorf("%s not found", p)
		}
	}
	top, _ := m.names(Loc{Role: RoleType, Type: "model"})
	if strings.Join(top, " ") != "@models-- @models--a----b gpt2" {
		t.Errorf("models/: %v", top)
	}
}
