package cachecore

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/hfcachefs/hfcachefs/internal/safefs"
)

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// Repos to check, e.g. from a scan. nil means every repo of the cache:
	// Verify then scans it, and also walks the folders the scan left out
	// (its Warnings and scan-error Notices) for dangling links. A non-nil
	// empty slice checks nothing.
	Repos []*RepoInfo
	// Workers hash in parallel; <= 0 means 2.
	Workers int
	// Progress, if not nil, gets the bytes hashed so far and the total bytes
	// to hash. It is called once with done == 0 before hashing starts, then
	// after every chunk read; calls are serialized (never concurrent) and
	// done never decreases, though they may come from any goroutine.
	Progress func(done, total int64)
}

// VerifyStatus is the outcome for one blob or snapshot link.
type VerifyStatus string

// Verify statuses. Everything but ok and unverifiable is a problem.
const (
	VerifyOK           VerifyStatus = "ok"           // content hash matches the etag
	VerifyMismatch     VerifyStatus = "mismatch"     // content hash differs from the etag
	VerifyUnverifiable VerifyStatus = "unverifiable" // the name is no etag that can be checked offline
	VerifyDangling     VerifyStatus = "dangling"     // the blob or link target is missing
	VerifyUnreadable   VerifyStatus = "unreadable"   // cannot be opened or read, or resolves outside the cache
	VerifyNotRegular   VerifyStatus = "not-regular"  // a FIFO, device, socket, dir...: never opened
)

// Problem reports whether the status is a problem (not ok, not unverifiable).
func (s VerifyStatus) Problem() bool { return s != VerifyOK && s != VerifyUnverifiable }

// Verify algorithms (VerifyResult.Algorithm).
const (
	VerifySHA256  = "sha256"   // LFS/Xet etag: sha256 of the content
	VerifyGitSHA1 = "git-sha1" // git etag: sha1("blob <len>\x00" + content)
)

// VerifyDetailOutside is the Detail of a blob resolving outside the cache.
const VerifyDetailOutside = "resolves outside the cache directory"

// VerifyResult is the outcome for one distinct blob of one repo, or for one
// dangling snapshot link found by walking snapshots/.
type VerifyResult struct {
	RepoID    string       `json:"repo_id"`
	RepoType  string       `json:"repo_type"`
	BlobPath  string       `json:"blob_path"`           // resolved path (for a dangling link: its target, lexically joined)
	FilePaths []string     `json:"file_paths"`          // snapshot paths pointing to it, sorted
	Algorithm string       `json:"algorithm,omitempty"` // VerifySHA256, VerifyGitSHA1, or "" when the name is no etag
	Expected  string       `json:"expected,omitempty"`  // the etag (blob name) when Algorithm is set
	Actual    string       `json:"actual,omitempty"`    // the content hash, only when the blob was hashed
	Status    VerifyStatus `json:"status"`
	Detail    string       `json:"detail,omitempty"` // human message for anything but ok
	Size      int64        `json:"size"`             // bytes of the blob (0 when missing)
}

// VerifyReport is what Verify found. Checked == ok + Problems + Unverifiable.
type VerifyReport struct {
	Results      []VerifyResult `json:"results"`      // sorted by repo path, then blob path
	Checked      int            `json:"checked"`      // len(Results)
	Problems     int            `json:"problems"`     // results whose Status.Problem()
	Unverifiable int            `json:"unverifiable"` // results with status unverifiable
	BytesHashed  int64          `json:"bytes_hashed"` // bytes read into hashes; a shared blob counts once
}

// OK reports whether there is no problem (unverifiable is not a problem).
func (r *VerifyReport) OK() bool { return r.Problems == 0 }

