package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/fs"
)

var refreshCommand = &command{
	name:    "refresh",
	summary: "make a mount rescan now (after a download, say)",
	usage:   "MOUNTPOINT [REPO...]",
	help: `Makes a running mount look at the cache now and returns once what it found
is shown: every repo (the cache dir is listed again and each repo whose
fingerprint changed is rescanned), or the named ones (rescanned whatever
their fingerprint says). For scripts that just downloaded something into a
cache the mount polls (a network file system) or must see at once.

REPO is org/name or type/org/name (model, dataset, space; model if omitted),
or a cache folder name such as models--org--name.

It reads the extended attribute user.hf.refresh of the mount root (or of a
repo folder), which works on read-only mounts and needs no privilege:
  getfattr -n user.hf.refresh MOUNT
  getfattr -n user.hf.refresh MOUNT/models/org/name
A writable mount also takes it as a write:
  setfattr -n user.hf.refresh -v models--org--name MOUNT`,
}

func init() {
	refreshCommand.run = runRefresh
	register(refreshCommand)
}

func runRefresh(env *cliEnv, args []string) error {
	flags := newFlags(env, refreshCommand)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() < 1 {
		return usageErrorf("expected a MOUNTPOINT")
	}
	mp := flags.Arg(0)
	targets := []string{mp}
	for _, repo := range flags.Args()[1:] {
		folder, err := refreshFolder(repo)
		if err != nil {
			return usageErrorf("%v", err)
		}
		targets = append(targets, mp+"/"+displayPath(folder))
	}
	if len(targets) > 1 {
		targets = targets[1:]
	}
	for _, t := range targets {
		out, err := readRefresh(t)
		if errors.Is(err, errNoRepo) && t != mp {
			// A repo the mount has not listed yet (just downloaded): the
			// root's refresh lists the cache again, then the repo is there.
			if _, err = readRefresh(mp); err == nil {
				out, err = readRefresh(t)
			}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s: %s\n", t, strings.TrimSpace(out))
	}
	return nil
}

// refreshFolder turns a REPO argument into its cache folder name.
func refreshFolder(arg string) (string, error) {
	if typ, id, problem := cachecore.ParseRepoFolderName(arg); problem == cachecore.FolderOK {
		return cachecore.RepoFolderName(id, typ), nil
	}
	parts := strings.Split(arg, "/")
	typ := "model"
	switch {
	case len(parts) == 3:
		typ, parts = parts[0], parts[1:]
	case len(parts) == 2:
	case len(parts) == 1 && parts[0] != "":
	default:
		return "", fmt.Errorf("%q is not a repo: org/name, type/org/name or models--org--name", arg)
	}
	typ = strings.TrimSuffix(typ, "s")
	switch typ {
	case "model", "dataset", "space":
	default:
		return "", fmt.Errorf("%q: unknown repo type %q (model, dataset or space)", arg, typ)
	}
	return cachecore.RepoFolderName(strings.Join(parts, "/"), typ), nil
}

// displayPath is where a repo folder shows on the mount:
// models--org--name is models/org/name.
func displayPath(folder string) string {
	typ, id, problem := cachecore.ParseRepoFolderName(folder)
	if problem != cachecore.FolderOK {
		return folder
	}
	return typ + "s/" + id
}

var errNoRepo = errors.New("no such repo on the mount (not in the cache)")

// readRefresh reads user.hf.refresh of path: the mount rescans, then
// answers.
func readRefresh(path string) (string, error) {
	buf := make([]byte, 512)
	for {
		n, err := unix.Getxattr(path, fs.XattrRefresh, buf)
		switch {
		case err == nil:
			return string(buf[:n]), nil
		case errors.Is(err, syscall.ERANGE) && len(buf) < 1<<16:
			buf = make([]byte, 4*len(buf))
			continue
		case errors.Is(err, syscall.ENODATA), errors.Is(err, syscall.ENOTSUP):
			return "", fmt.Errorf("%s is not an hfcachefs mount (or a repo folder of one): it has no %s", path, fs.XattrRefresh)
		case errors.Is(err, syscall.ENOENT):
			return "", fmt.Errorf("%s: %w", path, errNoRepo)
		}
		return "", fmt.Errorf("refresh %s: %w", path, err)
	}
}
