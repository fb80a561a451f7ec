// Package views is the synthetic tree hfcachefs mounts, as a pure model:
// built from a cachecore scan, queried by location, with no FUSE in sight.
// The fs package adapts it to go-fuse; io/fs (FS) adapts it for tests.
package views

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/safefs"
)

// Kind is the file type of an entry.
type Kind uint8

// Entry kinds.
const (
	KindDir Kind = iota
	KindFile
	KindSymlink
)

// Role says what a directory stands for, for xattrs and renames.
type Role uint8

// Directory roles.
const (
	RoleNone         Role = iota
	RoleRoot              // the mount root
	RoleType              // models/, datasets/, spaces/ and the org folders below
	RoleRepo              // a repo folder
	RoleRefs              // by-ref/ and its ref-prefix folders (by-ref/refs/pr/)
	RoleCommits           // by-commit/
	RoleRevision          // by-commit/<hash>/ or by-ref/<ref>/
	RoleRevSubdir         // a folder inside a revision
	RoleBySize            // by-size/
	RoleAssets            // assets/ and below
	RoleTrash             // .trash/
	RoleStatusFile        // .status.json
	RoleRevisionFile      // a file of a revision
	RoleBySizeLink        // a by-size symlink
	RoleTrashReceipt      // .trash/<name>/: a deletion's receipt folder
	RoleReceiptFile       // .trash/<name>/receipt.json
	roleCount
)

// Top-level names of the mount.
const (
	NameBySize = "by-size"
	NameAssets = "assets"
	NameTrash  = ".trash"
	NameStatus = ".status.json"
	NameByRef  = "by-ref"
	NameCommit = "by-commit"
)

// TypeDirs maps the mount's type folders to repo types.
var TypeDirs = map[string]string{"models": "model", "datasets": "dataset", "spaces": "space"}

// Loc is a stable, model-independent address of a directory: nodes keep
// it and resolve it again in whatever model is current.
type Loc struct {
	Role   Role
	Type   string // repo type, for RoleType and below
	Path   string // RoleType: container path under the type folder; RoleAssets: path under the assets dir
	Folder string // repo folder name, for RoleRepo and below
	Commit string // RoleRevision, RoleRevSubdir
	Sub    string // RoleRevSubdir: dir inside the revision; RoleRefs: ref prefix
	ViaRef string // RoleRevision reached through by-ref: the ref name (display only)
}

// Entry is one node of the tree.
type Entry struct {
	Name   string
	Kind   Kind
	Role   Role
	Ino    uint64
	Nlink  uint32
	Mode   uint32 // permission bits
	Size   int64
	Blocks int64
	Atime  time.Time
	Mtime  time.Time
	Ctime  time.Time
	Target string              // symlinks
	File   *cachecore.FileInfo // revision files
	Denied string              // non-empty: never opened (outside the cache, not a regular file)
	Loc    Loc                 // directories: where to look up children
	// Real is the real path of an assets entry or of a revision file's blob.
	Real string
}

// Options shape a model.
type Options struct {
	ReadOnly  bool   // no .trash
	AssetsDir string // "" = no assets view content
	// Receipts lists .trash: name -> receipt file ("" for a receipt
	// removed whose folder has not been removed yet). Read live.
	Receipts func() map[string]string
}

// ReceiptFileName is the one file of a .trash receipt folder.
const ReceiptFileName = "receipt.json"

// Model is one generation of the tree.
type Model struct {
	Gen       uint64
	Info      *cachecore.CacheInfo
	Built     time.Time
	opts      Options
	inos      *InoTable
	repos     map[string]*repoView // by folder name
	types     map[string]*container
	bySize    []bySizeLink
	mountTime time.Time

	// Set by whoever builds the model, before it is published (never
	// after: a published model is read without a lock).
	// LeftOut are repos left out beyond what the scan reports (a view kept
	// while inconsistent that no longer resolves), with the reason.
	LeftOut []LeftOut
	// CacheMissing, when set, says the cache dir is gone (renamed or
	// deleted): the model shows no repo.
	CacheMissing string
}

