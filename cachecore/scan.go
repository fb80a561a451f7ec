package cachecore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/hfcachefs/hfcachefs/internal/safefs"
)

// FilesToIgnore are OS helper files upstream skips at the cache root, in
// refs/ and among snapshots/ entries (but not inside a revision).
var FilesToIgnore = map[string]bool{".DS_Store": true, "Thumbs.db": true, "desktop.ini": true}

// ScanOptions tunes Scan; the zero value scans like upstream.
type ScanOptions struct {
	Workers int // parallel repo scans; default max(4, 2*GOMAXPROCS)
}

// Scan is scan_cache_dir(cacheDir): cacheDir goes through expanduser and
// resolve first. A missing dir is a *CacheNotFoundError, a file a
// *NotADirectoryError. Corrupted repos become Warnings (exactly upstream's)
// and are left out; anything upstream would raise on goes to Notices and
// only that repo is left out.
func Scan(cacheDir string) (*CacheInfo, error) {
	return ScanWithOptions(cacheDir, ScanOptions{})
}

// ScanWithOptions is Scan with options.
func ScanWithOptions(cacheDir string, opts ScanOptions) (*CacheInfo, error) {
	dir, err := ResolveDir(cacheDir, OSEnv)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, &CacheNotFoundError{CacheDir: dir}
		}
		return nil, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, &NotADirectoryError{CacheDir: dir}
	}
	names, err := readDirNames(dir)
	if err != nil {
		return nil, err
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	results := make([]entryResult, len(names))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = scanEntry(dir, names[i])
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	return Assemble(dir, results), nil
}

type entryResult = EntryScan

// EntryScan is what scanning one top-level entry of the cache found.
type EntryScan struct {
	Name       string
	repo       *RepoInfo
	warning    *CorruptedCacheError
	incomplete []IncompleteFileInfo
	notices    []Notice
}

// Repo is the repo the entry holds, or nil (ignored, corrupted, error).
func (e EntryScan) Repo() *RepoInfo { return e.repo }

// Warning is the entry's CorruptedCacheException, if any.
func (e EntryScan) Warning() *CorruptedCacheError { return e.warning }

// ScanEntry scans one top-level entry of a resolved cache dir, as Scan
// does for each: refreshers rescan only the entries that changed.
func ScanEntry(cacheDir, name string) EntryScan { return scanEntry(cacheDir, name) }

// Assemble builds a CacheInfo from entry scans given in directory order.
func Assemble(cacheDir string, entries []EntryScan) *CacheInfo {
	info := &CacheInfo{CacheDir: cacheDir}
	for _, res := range entries {
		if res.warning != nil {
			info.Warnings = append(info.Warnings, res.warning)
		}
		if res.repo != nil {
			info.Repos = append(info.Repos, res.repo)
			info.SizeOnDisk += res.repo.SizeOnDisk
		}
		info.IncompleteFiles = append(info.IncompleteFiles, res.incomplete...)
		info.Notices = append(info.Notices, res.notices...)
	}
	var fs syscall.Statfs_t
	if syscall.Statfs(cacheDir, &fs) == nil && fs.Flags&stRdonly != 0 {
		info.Notices = append(info.Notices, Notice{Path: cacheDir, Kind: NoticeReadOnly,
			Message: "the cache is on a read-only file system: nothing can be deleted (rm, prune, .trash) or downloaded into it"})
	}
	sort.Slice(info.Repos, func(i, j int) bool { return info.Repos[i].RepoPath < info.Repos[j].RepoPath })
	sort.Slice(info.IncompleteFiles, func(i, j int) bool {
		return info.IncompleteFiles[i].FilePath < info.IncompleteFiles[j].FilePath
	})
	return info
}

// WithRepo returns the scan with a repo as given instead of the entry's
// own: a refresher keeps a repo's last good view while it is inconsistent.
func (e EntryScan) WithRepo(repo *RepoInfo) EntryScan {
	e.repo, e.warning = repo, nil
	return e
}

// readDirNames lists a directory in OS order, as Python's iterdir does.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// readDirEntries lists a directory in OS order with d_type, without a stat.
func readDirEntries(dir string) ([]os.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err == io.EOF {
		err = nil
	}
	return entries, err
}

