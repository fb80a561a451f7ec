package cachecore

// The JSON documents below use huggingface_hub's field names, so a scan or
// a plan can be compared with what the Python library reports.

// FileDoc is CachedFileInfo as JSON.
type FileDoc struct {
	FileName         string  `json:"file_name"`
	FilePath         string  `json:"file_path"`
	BlobPath         string  `json:"blob_path"`
	SizeOnDisk       int64   `json:"size_on_disk"`
	BlobLastAccessed float64 `json:"blob_last_accessed"`
	BlobLastModified float64 `json:"blob_last_modified"`
}

// RevisionDoc is CachedRevisionInfo as JSON.
type RevisionDoc struct {
	CommitHash    string    `json:"commit_hash"`
	SnapshotPath  string    `json:"snapshot_path"`
	SizeOnDisk    int64     `json:"size_on_disk"`
	SizeOnDiskStr string    `json:"size_on_disk_str"`
	NbFiles       int       `json:"nb_files"`
	Refs          []string  `json:"refs"`
	LastModified  float64   `json:"last_modified"`
	Files         []FileDoc `json:"files"`
}

// RepoDoc is CachedRepoInfo as JSON.
type RepoDoc struct {
	RepoID        string            `json:"repo_id"`
	RepoType      string            `json:"repo_type"`
	RepoPath      string            `json:"repo_path"`
	SizeOnDisk    int64             `json:"size_on_disk"`
	SizeOnDiskStr string            `json:"size_on_disk_str"`
	NbFiles       int               `json:"nb_files"`
	LastAccessed  float64           `json:"last_accessed"`
	LastModified  float64           `json:"last_modified"`
	Refs          map[string]string `json:"refs"`
	Revisions     []RevisionDoc     `json:"revisions"`
}

// IncompleteDoc is CachedIncompleteFileInfo as JSON.
type IncompleteDoc struct {
	FilePath   string `json:"file_path"`
	SizeOnDisk int64  `json:"size_on_disk"`
}

// ScanDoc is HFCacheInfo as JSON, plus hfcachefs's notices.
type ScanDoc struct {
	CacheDir                string          `json:"cache_dir"`
	SizeOnDisk              int64           `json:"size_on_disk"`
	SizeOnDiskStr           string          `json:"size_on_disk_str"`
	Repos                   []RepoDoc       `json:"repos"`
	IncompleteFiles         []IncompleteDoc `json:"incomplete_files"`
	IncompleteSizeOnDisk    int64           `json:"incomplete_size_on_disk"`
	IncompleteSizeOnDiskStr string          `json:"incomplete_size_on_disk_str"`
	Warnings                []string        `json:"warnings"`
	Notices                 []Notice        `json:"notices"`
}

// Document renders the scan with absolute paths.
func (c *CacheInfo) Document() ScanDoc {
	doc := ScanDoc{
		CacheDir:                c.CacheDir,
		SizeOnDisk:              c.SizeOnDisk,
		SizeOnDiskStr:           c.SizeOnDiskStr(),
		Repos:                   []RepoDoc{},
		IncompleteFiles:         []IncompleteDoc{},
		IncompleteSizeOnDisk:    c.IncompleteSizeOnDisk(),
		IncompleteSizeOnDiskStr: FormatSize(c.IncompleteSizeOnDisk()),
		Warnings:                []string{},
		Notices:                 append([]Notice{}, c.Notices...),
	}
	for _, repo := range c.Repos {
		rd := RepoDoc{
			RepoID: repo.RepoID, RepoType: repo.RepoType, RepoPath: repo.RepoPath,
			SizeOnDisk: repo.SizeOnDisk, SizeOnDiskStr: repo.SizeOnDiskStr(), NbFiles: repo.NbFiles,
			LastAccessed: repo.LastAccessed, LastModified: repo.LastModified,
			Refs: map[string]string{}, Revisions: []RevisionDoc{},
		}
		for ref, rev := range repo.Refs() {
			rd.Refs[ref] = rev.CommitHash
		}
		for _, rev := range repo.Revisions {
			rvd := RevisionDoc{
				CommitHash: rev.CommitHash, SnapshotPath: rev.SnapshotPath,
				SizeOnDisk: rev.SizeOnDisk, SizeOnDiskStr: rev.SizeOnDiskStr(), NbFiles: rev.NbFiles(),
				Refs: append([]string{}, rev.Refs...), LastModified: rev.LastModified, Files: []FileDoc{},
			}
			for _, f := range rev.Files {
				rvd.Files = append(rvd.Files, FileDoc{
					FileName: f.FileName, FilePath: f.FilePath(), BlobPath: f.BlobPath, SizeOnDisk: f.SizeOnDisk,
					BlobLastAccessed: f.BlobLastAccessed, BlobLastModified: f.BlobLastModified,
				})
			}
			rd.Revisions = append(rd.Revisions, rvd)
		}
		doc.Repos = append(doc.Repos, rd)
	}
	for _, f := range c.IncompleteFiles {
		doc.IncompleteFiles = append(doc.IncompleteFiles, IncompleteDoc(f))
	}
	for _, w := range c.Warnings {
		doc.Warnings = append(doc.Warnings, w.Message)
	}
	return doc
}

// PlanDoc is a DeleteCacheStrategy dry run as JSON.
type PlanDoc struct {
	Blobs                []string `json:"blobs"`
	Refs                 []string `json:"refs"`
	Repos                []string `json:"repos"`
	Snapshots            []string `json:"snapshots"`
	ExpectedFreedSize    int64    `json:"expected_freed_size"`
	ExpectedFreedSizeStr string   `json:"expected_freed_size_str"`
	NotFound             []string `json:"not_found"`
}

// Document renders the strategy with absolute paths.
func (s *DeleteStrategy) Document() PlanDoc {
	nonNil := func(l []string) []string { return append([]string{}, l...) }
	return PlanDoc{
		Blobs: nonNil(s.Blobs), Refs: nonNil(s.Refs), Repos: nonNil(s.Repos), Snapshots: nonNil(s.Snapshots),
		ExpectedFreedSize: s.ExpectedFreedSize, ExpectedFreedSizeStr: s.ExpectedFreedSizeStr(),
		NotFound: nonNil(s.NotFound),
	}
}
