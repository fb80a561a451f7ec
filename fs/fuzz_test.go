package fs

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
	"github.com/hfcachefs/hfcachefs/views"
)

// FuzzDecideRename: whatever paths and flags a rename names, only a
// revision or a repo ever goes into .trash, only .trash gives anything
// back, and unknown flags are refused.
func FuzzDecideRename(f *testing.F) {
	info, err := cachecore.Scan(testcache.Basic(f))
	if err != nil {
		f.Fatal(err)
	}
	m := views.Build(1, info, views.NewInoTable(), views.Options{Receipts: func() map[string]string {
		return map[string]string{"old": "/nonexistent"}
	}}, time.Now())
	seeds := [][3]string{
		{"models/acme/tiny-model/by-commit", "eba90b51402874116c4cda2ae669ce32cc85e1c6", ".trash"},
		{"models/acme/tiny-model/by-ref", "main", ".trash"},
		{"models/acme", "tiny-model", ".trash"},
		{"models/acme/tiny-model/by-ref/main", "config.json", ".trash"},
		{"by-size", "0001-25.3K-model--acme--tiny-model", ".trash"},
		{".trash", "old", "models/acme/tiny-model/by-commit"},
		{"models/gpt2/by-commit", "f584eba0dcc94d97dd2cc48e48a591be55492603", "models/acme/tiny-model/by-commit"},
		{"models/acme/tiny-model/by-ref", "refs", ".trash"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], uint32(1))
		f.Add(s[0], s[1], s[2], uint32(2))
	}
	f.Fuzz(func(t *testing.T, fromPath, name, toPath string, flags uint32) {
		from, ok := m.Resolve(fromPath)
		if !ok || from.Kind != views.KindDir || strings.Contains(name, "/") {
			return
		}
		to, ok := m.Resolve(toPath)
		if !ok || to.Kind != views.KindDir {
			return
		}
		src, found := m.Lookup(from.Loc, name)
		action, errno := decideRename(from.Loc, to.Loc, src, found, flags, true)
		if flags&^renameNoReplace != 0 && errno != syscall.EINVAL {
			t.Fatalf("flags %#x accepted", flags)
		}
		switch action {
		case renameTrash:
			if to.Loc.Role != views.RoleTrash || !found || (src.Role != views.RoleRevision && src.Role != views.RoleRepo) {
				t.Fatalf("%s/%s -> %s trashed (role %v)", fromPath, name, toPath, src.Role)
			}
		case renameRestore:
			if from.Loc.Role != views.RoleTrash {
				t.Fatalf("restore from %s", fromPath)
			}
		case renameRefused:
			if errno == 0 {
				t.Fatalf("%s/%s -> %s refused without an errno", fromPath, name, toPath)
			}
		}
	})
}