func scanEntry(cacheDir, name string) entryResult {
	res := entryResult{Name: name}
	path := cacheDir + "/" + name
	res.incomplete = scanIncomplete(path)
	if FilesToIgnore[name] || name == ".locks" || name == "CACHEDIR.TAG" {
		return res
	}
	s := &repoScanner{cacheDir: cacheDir, repoPath: path, name: name, r: newResolver(), blobs: map[string]*BlobStat{}, relPaths: map[string]string{}}
	repo, err := s.scan()
	s.repoHandle.Close()
	res.notices = s.notices
	var corrupted *CorruptedCacheError
	switch {
	case err == nil:
		res.repo = repo
	case errors.As(err, &corrupted):
		corrupted.RepoPath = path
		res.warning = corrupted
		if strings.HasPrefix(name, "kernels--") {
			res.notices = append(res.notices, Notice{Path: path, Kind: NoticeKernelRepo,
				Message: "kernel repo (written by hf_hub_download(repo_type=\"kernel\")); huggingface_hub's scan rejects it"})
		}
	default:
		res.notices = append(res.notices, Notice{Path: path, Kind: NoticeScanError,
			Message: fmt.Sprintf("repo left out: huggingface_hub's scan_cache_dir would abort here: %v", err)})
	}
	return res
}

// scanIncomplete is upstream's glob("*/blobs/*.incomplete") for one entry.
func scanIncomplete(entry string) []IncompleteFileInfo {
	blobs := entry + "/blobs"
	var st syscall.Stat_t
	if syscall.Stat(blobs, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil
	}
	names, err := readDirNames(blobs)
	if err != nil {
		return nil
	}
	var out []IncompleteFileInfo
	for _, n := range names {
		if !strings.HasSuffix(n, ".incomplete") {
			continue
		}
		p := blobs + "/" + n
		if syscall.Stat(p, &st) != nil {
			continue
		}
		out = append(out, IncompleteFileInfo{FilePath: p, SizeOnDisk: st.Size})
	}
	return out
}

type repoScanner struct {
	cacheDir, repoPath, name string
	r                        *resolver
	blobs                    map[string]*BlobStat // by resolved path
	notices                  []Notice
	copied, absolute         int               // files in no-symlink mode, absolute links
	realRepo                 string            // the repo folder resolved
	anchor                   *RepoAnchor       // realRepo as blobs are opened beneath it
	realBlobs                string            // <realRepo>/blobs when that is a real folder
	plainDepth               int               // depth below a revision with no symlinked folder on the way; -1 if not
	outsideRefs              map[string]string // ref contents read through a symlink leaving the cache -> its target
	refsOutside              string            // refs/ resolved, when it is outside what the mount serves
	insideRefs               map[string]bool   // ref contents read again, the same, beneath the repo's handle
	repoHandle               *safefs.Handle    // opened on first need; closed by scan
	relPaths                 map[string]string // one copy of each path inside a revision, shared by the revisions
	pathBuf                  []byte            // a blob path being looked up
}

func corrupted(format string, args ...any) error {
	return &CorruptedCacheError{Message: fmt.Sprintf(format, args...)}
}

func (s *repoScanner) notice(path, kind, format string, args ...any) {
	s.notices = append(s.notices, Notice{Path: path, Kind: kind, Message: fmt.Sprintf(format, args...)})
}

// statFollow is Path.stat(): it follows symlinks.
func statFollow(path string) (syscall.Stat_t, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Stat(path, &st)
		if err != syscall.EINTR {
			return st, err
		}
	}
}

func isDirFollow(path string) bool {
	st, err := statFollow(path)
	return err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR
}

func isFileFollow(path string) bool {
	st, err := statFollow(path)
	return err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG
}

func stTime(ts syscall.Timespec) float64 { return float64(ts.Sec) + float64(ts.Nsec)*1e-9 }

