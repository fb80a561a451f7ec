// Package cachecore understands the Hugging Face Hub cache exactly as
// huggingface_hub does: scanning (scan_cache_dir), deletion strategies
// (delete_revisions), cached lookups (try_to_load_from_cache), assets paths
// and the formatters behind export_as_table. It has no FUSE dependency.
package cachecore

import (
	"sort"
	"strings"
)

// RepoTypes are the repo types the scan accepts (upstream rejects "kernel").
var RepoTypes = []string{"model", "dataset", "space"}

// FileInfo mirrors CachedFileInfo: one file of one revision.
type FileInfo struct {
	FileName         string  // basename only, as upstream
	SnapshotPath     string  // the revision's snapshot folder (FilePath joins RelPath to it)
	BlobPath         string  // FilePath() with every symlink resolved
	SizeOnDisk       int64   // st_size of the blob
	BlobLastAccessed float64 // st_atime as float seconds
	BlobLastModified float64 // st_mtime as float seconds

	// Not part of upstream's dataclass; the views need them.
	RelPath string // path inside the revision, "/"-separated
	Blob    *BlobStat
}

// FilePath is upstream's file_path: the absolute path under snapshots/,
// unresolved. Built on demand: stored, it took 24 MB of a 180k-file
// cache's model (heap profile).
func (f *FileInfo) FilePath() string { return f.SnapshotPath + "/" + f.RelPath }

// BlobStat is what the scan learnt about one resolved blob path.
// Its fields are laid out to fit 96 bytes (Go's size class): the scan
// keeps one per distinct blob.
type BlobStat struct {
	Path    string
	Size    int64
	Blocks  int64 // 512-byte blocks, for du-honest views
	Dev     uint64
	Ino     uint64
	Mode    uint32 // st_mode of the blob (file type and permissions)
	UID     uint32
	GID     uint32
	Outside bool     // never opened: resolves outside the cache directory and outside its (followed) repo folder
	Base    BlobBase // what Rel() is resolved beneath when the blob is opened
	RelOff  uint16   // Rel() is Path[RelOff:]
	Atime   float64
	Mtime   float64
	Ctime   float64
	Repo    *RepoAnchor // the repo folder the blob was scanned for
}

// Rel is the blob's path beneath its Base: the cache dir (BaseCache) or
// the repo folder as resolved (BaseRepo). A substring of Path.
func (b *BlobStat) Rel() string { return b.Path[b.RelOff:] }

// BlobBase says which folder handle a blob is opened beneath.
type BlobBase uint8

// Blob bases.
const (
	BaseNone  BlobBase = iota // never opened (Outside, or a path too long to place)
	BaseCache                 // Rel() beneath the cache dir: another repo's blob, the shared blob store
	BaseRepo                  // Rel() beneath the repo folder, followed once at the top (Repo)
)

// RepoAnchor is a repo folder as the scan resolved it: the blobs of the
// repo are opened beneath it, and a kept view is checked against it.
type RepoAnchor struct {
	Folder   string // the entry's name in the cache dir
	Real     string // the folder, every symlink resolved
	Dev, Ino uint64 // of Real when scanned
	Linked   bool   // Folder is a symlink, followed (its owner is root or owns Real)
	Refused  bool   // Folder is a symlink not followed: blobs beneath Real are Outside
	// Dirs are the distinct folders holding the repo's served blobs, as
	// scanned: a view kept while the repo is inconsistent is served only
	// while each still resolves, without a symlink, to the same folder.
	Dirs []BlobDir
}

// BlobDir is one folder holding blobs, beneath a base.
type BlobDir struct {
	Base     BlobBase
	Rel      string // "" is the base itself
	Dev, Ino uint64
}

// RevisionInfo mirrors CachedRevisionInfo.
type RevisionInfo struct {
	CommitHash   string
	SnapshotPath string
	SizeOnDisk   int64
	Files        []*FileInfo // sorted by FilePath()
	Refs         []string    // sorted
	LastModified float64
}

// NbFiles is the number of files in the snapshot (not deduplicated).
func (r *RevisionInfo) NbFiles() int { return len(r.Files) }

// SizeOnDiskStr is _format_size(size_on_disk).
func (r *RevisionInfo) SizeOnDiskStr() string { return FormatSize(r.SizeOnDisk) }

