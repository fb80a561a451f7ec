package fs

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/hfcachefs/hfcachefs/views"
)

// The kernel keeps every inode it has looked up until memory pressure
// evicts it, and go-fuse keeps a node for each (about 750 bytes of its
// maps): after one `du` over a 180k-file cache the daemon would hold over
// 100 MB for paths nobody uses any more. Once the mount has been idle for
// a while, the trimmer asks the kernel to forget every inode it holds
// (FUSE_NOTIFY_PRUNE, FUSE protocol 7.45), and returns the memory their
// nodes held. The kernel keeps what is in use: open files, working
// directories, bind mounts and the folders above them. The next walk
// looks names up again, as after a mount.

// pruneBatch is how many node IDs go in one notification (the kernel
// reads them in batches of 512 as well).
const pruneBatch = 512

type trimmer struct {
	activity atomic.Int64 // unix ns of the last request

	mu   sync.Mutex // protects the following
	info views.TrimInfo
}

// Touch records that a request arrived (the mount is not idle).
func (s *State) Touch() { s.trim.activity.Store(time.Now().UnixNano()) }

// TrimInfo says what the trimmer did, for .status.json.
func (s *State) TrimInfo() views.TrimInfo {
	s.trim.mu.Lock()
	defer s.trim.mu.Unlock()
	return s.trim.info
}

// StartTrimmer trims once the mount has been idle for after (0: never),
// then again after each later busy spell, until ctx ends. supported says
// whether the kernel takes FUSE_NOTIFY_PRUNE.
func (s *State) StartTrimmer(ctx context.Context, after time.Duration, supported bool) {
	s.trim.mu.Lock()
	s.trim.info.After, s.trim.info.Supported = after.String(), supported
	s.trim.mu.Unlock()
	if after <= 0 || !supported {
		return
	}
	s.Touch()
	go s.runTrimmer(ctx, after)
}

func (s *State) runTrimmer(ctx context.Context, after time.Duration) {
	tick := max(after/4, 50*time.Millisecond)
	var trimmedAt int64 // the activity stamp the last trim followed
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(tick):
		}
		last := s.trim.activity.Load()
		if last == trimmedAt || time.Since(time.Unix(0, last)) < after {
			continue
		}
		trimmedAt = last
		s.Trim()
	}
}

// Trim asks the kernel to forget the inodes it holds, children before
// their folders (a folder's dentry is pinned by its children's), then
// gives the freed memory back to the system.
func (s *State) Trim() {
	start := time.Now()
	root := s.rootInode()
	if root == nil {
		return
	}
	order, known := pruneOrder(root)
	var errno syscall.Errno
	for i := 0; i < len(order) && errno == 0; i += pruneBatch {
		errno = root.NotifyPrune(order[i:min(i+pruneBatch, len(order))])
	}
	// The kernel queues a FORGET per evicted inode; go-fuse drops its
	// nodes as they arrive.
	if len(order) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	_, after := pruneOrder(root)
	debug.FreeOSMemory()
	now := time.Now()
	s.trim.mu.Lock()
	defer s.trim.mu.Unlock()
	in := &s.trim.info
	in.Runs++
	in.Last = &now
	in.Asked, in.KnownAfter, in.KnownPeak = len(order), after, max(in.KnownPeak, known)
	in.Error = ""
	if errno != 0 {
		in.Error = "FUSE_NOTIFY_PRUNE: " + errno.Error()
	}
	in.DurationSec = now.Sub(start).Seconds()
}

// pruneOrder lists the nodes the kernel holds but the root in post-order
// (each after everything below it).
func pruneOrder(root *gofs.Inode) (order []*gofs.Inode, known int) {
	seen := map[*gofs.Inode]bool{root: true}
	var visit func(n *gofs.Inode)
	visit = func(n *gofs.Inode) {
		for _, ch := range n.Children() {
			if seen[ch] {
				continue // a file reached by several paths
			}
			seen[ch] = true
			if ch.IsDir() {
				visit(ch)
			}
			order = append(order, ch)
		}
	}
	visit(root)
	return order, len(seen)
}

func (s *State) rootInode() *gofs.Inode {
	if r := s.root.Load(); r != nil {
		return r.EmbeddedInode()
	}
	return nil
}
