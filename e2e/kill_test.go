package e2e_test

// TestKillMidDeletionLeavesWholeOrGone: a deletion through .trash is a
// staged transaction (cachecore/execute.go). A daemon killed with SIGKILL
// at a random moment of `mv by-commit/<R> .trash/<name>` leaves the cache
// so that the npm client @huggingface/hub's own scanCacheDir (the real
// library's scan, e2e/npm/scan.mjs) sees revision R whole or gone, with
// no warning; the next command that opens the cache (`hfcachefs scan`, or
// a new mount) finishes or rolls back what the killed run left, and leaves
// neither staging folders nor orphan blobs.
//
// Every name of this file starts with "kill"; it reuses the helpers of
// proof_helpers_test.go ("pr") and npm_test.go ("npm"). The test process
// never touches the mount: mv and stat are child processes with cwd "/";
// it reads and writes only the cache directory itself.

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	killTrials = 24
	killRepo   = "models--acme--big"
	killRepoID = "acme/big"
	// R: killTop files at the top of the snapshot (the npm client's scan
	// is not recursive: those are the files it counts), and killDirs
	// folders d<k>/ of killPerDir files f<i> each.
	killTop    = 1000
	killDirs   = 40
	killPerDir = 100
)

// killFixture is the template cache every trial copies.
type killFixture struct {
	template string // the hub cache folder
	r, s     string // commit hashes
	rFiles   int    // files of R, nested ones included
	rOnly    map[string]bool
	shared   map[string]bool // blobs of R that S links to as well
	sOnly    map[string]bool
	base     npmJSScan // the npm scan of the template
	baseR    killRev
	baseS    killRev
}

// killRev is one revision as the npm client's scan shows it.
type killRev struct {
	present bool
	files   int
	size    int64
	refs    []string
}

func (r killRev) String() string {
	if !r.present {
		return "absent"
	}
	return fmt.Sprintf("%d files, %d bytes, refs %v", r.files, r.size, r.refs)
}

func killHex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// killBuildTemplate writes the template cache: R (killTop + killDirs *
// killPerDir files, each its own blob), S (3 files: one blob of its own,
// two blobs shared with R), refs/main -> S, refs/old -> R.
func killBuildTemplate(t *testing.T) *killFixture {
	t.Helper()
	cache := filepath.Join(prResolved(t, t.TempDir()), "hub")
	repo := filepath.Join(cache, killRepo)
	f := &killFixture{template: cache, r: killHex("revision R"), s: killHex("revision S"),
		rOnly: map[string]bool{}, shared: map[string]bool{}, sOnly: map[string]bool{}}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"blobs", "refs", "snapshots/" + f.r, "snapshots/" + f.s} {
		must(os.MkdirAll(filepath.Join(repo, d), 0o755))
	}
	blob := func(content string) string {
		etag := killHex(content)
		must(os.WriteFile(filepath.Join(repo, "blobs", etag), []byte(content), 0o644))
		return etag
	}
	link := func(commit, rel, etag string) {
		p := filepath.Join(repo, "snapshots", commit, filepath.FromSlash(rel))
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		up := strings.Repeat("../", strings.Count(rel, "/")+2)
		must(os.Symlink(up+"blobs/"+etag, p))
	}
	var rEtags []string
	for i := 0; i < killTop; i++ {
		e := blob(fmt.Sprintf("top file %d of R %s\n", i, strings.Repeat("x", i%97)))
		link(f.r, fmt.Sprintf("f%04d", i), e)
		rEtags = append(rEtags, e)
	}
	for k := 0; k < killDirs; k++ {
		for i := 0; i < killPerDir; i++ {
			e := blob(fmt.Sprintf("file %d of folder %d of R %s\n", i, k, strings.Repeat("y", (k+i)%89)))
			link(f.r, fmt.Sprintf("d%02d/f%03d", k, i), e)
			rEtags = append(rEtags, e)
		}
	}
	f.rFiles = len(rEtags)
	// S shares one top-level and one nested blob of R.
	f.shared[rEtags[7]] = true
	f.shared[rEtags[killTop+5]] = true
	link(f.s, "config.json", rEtags[7])
	link(f.s, "sub/weights.bin", rEtags[killTop+5])
	own := blob("S's own file\n")
	f.sOnly[own] = true
	link(f.s, "README.md", own)
	for _, e := range rEtags {
		if !f.shared[e] {
			f.rOnly[e] = true
		}
	}
	// As huggingface_hub writes refs: the hash, no newline.
	must(os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(f.s), 0o644))
	must(os.WriteFile(filepath.Join(repo, "refs", "old"), []byte(f.r), 0o644))

	f.base = npmTheirScan(t, cache)
	if len(f.base.Warnings) != 0 {
		t.Fatalf("the npm scan of the template warns: %+v", f.base.Warnings)
	}
	var ok bool
	if ok, f.baseR = killNpmRev(f.base, f.r); !ok || !f.baseR.present {
		t.Fatalf("the npm scan of the template lacks %s or its revision R: %+v", killRepoID, f.base)
	}
	_, f.baseS = killNpmRev(f.base, f.s)
	if f.baseR.files != killTop || fmt.Sprint(f.baseR.refs) != "[old]" || !f.baseS.present || fmt.Sprint(f.baseS.refs) != "[main]" {
		t.Fatalf("the npm scan of the template: R %v, S %v (want R with %d top-level files and refs [old], S with [main])",
			f.baseR, f.baseS, killTop)
	}
	return f
}

