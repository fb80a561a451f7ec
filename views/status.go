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
	CacheDirMissing string       `json:"cache_dir_missing,omitempty"`
	Scan            *ScanInfo    `json:"scan,omitempty"`
	Refresh         *RefreshInfo `json:"refresh,omitempty"`
	Mount           MountInfo    `json:"mount"`
}

// ScanInfo is the first scan's progress: the mount answers before it is
// done (repos not scanned yet are listed by name and scanned first when
// looked up; by-size ranks what has been scanned).
type ScanInfo struct {
	State   string `json:"state"` // "running" or "done"
	Scanned int    `json:"scanned"`
	Total   int    `json:"total"`
	// BySizePartial says by-size/ ranks only the repos scanned so far.
	BySizePartial bool       `json:"by_size_partial"`
	Started       time.Time  `json:"started"`
	Done          *time.Time `json:"done,omitempty"`
}

// RefreshInfo says how the mount learns of changes to the cache and how
// stale it may be.
type RefreshInfo struct {
	// Mode is "events" (inotify sees every change), "poll" (the cache is
	// on a file system whose other clients' writes inotify cannot see),
	// or "events+poll" (some repos could not be watched and are polled).
	Mode   string `json:"mode"`
	FSType string `json:"fs_type"` // of the cache dir, as statfs tells it
	Reason string `json:"reason"`  // why this mode
	// StalenessBound says how long a change may take to show.
	StalenessBound string `json:"staleness_bound"`
	PollInterval   string `json:"poll_interval"`
	RefTTL         string `json:"ref_ttl"`
	Watches        int    `json:"watches"`      // inotify watches held
	WatchLimit     int    `json:"watch_limit"`  // fs.inotify.max_user_watches
	PolledRepos    int    `json:"polled_repos"` // repos polled (all of them in poll mode)
	// Unwatched says why some repos are polled in events mode.
	Unwatched string `json:"unwatched,omitempty"`
	Overflows int    `json:"overflows"` // event queue overflows (each rescanned everything)
	Events    uint64 `json:"events"`    // change events received
	Rescans   uint64 `json:"rescans"`   // repo rescans done since the first scan
	// LastPass is the last poll pass: when, how long, how many paths.
	LastPass *PassInfo `json:"last_pass,omitempty"`
	// Unreachable is set while the cache dir cannot be read (an error
	// other than "not found": a file server down): the last good view is
	// kept and the cache is retried with backoff.
	Unreachable *Unreachable `json:"unreachable"`
}

// PassInfo is one poll pass.
type PassInfo struct {
	At      time.Time `json:"at"`
	Seconds float64   `json:"seconds"`
	Paths   int       `json:"paths"`
	Changed int       `json:"changed"`
}

// Unreachable says since when and why the cache cannot be read.
type Unreachable struct {
	Since     time.Time `json:"since"`
	Error     string    `json:"error"`
	NextRetry time.Time `json:"next_retry"`
}

// Live is what the mount adds to a model's status: repos kept as last
// seen, refs held while a download settles, the scan's progress and the
// change detection.
type Live struct {
	Kept, Settling []string
	Scan           *ScanInfo
	Refresh        *RefreshInfo
}

// Status renders .status.json for this model. kept lists repo folders
// shown as they last were because they are inconsistent right now;
// settling, refs by-ref shows where they were while a download writes.
func (m *Model) Status(mount MountInfo, kept, settling []string) []byte {
	return m.StatusLive(mount, Live{Kept: kept, Settling: settling})
}

// StatusLive renders .status.json for this model with what the mount
// knows beyond it.
func (m *Model) StatusLive(mount MountInfo, live Live) []byte {
	kept, settling := live.Kept, live.Settling
	doc := StatusDoc{
		Scan: live.Scan, Refresh: live.Refresh,
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
