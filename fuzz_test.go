package main

import (
	"strings"
	"testing"

	"github.com/hfcachefs/hfcachefs/cachecore"
)

// FuzzLsFilter: any expression compiles or is refused with a message;
// a compiled filter runs on any entry without panicking.
func FuzzLsFilter(f *testing.F) {
	for _, seed := range []string{"size>1GB", "size >= 10", "accessed>7d", "modified<=2mo", "type=model", "refs=main",
		"type!=x", "size==1", "bogus=1", "size>1.5GB", "", "=", "size>-1", "accessed>1_000s", "SIZE>1kb", "refs = main "} {
		f.Add(seed)
	}
	repo := &cachecore.RepoInfo{RepoID: "acme/m", RepoType: "model", RepoPath: "/c/models--acme--m", SizeOnDisk: 1500, LastAccessed: 1, LastModified: 2,
		Revisions: []*cachecore.RevisionInfo{{CommitHash: "c1", Refs: []string{"main"}, SizeOnDisk: 10, LastModified: 3}}}
	entries := []lsEntry{{repo: repo}, {repo: repo, rev: repo.Revisions[0]}}
	f.Fuzz(func(t *testing.T, expr string) {
		filter, err := compileLsFilter(expr)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: refused without a message", expr)
			}
			return
		}
		if strings.TrimSpace(expr) == "" {
			t.Fatalf("an empty expression compiled")
		}
		for _, e := range entries {
			_ = filter(e, 1e9)
		}
	})
}
