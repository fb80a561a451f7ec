package views

import "testing"

func TestInoTableKeysAndRetire(t *testing.T) {
	tab := NewInoTable()
	if got := tab.Get(rootKey); got != 1 {
		t.Fatalf("root = %d, want 1 (FUSE_ROOT_ID)", got)
	}
	keys := []InoKey{
		{Kind: 'f', A: "models--a--b", B: "/c/blobs/x"},
		{Kind: 'f', A: "models--a--b", B: "/c/blobs/y"},
		{Kind: 'f', A: "models--a--bc", B: ""}, // the parts' bounds count
		{Kind: 'f', A: "models--a--b", B: "c"},
		{Kind: 'd', A: "models--a--b", B: "/c/blobs/x"},
		{Kind: 's', A: "r", B: "h", C: "sub", D: "main"},
		{Kind: 's', A: "r", B: "h", C: "sub", D: ""},
	}
	seen := map[uint64]InoKey{1: rootKey}
	for _, k := range keys {
		ino := tab.Get(k)
		if prev, ok := seen[ino]; ok {
			t.Fatalf("%+v and %+v share inode %d", k, prev, ino)
		}
		seen[ino] = k
		if again := tab.Get(k); again != ino {
			t.Errorf("%+v: %d, then %d", k, ino, again)
		}
	}
	old := tab.Get(keys[0])
	tab.Retire(old)
	if now := tab.Get(keys[0]); now == old || seen[now] != (InoKey{}) {
		t.Errorf("after Retire(%d) the key got %d, want a new number", old, now)
	}
	tab.Retire(1)
	if got := tab.Get(rootKey); got != 1 {
		t.Errorf("the root's number cannot be retired: got %d", got)
	}
}