type bySizeLink struct {
	name, target string
	repo         *repoView
}

// container is a folder under a type folder: an org, a repo, or both.
type container struct {
	path     string
	repo     *repoView
	children map[string]*container
	names    []string // sorted display names
}

type repoView struct {
	info     *cachecore.RepoInfo
	folder   string
	display  string // path under the mount root, e.g. models/acme/tiny-model
	revs     map[string]*revView
	refs     map[string]string   // ref name -> commit
	refDirs  map[string][]string // ref prefix ("" for by-ref/ itself) -> sorted child names
	nlinks   []blobLinks         // by blob path: number of paths reaching it
	lastMod  time.Time
	lastAcc  time.Time
	freeable int64 // expected freed size if the whole repo were deleted
}

// blobLinks counts the paths of a repo's views that reach one blob.
type blobLinks struct {
	path string
	n    uint32
}

// nlink is the number of paths reaching a blob (a sorted slice: a map
// per repo costs 5 KB more).
func (rv *repoView) nlink(blobPath string) uint32 {
	i, ok := slices.BinarySearchFunc(rv.nlinks, blobPath, func(e blobLinks, p string) int { return strings.Compare(e.path, p) })
	if !ok {
		return 0
	}
	return rv.nlinks[i].n
}

type revView struct {
	rev  *cachecore.RevisionInfo
	dirs map[string][]revChild // dir inside the revision ("" = root) -> sorted children
}

type revChild struct {
	name string
	file *cachecore.FileInfo // nil for a sub-directory
}

// Build makes a model of a scan. inos keeps inode numbers stable across
// generations; mountTime dates the synthetic folders.
func Build(gen uint64, info *cachecore.CacheInfo, inos *InoTable, opts Options, mountTime time.Time) *Model {
	m := &Model{
		Gen: gen, Info: info, Built: time.Now(), opts: opts, inos: inos,
		repos: map[string]*repoView{}, types: map[string]*container{}, mountTime: mountTime,
	}
	for dir, typ := range TypeDirs {
		m.types[typ] = &container{path: "", children: map[string]*container{}}
		_ = dir
	}
	for _, repo := range info.Repos {
		rv := buildRepo(repo)
		m.repos[rv.folder] = rv
		m.place(rv)
	}
	for _, c := range m.types {
		c.sortNames()
	}
	m.buildBySize()
	return m
}

func typeFolder(typ string) string { return typ + "s" }

// safeID reports whether a repo id can be a relative path of folders.
func safeID(id string) bool {
	if id == "" {
		return false
	}
	for _, seg := range strings.Split(id, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, "@") {
			return false
		}
	}
	return true
}

// place puts a repo in its type folder: at its id path, or, for ids that
// are no clean path (empty, "a//b"), at "@<repo folder name>".
func (m *Model) place(rv *repoView) {
	root := m.types[rv.info.RepoType]
	segs := []string{"@" + rv.folder}
	if safeID(rv.info.RepoID) {
		segs = strings.Split(rv.info.RepoID, "/")
	}
	c := root
	for i, seg := range segs {
		child := c.children[seg]
		if child == nil {
			child = &container{path: strings.Join(segs[:i+1], "/"), children: map[string]*container{}}
			c.children[seg] = child
		}
		c = child
	}
	c.repo = rv
	rv.display = typeFolder(rv.info.RepoType) + "/" + c.path
}

// sortNames fixes the display names: in a folder that is also a repo, a
// child repo or org named like a view (by-ref, by-commit) is shown with
// "@repo" appended ("@" cannot occur in repo ids).
func (c *container) sortNames() {
	c.names = c.names[:0]
	for name, child := range c.children {
		display := name
		if c.repo != nil && (name == NameByRef || name == NameCommit) {
			display = name + "@repo"
		}
		c.names = append(c.names, display)
		child.sortNames()
	}
	sort.Strings(c.names)
}