// Verify checks the cache offline: every distinct blob the repos link to is
// hashed once and compared with its name (the etag). It never opens FIFOs,
// devices or sockets, nor anything resolving outside cacheDir. The error is
// for what prevents verifying at all (cache dir missing, scan failure,
// ctx cancelled: then the report is nil); per-blob trouble goes to Results.
func Verify(ctx context.Context, cacheDir string, opts VerifyOptions) (*VerifyReport, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := ResolveDir(cacheDir, OSEnv)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(root, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, &CacheNotFoundError{CacheDir: root}
		}
		return nil, &os.PathError{Op: "stat", Path: root, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, &NotADirectoryError{CacheDir: root}
	}
	repos := opts.Repos
	if repos == nil {
		if repos, err = verifyAllRepos(root); err != nil {
			return nil, err
		}
	}
	// Blobs are opened beneath a handle of the cache dir (or of a repo
	// folder followed at the top), never through a path string.
	rootH, err := safefs.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer rootH.Close()
	v := &verifier{root: root, rootH: rootH, items: map[verifyKey]*verifyItem{}, blobs: map[string]*verifyBlob{}}
	for _, repo := range repos {
		if repo == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v.collect(repo)
	}
	for _, repo := range repos {
		if repo == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v.walkDangling(repo)
	}
	if err := v.hashAll(ctx, opts); err != nil {
		return nil, err
	}
	return v.report(), nil
}

// verifyAllRepos scans the cache, adding the repo folders the scan left out
// so that their dangling links are still reported.
func verifyAllRepos(root string) ([]*RepoInfo, error) {
	info, err := Scan(root)
	if err != nil {
		return nil, err
	}
	repos := append([]*RepoInfo(nil), info.Repos...)
	seen := map[string]bool{}
	for _, r := range repos {
		seen[r.RepoPath] = true
	}
	var left []string
	for _, w := range info.Warnings {
		left = append(left, w.RepoPath)
	}
	for _, n := range info.Notices {
		if n.Kind == NoticeScanError {
			left = append(left, n.Path)
		}
	}
	for _, p := range left {
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		repoType, repoID := verifyParseFolder(filepath.Base(p))
		repos = append(repos, &RepoInfo{RepoID: repoID, RepoType: repoType, RepoPath: p})
	}
	return repos, nil
}

// verifyParseFolder splits "models--org--name" into ("model", "org/name"),
// best effort.
func verifyParseFolder(name string) (repoType, repoID string) {
	parts := strings.Split(name, "--")
	if len(parts) < 2 {
		return "", name
	}
	return strings.TrimSuffix(parts[0], "s"), strings.Join(parts[1:], "/")
}

// VerifyAlgorithm names the check a blob name allows: VerifySHA256 for 64
// lowercase hex digits, VerifyGitSHA1 for 40, "" for anything else.
func VerifyAlgorithm(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	switch len(name) {
	case 64:
		return VerifySHA256
	case 40:
		return VerifyGitSHA1
	}
	return ""
}

type verifyKey struct{ repoPath, blobPath string }

// verifyItem is one result under construction.
type verifyItem struct {
	res   VerifyResult
	files map[string]bool
	blob  *verifyBlob // set when the outcome comes from hashing
}

// verifyBlob is one distinct resolved path to hash.
type verifyBlob struct {
	path, algo, expected string
	rel                  string      // path beneath the cache dir, or beneath repo when set
	repo                 *RepoAnchor // a repo folder followed at the top (a symlinked repo)
	size                 int64       // from lstat, for the progress total
	dev, ino             uint64      // from lstat: the opened file must be the same

	status         VerifyStatus // "" until hashed (or when cancelled)
	actual, detail string
	opened         bool
	openedSize     int64 // fstat size once opened
}

type verifier struct {
	root       string
	rootH      *safefs.Handle
	items      map[verifyKey]*verifyItem
	repoFiles  map[string]map[string]bool // repo path -> snapshot paths seen in FileInfos
	blobs      map[string]*verifyBlob     // by resolved path
	total      int64
	progressMu sync.Mutex
	done       int64
	progress   func(done, total int64)
}

// within reports whether the clean absolute path is the cache dir or below.
func (v *verifier) within(path string) bool {
	return v.root == "/" || path == v.root || strings.HasPrefix(path, v.root+"/")
}

// etagOf returns the algorithm and expected etag for a path inside the
// cache: only <cache>/<repo folder>/blobs/<name> is named by its etag (a
// file inside a snapshot is named after the repo file).
func (v *verifier) etagOf(path string) (algo, expected string) {
	if !v.within(path) || path == v.root {
		return "", ""
	}
	parts := strings.Split(strings.TrimPrefix(path, v.root+"/"), "/")
	if v.root == "/" {
		parts = strings.Split(strings.TrimPrefix(path, "/"), "/")
	}
	if len(parts) != 3 || parts[1] != "blobs" {
		return "", ""
	}
	if algo = VerifyAlgorithm(parts[2]); algo == "" {
		return "", ""
	}
	return algo, parts[2]
}

