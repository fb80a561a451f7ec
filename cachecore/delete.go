package cachecore

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/internal/safefs"
)

// Selection picks revisions of one repo for deletion.
type Selection struct {
	Repo      *RepoInfo
	Revisions []*RevisionInfo
}

// DeleteStrategy mirrors DeleteCacheStrategy: what a deletion removes and
// the size upstream expects it to free. Paths are absolute and sorted.
type DeleteStrategy struct {
	CacheDir          string
	ExpectedFreedSize int64
	Blobs             []string
	Refs              []string
	Repos             []string
	Snapshots         []string
	NotFound          []string // hashes no repo holds (DeleteRevisions only)

	// What Execute needs beyond upstream's sets.
	wholeRepos []*RepoInfo
	blobRepo   map[string]*RepoInfo // blob path -> repo whose snapshots may link to it
	selections []Selection
}

// ExpectedFreedSizeStr is _format_size(expected_freed_size).
func (s *DeleteStrategy) ExpectedFreedSizeStr() string { return FormatSize(s.ExpectedFreedSize) }

// Selections are the (repo, revisions) pairs the strategy was built from,
// in repo path order.
func (s *DeleteStrategy) Selections() []Selection { return s.selections }

// Empty reports whether the strategy deletes nothing.
func (s *DeleteStrategy) Empty() bool {
	return len(s.Blobs)+len(s.Refs)+len(s.Repos)+len(s.Snapshots) == 0
}

// DeleteRevisions is HFCacheInfo.delete_revisions(*hashes): exact string
// match; a hash held by several repos selects only the first (by repo
// path, where upstream's pick is arbitrary). Unknown hashes go to NotFound.
func (c *CacheInfo) DeleteRevisions(hashes ...string) *DeleteStrategy {
	toDelete := map[string]bool{}
	for _, h := range hashes {
		toDelete[h] = true
	}
	var sel []Selection
	for _, repo := range c.Repos {
		var revs []*RevisionInfo
		for _, rev := range repo.Revisions {
			if toDelete[rev.CommitHash] {
				revs = append(revs, rev)
				delete(toDelete, rev.CommitHash)
			}
		}
		if len(revs) > 0 {
			sel = append(sel, Selection{Repo: repo, Revisions: revs})
		}
	}
	s := c.PlanDeletion(sel)
	for h := range toDelete {
		s.NotFound = append(s.NotFound, h)
	}
	sort.Strings(s.NotFound)
	return s
}

// PlanDeletion builds the strategy for explicit selections, with
// upstream's rules: a repo losing every revision goes whole; otherwise its
// snapshots, their refs, and the blobs no remaining revision uses.
func (c *CacheInfo) PlanDeletion(selections []Selection) *DeleteStrategy {
	s := &DeleteStrategy{CacheDir: c.CacheDir, blobRepo: map[string]*RepoInfo{}}
	merged := map[*RepoInfo]map[*RevisionInfo]bool{}
	var order []*RepoInfo
	for _, sel := range selections {
		if merged[sel.Repo] == nil {
			merged[sel.Repo] = map[*RevisionInfo]bool{}
			order = append(order, sel.Repo)
		}
		for _, rev := range sel.Revisions {
			merged[sel.Repo][rev] = true
		}
	}
	sort.Slice(order, func(i, j int) bool { return order[i].RepoPath < order[j].RepoPath })
	blobs := map[string]bool{}
	for _, repo := range order {
		selected := merged[repo]
		var revs []*RevisionInfo
		for _, rev := range repo.Revisions {
			if selected[rev] {
				revs = append(revs, rev)
			}
		}
		s.selections = append(s.selections, Selection{Repo: repo, Revisions: revs})
		if len(revs) == len(repo.Revisions) {
			s.Repos = append(s.Repos, repo.RepoPath)
			s.wholeRepos = append(s.wholeRepos, repo)
			s.ExpectedFreedSize += repo.SizeOnDisk
			continue
		}
		kept := map[string]bool{}
		for _, rev := range repo.Revisions {
			if !selected[rev] {
				for _, f := range rev.Files {
					kept[f.BlobPath] = true
				}
			}
		}
		for _, rev := range revs {
			s.Snapshots = append(s.Snapshots, rev.SnapshotPath)
			for _, ref := range rev.Refs {
				s.Refs = append(s.Refs, repo.RepoPath+"/refs/"+ref)
			}
			for _, f := range rev.Files {
				if f.BlobPath != rev.SnapshotPath && isWithin(f.BlobPath, rev.SnapshotPath) {
					// A real file inside the snapshot goes with it.
					s.ExpectedFreedSize += f.SizeOnDisk
					continue
				}
				if blobs[f.BlobPath] || kept[f.BlobPath] {
					continue
				}
				blobs[f.BlobPath] = true
				s.blobRepo[f.BlobPath] = repo
				s.Blobs = append(s.Blobs, f.BlobPath)
				s.ExpectedFreedSize += f.SizeOnDisk
			}
		}
	}
	for _, l := range [][]string{s.Blobs, s.Refs, s.Repos, s.Snapshots} {
		sort.Strings(l)
	}
	return s
}

