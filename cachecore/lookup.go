package cachecore

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// LookupStatus is the outcome of TryLoadFromCache.
type LookupStatus string

// The three answers of try_to_load_from_cache.
const (
	Cached    LookupStatus = "cached"     // a path
	NoExist   LookupStatus = "no_exist"   // _CACHED_NO_EXIST
	NotCached LookupStatus = "not_cached" // None
)

// LookupResult is what TryLoadFromCache answers; Path is set when Cached.
type LookupResult struct {
	Status LookupStatus
	Path   string
}

// RepoTypesWithKernel are the repo types try_to_load_from_cache accepts.
var RepoTypesWithKernel = []string{"model", "dataset", "space", "kernel"}

// TryLoadFromCache is try_to_load_from_cache(repo_id, filename, cache_dir,
// revision, repo_type): empty revision means "main", empty repoType
// "model". cacheDir is used raw (no ~ expansion, no resolve), as upstream.
// Only argument errors are errors.
func TryLoadFromCache(cacheDir, repoID, filename, revision, repoType string) (LookupResult, error) {
	if err := ValidateRepoID(repoID); err != nil {
		return LookupResult{}, err
	}
	if revision == "" {
		revision = "main"
	}
	if repoType == "" {
		repoType = "model"
	}
	if !slices.Contains(RepoTypesWithKernel, repoType) {
		return LookupResult{}, &ValueError{Message: fmt.Sprintf(
			"Invalid repo type: %s. Accepted repo types are: [None, 'model', 'dataset', 'space', 'kernel']", repoType)}
	}
	repoCache := pyJoin(cacheDir, RepoFolderName(repoID, repoType))
	if !isDirFollow(repoCache) {
		return LookupResult{Status: NotCached}, nil
	}
	refsDir := pyJoin(repoCache, "refs")
	snapshotsDir := pyJoin(repoCache, "snapshots")
	noExistDir := pyJoin(repoCache, ".no_exist")

	// A ref file's raw content replaces the revision; anything else is
	// used as is (no commit-hash check, exactly as upstream).
	if isDirFollow(refsDir) {
		refPath := pyJoin(refsDir, revision)
		if isFileFollow(refPath) {
			data, err := readRegular(refPath, maxRefSize)
			if err != nil {
				return LookupResult{}, err
			}
			revision = string(data)
		}
	}
	if isFileFollow(pyJoin(noExistDir, revision, filename)) {
		return LookupResult{Status: NoExist}, nil
	}
	names, err := readDirNames(snapshotsDir)
	if err != nil {
		return LookupResult{Status: NotCached}, nil
	}
	if !slices.Contains(names, revision) {
		return LookupResult{Status: NotCached}, nil
	}
	cached := pyJoin(snapshotsDir, revision, filename)
	if isFileFollow(cached) {
		return LookupResult{Status: Cached, Path: cached}, nil
	}
	return LookupResult{Status: NotCached}, nil
}

// RepoFolderName is repo_folder_name: "{type}s--{org}--{name}".
func RepoFolderName(repoID, repoType string) string {
	return repoType + "s--" + strings.ReplaceAll(repoID, "/", "--")
}

// isWordRune is Python's str-pattern \w: alphanumerics and underscore.
func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.In(r, unicode.Mn, unicode.Mc)
}

// ValidateRepoID is huggingface_hub's validate_repo_id, messages included.
func ValidateRepoID(repoID string) error {
	if strings.Count(repoID, "/") > 1 {
		return &ValidationError{Message: fmt.Sprintf(
			"Repo id must be in the form 'repo_name' or 'namespace/repo_name': '%s'. Use `repo_type` argument if needed.", repoID)}
	}
	if !repoIDPatternOK(repoID) {
		return &ValidationError{Message: fmt.Sprintf(
			"Repo id must use alphanumeric chars, '-', '_' or '.'. The name cannot start or end with '-' or '.' and the maximum length is 96: '%s'.", repoID)}
	}
	if strings.Contains(repoID, "--") || strings.Contains(repoID, "..") {
		return &ValidationError{Message: fmt.Sprintf("Cannot have -- or .. in repo_id: '%s'.", repoID)}
	}
	if strings.HasSuffix(repoID, ".git") {
		return &ValidationError{Message: fmt.Sprintf("Repo_id cannot end by '.git': '%s'.", repoID)}
	}
	return nil
}

// repoIDPatternOK matches REPO_ID_REGEX:
// ^(\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b$ — each part made of \w, '-' and
// '.', starting and ending with a \w character; the name at most 96 long.
func repoIDPatternOK(repoID string) bool {
	ns, name, hasNS := strings.Cut(repoID, "/")
	if !hasNS {
		name, ns = ns, ""
	}
	part := func(s string, maxLen int) bool {
		n := utf8.RuneCountInString(s)
		if n == 0 || (maxLen > 0 && n > maxLen) || !utf8.ValidString(s) {
			return false
		}
		for _, r := range s {
			if !isWordRune(r) && r != '-' && r != '.' {
				return false
			}
		}
		first, _ := utf8.DecodeRuneInString(s)
		last, _ := utf8.DecodeLastRuneInString(s)
		return isWordRune(first) && isWordRune(last)
	}
	if hasNS && !part(ns, 0) {
		return false
	}
	return part(name, 96)
}
