package cachecore

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// CachedAssetsPath is cached_assets_path(library_name, namespace,
// subfolder, assets_dir): it creates and returns
// assetsDir/library/namespace/subfolder under the resolved assets dir.
// Upstream's defaults for namespace and subfolder are "default"; an empty
// string is used as given. assetsDir empty means HF_ASSETS_CACHE.
func CachedAssetsPath(assetsDir, library, namespace, subfolder string, env Env) (string, error) {
	if assetsDir == "" {
		assetsDir = AssetsCacheDir(env)
	}
	dir, err := ResolveDir(assetsDir, env)
	if err != nil {
		return "", err
	}
	sanitize := func(s string) string {
		s = strings.ReplaceAll(s, " ", "--")
		s = strings.ReplaceAll(s, "/", "--")
		return strings.ReplaceAll(s, "\\", "--")
	}
	path := pyJoin(dir, sanitize(library), sanitize(namespace), sanitize(subfolder))
	if err := os.MkdirAll(path, 0o777); err != nil {
		if errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTDIR) {
			return "", &ValueError{Message: fmt.Sprintf(
				"Corrupted assets folder: cannot create directory because of an existing file (%s).", path)}
		}
		return "", err
	}
	return path, nil
}
