package cachecore

import (
	"bufio"
	"io"
	"sort"
	"strconv"
	"unicode/utf8"
)

// WriteJSON streams the scan as compact JSON (the fields of Document),
// without building the document first: a 180k-file cache is ~70 MB of
// JSON, and reflection-based encoding of it cost more than the scan.
func (c *CacheInfo) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	b := make([]byte, 0, 1<<16)
	flush := func() error {
		_, err := bw.Write(b)
		b = b[:0]
		return err
	}
	b = append(b, `{"cache_dir":`...)
	b = appendJSONString(b, c.CacheDir)
	b = append(b, `,"size_on_disk":`...)
	b = strconv.AppendInt(b, c.SizeOnDisk, 10)
	b = append(b, `,"size_on_disk_str":`...)
	b = appendJSONString(b, c.SizeOnDiskStr())
	b = append(b, `,"repos":[`...)
	for i, repo := range c.Repos {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRepoJSON(b, repo)
		if len(b) > 1<<15 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	b = append(b, `],"incomplete_files":[`...)
	for i, f := range c.IncompleteFiles {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"file_path":`...)
		b = appendJSONString(b, f.FilePath)
		b = append(b, `,"size_on_disk":`...)
		b = strconv.AppendInt(b, f.SizeOnDisk, 10)
		b = append(b, '}')
	}
	b = append(b, `],"incomplete_size_on_disk":`...)
	b = strconv.AppendInt(b, c.IncompleteSizeOnDisk(), 10)
	b = append(b, `,"incomplete_size_on_disk_str":`...)
	b = appendJSONString(b, FormatSize(c.IncompleteSizeOnDisk()))
	b = append(b, `,"warnings":[`...)
	for i, wn := range c.Warnings {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, wn.Message)
	}
	b = append(b, `],"notices":[`...)
	for i, n := range c.Notices {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"path":`...)
		b = appendJSONString(b, n.Path)
		b = append(b, `,"kind":`...)
		b = appendJSONString(b, n.Kind)
		b = append(b, `,"message":`...)
		b = appendJSONString(b, n.Message)
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	if err := flush(); err != nil {
		return err
	}
	return bw.Flush()
}

func appendRepoJSON(b []byte, repo *RepoInfo) []byte {
	b = append(b, `{"repo_id":`...)
	b = appendJSONString(b, repo.RepoID)
	b = append(b, `,"repo_type":`...)
	b = appendJSONString(b, repo.RepoType)
	b = append(b, `,"repo_path":`...)
	b = appendJSONString(b, repo.RepoPath)
	b = append(b, `,"size_on_disk":`...)
	b = strconv.AppendInt(b, repo.SizeOnDisk, 10)
	b = append(b, `,"size_on_disk_str":`...)
	b = appendJSONString(b, repo.SizeOnDiskStr())
	b = append(b, `,"nb_files":`...)
	b = strconv.AppendInt(b, int64(repo.NbFiles), 10)
	b = append(b, `,"last_accessed":`...)
	b = strconv.AppendFloat(b, repo.LastAccessed, 'f', -1, 64)
	b = append(b, `,"last_modified":`...)
	b = strconv.AppendFloat(b, repo.LastModified, 'f', -1, 64)
	b = append(b, `,"refs":{`...)
	refs := repo.Refs()
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, n)
		b = append(b, ':')
		b = appendJSONString(b, refs[n].CommitHash)
	}
	b = append(b, `},"revisions":[`...)
	for i, rev := range repo.Revisions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"commit_hash":`...)
		b = appendJSONString(b, rev.CommitHash)
		b = append(b, `,"snapshot_path":`...)
		b = appendJSONString(b, rev.SnapshotPath)
		b = append(b, `,"size_on_disk":`...)
		b = strconv.AppendInt(b, rev.SizeOnDisk, 10)
		b = append(b, `,"size_on_disk_str":`...)
		b = appendJSONString(b, rev.SizeOnDiskStr())
		b = append(b, `,"nb_files":`...)
		b = strconv.AppendInt(b, int64(rev.NbFiles()), 10)
		b = append(b, `,"refs":[`...)
		for j, r := range rev.Refs {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, r)
		}
		b = append(b, `],"last_modified":`...)
		b = strconv.AppendFloat(b, rev.LastModified, 'f', -1, 64)
		b = append(b, `,"files":[`...)
		for j, f := range rev.Files {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"file_name":`...)
			b = appendJSONString(b, f.FileName)
			b = append(b, `,"file_path":`...)
			b = appendJSONPath(b, f.SnapshotPath, f.RelPath) // FilePath(), without building it
			b = append(b, `,"blob_path":`...)
			b = appendJSONString(b, f.BlobPath)
			b = append(b, `,"size_on_disk":`...)
			b = strconv.AppendInt(b, f.SizeOnDisk, 10)
			b = append(b, `,"blob_last_accessed":`...)
			b = strconv.AppendFloat(b, f.BlobLastAccessed, 'f', -1, 64)
			b = append(b, `,"blob_last_modified":`...)
			b = strconv.AppendFloat(b, f.BlobLastModified, 'f', -1, 64)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does without HTML escaping:
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
// appendJSONPath appends dir + "/" + rel as a JSON string.
func appendJSONPath(b []byte, dir, rel string) []byte {
	b = appendJSONString(b, dir)
	b[len(b)-1] = '/' // over dir's closing quote
	n := len(b)
	b = appendJSONString(b, rel)
	return append(b[:n], b[n+1:]...) // without rel's opening quote
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
