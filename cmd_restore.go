package main

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/trash"
)

var restoreCommand = &command{
	name:    "restore",
	summary: "put back what a mount's .trash holds (with --trash-hold); no NAME lists the receipts",
	usage:   "[NAME] [--cache-dir DIR]",
	help: `
With a mount started with --trash-hold, what a move into .trash deletes is
moved aside (on the cache's file system, outside the hub folder) until the hold
expires. 'hfcachefs restore NAME' puts receipt NAME back, as
'mv MOUNT/.trash/NAME MOUNT/<type>s/<id>/by-commit/' does: the snapshot, the
blobs that are missing and the refs that do not exist now (a ref that moved
meanwhile stays where it is, and restore says so). Without NAME it lists the
receipts of the cache.`,
}

func init() {
	restoreCommand.run = runRestore
	register(restoreCommand)
}

func runRestore(env *cliEnv, args []string) error {
	fs := newFlags(env, restoreCommand)
	var cache cacheDirOption
	cache.AddFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageErrorf("expected at most one NAME")
	}
	dir, err := cachecore.ResolveDir(cache.path(env), env.lookupEnv)
	if err != nil {
		return err
	}
	housekeeping(env, dir)
	store, err := trash.Open(dir, 0, env.lookupEnv)
	if err != nil {
		return err
	}
	if fs.NArg() == 0 {
		names := store.Names()
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		sort.Strings(list)
		for _, n := range list {
			r, err := store.Get(n)
			if err != nil {
				continue
			}
			what := r.RepoType + "/" + r.RepoID
			if !r.WholeRepo {
				for _, rev := range r.Revisions {
					what += " " + rev.Commit
				}
			}
			until := ""
			if r.HoldUntil != nil && r.State == trash.StateHeld {
				until = " until " + r.HoldUntil.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(env.stdout, "%s\t%s%s\t%s\t%s\n", n, r.State, until, formatSize(r.BytesFreed), what)
		}
		return nil
	}
	r, rep, err := store.Restore(fs.Arg(0))
	if errors.Is(err, trash.ErrNoHold) {
		return fmt.Errorf("cannot restore %q: %v", fs.Arg(0), err)
	}
	if err != nil {
		return err
	}
	for _, note := range rep.Notes {
		fmt.Fprintln(env.stderr, "Note: "+note)
	}
	fmt.Fprintf(env.stdout, "Restored %s/%s: %d path(s) back, %d already present again.\n", r.RepoType, r.RepoID, len(rep.Restored), len(rep.Kept))
	return nil
}
