package views

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hfcachefs/hfcachefs/cachecore"
)

// Xattr names hfcachefs serves (read-only).
const (
	XattrRepoID         = "user.hf.repo_id"
	XattrRepoType       = "user.hf.repo_type"
	XattrSizeOnDisk     = "user.hf.size_on_disk"
	XattrCommit         = "user.hf.commit"
	XattrRefs           = "user.hf.refs"
	XattrNoExist        = "user.hf.no_exist"
	XattrEtag           = "user.hf.etag"
	XattrFreedIfTrashed = "user.hf.freed_if_trashed"
)

// Xattrs lists an entry's extended attributes, names sorted. Values are
// computed on demand (user.hf.no_exist reads the repo's .no_exist/).
func (m *Model) Xattrs(e Entry) []string {
	switch {
	case e.Role == RoleRepo:
		return []string{XattrFreedIfTrashed, XattrRepoID, XattrRepoType, XattrSizeOnDisk}
	case e.Role == RoleRevision:
		return []string{XattrCommit, XattrFreedIfTrashed, XattrNoExist, XattrRefs, XattrSizeOnDisk}
	case e.Role == RoleRevisionFile && m.etag(e) != "":
		return []string{XattrEtag}
	}
	return nil
}

// Xattr returns one attribute's value; ok is false when the entry has no
// such attribute.
func (m *Model) Xattr(e Entry, name string) (string, bool) {
	switch e.Role {
	case RoleRepo:
		rv := m.repos[e.Loc.Folder]
		if rv == nil {
			return "", false
		}
		switch name {
		case XattrRepoID:
			return rv.info.RepoID, true
		case XattrRepoType:
			return rv.info.RepoType, true
		case XattrSizeOnDisk:
			return strconv.FormatInt(rv.info.SizeOnDisk, 10), true
		case XattrFreedIfTrashed:
			return strconv.FormatInt(rv.freeable, 10), true
		}
	case RoleRevision:
		rv := m.repos[e.Loc.Folder]
		v := m.rev(e.Loc)
		if v == nil {
			return "", false
		}
		switch name {
		case XattrCommit:
			return v.rev.CommitHash, true
		case XattrRefs:
			return strings.Join(v.rev.Refs, ","), true
		case XattrSizeOnDisk:
			return strconv.FormatInt(v.rev.SizeOnDisk, 10), true
		case XattrNoExist:
			return strings.Join(noExist(rv.info.RepoPath, v.rev.CommitHash), "\n"), true
		case XattrFreedIfTrashed:
			plan := m.Info.PlanDeletion([]cachecore.Selection{{Repo: rv.info, Revisions: []*cachecore.RevisionInfo{v.rev}}})
			return strconv.FormatInt(plan.ExpectedFreedSize, 10), true
		}
	case RoleRevisionFile:
		if name == XattrEtag {
			etag := m.etag(e)
			return etag, etag != ""
		}
	}
	return "", false
}

// etag is the blob's name when the file links into the repo's blobs/.
func (m *Model) etag(e Entry) string {
	if e.File == nil {
		return ""
	}
	dir, name := filepath.Split(e.File.BlobPath)
	if filepath.Base(filepath.Clean(dir)) != "blobs" {
		return ""
	}
	return name
}

// noExist lists the files cached as non-existent at a commit.
func noExist(repoPath, commit string) []string {
	root := filepath.Join(repoPath, ".no_exist", commit)
	var out []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out
}
