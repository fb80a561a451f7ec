package e2e_test

// TestGlusterTwoNodes: the cache on a real GlusterFS volume
// (scripts/glusterfs.sh: one glusterd, a one-brick volume on the local
// disk, mounted twice with the FUSE client, the two client mounts standing
// in for two nodes), an hfcachefs daemon on each client mount: daemon A on
// client mount 1, where the test writes the cache, daemon B on client
// mount 2, which sees the writes only through the file server, as another
// node would. Both must choose polling by themselves (f_type FUSE), and:
//
//	(a) by-ref follows a ref moved on the other node within the ref TTL
//	    (plus the GlusterFS client's own ~1 s caching);
//	(d) `hfcachefs refresh MOUNT` (and user.hf.refresh) shows a change at
//	    once, on the writing node and on the other;
//	(b) a revision and a repo deleted (rm -rf) on one node while the other
//	    reads them: readers get the old bytes or ENOENT (never ESTALE or
//	    EIO), and what went leaves the listing soon after the first ENOENT;
//	(c) the brick killed for ~15 s: .status.json says the cache is
//	    unreachable, every repo stays listed (the last good view), and after
//	    the brick is back the mark clears and a new change shows.
//
// Same rule as the other e2e tests: every access to an hfcachefs mount is
// a child process (cat, ls, getfattr, hfcachefs refresh). The test process
// writes the cache through GlusterFS client mount 1 itself (never while the
// brick is down). GlusterFS is set up by scripts/glusterfs.sh (installed
// with apt-get when missing); where glusterd cannot be had the test skips,
// and fails under CI.

import (
	"bufio"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/internal/mounttest"
)

// glEnv is a GlusterFS volume as `scripts/glusterfs.sh up` made it.
type glEnv struct {
	script, dir string
	volume      string
	m1, m2      string // the two client mounts
	logdir      string
	setup       string // INSTALL_SECONDS / SETUP_SECONDS, for the log
}

// glScript runs scripts/glusterfs.sh with a hang bound.
func glScript(t *testing.T, hang time.Duration, args ...string) mounttest.Result {
	t.Helper()
	script := filepath.Join(mounttest.ModuleRoot(), "scripts", "glusterfs.sh")
	return mounttest.Run(t, mounttest.Options{Hang: hang}, "bash", append([]string{script}, args...)...)
}

