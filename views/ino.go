package views

import "sync"

// InoKey names a node: a kind and up to four parts (a repo folder, a
// commit, a path...), kept apart so no lookup has to build a string.
type InoKey struct {
	Kind       byte
	A, B, C, D string
}

// InoTable hands out inode numbers by key and never reuses one, so an
// inode number means the same thing across model generations.
type InoTable struct {
	mu   sync.Mutex // protects the following
	next uint64
	inos map[InoKey]uint64
}

// rootKey is the mount root's key; it gets FUSE_ROOT_ID.
var rootKey = InoKey{Kind: 'd'}

// NewInoTable starts at 2; 1 is the root's (FUSE_ROOT_ID).
func NewInoTable() *InoTable {
	return &InoTable{next: 2, inos: map[InoKey]uint64{rootKey: 1}}
}

// Get returns the inode number of a key, allocating one on first use.
func (t *InoTable) Get(key InoKey) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ino, ok := t.inos[key]; ok {
		return ino
	}
	ino := t.next
	t.next++
	t.inos[key] = ino
	return ino
}

// Retire gives the key holding an inode number a new number on its next
// use (the old one stays with a folder moved through .trash).
func (t *InoTable) Retire(ino uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range t.inos {
		if v == ino && k != rootKey {
			delete(t.inos, k)
			return
		}
	}
}
