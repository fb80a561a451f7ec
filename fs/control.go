package fs

import (
	"context"
	"strings"
	"syscall"

	"github.com/hfcachefs/hfcachefs/views"
)

// XattrRefresh is the mount's refresh control: reading it on the mount
// root rescans every repo whose fingerprint changed, on a repo folder
// that repo; writing it on the root (value: cache folder names separated
// by spaces, commas or newlines; empty for all) does the same on a
// writable mount. Either returns once the new model is published, so
// the next lookup sees what a script just downloaded. A read works on a
// read-only mount too (the kernel refuses every setxattr there), which is
// why `hfcachefs refresh` reads it.
const XattrRefresh = "user.hf.refresh"

// refreshValueMax is what a size probe (getxattr with no buffer) is told:
// the answer is a short JSON object, and the refresh itself runs only on
// the call that reads the value, not on the probe.
const refreshValueMax = 256

// Controller is what the mount offers the node layer beyond the model:
// the refresh control and the by-ref freshness check.
type Controller interface {
	// Refresh rescans the named cache folders (nil: all) at once and
	// publishes the model; the answer is a one-line summary.
	Refresh(ctx context.Context, folders []string) (string, error)
	// RefLookup is called before a name under a repo's by-ref/ is looked
	// up: in poll mode it re-reads the repo's refs when the last check is
	// older than the ref TTL (and rescans the repo if one moved).
	RefLookup(ctx context.Context, folder string)
}

// SetController installs the mount's controller (nil: none).
func (s *State) SetController(c Controller) { s.ctl = c }

// refreshXattr answers a read of user.hf.refresh on a folder.
func (s *State) refreshXattr(ctx context.Context, loc views.Loc, dest []byte) (uint32, syscall.Errno) {
	if s.ctl == nil {
		return 0, syscall.ENODATA
	}
	if len(dest) == 0 {
		return refreshValueMax, 0
	}
	var folders []string
	switch loc.Role {
	case views.RoleRoot:
	case views.RoleRepo:
		folders = []string{loc.Folder}
	default:
		return 0, syscall.ENODATA
	}
	out, err := s.ctl.Refresh(ctx, folders)
	if err != nil {
		return 0, translateError(err)
	}
	if len(out) > len(dest) {
		return uint32(len(out)), syscall.ERANGE
	}
	return uint32(copy(dest, out)), 0
}

// refreshWrite answers a write of user.hf.refresh on the mount root.
func (s *State) refreshWrite(ctx context.Context, loc views.Loc, value []byte) syscall.Errno {
	if s.ctl == nil || loc.Role != views.RoleRoot && loc.Role != views.RoleRepo {
		return syscall.EROFS
	}
	folders := strings.FieldsFunc(string(value), func(r rune) bool {
		return r == ' ' || r == ',' || r == '\n' || r == '\t' || r == 0
	})
	if loc.Role == views.RoleRepo {
		folders = []string{loc.Folder}
	}
	for _, f := range folders {
		if f == "." || f == ".." || strings.ContainsRune(f, '/') || len(f) > 255 {
			return syscall.EINVAL
		}
	}
	if len(folders) == 0 {
		folders = nil
	}
	_, err := s.ctl.Refresh(ctx, folders)
	return translateError(err)
}

// refLookup gives the controller its chance to check a repo's refs before
// a by-ref name is resolved.
func (s *State) refLookup(ctx context.Context, loc views.Loc) {
	if s.ctl != nil && loc.Role == views.RoleRefs && loc.Folder != "" {
		s.ctl.RefLookup(ctx, loc.Folder)
	}
}