func (v *verifier) item(repo *RepoInfo, blobPath string) *verifyItem {
	k := verifyKey{filepath.Clean(repo.RepoPath), blobPath}
	it := v.items[k]
	if it == nil {
		it = &verifyItem{res: VerifyResult{RepoID: repo.RepoID, RepoType: repo.RepoType, BlobPath: blobPath}, files: map[string]bool{}}
		v.items[k] = it
	}
	return it
}

func (v *verifier) noteFile(repo *RepoInfo, it *verifyItem, filePath string) {
	if filePath == "" {
		return
	}
	it.files[filePath] = true
	if v.repoFiles == nil {
		v.repoFiles = map[string]map[string]bool{}
	}
	rp := filepath.Clean(repo.RepoPath)
	if v.repoFiles[rp] == nil {
		v.repoFiles[rp] = map[string]bool{}
	}
	v.repoFiles[rp][filePath] = true
}

// collect classifies every file of the repo without opening anything.
func (v *verifier) collect(repo *RepoInfo) {
	type given struct {
		outside bool
		blob    *BlobStat
		files   []string
	}
	byPath := map[string]*given{}
	var order []string
	for _, rev := range repo.Revisions {
		if rev == nil {
			continue
		}
		for _, f := range rev.Files {
			if f == nil {
				continue
			}
			p := f.BlobPath
			if p == "" && f.Blob != nil {
				p = f.Blob.Path
			}
			if p == "" {
				p = f.FilePath()
			}
			if p == "" {
				continue
			}
			if abs, err := filepath.Abs(p); err == nil {
				p = abs
			}
			g := byPath[p]
			if g == nil {
				g = &given{}
				byPath[p] = g
				order = append(order, p)
			}
			g.outside = g.outside || (f.Blob != nil && f.Blob.Outside)
			if g.blob == nil && f.Blob != nil && f.Blob.Path == p {
				g.blob = f.Blob
			}
			g.files = append(g.files, f.FilePath())
		}
	}
	sort.Strings(order)
	for _, p := range order {
		g := byPath[p]
		var it *verifyItem
		if b := g.blob; !g.outside && b != nil && b.Base == BaseRepo && b.Repo != nil && b.Repo.Linked {
			it = v.classifyLinked(repo, b)
		} else {
			it = v.classify(repo, p, g.outside)
		}
		for _, fp := range g.files {
			v.noteFile(repo, it, fp)
		}
	}
}

// classify resolves and lstats one given blob path: it decides everything
// that needs no reading, and queues the rest for hashing.
func (v *verifier) classify(repo *RepoInfo, p string, outside bool) *verifyItem {
	if outside || !v.within(p) {
		return v.outside(repo, p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		it := v.item(repo, p)
		it.res.Algorithm, it.res.Expected = v.etagOf(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			it.res.Status, it.res.Detail = VerifyDangling, "blob missing"
		} else {
			it.res.Status, it.res.Detail = VerifyUnreadable, fmt.Sprintf("cannot resolve: %v", err)
		}
		return it
	}
	if !v.within(real) {
		return v.outside(repo, real)
	}
	it := v.item(repo, real)
	if it.res.Status != "" || it.blob != nil {
		return it // another given path resolved here already
	}
	it.res.Algorithm, it.res.Expected = v.etagOf(real)
	var st syscall.Stat_t
	if err := verifyRetry(func() error { return syscall.Lstat(real, &st) }); err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			it.res.Status, it.res.Detail = VerifyDangling, "blob missing"
		} else {
			it.res.Status, it.res.Detail = VerifyUnreadable, fmt.Sprintf("lstat: %v", err)
		}
		return it
	}
	it.res.Size = st.Size
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		it.res.Status = VerifyNotRegular
		it.res.Detail = fmt.Sprintf("not a regular file (%s): never opened", verifyFileType(st.Mode))
		return it
	}
	if it.res.Algorithm == "" {
		it.res.Status = VerifyUnverifiable
		if strings.HasPrefix(real, filepath.Clean(repo.RepoPath)+"/snapshots/") {
			it.res.Detail = "file stored inside the snapshot (no-symlink mode): no etag to check against"
		} else {
			it.res.Detail = "blob name is not a sha256 or git-sha1 etag: cannot be verified offline"
		}
		return it
	}
	v.queue(it, &verifyBlob{path: real, rel: v.relOf(real), algo: it.res.Algorithm, expected: it.res.Expected,
		size: st.Size, dev: uint64(st.Dev), ino: st.Ino})
	return it
}