func (s *repoScanner) scan() (*RepoInfo, error) {
	repoPath := s.repoPath
	if !isDirFollow(repoPath) {
		return nil, corrupted("Repo path is not a directory: %s", repoPath)
	}
	repoType, repoID, problem := ParseRepoFolderName(s.name)
	switch problem {
	case FolderNoSeparator:
		return nil, corrupted("Repo path is not a valid HuggingFace cache directory: %s", repoPath)
	case FolderBadType:
		return nil, corrupted("Repo type must be `dataset`, `model` or `space`, found `%s` (%s).", repoType, repoPath)
	}
	snapshotsPath := repoPath + "/snapshots"
	refsPath := repoPath + "/refs"
	if !isDirFollow(snapshotsPath) {
		return nil, corrupted("Snapshots dir doesn't exist in cached repo: %s", snapshotsPath)
	}

	if real, err := s.r.realpath(repoPath); err == nil {
		s.realRepo = real
		s.anchor = s.makeAnchor(real)
		if st := s.r.lookup(real + "/blobs"); st.err == nil && st.st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			s.realBlobs = real + "/blobs"
		}
	}

	refsByHash := map[string][]string{}
	var refOrder []string // insertion order of hashes, as Python's dict keeps
	if st, err := statFollow(refsPath); err == nil {
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return nil, corrupted("Refs directory cannot be a file: %s", refsPath)
		}
		// refs/ read through a symlink (refs/ itself, or a repo link not
		// followed) leaving what the mount serves: no warning quotes them.
		if real, err := s.r.realpath(refsPath); err == nil && !s.servable(real) {
			s.refsOutside = real
		}
		err := s.walkRefs(refsPath, "", func(name, hash string) {
			if _, ok := refsByHash[hash]; !ok {
				refOrder = append(refOrder, hash)
			}
			refsByHash[hash] = append(refsByHash[hash], name)
		})
		if err != nil {
			return nil, err
		}
	}

	revNames, err := readDirNames(snapshotsPath)
	if err != nil {
		return nil, err
	}
	repo := &RepoInfo{RepoID: repoID, RepoType: repoType, RepoPath: repoPath}
	for _, revName := range revNames {
		if FilesToIgnore[revName] {
			continue
		}
		revPath := snapshotsPath + "/" + revName
		if isFileFollow(revPath) {
			return nil, corrupted("Snapshots folder corrupted. Found a file: %s", revPath)
		}
		rev := &RevisionInfo{CommitHash: revName, SnapshotPath: revPath}
		realRev, err := s.r.realpath(revPath)
		if err != nil {
			return nil, fmt.Errorf("Symlink loop from %s", PyRepr(revPath))
		}
		// The usual layout (no symlinked folder between the repo and the
		// revision) allows the fast path for ../../blobs/<etag> links.
		s.plainDepth = -1
		if s.realRepo != "" && realRev == s.realRepo+"/snapshots/"+revName {
			s.plainDepth = 0
		}
		if err := s.walkRevision(revPath, realRev, "", rev); err != nil {
			return nil, err
		}
		if len(rev.Files) >= largeRevisionFiles {
			s.notice(revPath, NoticeLargeRevision, "%d files in one revision: listing it at once (the scan, ls -R, a walk of the mount) takes time and memory", len(rev.Files))
		}
		seen := map[string]bool{}
		for _, f := range rev.Files {
			if !seen[f.BlobPath] {
				seen[f.BlobPath] = true
				rev.SizeOnDisk += f.SizeOnDisk
			}
			rev.LastModified = max(rev.LastModified, f.BlobLastModified)
		}
		if len(rev.Files) == 0 {
			st, err := statFollow(revPath)
			if err != nil {
				return nil, &os.PathError{Op: "stat", Path: revPath, Err: err}
			}
			rev.LastModified = stTime(st.Mtim)
		}
		rev.Refs = refsByHash[revName]
		delete(refsByHash, revName)
		sort.Strings(rev.Refs)
		sort.Slice(rev.Files, func(i, j int) bool { // One prefix: the order of FilePath().
			return rev.Files[i].RelPath < rev.Files[j].RelPath
		})
		repo.Revisions = append(repo.Revisions, rev)
	}
	if len(refsByHash) > 0 {
		const format = "Reference(s) refer to missing commit hashes: %s (%s)."
		err := &CorruptedCacheError{Message: fmt.Sprintf(format, pyDictOfSets(refsByHash), repoPath)}
		// What a mount may show other users: a ref read from outside the
		// cache is named, not quoted; and since a folder swapped between
		// the check and the read can still lead outside, nothing that is
		// not a commit hash is quoted either.
		safe := map[string][]string{}
		redacted := false
		for hash, names := range refsByHash {
			if target, ok := s.outsideRefs[hash]; ok {
				hash, redacted = "<the content of "+target+", outside the cache: not shown>", true
			} else if !isHexHash(hash) && !s.insideRefs[hash] {
				hash, redacted = fmt.Sprintf("<%d bytes read through a swapped folder or link: not shown>", len(hash)), true
			}
			safe[hash] = append(safe[hash], names...)
		}
		if redacted {
			err.Redacted = fmt.Sprintf(format, pyDictOfSets(safe), repoPath)
		}
		return nil, err
	}
	sort.Slice(repo.Revisions, func(i, j int) bool { return repo.Revisions[i].CommitHash < repo.Revisions[j].CommitHash })

	if len(s.blobs) > 0 {
		first := true
		var dirs dirSet
		for _, b := range s.blobs {
			dirs.add(b)
			repo.SizeOnDisk += b.Size
			if first || b.Atime > repo.LastAccessed {
				repo.LastAccessed = b.Atime
			}
			if first || b.Mtime > repo.LastModified {
				repo.LastModified = b.Mtime
			}
			first = false
		}
		s.anchorDirs(dirs)
	} else {
		st, err := statFollow(repoPath)
		if err != nil {
			return nil, &os.PathError{Op: "stat", Path: repoPath, Err: err}
		}
		repo.LastAccessed, repo.LastModified = stTime(st.Atim), stTime(st.Mtim)
	}
	repo.NbFiles = len(s.blobs)
	repo.Anchor = s.anchor
	if s.copied > 0 {
		s.notice(repoPath, NoticeCopiedFile, "%d regular file(s) inside snapshots (no-symlink mode): each is its own blob", s.copied)
	}
	if s.absolute > 0 {
		s.notice(repoPath, NoticeAbsoluteLink, "%d snapshot symlink(s) with an absolute target: they break when the cache moves", s.absolute)
	}
	s.noticeOrphans()
	return repo, nil
}