// RepoInfo mirrors CachedRepoInfo.
type RepoInfo struct {
	RepoID       string
	RepoType     string
	RepoPath     string // absolute, under the resolved cache dir
	SizeOnDisk   int64
	NbFiles      int // distinct resolved blob paths
	Revisions    []*RevisionInfo
	LastAccessed float64
	LastModified float64

	// Not part of upstream's dataclass: the folder the blobs are opened
	// beneath (nil for a placeholder).
	Anchor *RepoAnchor
}

// CacheID is "{repo_type}/{repo_id}".
func (r *RepoInfo) CacheID() string { return r.RepoType + "/" + r.RepoID }

// SizeOnDiskStr is _format_size(size_on_disk).
func (r *RepoInfo) SizeOnDiskStr() string { return FormatSize(r.SizeOnDisk) }

// FolderName is the repo's folder name inside the cache.
func (r *RepoInfo) FolderName() string {
	i := strings.LastIndexByte(r.RepoPath, '/')
	return r.RepoPath[i+1:]
}

// Refs maps each ref name to the revision holding it.
func (r *RepoInfo) Refs() map[string]*RevisionInfo {
	m := map[string]*RevisionInfo{}
	for _, rev := range r.Revisions {
		for _, ref := range rev.Refs {
			m[ref] = rev
		}
	}
	return m
}

// RefNames returns every ref of the repo, sorted.
func (r *RepoInfo) RefNames() []string {
	var out []string
	for _, rev := range r.Revisions {
		out = append(out, rev.Refs...)
	}
	sort.Strings(out)
	return out
}

// Revision finds a revision by exact commit hash.
func (r *RepoInfo) Revision(hash string) *RevisionInfo {
	for _, rev := range r.Revisions {
		if rev.CommitHash == hash {
			return rev
		}
	}
	return nil
}

// IncompleteFileInfo mirrors CachedIncompleteFileInfo.
type IncompleteFileInfo struct {
	FilePath   string
	SizeOnDisk int64
}

// Notice is something worth telling that upstream does not report as a
// CorruptedCacheException: it never changes Warnings.
type Notice struct {
	Path    string `json:"path"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Notice kinds.
const (
	NoticeOutsideCache  = "outside-cache"  // a snapshot file resolves outside the cache dir
	NoticeNotRegular    = "not-regular"    // a blob is a FIFO, device, socket, ...
	NoticeScanError     = "scan-error"     // upstream's whole scan would raise here; repo skipped
	NoticeKernelRepo    = "kernel-repo"    // kernels-- folder written by hf_hub_download(repo_type="kernel")
	NoticeAbsoluteLink  = "absolute-link"  // a snapshot symlink with an absolute target
	NoticeCopiedFile    = "copied-file"    // a regular file inside a snapshot (no-symlink mode)
	NoticeUnreadable    = "unreadable"     // a folder that could not be listed
	NoticeOrphanedBlobs = "orphaned-blobs" // blobs no snapshot links to (not counted upstream)
	NoticeForeignBlob   = "foreign-blob"   // a snapshot file links to another repo's blob
	NoticeOddName       = "odd-name"       // a name with a control character or invalid UTF-8
	NoticeDeepFolder    = "deep-folder"    // a revision nested deeper than deepFolderLevels
	NoticeLongName      = "long-name"      // a name within 16 bytes of NAME_MAX
	NoticeLargeRevision = "large-revision" // a revision of largeRevisionFiles files or more
	NoticeReadOnly      = "read-only"      // the cache is on a read-only file system
)

// CacheInfo mirrors HFCacheInfo.
type CacheInfo struct {
	CacheDir        string // resolved absolute cache dir
	SizeOnDisk      int64
	Repos           []*RepoInfo // sorted by RepoPath
	IncompleteFiles []IncompleteFileInfo
	Warnings        []*CorruptedCacheError // directory order, as upstream
	Notices         []Notice
}

// SizeOnDiskStr is _format_size(size_on_disk).
func (c *CacheInfo) SizeOnDiskStr() string { return FormatSize(c.SizeOnDisk) }

// IncompleteSizeOnDisk sums the incomplete files' sizes.
func (c *CacheInfo) IncompleteSizeOnDisk() int64 {
	var n int64
	for _, f := range c.IncompleteFiles {
		n += f.SizeOnDisk
	}
	return n
}

// Repo finds a repo by type and id (exact).
func (c *CacheInfo) Repo(repoType, repoID string) *RepoInfo {
	for _, r := range c.Repos {
		if r.RepoType == repoType && r.RepoID == repoID {
			return r
		}
	}
	return nil
}