// queue makes the item's outcome that of hashing b (once per path).
func (v *verifier) queue(it *verifyItem, b *verifyBlob) {
	if have := v.blobs[b.path]; have != nil {
		it.blob = have
		return
	}
	v.blobs[b.path] = b
	v.total += b.size
	it.blob = b
}

// relOf is a path within the cache dir, relative to it.
func (v *verifier) relOf(p string) string {
	if v.root == "/" {
		return strings.TrimPrefix(p, "/")
	}
	return strings.TrimPrefix(p, v.root+"/")
}

// classifyLinked is classify for a blob of a repo folder that is a
// symlink the scan followed (a repo moved to another disk): it is
// checked beneath that folder, as the mount serves it.
func (v *verifier) classifyLinked(repo *RepoInfo, b *BlobStat) *verifyItem {
	it := v.item(repo, b.Path)
	if it.res.Status != "" || it.blob != nil {
		return it
	}
	rel := b.Rel()
	if name, ok := strings.CutPrefix(rel, "blobs/"); ok && !strings.Contains(name, "/") {
		if it.res.Algorithm = VerifyAlgorithm(name); it.res.Algorithm != "" {
			it.res.Expected = name
		}
	}
	var st syscall.Stat_t
	if err := verifyRetry(func() error { return syscall.Lstat(b.Path, &st) }); err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			it.res.Status, it.res.Detail = VerifyDangling, "blob missing"
		} else {
			it.res.Status, it.res.Detail = VerifyUnreadable, fmt.Sprintf("lstat: %v", err)
		}
		return it
	}
	it.res.Size = st.Size
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		it.res.Status = VerifyNotRegular
		it.res.Detail = fmt.Sprintf("not a regular file (%s): never opened", verifyFileType(st.Mode))
	case it.res.Algorithm == "":
		it.res.Status = VerifyUnverifiable
		it.res.Detail = "blob name is not a sha256 or git-sha1 etag: cannot be verified offline"
	default:
		v.queue(it, &verifyBlob{path: b.Path, rel: rel, repo: b.Repo, algo: it.res.Algorithm, expected: it.res.Expected,
			size: st.Size, dev: uint64(st.Dev), ino: st.Ino})
	}
	return it
}

func (v *verifier) outside(repo *RepoInfo, p string) *verifyItem {
	it := v.item(repo, p)
	it.res.Algorithm, it.res.Expected, it.res.Actual = "", "", ""
	it.res.Status, it.res.Detail = VerifyUnreadable, VerifyDetailOutside
	return it
}

// walkDangling reports the snapshot symlinks whose target is missing, which
// the FileInfos did not already cover. Symlinked dirs are not followed.
func (v *verifier) walkDangling(repo *RepoInfo) {
	if repo.RepoPath == "" {
		return
	}
	rp := filepath.Clean(repo.RepoPath)
	known := v.repoFiles[rp]
	snapshots := rp + "/snapshots"
	_ = filepath.WalkDir(snapshots, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == snapshots && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			// BlobPath is the folder itself: there is no blob to name.
			it := v.item(repo, path)
			v.noteFile(repo, it, path)
			if it.res.Status == "" {
				it.res.Status = VerifyUnreadable
				it.res.Detail = fmt.Sprintf("cannot list: %v", err)
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink == 0 || known[path] {
			return nil
		}
		var st syscall.Stat_t
		err = verifyRetry(func() error { return syscall.Stat(path, &st) })
		if err == nil {
			return nil
		}
		target, rerr := os.Readlink(path)
		blobPath := target
		if rerr == nil && !filepath.IsAbs(target) {
			blobPath = filepath.Join(filepath.Dir(path), target)
		}
		it := v.item(repo, blobPath)
		v.noteFile(repo, it, path)
		if it.res.Status != "" {
			return nil
		}
		if v.within(blobPath) {
			it.res.Algorithm, it.res.Expected = v.etagOf(blobPath)
		}
		switch {
		case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR):
			it.res.Status, it.res.Detail = VerifyDangling, fmt.Sprintf("broken symlink to %s", target)
		case errors.Is(err, syscall.ELOOP):
			it.res.Status, it.res.Detail = VerifyDangling, fmt.Sprintf("symlink loop via %s", target)
		default:
			it.res.Status, it.res.Detail = VerifyUnreadable, fmt.Sprintf("stat: %v", err)
		}
		return nil
	})
}