// walkRefs is refs.glob("**/*") minus dirs and ignored names; contents are
// read raw (no strip), with Python's universal newlines.
func (s *repoScanner) walkRefs(dir, rel string, add func(name, hash string)) error {
	entries, err := readDirEntries(dir)
	if err != nil {
		if rel == "" {
			return err
		}
		s.notice(dir, NoticeUnreadable, "cannot list (%v): refs below are ignored, as upstream's glob does", err)
		return nil
	}
	var subdirs []string
	for _, e := range entries {
		name := e.Name()
		path := dir + "/" + name
		relName := name
		if rel != "" {
			relName = rel + "/" + name
		}
		if e.Type().IsDir() {
			subdirs = append(subdirs, name)
			continue
		}
		if FilesToIgnore[name] {
			continue
		}
		if !e.Type().IsRegular() {
			st, err := statFollow(path)
			if err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				if real, err := s.r.realpath(path); err == nil && !isWithin(real, s.cacheDir) {
					s.notice(path, NoticeOutsideCache, "a folder symlink resolving outside the cache directory (%s): ignored, as upstream's glob does", real)
				}
				continue // a symlinked dir: glob neither yields it as a ref nor recurses
			}
			if err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
				// Upstream would raise (or block on a FIFO): never open it.
				return fmt.Errorf("ref %s is not a readable regular file", path)
			}
		}
		var outside string
		if !e.Type().IsRegular() {
			if real, err := s.r.realpath(path); err == nil && !s.servable(real) {
				outside = real
				s.notice(path, NoticeOutsideCache, "ref is a symlink resolving outside the cache directory (%s): huggingface_hub reads it as a commit hash", real)
			}
		} else if s.refsOutside != "" {
			outside = s.refsOutside + "/" + relName
		}
		data, err := readRegular(path, maxRefSize)
		if err != nil {
			return err
		}
		content, err := RefContent(data)
		if err != nil {
			return fmt.Errorf("ref %s: %w", path, err)
		}
		if outside != "" {
			if s.outsideRefs == nil {
				s.outsideRefs = map[string]string{}
			}
			s.outsideRefs[content] = outside
		} else if !isHexHash(content) && s.insideRef("refs/"+relName, data) {
			// (A commit hash is quoted anyway: only an odd ref, which only
			// a corrupted repo has, is read a second time.)
			if s.insideRefs == nil {
				s.insideRefs = map[string]bool{}
			}
			s.insideRefs[content] = true
		}
		add(relName, content)
	}
	for _, sub := range subdirs {
		r := sub
		if rel != "" {
			r = rel + "/" + sub
		}
		if err := s.walkRefs(dir+"/"+sub, r, add); err != nil {
			return err
		}
	}
	return nil
}

