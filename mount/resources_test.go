package mount

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

// procFDs counts a process's open file descriptors.
func procFDs(t *testing.T, pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func procRSS(t *testing.T, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// After 10,000 open/read/close cycles through the mount, the daemon's
// open file descriptors come back to where they were.
func TestFileDescriptorsReturnToBaseline(t *testing.T) {
	needFuse(t)
	needTool(t, "python3")
	cache, _ := basicCache(t)
	mp := newMountpoint(t)
	pid := startDaemon(t, mp, cache)
	target := filepath.Join(mp, "models/acme/tiny-model/by-ref/main/config.json")
	mustRun(t, "cat", target)
	baseline := procFDs(t, pid)
	script := `import sys
p = sys.argv[1]
for i in range(10000):
    with open(p, 'rb') as f:
        assert f.read(1)
print("done")`
	r := run(t, "python3", "-c", script, target)
	if r.code != 0 || !strings.Contains(r.stdout, "done") {
		t.Fatalf("readers: %s", r)
	}
	poll(t, 15*time.Second, "daemon fds back to baseline", func() (bool, string) {
		n := procFDs(t, pid)
		return n <= baseline+2, fmt.Sprintf("%d open, baseline %d", n, baseline)
	})
}

// Five full walks of a mounted cache: the daemon's memory stops growing
// after the first (the nodes a walk makes are reused by the next).
func TestRSSDoesNotGrowAcrossWalks(t *testing.T) {
	needFuse(t)
	cache := filepath.Join(t.TempDir(), "hub")
	gen := exec.Command("go", "run", "./scripts/gencache", "-out", cache, "-repos", "300", "-revisions", "3", "-files", "30")
	gen.Dir = testcache.Root()
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("gencache: %v\n%s", err, out)
	}
	mp := newMountpoint(t)
	pid := startDaemon(t, mp, cache)
	walk := func() {
		r := sh(t, `find "$1"/models "$1"/datasets "$1"/spaces -type f | wc -l && ls -lR "$1"/models >/dev/null && du -s "$1" >/dev/null`, mp)
		if r.code != 0 {
			t.Fatalf("walk: %s", r)
		}
	}
	var rss []int64
	for i := 0; i < 5; i++ {
		walk()
		rss = append(rss, procRSS(t, pid))
	}
	t.Logf("VmRSS after each walk (MiB): %v", mib(rss))
	// Growth after the second walk must stay within noise (GC timing).
	if limit := rss[1] + rss[1]/5 + 16<<20; rss[4] > limit {
		t.Errorf("RSS grew across walks: %v MiB", mib(rss))
	}
}

func mib(l []int64) []int64 {
	out := make([]int64, len(l))
	for i, v := range l {
		out[i] = v >> 20
	}
	return out
}
