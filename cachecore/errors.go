package cachecore

import "fmt"

// CacheNotFoundError is upstream's CacheNotFound: the cache dir does not exist.
type CacheNotFoundError struct{ CacheDir string }

func (e *CacheNotFoundError) Error() string {
	return fmt.Sprintf("Cache directory not found: %s. Please use `cache_dir` argument or set `HF_HUB_CACHE` environment variable.", e.CacheDir)
}

// NotADirectoryError is the ValueError upstream raises when the cache dir is a file.
type NotADirectoryError struct{ CacheDir string }

func (e *NotADirectoryError) Error() string {
	return fmt.Sprintf("Scan cache expects a directory but found a file: %s. Please use `cache_dir` argument or set `HF_HUB_CACHE` environment variable.", e.CacheDir)
}

// CorruptedCacheError is upstream's CorruptedCacheException: the message is
// exactly str(exception); the repo it names is left out of the scan.
type CorruptedCacheError struct {
	RepoPath string // the top-level entry the warning is about
	Message  string
	// Redacted, when set, is Message without the bytes it quotes from
	// files outside the cache (a ref symlinked to /etc/passwd): what a
	// mount may serve to other users.
	Redacted string
}

// Safe is the message with nothing read from outside the cache in it.
func (e *CorruptedCacheError) Safe() string {
	if e.Redacted != "" {
		return e.Redacted
	}
	return e.Message
}

func (e *CorruptedCacheError) Error() string { return e.Message }

// ValidationError is upstream's HFValidationError (bad repo id).
type ValidationError struct{ Message string }

func (e *ValidationError) Error() string { return e.Message }

// ValueError is upstream's ValueError for bad arguments.
type ValueError struct{ Message string }

func (e *ValueError) Error() string { return e.Message }
