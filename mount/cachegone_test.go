package mount

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// The cache dir renamed (or deleted) while mounted: within a few polls the
// mount shows no repo and .status.json says why; a folder at the path
// again (the same one renamed back, or a new one) is scanned afresh.
func TestCacheGoneRenamedAndBack(t *testing.T) {
	cache, info := basicCache(t)
	every := 200 * time.Millisecond
	m, mp := startMount(t, cache, Options{ReadOnly: true, PollInterval: every})
	waitReady(t, m)
	models := filepath.Join(mp, "models")
	want := topNames(info, "model")
	cfg := filepath.Join(mp, tinyModel, "by-ref", "main", "config.json")
	wantCfg := string(readBlob(t, findFile(t, findRev(t, findRepo(t, info, "model", "acme/tiny-model"), mainCommit), "config.json")))
	if r := run(t, "cat", cfg); r.code != 0 || r.stdout != wantCfg {
		t.Fatalf("before: %s", r)
	}

	gone := func(what string) {
		t.Helper()
		start := time.Now()
		poll(t, 10*every+2*time.Second, what+": the mount shows no repo and says the cache dir is missing", func() (bool, string) {
			got := sortedLines(mustRun(t, "ls", models))
			doc, _ := readStatus(t, mp)
			return len(got) == 0 && doc.Repos == 0 && doc.CacheDirMissing != "", fmt.Sprintf("ls %q repos %d missing %q", got, doc.Repos, doc.CacheDirMissing)
		})
		t.Logf("%s: noticed in %v", what, time.Since(start).Round(10*time.Millisecond))
		if r := run(t, "cat", cfg); r.code == 0 {
			t.Errorf("%s: a file still reads: %s", what, r)
		}
	}
	back := func(what string) {
		t.Helper()
		poll(t, 10*every+2*time.Second, what+": the repos are back", func() (bool, string) {
			got := sortedLines(mustRun(t, "ls", models))
			doc, _ := readStatus(t, mp)
			r := run(t, "cat", cfg)
			return reflect.DeepEqual(got, want) && doc.CacheDirMissing == "" && r.code == 0 && r.stdout == wantCfg,
				fmt.Sprintf("ls %q missing %q cat %s", got, doc.CacheDirMissing, r)
		})
	}

	away := cache + ".away"
	if err := os.Rename(cache, away); err != nil {
		t.Fatal(err)
	}
	gone("renamed")
	if err := os.Rename(away, cache); err != nil {
		t.Fatal(err)
	}
	back("renamed back")

	// Deleted, then a new folder at the path (another inode).
	if err := os.Rename(cache, away); err != nil {
		t.Fatal(err)
	}
	gone("deleted")
	copyTree(t, away, cache)
	back("a new folder at the path")
	if err := os.RemoveAll(away); err != nil {
		t.Fatal(err)
	}
}
