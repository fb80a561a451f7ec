package main

import (
	"fmt"
	"os"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/trash"
)

// held is what --trash-hold receipts keep aside, for the scan's footer.
type held struct {
	bytes    int64
	receipts int
}

// housekeeping runs whenever a command opens the cache: deletions an
// interrupted run left staged are finished (or rolled back), and holds
// that expired are purged, with or without a mount running. Read-only
// users and caches just skip what they may not do.
func housekeeping(env *cliEnv, path string) held {
	dir, err := cachecore.ResolveDir(path, env.lookupEnv)
	if err != nil {
		return held{}
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return held{}
	}
	say := func(msg string) { fmt.Fprintln(env.stderr, "hfcachefs: "+msg) }
	store, ok := trash.OpenExisting(dir, env.lookupEnv)
	if !ok {
		if recs, _ := cachecore.FinishStaged(dir, nil); len(recs) > 0 {
			reportRecovered(say, recs)
		}
		return held{}
	}
	if recs, _ := store.Recover(nil); len(recs) > 0 {
		reportRecovered(say, recs)
	}
	if names, _ := store.PurgeExpired(time.Now()); len(names) > 0 {
		say(fmt.Sprintf("purged %d expired hold(s) of .trash", len(names)))
	}
	b, n := store.Held()
	return held{bytes: b, receipts: n}
}

func reportRecovered(say func(string), recs []cachecore.Recovered) {
	for _, r := range recs {
		switch {
		case r.Err != nil:
			say(fmt.Sprintf("an interrupted deletion in %s could not be finished: %v", r.Repo, r.Err))
		case r.RolledBack:
			say(fmt.Sprintf("rolled back an interrupted deletion in %s (nothing of it had gone)", r.Repo))
		default:
			say(fmt.Sprintf("finished an interrupted deletion in %s", r.Repo))
		}
	}
}