// glKV parses the KEY=VALUE lines the script prints.
func glKV(out string) map[string]string {
	kv := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// glUp sets GlusterFS up (installing it when missing) and tears it down at
// cleanup, after everything started later (the hfcachefs daemons) has
// stopped. Skips, or fails under CI, only where GlusterFS cannot be had
// (the script's exit status 3: not root, no packages, glusterd does not
// start or answer).
func glUp(t *testing.T) *glEnv {
	t.Helper()
	mounttest.NeedRoot(t, "glusterd, gluster volume create and mount -t glusterfs need root")
	mounttest.NeedFuse(t)
	mounttest.NeedTool(t, "bash", "cat", "ls", "rm", "getfattr", "sha256sum")
	dir := t.TempDir()
	start := time.Now()
	r := glScript(t, 15*time.Minute, "up", dir)
	t.Cleanup(func() {
		d := glScript(t, 3*time.Minute, "down", dir)
		if d.Code != 0 || d.TimedOut || d.Err != nil {
			t.Errorf("scripts/glusterfs.sh down %s: %s", dir, d)
		}
	})
	if r.Code == 3 {
		mounttest.SkipOrFail(t, "GlusterFS cannot be had here (scripts/glusterfs.sh up exit 3): %s", strings.TrimSpace(r.Stderr))
	}
	if r.Code != 0 || r.TimedOut || r.Err != nil {
		t.Fatalf("scripts/glusterfs.sh up %s: %s", dir, r)
	}
	kv := glKV(r.Stdout)
	g := &glEnv{dir: dir, volume: kv["VOLUME"], m1: kv["MOUNT1"], m2: kv["MOUNT2"], logdir: kv["LOGDIR"],
		setup: fmt.Sprintf("install %ss, total setup %ss (measured by the test: %v)", kv["INSTALL_SECONDS"], kv["SETUP_SECONDS"], time.Since(start).Round(10*time.Millisecond))}
	if g.volume == "" || g.m1 == "" || g.m2 == "" {
		t.Fatalf("scripts/glusterfs.sh up printed no VOLUME/MOUNT1/MOUNT2: %s", r)
	}
	t.Logf("GlusterFS volume %s (brick %s), client mounts %s and %s: %s", g.volume, kv["BRICK"], g.m1, g.m2, g.setup)
	return g
}

// glLogs is the tail of the GlusterFS client logs, for a failure.
func (g *glEnv) glLogs() string {
	var b strings.Builder
	for _, f := range []string{"m1.log", "m2.log"} {
		data, _ := os.ReadFile(filepath.Join(g.logdir, f))
		s := string(data)
		if len(s) > 3000 {
			s = s[len(s)-3000:]
		}
		fmt.Fprintf(&b, "--- %s (tail)\n%s\n", f, s)
	}
	return b.String()
}

// The cache: huggingface_hub's layout, written through client mount 1.
// Blobs are named by the sha256 of their bytes, snapshots hold relative
// links ../../blobs/<etag>, refs a 40-hex commit (a temp file renamed over,
// as huggingface_hub writes them), trees/<commit>.json lists the files (as
// snapshot_download writes it).

func glCommit(seed string) string {
	s := sha1.Sum([]byte(seed))
	return hex.EncodeToString(s[:])
}

func glContent(folder, commit, path string) []byte {
	return []byte(strings.Repeat(fmt.Sprintf("%s %s %s\n", folder, commit, path), 4))
}

func glSha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var glFiles = []string{"config.json", "model.safetensors"}

// glWriteRevision writes a complete snapshot of cache/folder at commit
// (blobs, links, listing); refs are left alone.
func glWriteRevision(t *testing.T, cache, folder, commit string) {
	t.Helper()
	repo := filepath.Join(cache, folder)
	for _, d := range []string{"blobs", "refs", "trees", "snapshots/" + commit} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	listing := map[string]any{}
	for _, p := range glFiles {
		data := glContent(folder, commit, p)
		etag := glSha(data)
		if err := os.WriteFile(filepath.Join(repo, "blobs", etag), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../blobs/"+etag, filepath.Join(repo, "snapshots", commit, p)); err != nil {
			t.Fatal(err)
		}
		listing[p] = map[string]any{"size": len(data), "etag": etag}
	}
	tree, _ := json.Marshal(map[string]any{"format_version": 1, "files": listing})
	glWriteAtomic(t, filepath.Join(repo, "trees", commit+".json"), tree)
}

func glWriteAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp-hfcachefs-test"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func glSetRef(t *testing.T, cache, folder, ref, commit string) {
	t.Helper()
	glWriteAtomic(t, filepath.Join(cache, folder, "refs", ref), []byte(commit))
}

// glRepo writes a repo with one revision main points to.
func glRepo(t *testing.T, cache, folder string) string {
	t.Helper()
	c := glCommit(folder + "@1")
	glWriteRevision(t, cache, folder, c)
	glSetRef(t, cache, folder, "main", c)
	return c
}

// glStatus is the part of .status.json this test reads.
type glStatus struct {
	Repos    int      `json:"repos"`
	Warnings []string `json:"warnings"`
	Scan     *struct {
		State string `json:"state"`
	} `json:"scan"`
	Refresh *struct {
		Mode           string `json:"mode"`
		FSType         string `json:"fs_type"`
		PollInterval   string `json:"poll_interval"`
		RefTTL         string `json:"ref_ttl"`
		StalenessBound string `json:"staleness_bound"`
		Unreachable    *struct {
			Since string `json:"since"`
			Error string `json:"error"`
		} `json:"unreachable"`
	} `json:"refresh"`
	raw string
}

// glRun runs a child with a hang bound; the caller judges the result.
func glRun(t *testing.T, hang time.Duration, name string, args ...string) mounttest.Result {
	t.Helper()
	r := mounttest.Run(t, mounttest.Options{Hang: hang}, name, args...)
	if r.TimedOut || r.Err != nil {
		t.Fatalf("%s %q: %s", name, args, r)
	}
	return r
}

func glMust(t *testing.T, name string, args ...string) string {
	t.Helper()
	return mounttest.Must(t, time.Minute, name, args...)
}

func glStatusOf(t *testing.T, mp string) glStatus {
	t.Helper()
	raw := glMust(t, "cat", filepath.Join(mp, ".status.json"))
	var st glStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("%s/.status.json is not valid JSON: %v\n%s", mp, err, mounttest.Clip(raw, 4000))
	}
	st.raw = raw
	if st.Refresh == nil {
		t.Fatalf("%s/.status.json has no \"refresh\" object: %s", mp, mounttest.Clip(raw, 4000))
	}
	return st
}

