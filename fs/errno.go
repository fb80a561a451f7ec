package fs

import "syscall"

// Errno is the errno a FUSE caller sees for an error of the cache side:
// translateError, the one mapping, for the mount package's .trash.
func Errno(err error) syscall.Errno { return translateError(err) }
