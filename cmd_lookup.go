package main

import (
	"errors"
	"fmt"

	"github.com/hfcachefs/hfcachefs/cachecore"
)

// Exit statuses of lookup.
const (
	lookupExitNotCached = 3
	lookupExitNoExist   = 4
)

var lookupCommand = &command{
	name:    "lookup",
	summary: "try_to_load_from_cache: where a file of a repo is cached, if it is",
	usage:   "REPO_ID FILENAME [--revision R] [--repo-type T] [--cache-dir DIR] [--format text|json]",
	help: `
Answers what huggingface_hub's try_to_load_from_cache() answers, checking in
its order: the repo folder, refs/<revision> (its raw content), the cached
non-existence marker .no_exist/<commit>/<file>, the snapshot, the file.
--cache-dir is used as given (no ~ expansion), as upstream.

Prints the cached path, or "no_exist" / "not_cached". --format json prints
{"status": "cached"|"no_exist"|"not_cached", "path": ...}.

Exit status:
  0  cached (the path is printed)
  1  an error (e.g. unreadable cache)
  2  bad arguments (invalid repo id or repo type: HFValidationError/ValueError)
  3  not cached
  4  cached as non-existent (the Hub said the file does not exist)`,
}

func init() {
	lookupCommand.run = runLookup
	register(lookupCommand)
}

func runLookup(env *cliEnv, args []string) error {
	fs := newFlags(env, lookupCommand)
	var cache cacheDirOption
	cache.AddFlags(fs)
	revision := fs.String("revision", "", "branch, tag, ref or commit hash (default: main)")
	repoType := fs.String("repo-type", "", "model, dataset, space or kernel (default: model)")
	format := fs.String("format", "text", "text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageErrorf("expected REPO_ID and FILENAME, got %d argument(s)", fs.NArg())
	}
	if *format != "text" && *format != "json" {
		return usageErrorf("Invalid value for '--format': '%s' is not one of 'text', 'json'.", *format)
	}
	res, err := cachecore.TryLoadFromCache(cache.path(env), fs.Arg(0), fs.Arg(1), *revision, *repoType)
	if err != nil {
		var ve *cachecore.ValidationError
		var va *cachecore.ValueError
		if errors.As(err, &ve) || errors.As(err, &va) {
			return &exitError{code: 2, msg: err.Error()}
		}
		return err
	}
	if *format == "json" {
		path := any(nil)
		if res.Status == cachecore.Cached {
			path = res.Path
		}
		fmt.Fprintln(env.stdout, pyJSONObject([]kv{{"status", string(res.Status)}, {"path", path}}))
	} else if res.Status == cachecore.Cached {
		fmt.Fprintln(env.stdout, res.Path)
	} else {
		fmt.Fprintln(env.stdout, string(res.Status))
	}
	switch res.Status {
	case cachecore.NotCached:
		return &exitError{code: lookupExitNotCached}
	case cachecore.NoExist:
		return &exitError{code: lookupExitNoExist}
	}
	return nil
}

var assetsCommand = &command{
	name:    "assets-path",
	summary: "cached_assets_path: the assets folder of a library (created if needed)",
	usage:   "LIBRARY [NAMESPACE [SUBFOLDER]] [--assets-dir DIR]",
	help: `
Prints (and creates) ASSETS_DIR/LIBRARY/NAMESPACE/SUBFOLDER, exactly as
huggingface_hub's cached_assets_path(): spaces, "/" and "\" in each name
become "--"; NAMESPACE and SUBFOLDER default to "default". The assets dir is
--assets-dir, else HF_ASSETS_CACHE, HUGGINGFACE_ASSETS_CACHE or HF_HOME/assets.
A file in the way is an error ("Corrupted assets folder ...").`,
}

func init() {
	assetsCommand.run = runAssets
	register(assetsCommand)
}

func runAssets(env *cliEnv, args []string) error {
	fs := newFlags(env, assetsCommand)
	assetsDir := fs.String("assets-dir", "", "the assets directory (default: HF_ASSETS_CACHE, ... as huggingface_hub)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 3 {
		return usageErrorf("expected LIBRARY [NAMESPACE [SUBFOLDER]]")
	}
	names := append(fs.Args(), "default", "default")[:3]
	if fs.NArg() >= 2 {
		names[1] = fs.Arg(1)
	}
	path, err := cachecore.CachedAssetsPath(*assetsDir, names[0], names[1], names[2], env.lookupEnv)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, path)
	return nil
}