func (c *container) child(display string) *container {
	if c.repo != nil && (display == NameByRef || display == NameCommit) {
		return nil
	}
	name := display
	if c.repo != nil && strings.HasSuffix(display, "@repo") {
		trimmed := strings.TrimSuffix(display, "@repo")
		if trimmed == NameByRef || trimmed == NameCommit {
			name = trimmed
		}
	}
	return c.children[name]
}

func buildRepo(repo *cachecore.RepoInfo) *repoView {
	rv := &repoView{
		info: repo, folder: repo.FolderName(),
		revs: map[string]*revView{}, refs: map[string]string{}, refDirs: map[string][]string{},
		lastMod: floatTime(repo.LastModified), lastAcc: floatTime(repo.LastAccessed),
		freeable: repo.SizeOnDisk,
	}
	refSet := map[string]map[string]bool{}
	addRefName := func(prefix, name string) {
		if refSet[prefix] == nil {
			refSet[prefix] = map[string]bool{}
		}
		refSet[prefix][name] = true
	}
	addRefName("", "") // by-ref/ exists even with no ref
	nlink := map[string]uint32{}
	for _, rev := range repo.Revisions {
		v := &revView{rev: rev, dirs: map[string][]revChild{"": nil}}
		seenDirs := map[string]bool{"": true}
		for _, f := range rev.Files {
			dir, name := path.Split(f.RelPath)
			dir = strings.TrimSuffix(dir, "/")
			v.dirs[dir] = append(v.dirs[dir], revChild{name: name, file: f})
			// Make every ancestor folder known to its parent.
			for d := dir; d != "" && !seenDirs[d]; {
				seenDirs[d] = true
				parent, base := path.Split(d)
				parent = strings.TrimSuffix(parent, "/")
				v.dirs[parent] = append(v.dirs[parent], revChild{name: base})
				if _, ok := v.dirs[d]; !ok {
					v.dirs[d] = nil
				}
				d = parent
			}
			nlink[f.BlobPath] += uint32(1 + len(rev.Refs))
		}
		for dir, children := range v.dirs {
			sort.Slice(children, func(i, j int) bool { return children[i].name < children[j].name })
			v.dirs[dir] = slices.Clone(children) // no spare capacity: the model lives long
		}
		rv.revs[rev.CommitHash] = v
		for _, ref := range rev.Refs {
			rv.refs[ref] = rev.CommitHash
			parts := strings.Split(ref, "/")
			for i := range parts {
				addRefName(strings.Join(parts[:i], "/"), parts[i])
			}
		}
	}
	rv.nlinks = make([]blobLinks, 0, len(nlink))
	for p, n := range nlink {
		rv.nlinks = append(rv.nlinks, blobLinks{path: p, n: n})
	}
	slices.SortFunc(rv.nlinks, func(a, b blobLinks) int { return strings.Compare(a.path, b.path) })
	for prefix, names := range refSet {
		var list []string
		for n := range names {
			if n != "" {
				list = append(list, n)
			}
		}
		sort.Strings(list)
		rv.refDirs[prefix] = list
	}
	return rv
}

func floatTime(f float64) time.Time {
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9))
}

// buildBySize ranks repos by size, largest first (ties by folder name).
func (m *Model) buildBySize() {
	repos := make([]*repoView, 0, len(m.repos))
	for _, rv := range m.repos {
		repos = append(repos, rv)
	}
	sort.Slice(repos, func(i, j int) bool {
		if repos[i].info.SizeOnDisk != repos[j].info.SizeOnDisk {
			return repos[i].info.SizeOnDisk > repos[j].info.SizeOnDisk
		}
		return repos[i].folder < repos[j].folder
	})
	width := max(4, len(fmt.Sprint(len(repos))))
	for i, rv := range repos {
		name := fmt.Sprintf("%0*d-%s-%s--%s", width, i+1, cachecore.FormatSize(rv.info.SizeOnDisk),
			rv.info.RepoType, strings.TrimPrefix(rv.folder, typeFolder(rv.info.RepoType)+"--"))
		m.bySize = append(m.bySize, bySizeLink{name: name, target: "../" + rv.display, repo: rv})
	}
}