func glLs(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(glMust(t, "ls", path), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func glHas(list []string, names ...string) bool {
	for _, n := range names {
		found := false
		for _, v := range list {
			if v == n {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func glMissing(list []string, names ...string) []string {
	var miss []string
	for _, n := range names {
		if !glHas(list, n) {
			miss = append(miss, n)
		}
	}
	return miss
}

func glMedian(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// glDaemon mounts cache with hfcachefs in the foreground (output kept,
// data races reported) and waits for its first scan.
func glDaemon(t *testing.T, cache string, args ...string) (string, glStatus) {
	t.Helper()
	mp := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	mounttest.StartDaemon(t, mp, cache, mounttest.DaemonOptions{Args: args, Foreground: true})
	var st glStatus
	mounttest.Poll(t, time.Minute, mp+": the first scan is done", func() (bool, string) {
		st = glStatusOf(t, mp)
		if st.Scan == nil {
			return false, "no \"scan\" object: " + mounttest.Clip(st.raw, 2000)
		}
		return st.Scan.State == "done", "scan.state " + st.Scan.State
	})
	return mp, st
}

const (
	glPollB = 5 * time.Second // daemon B's poll interval
	glTTLB  = time.Second     // daemon B's ref TTL
)

func TestGlusterTwoNodes(t *testing.T) {
	g := glUp(t)
	defer func() {
		if t.Failed() {
			t.Logf("GlusterFS client logs:\n%s", g.glLogs())
		}
	}()
	bin := prBinary(t)
	cache1 := filepath.Join(g.m1, "hub") // the same folder through each client mount
	cache2 := filepath.Join(g.m2, "hub")

	// The cache, written on node 1.
	commits := map[string]string{}
	for _, f := range []string{"models--acme--follow", "models--acme--revdel", "models--acme--repodel", "models--acme--steady", "models--solo", "datasets--acme--data"} {
		commits[f] = glRepo(t, cache1, f)
	}
	gone := glCommit("models--acme--revdel@gone") // a second revision, deleted in (b)
	glWriteRevision(t, cache1, "models--acme--revdel", gone)
	glSetRef(t, cache1, "models--acme--revdel", "v1", gone)

	// Daemon A on node 1 polls hourly (only refresh and the ref TTL can
	// show a change there); daemon B on node 2 every 5 s.
	mpA, stA := glDaemon(t, cache1, "--poll-interval", "1h")
	mpB, stB := glDaemon(t, cache2, "--poll-interval", glPollB.String(), "--ref-ttl", glTTLB.String())

	t.Run("auto-picks-poll", func(t *testing.T) {
		for _, x := range []struct {
			name string
			st   glStatus
			poll string
		}{{"A (client mount 1)", stA, "1h"}, {"B (client mount 2)", stB, glPollB.String()}} {
			r := x.st.Refresh
			t.Logf("daemon %s: refresh mode %q fs_type %q poll_interval %q ref_ttl %q staleness_bound %q", x.name, r.Mode, r.FSType, r.PollInterval, r.RefTTL, r.StalenessBound)
			if r.Mode != "poll" {
				t.Errorf("daemon %s on GlusterFS: refresh.mode = %q, want \"poll\" (inotify never hears of the other node's writes)", x.name, r.Mode)
			}
			if r.FSType != "fuse" {
				t.Errorf("daemon %s on GlusterFS: refresh.fs_type = %q, want \"fuse\" (f_type 0x65735546)", x.name, r.FSType)
			}
			if d, err := time.ParseDuration(r.PollInterval); err != nil || d.String() != mustDur(x.poll).String() {
				t.Errorf("daemon %s: refresh.poll_interval = %q, want %s", x.name, r.PollInterval, x.poll)
			}
			if _, err := time.ParseDuration(r.RefTTL); err != nil {
				t.Errorf("daemon %s: refresh.ref_ttl = %q: %v", x.name, r.RefTTL, err)
			}
			if strings.TrimSpace(r.StalenessBound) == "" {
				t.Errorf("daemon %s: refresh.staleness_bound is empty", x.name)
			}
			if r.Unreachable != nil {
				t.Errorf("daemon %s: refresh.unreachable = %+v with the volume up", x.name, *r.Unreachable)
			}
			if x.st.Repos != 6 {
				t.Errorf("daemon %s: repos = %d, want 6", x.name, x.st.Repos)
			}
		}
	})

	// (a) A ref moved on node 1 shows through daemon B within the ref TTL
	// plus slack: the GlusterFS client on node 2 may serve the replaced
	// ref file for up to ~1 s (its entry/attribute timeouts), and a cat
	// is a process start under -race.
	t.Run("a-ref-follow-across-nodes", func(t *testing.T) {
		const folder = "models--acme--follow"
		path := filepath.Join(mpB, "models", "acme", "follow", "by-ref", "main", "config.json")
		if got, want := glMust(t, "cat", path), string(glContent(folder, commits[folder], "config.json")); got != want {
			t.Fatalf("before: %s: %q, want %q", path, got, want)
		}
		bound := glTTLB + 2*time.Second
		var lat []time.Duration
		for i := 0; i < 3; i++ {
			c := glCommit(fmt.Sprintf("%s@follow%d", folder, i))
			glWriteRevision(t, cache1, folder, c)
			want := string(glContent(folder, c, "config.json"))
			glSetRef(t, cache1, folder, "main", c)
			start := time.Now()
			var errs []string
			for {
				r := glRun(t, time.Minute, "cat", path)
				el := time.Since(start)
				if r.Code != 0 {
					errs = append(errs, fmt.Sprintf("after %v: %s", el.Round(time.Millisecond), strings.TrimSpace(r.Stderr)))
				} else if r.Stdout == want {
					lat = append(lat, el)
					t.Logf("move %d: daemon B showed main -> %s after %v (bound: ref TTL %v + 2 s)", i+1, c[:12], el.Round(time.Millisecond), glTTLB)
					break
				}
				if el > bound {
					t.Fatalf("move %d: daemon B's by-ref/main did not follow to %s within %v; last cat: %s", i+1, c[:12], bound, r)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if len(errs) > 0 {
				t.Errorf("move %d: cat of by-ref/main/config.json failed while main moved (a reader must see the old or the new bytes): %q", i+1, errs)
			}
			commits[folder] = c
		}
		t.Logf("cross-node ref follow (daemon B, poll %v, ref TTL %v): median %v", glPollB, glTTLB, glMedian(lat).Round(time.Millisecond))
	})

	// (d) refresh: a new revision (no ref: only a rescan can show it) and a
	// new repo are listed by the next ls after the command returns, on the
	// node that wrote them (A, hourly poll) and on the other (B).
	t.Run("d-refresh-shows-at-once", func(t *testing.T) {
		const folder = "models--acme--steady"
		// prime, when set, is a client mount whose caches (the kernel's
		// attributes, GlusterFS's md-cache: ~1 s) are made to hold the
		// repo's folders as they are before the change, as a poll pass
		// that just ran would leave them.
		check := func(how, mp string, args []string, c string, prime ...string) {
			t.Helper()
			byCommit := filepath.Join(mp, "models", "acme", "steady", "by-commit")
			glLs(t, byCommit) // cached before the change
			for _, m := range prime {
				r := filepath.Join(m, "hub", folder)
				glMust(t, "stat", r, r+"/refs", r+"/refs/main", r+"/snapshots", r+"/blobs")
				glMust(t, "ls", r+"/snapshots")
			}
			glWriteRevision(t, cache1, folder, c)
			start := time.Now()
			r := glRun(t, time.Minute, args[0], args[1:]...)
			took := time.Since(start)
			if r.Code != 0 {
				t.Errorf("%s: %s", how, r)
				return
			}
			if got := glLs(t, byCommit); !glHas(got, c) {
				t.Errorf("%s returned (in %v) but %s does not list the new revision %s: %q", how, took.Round(time.Millisecond), byCommit, c[:12], got)
				return
			}
			if got, want := glMust(t, "cat", filepath.Join(byCommit, c, "config.json")), string(glContent(folder, c, "config.json")); got != want {
				t.Errorf("%s: by-commit/%s/config.json: %q, want %q", how, c[:12], got, want)
			}
			t.Logf("%s: returned in %v; the new revision is listed at once", how, took.Round(time.Millisecond))
		}
		check("node 1: hfcachefs refresh MOUNT_A", mpA, []string{bin, "refresh", mpA}, glCommit("steady@d1"))
		check("node 2: hfcachefs refresh MOUNT_B", mpB, []string{bin, "refresh", mpB}, glCommit("steady@d2"))
		check("node 2: hfcachefs refresh MOUNT_B acme/steady", mpB, []string{bin, "refresh", mpB, "acme/steady"}, glCommit("steady@d3"))
		check("node 2: getfattr -n user.hf.refresh MOUNT_B/models/acme/steady", mpB,
			[]string{"getfattr", "-n", "user.hf.refresh", filepath.Join(mpB, "models", "acme", "steady")}, glCommit("steady@d4"))
		check("node 2, its client caching the old folders: hfcachefs refresh MOUNT_B", mpB, []string{bin, "refresh", mpB}, glCommit("steady@d5"), g.m2)
		check("node 2, its client caching the old folders: hfcachefs refresh MOUNT_B acme/steady", mpB, []string{bin, "refresh", mpB, "acme/steady"}, glCommit("steady@d6"), g.m2)

		const fresh = "models--acme--fresh"
		c := glRepo(t, cache1, fresh)
		for _, x := range []struct{ node, mp string }{{"node 1", mpA}, {"node 2", mpB}} {
			if r := glRun(t, time.Minute, bin, "refresh", x.mp); r.Code != 0 {
				t.Errorf("%s: hfcachefs refresh: %s", x.node, r)
				continue
			}
			if got := glLs(t, filepath.Join(x.mp, "models", "acme")); !glHas(got, "fresh") {
				t.Errorf("%s: after hfcachefs refresh, models/acme does not list the new repo: %q", x.node, got)
				continue
			}
			if got, want := glMust(t, "cat", filepath.Join(x.mp, "models", "acme", "fresh", "by-ref", "main", "config.json")), string(glContent(fresh, c, "config.json")); got != want {
				t.Errorf("%s: the new repo's by-ref/main/config.json: %q, want %q", x.node, got, want)
			}
		}
	})

	// (b) Deletions on node 1 while node 2 reads.
	t.Run("b-delete-while-reading", func(t *testing.T) {
		glDeleteWhileReading(t, g, cache1, mpB, commits, gone)
	})

	// (c) The brick down for ~15 s, then back.
	t.Run("c-brick-outage", func(t *testing.T) {
		glBrickOutage(t, g, cache1, mpA, mpB)
	})
}

func mustDur(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

// glReaderSh reads every file given, in turn, until the stop file exists
// or 40 s pass, and prints a line per read: "<index> OK <sha256>" or
// "<index> ERR <strerror>" (cat's message without its path).
const glReaderSh = `stop=$1; tmp=$2; shift 2
end=$(( $(date +%s) + 40 ))
while [ ! -e "$stop" ] && [ "$(date +%s)" -lt "$end" ]; do
  i=0
  for f in "$@"; do
    if err=$(cat -- "$f" 2>&1 >"$tmp"); then
      echo "$i OK $(sha256sum <"$tmp" | cut -c1-64)"
    else
      echo "$i ERR ${err##*: }"
    fi
    i=$((i + 1))
  done
done
`

func glDeleteWhileReading(t *testing.T, g *glEnv, cache1, mpB string, commits map[string]string, gone string) {
	revdel := filepath.Join(mpB, "models", "acme", "revdel")
	repodel := filepath.Join(mpB, "models", "acme", "repodel")
	type target struct {
		path, sha string
		deleted   bool // its revision or repo is deleted
		repo      string
	}
	targets := []target{
		{filepath.Join(revdel, "by-commit", gone, "config.json"), glSha(glContent("models--acme--revdel", gone, "config.json")), true, "revdel"},
		{filepath.Join(revdel, "by-commit", gone, "model.safetensors"), glSha(glContent("models--acme--revdel", gone, "model.safetensors")), true, "revdel"},
		{filepath.Join(revdel, "by-ref", "v1", "config.json"), glSha(glContent("models--acme--revdel", gone, "config.json")), true, "revdel"},
		{filepath.Join(repodel, "by-ref", "main", "config.json"), glSha(glContent("models--acme--repodel", commits["models--acme--repodel"], "config.json")), true, "repodel"},
		{filepath.Join(repodel, "by-commit", commits["models--acme--repodel"], "model.safetensors"), glSha(glContent("models--acme--repodel", commits["models--acme--repodel"], "model.safetensors")), true, "repodel"},
		// The revision that stays: read throughout, always whole.
		{filepath.Join(revdel, "by-ref", "main", "config.json"), glSha(glContent("models--acme--revdel", commits["models--acme--revdel"], "config.json")), false, "revdel"},
	}
	var args []string
	for _, x := range targets {
		args = append(args, x.path)
	}
	tmpdir := t.TempDir()
	stop := filepath.Join(tmpdir, "stop")
	reader := mounttest.Start(t, mounttest.Options{Lines: mounttest.Stdout, Hang: 2 * time.Minute}, "bash",
		append([]string{"-c", glReaderSh, "reader", stop, filepath.Join(tmpdir, "buf")}, args...)...)
	reader.WaitLine(t, "OK", time.Minute)
	time.Sleep(500 * time.Millisecond)

	// huggingface_hub's delete strategy for a revision (refs, the
	// snapshot, the blobs no other revision links), and a whole repo, as
	// plain rm -rf on node 1.
	repo1 := filepath.Join(cache1, "models--acme--revdel")
	var blobs []string
	for _, p := range glFiles {
		blobs = append(blobs, filepath.Join(repo1, "blobs", glSha(glContent("models--acme--revdel", gone, p))))
	}
	delStart := time.Now()
	glMust(t, "rm", "-rf", filepath.Join(cache1, "models--acme--repodel"))
	glMust(t, "rm", append([]string{"-rf", filepath.Join(repo1, "refs", "v1"), filepath.Join(repo1, "snapshots", gone)}, blobs...)...)
	t.Logf("deleted on node 1: revision %s of acme/revdel (ref v1, snapshot, blobs) and the repo acme/repodel", gone[:12])

	// The first ENOENT of each, then its listing on node 2 must go "soon":
	// within 3 s (daemon B polls every 5 s; an open that meets a missing
	// blob rescans its repo at once).
	firstENOENT := map[string]time.Duration{}
	deadline := time.Now().Add(45 * time.Second)
	for len(firstENOENT) < 2 {
		l := reader.WaitLine(t, "No such file", time.Until(deadline))
		var i int
		if _, err := fmt.Sscanf(l, "%d", &i); err == nil && i >= 0 && i < len(targets) && targets[i].deleted {
			if _, ok := firstENOENT[targets[i].repo]; !ok {
				firstENOENT[targets[i].repo] = time.Since(delStart)
			}
		}
	}
	t.Logf("first ENOENT on node 2 after the deletion: %v", firstENOENT)
	listCheck := time.Now()
	mounttest.Poll(t, 3*time.Second, "the deleted repo and revision leave daemon B's listings soon after the first ENOENT", func() (bool, string) {
		acme := glLs(t, filepath.Join(mpB, "models", "acme"))
		byCommit := glLs(t, filepath.Join(revdel, "by-commit"))
		byRef := glLs(t, filepath.Join(revdel, "by-ref"))
		ok := !glHas(acme, "repodel") && !glHas(byCommit, gone) && !glHas(byRef, "v1") && glHas(acme, "revdel")
		return ok, fmt.Sprintf("models/acme %q, revdel/by-commit %q, revdel/by-ref %q", acme, byCommit, byRef)
	})
	t.Logf("listings of daemon B without them %v after both first ENOENTs (%v after the deletion)", time.Since(listCheck).Round(time.Millisecond), time.Since(delStart).Round(time.Millisecond))
	for _, p := range []string{repodel, filepath.Join(revdel, "by-commit", gone)} {
		r := glRun(t, time.Minute, "stat", p)
		if r.Code == 0 || !strings.Contains(r.Stderr, "No such file") {
			t.Errorf("stat %s after the deletion: %s; want ENOENT", p, r)
		}
	}

	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := reader.Wait(t, time.Minute); code != 0 {
		t.Errorf("the reader exited %d: %s", code, mounttest.Clip(reader.Output(), 2000))
	}
	// Every read: the old bytes or ENOENT; never ESTALE, EIO or anything
	// else; the revision that stays always whole.
	counts := map[string]int{}
	var bad []string
	sc := bufio.NewScanner(strings.NewReader(reader.Result().Stdout))
	for sc.Scan() {
		l := sc.Text()
		var i int
		var kind string
		if n, _ := fmt.Sscanf(l, "%d %s", &i, &kind); n != 2 || i < 0 || i >= len(targets) {
			bad = append(bad, "unparsed: "+l)
			continue
		}
		x := targets[i]
		rest := ""
		if f := strings.SplitN(l, " ", 3); len(f) == 3 {
			rest = strings.TrimSpace(f[2])
		}
		switch {
		case kind == "OK" && rest == x.sha:
			counts["old bytes"]++
		case kind == "OK":
			bad = append(bad, fmt.Sprintf("%s: bytes with sha256 %s, want the old %s", x.path, rest, x.sha))
		case !x.deleted:
			bad = append(bad, fmt.Sprintf("%s (not deleted): %s", x.path, rest))
		case rest == "No such file or directory":
			counts["ENOENT"]++
		default:
			counts[rest]++
			bad = append(bad, fmt.Sprintf("%s: %s (only the old bytes or ENOENT are allowed; never ESTALE/EIO)", x.path, rest))
		}
	}
	t.Logf("reads on node 2 during the deletion: %v", counts)
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Errorf("%d bad reads on node 2 while node 1 deleted; first ones:\n%s", len(bad), strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
}

// glOutcome is "ok" or the strerror a child printed last.
func glOutcome(r mounttest.Result) string {
	if r.Code == 0 {
		return "ok"
	}
	msg := strings.TrimSpace(r.Stderr)
	return msg[strings.LastIndex(msg, ": ")+2:]
}

func glBrickOutage(t *testing.T, g *glEnv, cache1, mpA, mpB string) {
	// What daemon B lists before: every name must stay listed throughout.
	wantRepos := 0
	entries, err := os.ReadDir(cache1)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "models--") || strings.HasPrefix(e.Name(), "datasets--") {
			wantRepos++
		}
	}
	mounttest.Poll(t, 15*time.Second, "daemon B shows every repo of the cache before the outage", func() (bool, string) {
		st := glStatusOf(t, mpB)
		return st.Repos == wantRepos && st.Refresh.Unreachable == nil, fmt.Sprintf("repos %d (the cache has %d) unreachable %v", st.Repos, wantRepos, st.Refresh.Unreachable)
	})
	views := map[string][]string{}
	for _, p := range []string{"models", "models/acme", "datasets/acme"} {
		views[p] = glLs(t, filepath.Join(mpB, p))
	}
	t.Logf("before the outage daemon B lists %v (%d repos)", views, wantRepos)

	r := glScript(t, time.Minute, "brick-kill", g.volume)
	if r.Code != 0 {
		t.Fatalf("brick-kill: %s", r)
	}
	killed := time.Now()
	t.Logf("brick of %s killed (%s)", g.volume, strings.TrimSpace(r.Stdout))
	restarted := false
	defer func() {
		if !restarted {
			if r := glScript(t, 2*time.Minute, "brick-start", g.volume); r.Code != 0 {
				t.Errorf("brick-start (cleanup): %s", r)
			}
		}
	}()

	// While it is down (~15 s): the listings stay whole, every second,
	// and .status.json says unreachable within B's poll interval + 10 s.
	var detected time.Duration
	var unreachErr string
	var collapsed []string
	catSeen, statfsSeen := map[string]int{}, map[string]int{}
	for time.Since(killed) < 15*time.Second {
		for p, want := range views {
			res := glRun(t, 30*time.Second, "ls", filepath.Join(mpB, p))
			var got []string
			for _, l := range strings.Split(res.Stdout, "\n") {
				if l != "" {
					got = append(got, l)
				}
			}
			if res.Code != 0 || len(glMissing(got, want...)) > 0 {
				collapsed = append(collapsed, fmt.Sprintf("after %v: ls %s: %q (exit %d, %s); missing %q", time.Since(killed).Round(100*time.Millisecond), p, got, res.Code, strings.TrimSpace(res.Stderr), glMissing(got, want...)))
			}
		}
		st := glStatusOf(t, mpB)
		if st.Repos != wantRepos {
			collapsed = append(collapsed, fmt.Sprintf("after %v: .status.json repos %d, want %d", time.Since(killed).Round(100*time.Millisecond), st.Repos, wantRepos))
		}
		for _, w := range st.Warnings {
			if strings.Contains(strings.ToLower(w), "not a directory") || strings.Contains(strings.ToLower(w), "not connected") {
				collapsed = append(collapsed, fmt.Sprintf("after %v: .status.json warns %q", time.Since(killed).Round(100*time.Millisecond), w))
			}
		}
		if st.Refresh.Unreachable != nil && detected == 0 {
			detected = time.Since(killed)
			unreachErr = st.Refresh.Unreachable.Error
			t.Logf("daemon B marks the cache unreachable after %v: since %s, error %q", detected.Round(100*time.Millisecond), st.Refresh.Unreachable.Since, unreachErr)
		}
		// What applications meet meanwhile (not part of the spec: logged).
		c := glRun(t, 30*time.Second, "cat", filepath.Join(mpB, "models", "acme", "steady", "by-ref", "main", "config.json"))
		catSeen[glOutcome(c)]++
		sf := glRun(t, 30*time.Second, "stat", "-f", "-c", "%T", mpB)
		statfsSeen[glOutcome(sf)]++
		time.Sleep(time.Second)
	}
	t.Logf("cat of a file through daemon B while the brick was down: %v", catSeen)
	t.Logf("statfs (stat -f) of daemon B's mount while the brick was down: %v", statfsSeen)
	if detected == 0 {
		t.Errorf("daemon B's .status.json never marked the cache unreachable in the 15 s the brick was down (poll interval %v)", glPollB)
	} else if detected > glPollB+10*time.Second {
		t.Errorf("daemon B marked the cache unreachable only after %v (poll interval %v)", detected, glPollB)
	}
	if unreachErr != "" && !strings.Contains(strings.ToLower(unreachErr), "not connected") {
		t.Logf("note: the unreachable error is %q (GlusterFS answers ENOTCONN with its brick down)", unreachErr)
	}
	if len(collapsed) > 0 {
		t.Errorf("daemon B did not keep its last good view while the brick was down (%d times); first ones:\n%s", len(collapsed), strings.Join(collapsed[:min(len(collapsed), 15)], "\n"))
	}
	stA := glStatusOf(t, mpA)
	t.Logf("daemon A (hourly poll) during the outage: repos %d, unreachable %+v", stA.Repos, stA.Refresh.Unreachable)

	// The brick back: the mark clears within 30 s (GlusterFS's client
	// reconnects within ~3 s; the daemon retries with backoff).
	r = glScript(t, 2*time.Minute, "brick-start", g.volume)
	if r.Code != 0 {
		t.Fatalf("brick-start: %s", r)
	}
	restarted = true
	back := time.Now()
	t.Logf("brick back after %v down (%s)", back.Sub(killed).Round(100*time.Millisecond), strings.Join(strings.Fields(r.Stdout), " "))
	if w := glScript(t, 2*time.Minute, "wait-mounts", g.dir); w.Code != 0 {
		t.Fatalf("the GlusterFS client mounts do not come back: %s", w)
	} else {
		t.Logf("client mounts answer again: %s", strings.TrimSpace(w.Stdout))
	}
	mounttest.Poll(t, 30*time.Second, "daemon B's .status.json clears \"unreachable\" after the brick is back", func() (bool, string) {
		st := glStatusOf(t, mpB)
		return st.Refresh.Unreachable == nil && st.Repos == wantRepos, fmt.Sprintf("unreachable %+v repos %d", st.Refresh.Unreachable, st.Repos)
	})
	t.Logf("daemon B clears \"unreachable\" %v after brick-start", time.Since(back).Round(100*time.Millisecond))

	// A change made after the recovery shows: a new repo within B's poll
	// interval (+5 s), a moved ref within the ref TTL (+2 s).
	const folder = "models--acme--after"
	c := glRepo(t, cache1, folder)
	made := time.Now()
	mounttest.Poll(t, glPollB+5*time.Second, "a repo made after the recovery shows on daemon B", func() (bool, string) {
		got := glLs(t, filepath.Join(mpB, "models", "acme"))
		return glHas(got, "after"), fmt.Sprintf("models/acme %q", got)
	})
	t.Logf("a repo made after the recovery is listed by daemon B after %v", time.Since(made).Round(100*time.Millisecond))
	if got, want := glMust(t, "cat", filepath.Join(mpB, "models", "acme", "after", "by-ref", "main", "config.json")), string(glContent(folder, c, "config.json")); got != want {
		t.Errorf("the new repo's by-ref/main/config.json: %q, want %q", got, want)
	}
	c2 := glCommit(folder + "@2")
	glWriteRevision(t, cache1, folder, c2)
	glSetRef(t, cache1, folder, "main", c2)
	moved := time.Now()
	want := string(glContent(folder, c2, "config.json"))
	mounttest.Poll(t, glTTLB+2*time.Second, "a ref moved after the recovery shows through daemon B's by-ref", func() (bool, string) {
		r := glRun(t, time.Minute, "cat", filepath.Join(mpB, "models", "acme", "after", "by-ref", "main", "config.json"))
		return r.Code == 0 && r.Stdout == want, r.String()
	})
	t.Logf("a ref moved after the recovery shows through daemon B after %v", time.Since(moved).Round(100*time.Millisecond))
}