// walkRevision is revision_path.glob("**/*"): each dir's entries in OS
// order, then its real (non-symlink) subdirs; entries that are dirs after
// following symlinks are skipped. realDir is dir with symlinks resolved.
func (s *repoScanner) walkRevision(dir, realDir, rel string, rev *RevisionInfo) error {
	depth := -1 // depth below the revision, when on the plain path
	if s.plainDepth >= 0 {
		depth = strings.Count(rel, "/")
		if rel != "" {
			depth++
		}
	}
	entries, err := readDirEntries(dir)
	if err != nil {
		switch {
		case rel == "" && errors.Is(err, syscall.ENOENT):
			// A dangling symlink among snapshots/ entries: glob yields
			// nothing, then the revision's stat() raises upstream.
			return &os.PathError{Op: "stat", Path: dir, Err: syscall.ENOENT}
		case errors.Is(err, syscall.ENOTDIR):
			return nil // glob finds nothing below a non-dir
		default:
			// glob swallows unreadable dirs; the files below are not counted.
			s.notice(dir, NoticeUnreadable, "cannot list (%v): its files are not counted, as upstream", err)
			return nil
		}
	}
	if rel != "" && strings.Count(rel, "/") == deepFolderLevels {
		s.notice(dir, NoticeDeepFolder, "a revision nested more than %d folders deep: huggingface_hub's scan (Python <= 3.12, recursive glob) may raise RecursionError", deepFolderLevels)
	}
	var subdirs []string
	for _, e := range entries {
		name := e.Name()
		path := dir + "/" + name
		typ := e.Type()
		if oddName(name) {
			s.notice(path, NoticeOddName, "the name holds a control character or invalid UTF-8 (%s): tools reading names line by line mis-parse it", PyRepr(name))
		}
		if len(name) > longName {
			s.notice(path, NoticeLongName, "a name of %d bytes (the most is 255): a copy's temporary name (rsync, editors) does not fit", len(name))
		}
		if typ.IsDir() {
			s.r.knownDir(realDir + "/" + name)
			subdirs = append(subdirs, name)
			continue
		}
		var blobPath string
		if typ&os.ModeSymlink != 0 && depth >= 0 {
			// The hot path: one readlink, nothing remembered.
			if target, err := os.Readlink(path); err == nil {
				blobPath = s.fastBlobPath(target, depth)
			}
		}
		if blobPath == "" {
			if typ&os.ModeSymlink != 0 {
				s.r.knownLink(realDir + "/" + name)
			}
			var ok bool
			blobPath, ok, err = s.r.join(realDir, name, nil)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("Symlink loop from %s", PyRepr(path))
			}
			if st := s.r.lookup(blobPath); st.err == nil && st.st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
				continue // a symlink to a dir: is_dir() skips it
			}
			if typ&os.ModeSymlink == 0 {
				s.copied++
			} else if t := s.r.lookup(realDir + "/" + name).target; len(t) > 0 && t[0] == '/' {
				s.absolute++
			}
		}
		blob, err := s.blobStat(blobPath)
		if err != nil {
			return err
		}
		// Revisions of a repo share their paths' bytes, names share
		// them too, and every file of one blob its path (a long-lived
		// model of a 180k-file cache holds tens of MB less).
		relPath, ok := s.relPaths[path[len(rev.SnapshotPath)+1:]]
		if !ok {
			relPath = strings.Clone(path[len(rev.SnapshotPath)+1:])
			s.relPaths[relPath] = relPath
		}
		rev.Files = append(rev.Files, &FileInfo{
			FileName:         relPath[len(relPath)-len(name):],
			SnapshotPath:     rev.SnapshotPath,
			BlobPath:         blob.Path,
			SizeOnDisk:       blob.Size,
			BlobLastAccessed: blob.Atime,
			BlobLastModified: blob.Mtime,
			RelPath:          relPath,
			Blob:             blob,
		})
		if blob.Outside {
			if !s.beneathRefused(blob.Path) { // the repo's notice says why
				s.notice(path, NoticeOutsideCache, "resolves outside the cache directory to %s: counted as upstream does, never served, opened or deleted", blobPath)
			}
		} else if s.realRepo != "" && !below(blob.Path, s.realRepo) {
			s.notice(path, NoticeForeignBlob, "links to another repo's blob %s: deleting that repo breaks this file, and its size counts in both", blobPath)
		}
		if blob.Mode&syscall.S_IFMT != syscall.S_IFREG {
			s.notice(path, NoticeNotRegular, "blob %s is not a regular file (mode %o): never opened", blobPath, blob.Mode)
		}
	}
	for _, sub := range subdirs {
		r := sub
		if rel != "" {
			r = rel + "/" + sub
		}
		if err := s.walkRevision(dir+"/"+sub, realDir+"/"+sub, r, rev); err != nil {
			return err
		}
	}
	return nil
}

