package views

import (
	"encoding/json"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
)

// MountInfo describes the mount for .status.json.
type MountInfo struct {
	Mountpoint    string    `json:"mountpoint"`
	CacheDir      string    `json:"cache_dir"`
	AssetsDir     string    `json:"assets_dir"`
	ReadOnly      bool      `json:"read_only"`
	AllowOther    bool      `json:"allow_other"`
	UID           *uint32   `json:"uid,omitempty"`
	GID           *uint32   `json:"gid,omitempty"`
	PollInterval  string    `json:"poll_interval"`
	Passthrough   string    `json:"passthrough"` // "on", or why it is off
	Started       time.Time `json:"started"`
	TrashStateDir string    `json:"trash_state_dir,omitempty"`
	TrashHold     string    `json:"trash_hold,omitempty"`
	TrashHoldDir  string    `json:"trash_hold_dir,omitempty"`
	Trim          TrimInfo  `json:"trim"`
	Trash         TrashInfo `json:"trash"`
}

// TrashInfo says what .trash is doing: deletions still running in the
// background, the last one finished, and what holds keep.
type TrashInfo struct {
	Running   []TrashProgress `json:"running"`
	Last      *TrashProgress  `json:"last,omitempty"`
	HeldBytes int64           `json:"held_bytes"` // kept by --trash-hold until purged
	HeldCount int             `json:"held_receipts"`
}

// TrashProgress is one deletion through .trash (or a staged one finished
// after a restart).
type TrashProgress struct {
	Name        string     `json:"name"`
	Repo        string     `json:"repo"`
	State       string     `json:"state"` // pending, deleting, deleted, held, failed
	Blobs       int        `json:"blobs"`
	BlobsDone   int        `json:"blobs_done"`
	BytesFreed  int64      `json:"bytes_freed"`
	Skipped     int        `json:"skipped"`
	AlsoRemoved []string   `json:"also_removed,omitempty"` // refs and revisions taken beyond what was named
	Started     time.Time  `json:"started"`
	Finished    *time.Time `json:"finished,omitempty"`
	Error       string     `json:"error,omitempty"`
}

// TrimInfo says how the daemon lets the kernel forget idle inodes.
type TrimInfo struct {
	After       string     `json:"after"`     // idle time before a trim; "0s" = never
	Supported   bool       `json:"supported"` // the kernel takes FUSE_NOTIFY_PRUNE
	Runs        int        `json:"runs"`
	Last        *time.Time `json:"last,omitempty"`
	Asked       int        `json:"inodes_asked"`      // by the last trim
	KnownAfter  int        `json:"kernel_nodes_now"`  // right after the last trim
	KnownPeak   int        `json:"kernel_nodes_peak"` // the most seen before a trim
	Error       string     `json:"error,omitempty"`   // the last trim's notification failed
	DurationSec float64    `json:"last_duration_s"`
}

// LeftOut is a repo folder the mount does not serve, and why.
type LeftOut struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// StatusDoc is .status.json.
type StatusDoc struct {
	Generation       uint64                    `json:"generation"`
	RefreshedAt      time.Time                 `json:"refreshed_at"`
	Repos            int                       `json:"repos"`
	Revisions        int                       `json:"revisions"`
	SizeOnDisk       int64                     `json:"size_on_disk"`
	SizeOnDiskStr    string                    `json:"size_on_disk_str"`
	Warnings         []string                  `json:"warnings"`
	LeftOut          []LeftOut                 `json:"left_out"`
	Notices          []cachecore.Notice        `json:"notices"`
	IncompleteFiles  []cachecore.IncompleteDoc `json:"incomplete_files"`
	KeptLastGoodView []string                  `json:"kept_last_good_view"`
	Settling         []string                  `json:"settling"`
	// CacheDirMissing says the cache dir is gone (renamed or deleted)
	// while mounted: no repo is shown until a folder is at its path again.
	CacheDirMissing string    `json:"cache_dir_missing,omitempty"`
	Mount           MountInfo `json:"mount"`
}

// Status renders .status.json for this model. kept lists repo folders
// shown as they last were because they are inconsistent right now;
// settling, refs by-ref shows where they were while a download writes.
func (m *Model) Status(mount MountInfo, kept, settling []string) []byte {
	doc := StatusDoc{
		Generation: m.Gen, RefreshedAt: m.Built, Repos: len(m.Info.Repos),
		SizeOnDisk: m.Info.SizeOnDisk, SizeOnDiskStr: m.Info.SizeOnDiskStr(),
		Warnings: []string{}, LeftOut: []LeftOut{}, Notices: append([]cachecore.Notice{}, m.Info.Notices...),
		IncompleteFiles: []cachecore.IncompleteDoc{}, KeptLastGoodView: append([]string{}, kept...),
		Settling: append([]string{}, settling...), Mount: mount, CacheDirMissing: m.CacheMissing,
	}
	// Repos the mount left out beyond the scan's own reasons: one entry
	// per repo, the scan's warning (if any) appended to the reason.
	extra := map[string]int{}
	for _, l := range m.LeftOut {
		extra[l.Path] = len(doc.LeftOut)
		doc.LeftOut = append(doc.LeftOut, l)
	}
	for _, r := range m.Info.Repos {
		doc.Revisions += len(r.Revisions)
	}
	for _, w := range m.Info.Warnings {
		// Safe(): a mount serves nothing read from outside the cache.
		doc.Warnings = append(doc.Warnings, w.Safe())
		reason := "huggingface_hub reports it as corrupted: " + w.Safe()
		if i, ok := extra[w.RepoPath]; ok {
			doc.LeftOut[i].Reason += "; " + reason
			continue
		}
		doc.LeftOut = append(doc.LeftOut, LeftOut{Path: w.RepoPath, Reason: reason})
	}
	for _, n := range m.Info.Notices {
		if n.Kind == cachecore.NoticeScanError {
			doc.LeftOut = append(doc.LeftOut, LeftOut{Path: n.Path, Reason: n.Message})
		}
	}
	for _, f := range m.Info.IncompleteFiles {
		doc.IncompleteFiles = append(doc.IncompleteFiles, cachecore.IncompleteDoc(f))
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n')
}