// hashAll hashes the queued blobs with opts.Workers goroutines.
func (v *verifier) hashAll(ctx context.Context, opts VerifyOptions) error {
	v.progress = opts.Progress
	if v.progress != nil {
		v.progress(0, v.total)
	}
	blobs := make([]*verifyBlob, 0, len(v.blobs))
	for _, b := range v.blobs {
		blobs = append(blobs, b)
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].path < blobs[j].path })
	workers := opts.Workers
	if workers <= 0 {
		workers = 2
	}
	workers = min(workers, len(blobs))
	next := make(chan *verifyBlob)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for b := range next {
				v.hashBlob(ctx, b, buf)
			}
		}()
	}
feed:
	for _, b := range blobs {
		select {
		case next <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	for _, b := range blobs {
		if b.status == "" { // left unhashed: only cancellation does that
			if err := ctx.Err(); err != nil {
				return err
			}
			return context.Canceled
		}
	}
	return nil
}

func (v *verifier) addDone(n int64) {
	v.progressMu.Lock()
	defer v.progressMu.Unlock()
	v.done += n
	if v.progress != nil {
		v.progress(v.done, v.total)
	}
}

// hashBlob opens the blob without following a final symlink and without
// blocking on a FIFO, checks it is still the regular file lstat saw, and
// streams it into the hash.
func (v *verifier) hashBlob(ctx context.Context, b *verifyBlob, buf []byte) {
	if ctx.Err() != nil {
		return
	}
	f, st, status, detail := v.open(b)
	if f == nil {
		b.status, b.detail = status, detail
		return
	}
	defer f.Close()
	b.opened, b.openedSize = true, st.Size
	if uint64(st.Dev) != b.dev || st.Ino != b.ino {
		b.status, b.detail = VerifyUnreadable, "blob replaced while verifying: not read"
		return
	}
	var h hash.Hash
	if b.algo == VerifyGitSHA1 {
		h = sha1.New()
		fmt.Fprintf(h, "blob %d\x00", st.Size)
	} else {
		h = sha256.New()
	}
	n, err := io.CopyBuffer(h, &verifyReader{ctx: ctx, r: f, onRead: v.addDone}, buf)
	switch {
	case ctx.Err() != nil:
		return // the whole run is abandoned
	case err != nil:
		b.status, b.detail = VerifyUnreadable, fmt.Sprintf("read: %v", err)
		return
	case n != st.Size:
		b.status, b.detail = VerifyUnreadable, fmt.Sprintf("changed while being read (size %d, read %d bytes)", st.Size, n)
		return
	}
	b.actual = hex.EncodeToString(h.Sum(nil))
	if b.actual == b.expected {
		b.status = VerifyOK
	} else {
		b.status = VerifyMismatch
		b.detail = fmt.Sprintf("%s of the content is %s, not the etag %s", b.algo, b.actual, b.expected)
	}
}

// open opens a queued blob beneath the cache dir's handle (or beneath
// its repo folder, followed at the top and checked to be the one scanned).
func (v *verifier) open(b *verifyBlob) (*os.File, *syscall.Stat_t, VerifyStatus, string) {
	dir := v.rootH
	if b.repo != nil {
		h, err := OpenRepo(v.rootH, b.repo)
		switch {
		case errors.Is(err, ErrOutsideCache):
			return nil, nil, VerifyUnreadable, VerifyDetailOutside
		case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR):
			return nil, nil, VerifyDangling, "blob missing (its repo folder is gone)"
		case errors.Is(err, ErrStale):
			return nil, nil, VerifyUnreadable, "repo folder replaced while verifying: not read"
		case err != nil:
			return nil, nil, VerifyUnreadable, fmt.Sprintf("open: %v", err)
		}
		defer h.Close()
		dir = h
	}
	return verifyOpenAt(dir, b.rel)
}