// stRdonly is ST_RDONLY of statfs(2)'s f_flags.
const stRdonly = 1

// Thresholds worth a notice: nesting below a revision, name length,
// files in one revision.
const (
	deepFolderLevels   = 100
	longName           = 239
	largeRevisionFiles = 50000
)

// oddName reports a name with a control character (a newline...) or
// invalid UTF-8.
func oddName(name string) bool {
	ascii := true
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c < 0x20 || c == 0x7f:
			return true
		case c >= 0x80:
			ascii = false
		}
	}
	return !ascii && !utf8.ValidString(name)
}

// fastBlobPath resolves the links huggingface_hub writes,
// "../" x (depth+2) + "blobs/<etag>", without walking them: from a plain
// revision folder they land in the repo's real blobs folder. The blob
// itself must not be a symlink (checked by its lstat); "" means: take the
// general path.
func (s *repoScanner) fastBlobPath(target string, depth int) string {
	if depth < 0 || s.realBlobs == "" {
		return ""
	}
	rest := target
	for i := 0; i < depth+2; i++ {
		if !strings.HasPrefix(rest, "../") {
			return ""
		}
		rest = rest[3:]
	}
	etag, ok := strings.CutPrefix(rest, "blobs/")
	if !ok || etag == "" || etag == "." || etag == ".." || strings.IndexByte(etag, '/') >= 0 {
		return ""
	}
	s.pathBuf = append(append(append(s.pathBuf[:0], s.realBlobs...), '/'), etag...)
	if b, ok := s.blobs[string(s.pathBuf)]; ok {
		return b.Path // seen (no symlink, no folder): no new string per file
	}
	p := string(s.pathBuf)
	if st := s.r.lookup(p); st.err == nil && st.st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return "" // a link or a folder there: the general path decides
	}
	return p
}

// blobStat stats a resolved blob path once per repo (upstream's blob_stats).
func (s *repoScanner) blobStat(path string) (*BlobStat, error) {
	if b, ok := s.blobs[path]; ok {
		return b, nil
	}
	var st syscall.Stat_t
	var err error
	if l := s.r.lookup(path); !l.synthetic && l.err == nil && l.st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		st = l.st // a resolved path: its lstat is its stat
	} else {
		st, err = statFollow(path)
	}
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			return nil, corrupted("Blob missing (broken symlink): %s", path)
		}
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	b := &BlobStat{
		Path:   path,
		Size:   st.Size,
		Blocks: st.Blocks,
		Dev:    st.Dev,
		Ino:    st.Ino,
		Mode:   st.Mode,
		UID:    st.Uid,
		GID:    st.Gid,
		Atime:  stTime(st.Atim),
		Mtime:  stTime(st.Mtim),
		Ctime:  stTime(st.Ctim),
		Repo:   s.anchor,
	}
	s.place(b)
	s.blobs[path] = b
	return b, nil
}

// noticeOrphans reports blobs no snapshot links to: upstream counts them
// nowhere, yet they take space until the whole repo goes.
func (s *repoScanner) noticeOrphans() {
	blobsDir := s.repoPath + "/blobs"
	entries, err := readDirEntries(blobsDir)
	if err != nil {
		return
	}
	realBlobs, err := s.r.realpath(blobsDir)
	if err != nil {
		return
	}
	var n int
	var size int64
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".incomplete") || !e.Type().IsRegular() {
			continue
		}
		if _, ok := s.blobs[realBlobs+"/"+name]; ok {
			continue
		}
		if fi, err := e.Info(); err == nil {
			n++
			size += fi.Size()
		}
	}
	if n > 0 {
		s.notice(blobsDir, NoticeOrphanedBlobs, "%d blob(s) (%s) no snapshot links to: not counted in size_on_disk, deleted only with the whole repo", n, FormatSize(size))
	}
}

// insideRef reports whether the ref at rel, read again beneath the repo
// folder's handle (no symlink on the way, the repo folder included),
// holds the same bytes: what the path-based read (upstream's) found then
// came from inside the cache.
func (s *repoScanner) insideRef(rel string, data []byte) bool {
	if s.repoHandle == nil {
		root, err := safefs.OpenRoot(s.cacheDir)
		if err != nil {
			return false
		}
		// Not OpenTop: a repo folder that is a link (even one served)
		// proves nothing about who wrote what it leads to.
		s.repoHandle, err = root.OpenDir(s.name)
		root.Close()
		if err != nil {
			s.repoHandle = nil
			return false
		}
	}
	again, err := s.repoHandle.ReadFile(rel, maxRefSize)
	return err == nil && string(again) == string(data)
}

