package cachecore

import "syscall"

// codedError is a named error of the cache side that also says which
// errno it is at the FUSE edge (fs.translateError finds the errno with
// errors.As), so the mapping lives in one place.
type codedError struct {
	msg   string
	errno syscall.Errno
}

func (e *codedError) Error() string { return e.msg }

// Unwrap exposes the errno.
func (e *codedError) Unwrap() error { return e.errno }

// Named errors of deletions.
var (
	// ErrNotPermitted: the caller could not have removed what the plan
	// removes by themselves (a non-root .trash move).
	ErrNotPermitted error = &codedError{"the caller may not delete this", syscall.EACCES}
	// ErrChanged: the cache changed under the plan (a ref moved onto a
	// trashed commit, a new revision appeared in a repo planned whole).
	ErrChanged error = &codedError{"the cache changed since the plan", syscall.EBUSY}
	// ErrNameTooLong: a receipt name longer than NAME_MAX.
	ErrNameTooLong error = &codedError{"name longer than 255 bytes", syscall.ENAMETOOLONG}
	// ErrReceiptExists: the name is taken in .trash.
	ErrReceiptExists error = &codedError{"already in .trash", syscall.EEXIST}
	// ErrNoHold: a receipt with nothing held to restore (deleted at once,
	// purged or restored already).
	ErrNoHold error = &codedError{"nothing is held for this receipt (deleted at once, purged or restored)", syscall.EPERM}
)