// killNpmRev finds the repo and one of its revisions in an npm scan.
func killNpmRev(doc npmJSScan, commit string) (repoFound bool, rev killRev) {
	for _, r := range doc.Repos {
		if r.ID.Type != "model" || r.ID.Name != killRepoID {
			continue
		}
		repoFound = true
		for _, v := range r.Revisions {
			if v.CommitOid == commit {
				refs := append([]string{}, v.Refs...)
				sort.Strings(refs)
				rev = killRev{present: true, files: len(v.Files), size: v.Size, refs: refs}
			}
		}
	}
	return repoFound, rev
}

// killDaemon is one `hfcachefs mount` in the foreground, our child.
type killDaemon struct {
	mp, log string
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
}

// killStartDaemon starts the mount (args, env as prMountPlace made them)
// and waits (<= 60 s) until it says it is mounted.
func killStartDaemon(t *testing.T, mp, logPath string, args, env []string) *killDaemon {
	t.Helper()
	d := &killDaemon{mp: mp, log: logPath, done: make(chan struct{})}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(prBinary(t), args...)
	d.cmd.Dir = "/"
	d.cmd.Env = append(os.Environ(), env...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = d.cmd.Start()
	logf.Close()
	if err != nil {
		t.Fatal(err)
	}
	go func() { d.exitErr = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Signal(syscall.SIGTERM) // our child, by pid
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
				_ = d.cmd.Process.Kill()
				<-d.done
			}
		}
		killLazyUnmount(t, d.mp)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		data, _ := os.ReadFile(logPath)
		if strings.Contains(string(data), " mounted on ") {
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("hfcachefs mount exited before the mount was ready (%v):\n%s", d.exitErr, data)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("hfcachefs mount not ready after 60s:\n%s", data)
		}
	}
}

// kill9 kills the daemon (SIGKILL, by its pid) and waits for its end.
func (d *killDaemon) kill9(t *testing.T) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the daemon did not die 30 s after SIGKILL")
	}
}

// stop unmounts cleanly (`hfcachefs unmount`) and waits for the exit.
func (d *killDaemon) stop(t *testing.T) {
	t.Helper()
	if res := prRun(t, 30*time.Second, nil, prBinary(t), "unmount", d.mp); res.code != 0 {
		t.Errorf("hfcachefs unmount %s: %s", d.mp, res)
	}
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		t.Errorf("the daemon did not exit 20 s after hfcachefs unmount")
	}
}