// maxRefSize bounds what is read of a ref (a commit hash is 40 bytes).
const maxRefSize = 1 << 20

// readRegular reads a file as huggingface_hub would (following links),
// but never blocks on a FIFO or device swapped in after the check before
// it, and reads at most limit bytes.
func readRegular(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than a ref holds", path, fi.Size())
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

// isHexHash reports whether s looks like a commit hash (40 hex digits, or
// 64 for sha256 repos).
func isHexHash(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// RefContent is what huggingface_hub reads from a ref file: the text,
// raw (no strip), with Python's universal newlines. Bytes that are not
// UTF-8 are an error (a UnicodeDecodeError upstream).
func RefContent(data []byte) (string, error) {
	if !utf8.Valid(data) {
		return "", fmt.Errorf("not valid UTF-8 (UnicodeDecodeError upstream)")
	}
	return strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n"), nil
}

// Folder name problems, as the scan reports them.
const (
	FolderOK          = ""
	FolderNoSeparator = "no-separator" // no "--" in the name
	FolderBadType     = "bad-type"     // the type is not model, dataset or space
)

// ParseRepoFolderName parses a repo folder name as the scan does: split
// once at the first "--"; the type is the first part minus its last
// character ("models" -> "model"); the id is the rest with every "--"
// turned into "/" ("models--" is repo id "", and accepted).
func ParseRepoFolderName(name string) (repoType, repoID, problem string) {
	sep := strings.Index(name, "--")
	if sep < 0 {
		return "", "", FolderNoSeparator
	}
	repoType = name[:sep]
	if repoType != "" {
		_, size := utf8.DecodeLastRuneInString(repoType)
		repoType = repoType[:len(repoType)-size]
	}
	repoID = strings.ReplaceAll(name[sep+2:], "--", "/")
	if repoType != "dataset" && repoType != "model" && repoType != "space" {
		return repoType, repoID, FolderBadType
	}
	return repoType, repoID, FolderOK
}

// ListEntries lists a directory's names in OS order (what Scan walks).
func ListEntries(dir string) ([]string, error) { return readDirNames(dir) }

// makeAnchor describes the repo folder as resolved (real). A repo folder
// that is a symlink (moved to another disk by its owner) is followed only
// if every symlink on the way is root's or belongs to the owner of the
// folder it leads to (the rule of fs.protected_symlinks): a cache writer
// cannot make the mount serve someone else's folder.
func (s *repoScanner) makeAnchor(real string) *RepoAnchor {
	a := &RepoAnchor{Folder: s.name, Real: real}
	var st syscall.Stat_t
	if l := s.r.lookup(real); l.err == nil && !l.synthetic && l.st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		st = l.st // realpath lstat'ed it: a resolved path's lstat is its stat
	} else {
		var err error
		if st, err = statFollow(real); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return nil
		}
	}
	a.Dev, a.Ino = st.Dev, st.Ino
	if real == s.repoPath {
		return a
	}
	a.Linked = true
	owners, to, ok := linkOwners(s.cacheDir, s.name)
	bad := -1
	for i, uid := range owners {
		if uid != 0 && uid != st.Uid {
			bad = i
		}
	}
	switch {
	case !ok || to != real:
		a.Linked, a.Refused = false, true
		s.notice(s.repoPath, NoticeOutsideCache, "the repo folder is a symlink that changed while it was scanned: not followed, its files are not served until the next scan")
	case bad >= 0:
		a.Linked, a.Refused = false, true
		s.notice(s.repoPath, NoticeOutsideCache, "the repo folder is a symlink to %s, and a link on the way is owned by uid %d, neither root nor the folder's owner (uid %d): not followed (the rule of fs.protected_symlinks), its files are never served", real, owners[bad], st.Uid)
	}
	return a
}