// Root is the mount root's location.
func Root() Loc { return Loc{Role: RoleRoot} }

// RootEntry describes the mount root.
func (m *Model) RootEntry() Entry {
	return m.dirEntry("", Root(), rootKey, m.mountTime)
}

func (m *Model) dirEntry(name string, loc Loc, key InoKey, mtime time.Time) Entry {
	// st_nlink 1 on folders means "unknown" to find and fts (as on btrfs):
	// counting sub-folders would cost a listing per lookup.
	return Entry{Name: name, Kind: KindDir, Role: loc.Role, Ino: m.inos.Get(key), Nlink: 1, Mode: 0o555,
		Atime: mtime, Mtime: mtime, Ctime: mtime, Loc: loc}
}

// ReadDir lists a directory; ok is false when the location no longer
// exists in this model.
func (m *Model) ReadDir(loc Loc) ([]Entry, bool) {
	names, ok := m.names(loc)
	if !ok {
		return nil, false
	}
	out := make([]Entry, 0, len(names))
	for _, n := range names {
		if e, ok := m.Lookup(loc, n); ok {
			out = append(out, e)
		}
	}
	return out, true
}

// IsEmptyDir reports whether a folder lists nothing.
func (m *Model) IsEmptyDir(loc Loc) bool {
	names, ok := m.names(loc)
	return ok && len(names) == 0
}