// killLazyUnmount detaches a (dead) mount at mp, if there is one.
func killLazyUnmount(t *testing.T, mp string) {
	t.Helper()
	if !npmIsMounted(mp) {
		return
	}
	if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
		if res := prRun(t, 30*time.Second, nil, "fusermount3", "-u", "-z", mp); res.code != 0 {
			t.Errorf("lazy unmount of %s: %v; fusermount3 -uz: %s", mp, err, res)
		}
	}
	if npmIsMounted(mp) {
		t.Errorf("%s is still mounted after the lazy unmount", mp)
	}
}

// killDiskRev looks at revision commit on disk: whether its snapshot
// folder is there, how many symlinks it holds (nested ones included), and
// how many of them do not resolve to an existing blob.
func killDiskRev(t *testing.T, cache, commit string) (present bool, links, dangling int) {
	t.Helper()
	snap := filepath.Join(cache, killRepo, "snapshots", commit)
	if _, err := os.Lstat(snap); err != nil {
		return false, 0, 0
	}
	err := filepath.WalkDir(snap, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type()&os.ModeSymlink != 0 {
			links++
			if _, err := os.Stat(p); err != nil {
				dangling++
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("walking %s: %v", snap, err)
	}
	return true, links, dangling
}

// killLeftovers lists the staging folders and staged whole repos a
// deletion left in the cache.
func killLeftovers(cache string) []string {
	a, _ := filepath.Glob(filepath.Join(cache, "*", ".hfcachefs-staging"))
	b, _ := filepath.Glob(filepath.Join(cache, ".locks", ".hfcachefs-deleting-*"))
	return append(a, b...)
}

// killStagingContents lists what the repo's staging folder holds (for
// the log), "" if there is none.
func killStagingContents(cache string) string {
	sdir := filepath.Join(cache, killRepo, ".hfcachefs-staging")
	var out []string
	_ = filepath.WalkDir(sdir, func(p string, e os.DirEntry, err error) error {
		if err != nil || p == sdir {
			return nil
		}
		rel, _ := filepath.Rel(sdir, p)
		if strings.Count(rel, "/") >= 3 {
			return filepath.SkipDir
		}
		out = append(out, rel)
		return nil
	})
	return strings.Join(out, " ")
}

// killRef reads refs/<name> ("" if absent).
func killRef(cache, name string) string {
	data, err := os.ReadFile(filepath.Join(cache, killRepo, "refs", name))
	if err != nil {
		return ""
	}
	return string(data)
}

// killBlobs lists the repo's blobs folder.
func killBlobs(t *testing.T, cache string) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(cache, killRepo, "blobs"))
	if err != nil {
		t.Errorf("listing blobs/: %v", err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out
}

// killReceipts sums up the receipts of the state dir: name -> state.
func killReceipts(stateHome string) map[string]string {
	files, _ := filepath.Glob(filepath.Join(stateHome, "hfcachefs", "*", "receipts", "*.json"))
	out := map[string]string{}
	for _, f := range files {
		var r struct {
			Name  string `json:"name"`
			State string `json:"state"`
		}
		if data, err := os.ReadFile(f); err == nil && json.Unmarshal(data, &r) == nil {
			out[r.Name] = r.State
		}
	}
	return out
}

// killCheckNpm checks an npm scan of a trial's cache: no warning, S whole
// with refs/main, R whole (with refs/old or no ref) or absent. It returns
// R as the scan shows it.
func killCheckNpm(t *testing.T, f *killFixture, doc npmJSScan, where string) killRev {
	t.Helper()
	for _, w := range doc.Warnings {
		t.Errorf("%s: the npm scan warns: %s: %s", where, w.Name, w.Message)
	}
	found, r := killNpmRev(doc, f.r)
	if !found {
		t.Errorf("%s: the npm scan lacks the repo %s", where, killRepoID)
		return r
	}
	if _, s := killNpmRev(doc, f.s); s.String() != f.baseS.String() {
		t.Errorf("%s: revision S: %v, before the deletion %v", where, s, f.baseS)
	}
	if r.present {
		if r.files != f.baseR.files || r.size != f.baseR.size {
			t.Errorf("%s: revision R is neither whole nor gone: %d files / %d bytes, whole it has %d / %d",
				where, r.files, r.size, f.baseR.files, f.baseR.size)
		}
		if len(r.refs) != 0 && fmt.Sprint(r.refs) != "[old]" {
			t.Errorf("%s: revision R has refs %v (want [old] or none)", where, r.refs)
		}
	}
	return r
}

// killPlace is one trial's cache and mount place.
type killPlace struct {
	cache, mp, stateHome, log string
	args, env                 []string
}

// killOutcome is what one trial saw.
type killOutcome struct {
	wholeA   bool   // R whole right after the kill
	detached bool   // ... with refs/old staged away
	recovery string // "finished", "rolled back" or "nothing"
}

func TestKillMidDeletionLeavesWholeOrGone(t *testing.T) {
	npmNeedClient(t)
	prNeedFuse(t, prCISet(), "cp")
	bin := prBinary(t)
	start := time.Now()

	seed := time.Now().UnixNano()
	if s := os.Getenv("HFCACHEFS_KILL_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("HFCACHEFS_KILL_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (HFCACHEFS_KILL_SEED=%d reproduces the delays)", seed, seed)
	rng := rand.New(rand.NewSource(seed))

	f := killBuildTemplate(t)
	t.Logf("template: R %s has %d files (%d at its top, which the npm scan counts: %d bytes), %d blobs of its own, %d shared with S; S %s: %v (+1 nested file); built in %v",
		f.r[:8], f.rFiles, killTop, f.baseR.size, len(f.rOnly), len(f.shared), f.s[:8], f.baseS, time.Since(start).Round(time.Millisecond))

	newPlace := func() killPlace {
		cache := filepath.Join(prResolved(t, t.TempDir()), "hub")
		prMust(t, prChildTimeout, "cp", "-a", f.template, cache)
		tmp, mp, args, env := prMountPlace(t, cache)
		args = append(args, "--poll-interval", "1h")
		return killPlace{cache: cache, mp: mp, stateHome: filepath.Join(tmp, "state"), log: filepath.Join(tmp, "daemon.log"), args: args, env: env}
	}
	revPath := func(p killPlace) string {
		return filepath.Join(p.mp, "models", "acme", "big", "by-commit", f.r)
	}
	// The repo is scanned and the path looked up before the clock starts.
	warm := func(p killPlace) {
		prMust(t, prChildTimeout, "stat", "-c", "%n", revPath(p))
	}
	snapOf := func(p killPlace) string { return filepath.Join(p.cache, killRepo, "snapshots", f.r) }

	// Calibration: a full deletion of R through the mount, not killed:
	// from mv's start until the snapshot, the staging folder and R's
	// last own blob are gone.
	var full, stagedAt time.Duration
	{
		p := newPlace()
		d := killStartDaemon(t, p.mp, p.log, p.args, p.env)
		warm(p)
		staging := filepath.Join(p.cache, killRepo, ".hfcachefs-staging")
		t0 := time.Now()
		mv := prStart(t, time.Minute, nil, "mv", revPath(p), filepath.Join(p.mp, ".trash", "calibration"))
		mvDone := make(chan prResult, 1)
		go func() { mvDone <- mv.wait() }()
		var mvRes prResult
		var mvAt time.Duration
		for {
			select {
			case mvRes = <-mvDone:
				mvAt = time.Since(t0)
				mvDone = nil
			default:
			}
			_, errSnap := os.Lstat(snapOf(p))
			_, errStaging := os.Lstat(staging)
			if stagedAt == 0 && errSnap != nil {
				stagedAt = time.Since(t0)
			}
			if errSnap != nil && errStaging != nil && mvDone == nil {
				full = time.Since(t0)
				break
			}
			if time.Since(t0) > 60*time.Second {
				t.Fatalf("the calibration deletion did not end within 60 s (staging: %s)", killStagingContents(p.cache))
			}
			time.Sleep(time.Millisecond)
		}
		if mvRes.code != 0 {
			t.Fatalf("calibration mv: %s", mvRes)
		}
		left := 0
		blobs := killBlobs(t, p.cache)
		for e := range f.rOnly {
			if blobs[e] {
				left++
			}
		}
		if left != 0 {
			t.Errorf("calibration: %d blobs of R are left after its deletion", left)
		}
		d.stop(t)
		t.Logf("calibration: a full deletion of R (%d files) through the mount takes %v (the snapshot left the cache after %v, mv returned after %v)",
			f.rFiles, full.Round(time.Millisecond), stagedAt.Round(time.Millisecond), mvAt.Round(time.Millisecond))
	}
	// Half the trials draw their delay over the whole deletion, half over
	// the first part of it, around the snapshot's rename (where whole
	// turns into gone), which the whole range hits rarely: both ranges
	// start at 0 and lie inside [0, 1.5 x full).
	bound := full * 3 / 2
	narrow := min(bound, 2*stagedAt+20*time.Millisecond)
	t.Logf("kill delays are drawn from [0, %v) (trials 0,1 mod 4) and [0, %v) (trials 2,3 mod 4)",
		bound.Round(time.Millisecond), narrow.Round(time.Millisecond))

	// trial runs one deletion killed by kill (which returns when the
	// daemon is dead), then the checks (a) and (b); recovery by a new
	// mount when restart, else by `hfcachefs scan`.
	trial := func(where, name string, p killPlace, d *killDaemon, restart bool, kill func()) killOutcome {
		t.Helper()
		var out killOutcome
		mv := prStart(t, time.Minute, nil, "mv", revPath(p), filepath.Join(p.mp, ".trash", name))
		kill()
		mvRes := mv.wait()
		killLazyUnmount(t, p.mp)
		mvSaid := "mv succeeded"
		if mvRes.code != 0 {
			mvSaid = "mv failed: " + strings.TrimSpace(prClip(mvRes.stderr, 200))
		}

		// (a) right after the kill, nothing restarted.
		stagingA := killStagingContents(p.cache)
		docA := npmTheirScan(t, p.cache)
		rA := killCheckNpm(t, f, docA, where+", after the kill")
		onDisk, links, dangling := killDiskRev(t, p.cache, f.r)
		if onDisk != rA.present {
			t.Errorf("%s: R's snapshot on disk: %v, in the npm scan: %v", where, onDisk, rA.present)
		}
		if onDisk && (links != f.rFiles || dangling != 0) {
			t.Errorf("%s, after the kill: R's snapshot holds %d links (%d dangling), whole it has %d, none dangling",
				where, links, dangling, f.rFiles)
		}
		if _, sl, sd := killDiskRev(t, p.cache, f.s); sl != 3 || sd != 0 {
			t.Errorf("%s, after the kill: S's snapshot holds %d links (%d dangling), want 3, none dangling", where, sl, sd)
		}
		refOld := killRef(p.cache, "old")
		if refOld != "" && (refOld != f.r || !rA.present) {
			t.Errorf("%s, after the kill: refs/old = %q, R present: %v", where, refOld, rA.present)
		}
		out.wholeA = rA.present
		stateA := "gone"
		if rA.present {
			stateA = "whole"
			if refOld == "" {
				stateA = "whole, refs/old staged (detached)"
				out.detached = true
			}
		}

		// (b) the next start finishes or rolls back.
		var said string
		if restart {
			d2 := killStartDaemon(t, p.mp, p.log+".2", p.args, p.env)
			d2.stop(t)
			data, _ := os.ReadFile(p.log + ".2")
			var lines []string
			for _, l := range strings.Split(string(data), "\n") {
				if _, msg, ok := strings.Cut(l, "recovery: "); ok {
					lines = append(lines, strings.TrimSpace(msg))
				}
			}
			said = "remount: " + strings.Join(lines, " | ")
		} else {
			res := prRun(t, prChildTimeout, p.env, bin, "scan", "--cache-dir", p.cache, "--format", "json")
			if res.code != 0 || res.timedOut {
				t.Errorf("%s: hfcachefs scan: %s", where, res)
			}
			var doc prScanDoc
			if err := json.Unmarshal([]byte(res.stdout), &doc); err != nil {
				t.Errorf("%s: hfcachefs scan JSON: %v", where, err)
			}
			for _, w := range doc.Warnings {
				t.Errorf("%s: hfcachefs scan warns: %s", where, w)
			}
			said = "scan: " + strings.Join(strings.Fields(strings.ReplaceAll(res.stderr, "\n", " | ")), " ")
		}
		lower := strings.ToLower(said)
		switch {
		case strings.Contains(lower, "rolled back an interrupted"):
			out.recovery = "rolled back"
		case strings.Contains(lower, "finished an interrupted"):
			out.recovery = "finished"
		default:
			out.recovery = "nothing"
		}
		if l := killLeftovers(p.cache); len(l) != 0 {
			t.Errorf("%s: after the recovery, left in the cache: %v (staging: %s)", where, l, killStagingContents(p.cache))
		}
		docB := npmTheirScan(t, p.cache)
		rB := killCheckNpm(t, f, docB, where+", after the recovery")
		if rB.present != rA.present {
			t.Errorf("%s: R was %s after the kill, %v after the recovery", where, stateA, rB)
		}
		switch {
		case rA.present && stagingA != "" && out.recovery != "rolled back":
			t.Errorf("%s: R was whole with a staged transaction, the recovery said %q (want a rollback)", where, said)
		case !rA.present && stagingA != "" && out.recovery != "finished":
			t.Errorf("%s: R's snapshot was staged, the recovery said %q (want it finished)", where, said)
		}
		blobs := killBlobs(t, p.cache)
		for e := range f.shared {
			if !blobs[e] {
				t.Errorf("%s: a blob S links to is gone: %s", where, e)
			}
		}
		for e := range f.sOnly {
			if !blobs[e] {
				t.Errorf("%s: S's own blob is gone: %s", where, e)
			}
		}
		var orphans []string
		for e := range f.rOnly {
			if blobs[e] {
				orphans = append(orphans, e)
			}
		}
		onDiskB, linksB, danglingB := killDiskRev(t, p.cache, f.r)
		if rB.present {
			if !onDiskB || linksB != f.rFiles || danglingB != 0 {
				t.Errorf("%s, after the recovery: R's snapshot holds %d links (%d dangling), whole it has %d",
					where, linksB, danglingB, f.rFiles)
			}
			if got := killRef(p.cache, "old"); got != f.r {
				t.Errorf("%s, after the recovery: R is whole but refs/old = %q (a rolled-back deletion must put it back)", where, got)
			}
		} else {
			if onDiskB {
				t.Errorf("%s: R's snapshot is on disk, the npm scan does not show it", where)
			}
			if len(orphans) != 0 {
				sort.Strings(orphans)
				t.Errorf("%s: R is gone but %d of its own blobs are left (orphans), e.g. %s", where, len(orphans), orphans[0])
			}
			if got := killRef(p.cache, "old"); got != "" {
				t.Errorf("%s: R is gone but refs/old = %q", where, got)
			}
		}
		if killRef(p.cache, "main") != f.s {
			t.Errorf("%s: refs/main = %q", where, killRef(p.cache, "main"))
		}
		rcpt := killReceipts(p.stateHome)[name]
		if rcpt == "" {
			rcpt = "none"
		}
		if stagingA == "" {
			stagingA = "none"
		} else {
			// The transaction's id says nothing: show its shape.
			var shape []string
			for _, e := range strings.Fields(stagingA) {
				if _, rest, ok := strings.Cut(e, "/"); ok {
					shape = append(shape, strings.Replace(rest, f.r, "<R>", 1))
				} else if strings.HasSuffix(e, ".json") {
					shape = append(shape, "journal")
				}
			}
			stagingA = "[" + strings.Join(shape, " ") + "]"
		}
		t.Logf("%s: %s; (a) R %s, staged: %s; (b) %s; R then %s, %d own blobs left, receipt %s",
			where, mvSaid, stateA, stagingA, said, map[bool]string{true: "whole", false: "gone"}[rB.present], len(orphans), rcpt)
		return out
	}

	var whole, gone, detached int
	recoveries := map[string]int{}
	for n := 0; n < killTrials; n++ {
		if time.Since(start) > 150*time.Second {
			t.Errorf("stopping after %d trials: over 150 s", n)
			break
		}
		r := bound
		if n%4 >= 2 {
			r = narrow
		}
		delay := time.Duration(rng.Int63n(int64(r)))
		where := fmt.Sprintf("trial %d (delay %v of %v)", n, delay.Round(time.Microsecond), r.Round(time.Millisecond))
		p := newPlace()
		d := killStartDaemon(t, p.mp, p.log, p.args, p.env)
		warm(p)
		out := trial(where, fmt.Sprintf("t%d", n), p, d, n%2 == 1, func() {
			time.Sleep(delay)
			d.kill9(t)
		})
		if out.wholeA {
			whole++
		} else {
			gone++
		}
		if out.detached {
			detached++
		}
		recoveries[out.recovery]++
	}
	t.Logf("%d random trials: at (a) R whole %d (%d of them detached: refs/old staged), gone %d; at (b) finished %d, rolled back %d, nothing to do %d",
		whole+gone, whole, detached, gone, recoveries["finished"], recoveries["rolled back"], recoveries["nothing"])
	if whole == 0 || gone == 0 {
		t.Errorf("the kills did not land on both sides of the snapshot's rename (whole %d, gone %d)", whole, gone)
	}
	if recoveries["finished"]+recoveries["rolled back"] == 0 {
		t.Errorf("no trial killed the daemon in the middle of a deletion (nothing was left to finish or roll back)")
	}

	// Targeted: the window between the journal and the snapshot's rename
	// (refs staged, snapshot still in place) is a few microseconds wide; a
	// daemon whose every step waits 300 ms first
	// (HFCACHEFS_TEST_DELETE_STEP_DELAY) is killed inside it, found by
	// watching the cache: then the next start must roll back.
	for i, tc := range []struct {
		what    string
		restart bool
		ready   func(p killPlace) bool
	}{
		{"the journal written, no ref moved", false, func(p killPlace) bool {
			l, _ := filepath.Glob(filepath.Join(p.cache, killRepo, ".hfcachefs-staging", "*.json"))
			return len(l) > 0
		}},
		{"refs/old staged, the snapshot in place", true, func(p killPlace) bool { return killRef(p.cache, "old") == "" }},
		{"refs/old staged, the snapshot in place", false, func(p killPlace) bool { return killRef(p.cache, "old") == "" }},
	} {
		where := fmt.Sprintf("targeted %d (%s)", i, tc.what)
		p := newPlace()
		env := append(append([]string{}, p.env...), "HFCACHEFS_TEST_DELETE_STEP_DELAY=300ms")
		d := killStartDaemon(t, p.mp, p.log, p.args, env)
		warm(p)
		out := trial(where, fmt.Sprintf("k%d", i), p, d, tc.restart, func() {
			deadline := time.Now().Add(20 * time.Second)
			for !tc.ready(p) {
				if time.Now().After(deadline) {
					t.Errorf("%s: the state was not reached in 20 s", where)
					break
				}
				time.Sleep(200 * time.Microsecond)
			}
			d.kill9(t)
		})
		if !out.wholeA || out.recovery != "rolled back" {
			t.Errorf("%s: R whole after the kill: %v, recovery: %s (want whole, rolled back)", where, out.wholeA, out.recovery)
		}
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