// verifyOpen opens path read-only, its last component beneath its folder
// (verifyOpenAt).
func verifyOpen(path string) (*os.File, *syscall.Stat_t, VerifyStatus, string) {
	h, err := safefs.OpenRoot(filepath.Dir(path))
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil, VerifyDangling, "blob missing"
		}
		return nil, nil, VerifyUnreadable, fmt.Sprintf("open: %v", err)
	}
	defer h.Close()
	return verifyOpenAt(h, filepath.Base(path))
}

// verifyOpenAt opens rel beneath dir read-only, with no symlink on the
// way and O_NONBLOCK (so a FIFO swapped in cannot block), and returns it
// only if fstat says it is a regular file; otherwise it returns the status
// and detail to report.
func verifyOpenAt(dir *safefs.Handle, rel string) (*os.File, *syscall.Stat_t, VerifyStatus, string) {
	fd, err := dir.Open(rel, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR):
			return nil, nil, VerifyDangling, "blob missing"
		case errors.Is(err, safefs.ErrEscape):
			if st, serr := dir.Stat(rel); serr == nil && st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
				return nil, nil, VerifyNotRegular, "became a symlink: never opened"
			}
			return nil, nil, VerifyUnreadable, "a folder on the way became a symlink: never opened (" + VerifyDetailOutside + ")"
		}
		return nil, nil, VerifyUnreadable, fmt.Sprintf("open: %v", err)
	}
	path := dir.Path() + "/" + rel
	st := new(syscall.Stat_t)
	if err := verifyRetry(func() error { return syscall.Fstat(fd, st) }); err != nil {
		syscall.Close(fd)
		return nil, nil, VerifyUnreadable, fmt.Sprintf("fstat: %v", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, nil, VerifyNotRegular, fmt.Sprintf("not a regular file (%s): not read", verifyFileType(st.Mode))
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, nil, VerifyUnreadable, fmt.Sprintf("fcntl: %v", err)
	}
	return os.NewFile(uintptr(fd), path), st, "", ""
}

func verifyRetry(f func() error) error {
	for {
		if err := f(); err != syscall.EINTR {
			return err
		}
	}
}

func verifyFileType(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFIFO:
		return "fifo"
	case syscall.S_IFCHR:
		return "character device"
	case syscall.S_IFBLK:
		return "block device"
	case syscall.S_IFSOCK:
		return "socket"
	case syscall.S_IFDIR:
		return "directory"
	case syscall.S_IFLNK:
		return "symlink"
	}
	return fmt.Sprintf("mode %o", mode)
}

// verifyReader stops at cancellation and reports every chunk read.
type verifyReader struct {
	ctx    context.Context
	r      io.Reader
	onRead func(int64)
}

func (r *verifyReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	if n > 0 {
		r.onRead(int64(n))
	}
	return n, err
}

// report turns the items into sorted results and counts.
func (v *verifier) report() *VerifyReport {
	type keyed struct {
		repoPath string
		res      VerifyResult
	}
	out := make([]keyed, 0, len(v.items))
	for k, it := range v.items {
		res := it.res
		if b := it.blob; b != nil {
			res.Status, res.Actual, res.Detail = b.status, b.actual, b.detail
			if b.opened {
				res.Size = b.openedSize
			}
		}
		for p := range it.files {
			res.FilePaths = append(res.FilePaths, p)
		}
		sort.Strings(res.FilePaths)
		out = append(out, keyed{k.repoPath, res})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.repoPath != b.repoPath {
			return a.repoPath < b.repoPath
		}
		return a.res.BlobPath < b.res.BlobPath
	})
	rep := &VerifyReport{Results: make([]VerifyResult, len(out)), BytesHashed: v.done}
	for i, k := range out {
		rep.Results[i] = k.res
		switch {
		case k.res.Status == VerifyUnverifiable:
			rep.Unverifiable++
		case k.res.Status.Problem():
			rep.Problems++
		}
	}
	rep.Checked = len(rep.Results)
	return rep
}
