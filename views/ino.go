package views

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
)

// InoKey names a node: a kind and up to four parts (a repo folder, a
// commit, a path...), kept apart so no lookup has to build a string.
type InoKey struct {
	Kind       byte
	A, B, C, D string
}

// inoHash is a key's 128-bit hash (two independently seeded maphashes).
// The table keeps hashes, not keys: 24 bytes an entry rather than 80, and
// no strings of past models kept alive. Two of n keys collide with odds of
// about n²/2¹²⁹ (1e-27 for a million keys), far below a memory error's.
type inoHash [2]uint64

// InoTable hands out inode numbers by key and never reuses one, so an
// inode number means the same thing across model generations.
type InoTable struct {
	seeds [2]maphash.Seed

	mu   sync.Mutex // protects the following
	next uint64
	inos map[inoHash]uint64
}

// rootKey is the mount root's key; it gets FUSE_ROOT_ID.
var rootKey = InoKey{Kind: 'd'}

// NewInoTable starts at 2; 1 is the root's (FUSE_ROOT_ID).
func NewInoTable() *InoTable {
	t := &InoTable{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, next: 2}
	t.inos = map[inoHash]uint64{t.hash(rootKey): 1}
	return t
}

func (t *InoTable) hash(k InoKey) inoHash {
	var out inoHash
	for i := range out {
		var h maphash.Hash
		h.SetSeed(t.seeds[i])
		_ = h.WriteByte(k.Kind)
		for _, s := range [...]string{k.A, k.B, k.C, k.D} {
			var n [8]byte // the length first: ("ab", "c") is not ("a", "bc")
			binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
			_, _ = h.Write(n[:])
			_, _ = h.WriteString(s)
		}
		out[i] = h.Sum64()
	}
	return out
}

// Get returns the inode number of a key, allocating one on first use.
func (t *InoTable) Get(key InoKey) uint64 {
	h := t.hash(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	if ino, ok := t.inos[h]; ok {
		return ino
	}
	ino := t.next
	t.next++
	t.inos[h] = ino
	return ino
}

// Retire gives the key holding an inode number a new number on its next
// use (the old one stays with a folder moved through .trash).
func (t *InoTable) Retire(ino uint64) {
	root := t.hash(rootKey)
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range t.inos {
		if v == ino && k != root {
			delete(t.inos, k)
			return
		}
	}
}
