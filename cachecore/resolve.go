package cachecore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrSymlinkLoop is returned where Python's Path.resolve() raises
// RuntimeError("Symlink loop from ...").
var ErrSymlinkLoop = errors.New("symlink loop")

// resolver is Python's non-strict os.path.realpath (3.11), with a memo of
// lstat results so that a scan pays one lstat per distinct path component.
type resolver struct {
	lstat map[string]*lstatResult
}

type lstatResult struct {
	st     syscall.Stat_t
	err    error
	target string // readlink result for symlinks
	rlErr  error
	// synthetic entries come from directory listings, not from lstat.
	synthetic bool
}

func newResolver() *resolver { return &resolver{lstat: map[string]*lstatResult{}} }

func (r *resolver) lookup(path string) *lstatResult {
	if res, ok := r.lstat[path]; ok {
		return res
	}
	res := &lstatResult{}
	res.err = lstatRetry(path, &res.st)
	if res.err == nil && res.st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		res.target, res.rlErr = os.Readlink(path)
	}
	r.lstat[path] = res
	return res
}

func lstatRetry(path string, st *syscall.Stat_t) error {
	for {
		err := syscall.Lstat(path, st)
		if err != syscall.EINTR {
			return err
		}
	}
}

// knownLink reads a symlink a directory listing showed, sparing the lstat
// (the scan's hot path: one readlink per snapshot file).
func (r *resolver) knownLink(path string) {
	if _, ok := r.lstat[path]; ok {
		return
	}
	res := &lstatResult{st: syscall.Stat_t{Mode: syscall.S_IFLNK}, synthetic: true}
	res.target, res.rlErr = os.Readlink(path)
	if errors.Is(res.rlErr, syscall.EINVAL) {
		// Replaced by a non-link since the listing: look again.
		return
	}
	r.lstat[path] = res
}

// knownDir records a path a directory listing showed to be a real
// directory (not a symlink), sparing an lstat during resolution.
func (r *resolver) knownDir(path string) {
	if _, ok := r.lstat[path]; !ok {
		r.lstat[path] = &lstatResult{st: syscall.Stat_t{Mode: syscall.S_IFDIR}, synthetic: true}
	}
}

// realpath resolves every symlink of an absolute path the way Python's
// Path.resolve() does: missing components are kept as they are, a loop is
// an error.
func (r *resolver) realpath(path string) (string, error) {
	res, ok, err := r.join("", path, nil)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", ErrSymlinkLoop
	}
	if res == "" {
		res = "/"
	}
	return res, nil
}

func (r *resolver) join(path, rest string, seen map[string]*string) (string, bool, error) {
	if strings.HasPrefix(rest, "/") {
		rest = rest[1:]
		path = "/"
	}
	for rest != "" {
		var name string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			name, rest = rest[:i], rest[i+1:]
		} else {
			name, rest = rest, ""
		}
		if name == "" || name == "." {
			continue
		}
		if name == ".." {
			if path != "" {
				dir, base := pySplit(path)
				path = dir
				if base == ".." {
					path = pyJoin(path, "..", "..")
				}
			} else {
				path = ".."
			}
			continue
		}
		newpath := pyJoin(path, name)
		st := r.lookup(newpath)
		if st.err != nil || st.st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
			path = newpath
			continue
		}
		if prev, ok := seen[newpath]; ok {
			if prev != nil {
				path = *prev
				continue
			}
			return pyJoin(newpath, rest), false, nil
		}
		if seen == nil {
			seen = map[string]*string{}
		}
		seen[newpath] = nil
		if st.rlErr != nil {
			return "", false, st.rlErr
		}
		var ok bool
		var err error
		path, ok, err = r.join(path, st.target, seen)
		if err != nil {
			return "", false, err
		}
		if !ok {
			return pyJoin(path, rest), false, nil
		}
		p := path
		seen[newpath] = &p
	}
	return path, true, nil
}

// pyJoin is posixpath.join.
func pyJoin(a string, parts ...string) string {
	path := a
	for _, b := range parts {
		switch {
		case strings.HasPrefix(b, "/"):
			path = b
		case path == "" || strings.HasSuffix(path, "/"):
			path += b
		default:
			path += "/" + b
		}
	}
	return path
}

// pySplit is posixpath.split.
func pySplit(p string) (string, string) {
	i := strings.LastIndexByte(p, '/') + 1
	head, tail := p[:i], p[i:]
	if head != "" && strings.Trim(head, "/") != "" {
		head = strings.TrimRight(head, "/")
	}
	return head, tail
}

// ResolveDir is Path(p).expanduser().resolve() for a directory argument.
func ResolveDir(p string, env Env) (string, error) {
	p = expandUser(p, env)
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		p = filepath.Join(wd, p)
	}
	return newResolver().realpath(filepath.Clean(p))
}

// isWithin reports whether path is dir or below it (both clean, absolute).
func isWithin(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}
