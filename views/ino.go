package views

import "sync"

// InoTable hands out inode numbers by key and never reuses one, so an
// inode number means the same thing across model generations.
type InoTable struct {
	mu   sync.Mutex // protects the following
	next uint64
	inos map[string]uint64
}

// NewInoTable starts at 2; 1 is the root's (FUSE_ROOT_ID).
func NewInoTable() *InoTable {
	return &InoTable{next: 2, inos: map[string]uint64{"d:/": 1}}
}

// Get returns the inode number of a key, allocating one on first use.
func (t *InoTable) Get(key string) uint64 {
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