// RemoveIncomplete deletes a leftover blobs/*.incomplete file of the scan,
// refusing anything that is not such a file of a repo folder of the cache
// (resolved beneath the cache's handle: no symlinked folder on the way).
func RemoveIncomplete(cacheDir, p string) error {
	dir, err := newResolver().realpath(cacheDir)
	if err != nil {
		return err
	}
	rel, ok := strings.CutPrefix(p, dir+"/")
	parts := strings.Split(rel, "/")
	if !ok || len(parts) != 3 || parts[1] != "blobs" || !strings.Contains(parts[0], "--") || !strings.HasSuffix(parts[2], ".incomplete") {
		return fmt.Errorf("refusing to delete %s: not an incomplete download inside the cache", p)
	}
	root, err := safefs.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	repo, err := root.OpenTop(parts[0])
	if err != nil {
		return err
	}
	defer repo.Close()
	st, err := repo.Stat("blobs/" + parts[2])
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("refusing to delete %s: a directory", p)
	}
	return repo.Remove("blobs/" + parts[2])
}

// RestoreReport says what Restore put back and what it left.
type RestoreReport struct {
	Restored []string // paths back in the cache
	Kept     []string // present in the cache again meanwhile: the cache's version stays
	Notes    []string // for people, e.g. a ref that moved meanwhile
}

// Restore moves back what an Execute with MoveTo moved to heldDir: blobs
// that are missing, then the snapshots, then the refs that do not exist
// now (a ref that exists now stays where it points), then the repos that
// were moved whole (wholeRepos: their folder names) — the reverse of the
// deletion order, so the cache scans clean at every step. A path the cache
// has again meanwhile keeps the cache's version. Everything is put back
// beneath handles of the cache and repo folders.
func Restore(cacheDir, heldDir string, wholeRepos []string) (*RestoreReport, error) {
	rep := &RestoreReport{}
	whole := map[string]bool{}
	for _, f := range wholeRepos {
		whole[f] = true
	}
	root, err := safefs.OpenRoot(cacheDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	held, err := safefs.OpenRoot(heldDir)
	if err != nil {
		return nil, err
	}
	defer held.Close()
	folders, err := held.ReadDir(".")
	if err != nil {
		return nil, err
	}
	sort.Strings(folders)
	for _, folder := range folders {
		if whole[folder] {
			continue
		}
		// Revisions go back only into a real repo folder: one that is a
		// symlink now leads somewhere the cache does not own.
		if st, err := root.Stat(folder); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return rep, fmt.Errorf("cannot restore into %s: the repo folder is a symlink now", folder)
		}
		repo, err := root.OpenDir(folder)
		if err != nil {
			return rep, fmt.Errorf("cannot restore into %s: %w", folder, err)
		}
		err = restoreRevisions(repo, held, folder, rep)
		repo.Close()
		if err != nil {
			return rep, err
		}
	}
	for _, folder := range folders {
		if !whole[folder] {
			continue
		}
		dest := root.Path() + "/" + folder
		if err := held.Rename(folder, root, folder, unix.RENAME_NOREPLACE); err != nil {
			if errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
				return rep, fmt.Errorf("cannot restore %s: the cache has a folder of that name again: %w", folder, os.ErrExist)
			}
			return rep, err
		}
		rep.Restored = append(rep.Restored, dest)
	}
	return rep, nil
}

func restoreRevisions(repo, held *safefs.Handle, folder string, rep *RestoreReport) error {
	var blobs, snaps, refs []string
	for _, kind := range []string{"blobs", "snapshots"} {
		names, _ := held.ReadDir(folder + "/" + kind)
		sort.Strings(names)
		for _, n := range names {
			if kind == "blobs" {
				blobs = append(blobs, kind+"/"+n)
			} else {
				snaps = append(snaps, kind+"/"+n)
			}
		}
	}
	var walk func(rel string)
	walk = func(rel string) {
		names, err := held.ReadDir(folder + "/" + rel)
		if err != nil {
			return
		}
		sort.Strings(names)
		for _, n := range names {
			st, err := held.Stat(folder + "/" + rel + "/" + n)
			if err != nil {
				continue
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				walk(rel + "/" + n)
			} else {
				refs = append(refs, rel+"/"+n)
			}
		}
	}
	walk("refs")
	put := func(rel string) error {
		dest := repo.Path() + "/" + rel
		if _, err := repo.Stat(rel); err == nil {
			rep.Kept = append(rep.Kept, dest)
			return held.RemoveAll(folder + "/" + rel)
		}
		if d := path.Dir(rel); d != "." {
			h, err := repo.Mkdir(d, 0o755)
			if err != nil {
				return err
			}
			h.Close()
		}
		if err := held.Rename(folder+"/"+rel, repo, rel, unix.RENAME_NOREPLACE); err != nil {
			return err
		}
		rep.Restored = append(rep.Restored, dest)
		return nil
	}
	for _, rel := range append(blobs, snaps...) {
		if err := put(rel); err != nil {
			return err
		}
	}
	for _, rel := range refs {
		if now, err := repo.ReadFile(rel, 4096); err == nil {
			was, _ := held.ReadFile(folder+"/"+rel, 4096)
			if string(now) != string(was) {
				rep.Notes = append(rep.Notes, fmt.Sprintf("ref %s moved meanwhile to %s: left as is (it was %s)", strings.TrimPrefix(rel, "refs/"), now, was))
			}
		}
		if err := put(rel); err != nil {
			return err
		}
	}
	return nil
}