// names lists the child names of a location, sorted.
func (m *Model) names(loc Loc) ([]string, bool) {
	switch loc.Role {
	case RoleRoot:
		names := []string{NameStatus, NameAssets, NameBySize, "datasets", "models", "spaces"}
		if !m.opts.ReadOnly {
			names = append([]string{NameStatus, NameTrash}, names[1:]...)
		}
		return names, true
	case RoleType:
		c := m.container(loc)
		if c == nil {
			return nil, false
		}
		return c.names, true
	case RoleRepo:
		c := m.container(loc)
		if c == nil || c.repo == nil || c.repo.folder != loc.Folder {
			return nil, false
		}
		names := append([]string{NameCommit, NameByRef}, c.names...)
		sort.Strings(names)
		return names, true
	case RoleRefs:
		rv := m.repos[loc.Folder]
		if rv == nil {
			return nil, false
		}
		names, ok := rv.refDirs[loc.Sub]
		return names, ok
	case RoleCommits:
		rv := m.repos[loc.Folder]
		if rv == nil {
			return nil, false
		}
		names := make([]string, 0, len(rv.revs))
		for h := range rv.revs {
			names = append(names, h)
		}
		sort.Strings(names)
		return names, true
	case RoleRevision, RoleRevSubdir:
		v := m.rev(loc)
		if v == nil {
			return nil, false
		}
		children, ok := v.dirs[loc.Sub]
		if !ok {
			return nil, false
		}
		names := make([]string, len(children))
		for i, c := range children {
			names[i] = c.name
		}
		return names, true
	case RoleBySize:
		names := make([]string, len(m.bySize))
		for i, l := range m.bySize {
			names[i] = l.name
		}
		return names, true
	case RoleAssets:
		return m.assetNames(loc.Path)
	case RoleTrash:
		if m.opts.ReadOnly {
			return nil, false
		}
		var names []string
		if m.opts.Receipts != nil {
			for n := range m.opts.Receipts() {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		return names, true
	case RoleTrashReceipt:
		if m.opts.Receipts == nil {
			return nil, false
		}
		file, ok := m.opts.Receipts()[loc.Path]
		if !ok {
			return nil, false
		}
		if file == "" {
			return []string{}, true
		}
		return []string{ReceiptFileName}, true
	}
	return nil, false
}

func (m *Model) container(loc Loc) *container {
	c := m.types[loc.Type]
	if c == nil {
		return nil
	}
	if loc.Path == "" {
		return c
	}
	for _, seg := range strings.Split(loc.Path, "/") {
		if c = c.children[seg]; c == nil {
			return nil
		}
	}
	return c
}

func (m *Model) rev(loc Loc) *revView {
	rv := m.repos[loc.Folder]
	if rv == nil {
		return nil
	}
	return rv.revs[loc.Commit]
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "/" + b
}

// RetireIno gives the node holding an inode number a new one on its next
// lookup (shared by every model of a mount).
func (m *Model) RetireIno(ino uint64) { m.inos.Retire(ino) }

// Lookup finds a child of a directory.
func (m *Model) Lookup(parent Loc, name string) (Entry, bool) {
	switch parent.Role {
	case RoleRoot:
		switch name {
		case "models", "datasets", "spaces":
			typ := TypeDirs[name]
			return m.dirEntry(name, Loc{Role: RoleType, Type: typ}, InoKey{Kind: 't', A: name}, m.mountTime), true
		case NameBySize:
			return m.dirEntry(name, Loc{Role: RoleBySize}, InoKey{Kind: 't', A: name}, m.mountTime), true
		case NameAssets:
			return m.assetEntry(name, "")
		case NameTrash:
			if m.opts.ReadOnly {
				return Entry{}, false
			}
			return m.dirEntry(name, Loc{Role: RoleTrash}, InoKey{Kind: 't', A: name}, m.mountTime), true
		case NameStatus:
			return Entry{Name: name, Kind: KindFile, Role: RoleStatusFile, Ino: m.inos.Get(InoKey{Kind: 't', A: name}), Nlink: 1, Mode: 0o444,
				Atime: m.Built, Mtime: m.Built, Ctime: m.Built}, true
		}
	case RoleType, RoleRepo:
		c := m.container(parent)
		if c == nil {
			return Entry{}, false
		}
		if c.repo != nil && (name == NameByRef || name == NameCommit) {
			rv := c.repo
			loc := Loc{Role: RoleRefs, Type: parent.Type, Folder: rv.folder}
			if name == NameCommit {
				loc.Role = RoleCommits
			}
			return m.dirEntry(name, loc, InoKey{Kind: 'R', A: rv.folder, B: name}, rv.lastMod), true
		}
		child := c.child(name)
		if child == nil {
			return Entry{}, false
		}
		loc := Loc{Role: RoleType, Type: parent.Type, Path: child.path}
		mtime := m.mountTime
		if child.repo != nil {
			loc.Role, loc.Folder = RoleRepo, child.repo.folder
			mtime = child.repo.lastMod
		}
		e := m.dirEntry(name, loc, InoKey{Kind: 'o', A: parent.Type, B: child.path}, mtime)
		if child.repo != nil {
			e.Atime = child.repo.lastAcc
		}
		return e, true
	case RoleRefs:
		rv := m.repos[parent.Folder]
		if rv == nil {
			return Entry{}, false
		}
		ref := joinPath(parent.Sub, name)
		if commit, ok := rv.refs[ref]; ok {
			v := rv.revs[commit]
			loc := Loc{Role: RoleRevision, Type: parent.Type, Folder: rv.folder, Commit: commit, ViaRef: ref}
			// A by-ref folder is its own inode per (ref, commit): a moved
			// ref is a new folder, and whoever holds the old one keeps
			// the revision it showed.
			return m.dirEntry(name, loc, InoKey{Kind: 'v', A: rv.folder, B: ref, C: commit}, floatTime(v.rev.LastModified)), true
		}
		if _, ok := rv.refDirs[ref]; ok {
			loc := Loc{Role: RoleRefs, Type: parent.Type, Folder: rv.folder, Sub: ref}
			return m.dirEntry(name, loc, InoKey{Kind: 'p', A: rv.folder, B: ref}, rv.lastMod), true
		}
	case RoleCommits:
		rv := m.repos[parent.Folder]
		if rv == nil {
			return Entry{}, false
		}
		if v, ok := rv.revs[name]; ok {
			loc := Loc{Role: RoleRevision, Type: parent.Type, Folder: rv.folder, Commit: name}
			return m.dirEntry(name, loc, InoKey{Kind: 'c', A: rv.folder, B: name}, floatTime(v.rev.LastModified)), true
		}
	case RoleRevision, RoleRevSubdir:
		rv := m.repos[parent.Folder]
		v := m.rev(parent)
		if v == nil {
			return Entry{}, false
		}
		children := v.dirs[parent.Sub]
		i := sort.Search(len(children), func(i int) bool { return children[i].name >= name })
		if i == len(children) || children[i].name != name {
			return Entry{}, false
		}
		ch := children[i]
		if ch.file == nil {
			sub := joinPath(parent.Sub, name)
			loc := Loc{Role: RoleRevSubdir, Type: parent.Type, Folder: parent.Folder, Commit: parent.Commit, Sub: sub, ViaRef: parent.ViaRef}
			key := InoKey{Kind: 's', A: rv.folder, B: parent.Commit, C: sub, D: parent.ViaRef}
			return m.dirEntry(name, loc, key, floatTime(v.rev.LastModified)), true
		}
		return m.fileEntry(rv, ch.file), true
	case RoleBySize:
		for _, l := range m.bySize {
			if l.name == name {
				t := l.repo.lastMod
				return Entry{Name: name, Kind: KindSymlink, Role: RoleBySizeLink, Ino: m.inos.Get(InoKey{Kind: 'l', A: l.repo.folder, B: name}),
					Nlink: 1, Mode: 0o777, Size: int64(len(l.target)), Target: l.target, Atime: t, Mtime: t, Ctime: t}, true
			}
		}
	case RoleAssets:
		return m.assetEntry(name, joinPath(parent.Path, name))
	case RoleTrash:
		if m.opts.ReadOnly || m.opts.Receipts == nil {
			return Entry{}, false
		}
		file, ok := m.opts.Receipts()[name]
		if !ok {
			return Entry{}, false
		}
		mtime := m.mountTime
		if fi, err := os.Stat(file); err == nil {
			mtime = fi.ModTime()
		}
		return m.dirEntry(name, Loc{Role: RoleTrashReceipt, Path: name}, InoKey{Kind: 'T', A: name}, mtime), true
	case RoleTrashReceipt:
		if name != ReceiptFileName || m.opts.Receipts == nil {
			return Entry{}, false
		}
		file := m.opts.Receipts()[parent.Path]
		fi, err := os.Stat(file)
		if file == "" || err != nil {
			return Entry{}, false
		}
		t := fi.ModTime()
		return Entry{Name: name, Kind: KindFile, Role: RoleReceiptFile, Ino: m.inos.Get(InoKey{Kind: 'r', A: parent.Path, B: file}),
			Nlink: 1, Mode: 0o444, Size: fi.Size(), Blocks: (fi.Size() + 511) / 512, Atime: t, Mtime: t, Ctime: t, Real: file}, true
	}
	return Entry{}, false
}

// fileEntry is a revision file: every path reaching the same blob of a
// repo is the same inode, with st_nlink the number of such paths.
func (m *Model) fileEntry(rv *repoView, f *cachecore.FileInfo) Entry {
	b := f.Blob
	e := Entry{
		Name: path.Base(f.RelPath), Kind: KindFile, Role: RoleRevisionFile,
		Ino:   m.inos.Get(InoKey{Kind: 'f', A: rv.folder, B: f.BlobPath}),
		Nlink: max(1, rv.nlink(f.BlobPath)), Mode: 0o444,
		Size: b.Size, Blocks: b.Blocks,
		Atime: floatTime(b.Atime), Mtime: floatTime(b.Mtime), Ctime: floatTime(b.Ctime),
		File: f, Real: f.BlobPath,
	}
	if e.Denied = Denied(f); e.Denied != "" {
		e.Mode = 0
	}
	return e
}

// Denied says why a scanned file is never served ("" if it is): its blob
// resolves outside the cache dir and outside its repo folder (a repo
// folder that is a symlink is followed at the top only, and only if the
// link is root's or its target's owner's), or it is no regular file.
func Denied(f *cachecore.FileInfo) string {
	b := f.Blob
	switch {
	case b == nil:
		return "not scanned"
	case b.Outside || b.Base == cachecore.BaseNone:
		return "resolves outside the cache directory"
	case b.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return "the blob is not a regular file"
	}
	return ""
}

// OpenAsset opens a file of the assets cache (real is an assets entry's
// Real) read-only beneath a handle of the assets dir: no symlink on the
// way, and it must be a regular file.
func (m *Model) OpenAsset(real string) (int, error) {
	dir := m.opts.AssetsDir
	rel, ok := strings.CutPrefix(real, strings.TrimSuffix(dir, "/")+"/")
	if dir == "" || !ok {
		return -1, &os.PathError{Op: "open", Path: real, Err: syscall.EACCES}
	}
	h, err := safefs.OpenRoot(dir)
	if err != nil {
		return -1, err
	}
	defer h.Close()
	fd, err := h.Open(rel, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, safefs.ErrEscape) {
			return -1, &os.PathError{Op: "open", Path: real, Err: syscall.EACCES}
		}
		return -1, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return -1, &os.PathError{Op: "open", Path: real, Err: syscall.EACCES}
	}
	return fd, nil
}

// assetEntry describes a path of the assets cache (real files, read-only;
// symlinks are shown as links, never followed).
func (m *Model) assetEntry(name, rel string) (Entry, bool) {
	loc := Loc{Role: RoleAssets, Path: rel}
	if m.opts.AssetsDir == "" {
		if rel == "" {
			return m.dirEntry(name, loc, InoKey{Kind: 't', A: name}, m.mountTime), true
		}
		return Entry{}, false
	}
	real := filepath.Join(m.opts.AssetsDir, filepath.FromSlash(rel))
	var st syscall.Stat_t
	if err := syscall.Lstat(real, &st); err != nil {
		if rel == "" {
			return m.dirEntry(name, loc, InoKey{Kind: 't', A: name}, m.mountTime), true
		}
		return Entry{}, false
	}
	t := func(ts syscall.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }
	e := Entry{Name: name, Role: RoleAssets, Ino: m.inos.Get(InoKey{Kind: 'a', A: rel}), Nlink: uint32(st.Nlink), Mode: st.Mode & 0o555,
		Size: st.Size, Blocks: st.Blocks, Atime: t(st.Atim), Mtime: t(st.Mtim), Ctime: t(st.Ctim), Real: real, Loc: loc}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		e.Kind, e.Size = KindDir, 0
	case syscall.S_IFREG:
		e.Kind = KindFile
	case syscall.S_IFLNK:
		e.Kind, e.Mode = KindSymlink, 0o777
		e.Target, _ = os.Readlink(real)
	default:
		e.Kind, e.Denied, e.Mode = KindFile, "not a regular file", 0
	}
	return e, true
}

func (m *Model) assetNames(rel string) ([]string, bool) {
	if m.opts.AssetsDir == "" {
		return nil, rel == ""
	}
	names, err := cachecore.ListEntries(filepath.Join(m.opts.AssetsDir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, rel == ""
	}
	sort.Strings(names)
	return names, true
}

// Resolve walks a slash path from the root ("" is the root).
func (m *Model) Resolve(p string) (Entry, bool) {
	e := m.RootEntry()
	if p == "" {
		return e, true
	}
	for _, name := range strings.Split(p, "/") {
		if e.Kind != KindDir {
			return Entry{}, false
		}
		var ok bool
		if e, ok = m.Lookup(e.Loc, name); !ok {
			return Entry{}, false
		}
	}
	return e, true
}