// linkOwners resolves dir/name (dir resolved) as realpath does, and
// lists the owners of the symlinks met on the way. ok is false for a
// loop, a dangling link or an error.
func linkOwners(dir, name string) (owners []uint32, real string, ok bool) {
	resolved := dir
	rest := []string{name}
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if i := strings.LastIndexByte(resolved, '/'); i > 0 {
				resolved = resolved[:i]
			} else {
				resolved = "/"
			}
			continue
		}
		next := resolved + "/" + c
		if resolved == "/" {
			next = "/" + c
		}
		var st syscall.Stat_t
		if lstatRetry(next, &st) != nil {
			return owners, "", false
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
			resolved = next
			continue
		}
		if hops++; hops > 40 {
			return owners, "", false
		}
		owners = append(owners, st.Uid)
		target, err := os.Readlink(next)
		if err != nil {
			return owners, "", false
		}
		if strings.HasPrefix(target, "/") {
			resolved = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return owners, resolved, true
}

// place decides what a blob is opened beneath: its repo folder as
// resolved (followed once at the top), or the cache dir; anything else
// is Outside, never opened.
func (s *repoScanner) place(b *BlobStat) {
	var off int
	switch p := b.Path; {
	case s.anchor != nil && below(p, s.realRepo):
		if s.anchor.Refused {
			b.Outside = true
			return
		}
		b.Base, off = BaseRepo, len(s.realRepo)+1
	case p != s.cacheDir && isWithin(p, s.cacheDir):
		b.Base, off = BaseCache, len(s.cacheDir)+1
		if s.cacheDir == "/" {
			off = 1
		}
	default:
		b.Outside = true
		return
	}
	if off > 0xffff {
		b.Base, b.Outside = BaseNone, true
		return
	}
	b.RelOff = uint16(off)
}

// servable reports whether a resolved path lies where the mount may
// serve from: beneath a repo folder link it follows, or within the cache
// dir and not beneath a repo folder link it does not follow.
func (s *repoScanner) servable(p string) bool {
	if s.anchor != nil && (p == s.realRepo || below(p, s.realRepo)) {
		return !s.anchor.Refused
	}
	return isWithin(p, s.cacheDir)
}

// beneathRefused reports whether path lies in a symlinked repo folder
// the scan did not follow.
func (s *repoScanner) beneathRefused(path string) bool {
	return s.anchor != nil && s.anchor.Refused && below(path, s.realRepo)
}

// below reports whether path is strictly below dir (no new string).
func below(path, dir string) bool {
	return len(path) > len(dir) && path[len(dir)] == '/' && strings.HasPrefix(path, dir)
}

// dirSet gathers the distinct folders holding blobs (the blobs of a repo
// are nearly always in one: the last one is checked first, and a map is
// made only for many).
type dirSet struct {
	last dirKey
	have bool
	seen map[dirKey]bool
	list []dirKey
}

type dirKey struct {
	base BlobBase
	rel  string
}

func (d *dirSet) add(b *BlobStat) {
	if b.Base == BaseNone {
		return
	}
	rel := b.Rel()
	k := dirKey{base: b.Base}
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		k.rel = rel[:i]
	}
	if d.have && k == d.last {
		return
	}
	d.last, d.have = k, true
	if d.seen == nil {
		for _, have := range d.list {
			if have == k {
				return
			}
		}
		d.list = append(d.list, k)
		if len(d.list) > 16 {
			d.seen = make(map[dirKey]bool, len(d.list))
			for _, have := range d.list {
				d.seen[have] = true
			}
		}
		return
	}
	if !d.seen[k] {
		d.seen[k] = true
		d.list = append(d.list, k)
	}
}

// anchorDirs records the (dev, ino) of each folder holding blobs.
func (s *repoScanner) anchorDirs(d dirSet) {
	if s.anchor == nil || len(d.list) == 0 {
		return
	}
	sort.Slice(d.list, func(i, j int) bool {
		if d.list[i].base != d.list[j].base {
			return d.list[i].base < d.list[j].base
		}
		return d.list[i].rel < d.list[j].rel
	})
	out := make([]BlobDir, 0, len(d.list))
	for _, k := range d.list {
		base := s.realRepo
		if k.base == BaseCache {
			base = s.cacheDir
		}
		full := base
		if k.rel != "" {
			full = strings.TrimSuffix(base, "/") + "/" + k.rel
		}
		var st syscall.Stat_t
		if l := s.r.lookup(full); l.err == nil && !l.synthetic && l.st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			st = l.st
		} else if lstatRetry(full, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			st.Dev, st.Ino = 0, 0 // gone or replaced since: a kept view fails its check
		}
		out = append(out, BlobDir{Base: k.base, Rel: k.rel, Dev: st.Dev, Ino: st.Ino})
	}
	s.anchor.Dirs = out
}
