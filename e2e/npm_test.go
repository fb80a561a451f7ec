package e2e_test

// End-to-end tests against a second, independent writer of the cache: the
// npm client @huggingface/hub (pinned in e2e/npm/package.json) downloads
// real caches from the local mock Hub (testdata/conformance/mockhub), then
//
//   - TestNpmClientCacheScan: `hfcachefs scan --format json` and the npm
//     client's own scanCacheDir agree on what the npm client reports
//     faithfully (repos, per revision the top-level files and sizes, the
//     top-level refs; its snapshot and refs scans are not recursive, spec
//     §14.3), and our scan matches the mock Hub's manifest in full;
//   - TestNpmClientCacheMount: every file of every downloaded revision,
//     through by-commit/<hash>/ and by-ref/<ref>/, has the bytes the mock
//     Hub serves (cmp in child processes);
//   - TestNpmClientRefMoveWhileMounted: while mounted, the npm client
//     downloads a new commit of main; a reader polling by-ref/main/<file>
//     never sees a partial file or an error, and by-ref/main follows.
//
// The test process never touches the mount itself: every access is a child
// process (cat, cmp, find, python3) with its working directory "/".
// Every name of this file starts with "npm"; the helpers it shares with the
// other files of the package (child processes, the binary, skips, the scan
// and .status.json) are those of proof_helpers_test.go ("pr").

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hfcachefs/hfcachefs/internal/mounttest"
)

func npmDir() string { return filepath.Join(prRepoRoot(), "e2e", "npm") }

// ---------------------------------------------------------------------------
// Tools: npm ci (once)
// ---------------------------------------------------------------------------

var (
	npmCIOnce    sync.Once
	npmCIErr     error
	npmCIMissing string // why npm ci cannot run
)

// npmPinned is the exact @huggingface/hub version e2e/npm/package.json pins.
func npmPinned() (string, error) {
	data, err := os.ReadFile(filepath.Join(npmDir(), "package.json"))
	if err != nil {
		return "", err
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		return "", err
	}
	v := pkg.Dependencies["@huggingface/hub"]
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(v) {
		return "", fmt.Errorf("e2e/npm/package.json must pin @huggingface/hub to an exact version, has %q", v)
	}
	return v, nil
}

// npmInstalled reports the installed @huggingface/hub version ("" if none).
func npmInstalled() string {
	data, err := os.ReadFile(filepath.Join(npmDir(), "node_modules", "@huggingface", "hub", "package.json"))
	if err != nil {
		return ""
	}
	var pkg struct {
		Version string `json:"version"`
	}
	_ = json.Unmarshal(data, &pkg)
	return pkg.Version
}

// npmNeedClient makes sure e2e/npm/node_modules holds the pinned client:
// `npm ci` when it is missing or another version. No npm: a skip, except
// under CI (mounttest.UnderCI) where it is a failure; a failing `npm ci` is
// a failure, with its output.
func npmNeedClient(t *testing.T) {
	t.Helper()
	npmCIOnce.Do(func() {
		_, errNpm := exec.LookPath("npm")
		_, errNode := exec.LookPath("node")
		if errNpm != nil || errNode != nil {
			npmCIMissing = fmt.Sprintf("npm/node are not installed (npm: %v, node: %v)", errNpm, errNode)
			return
		}
		want, err := npmPinned()
		if err != nil {
			npmCIErr = err
			return
		}
		if got := npmInstalled(); got == want {
			return
		}
		start := time.Now()
		res := prStartIn(t, 10*time.Minute, npmDir(), nil, "npm", "ci", "--no-audit", "--no-fund").wait()
		if res.code != 0 || res.timedOut {
			npmCIErr = fmt.Errorf("npm ci in %s failed: %s", npmDir(), res)
			return
		}
		if got := npmInstalled(); got != want {
			npmCIErr = fmt.Errorf("after npm ci, node_modules holds @huggingface/hub %q, package.json pins %q", got, want)
			return
		}
		fmt.Fprintf(os.Stderr, "e2e/npm: npm ci took %v\n", time.Since(start).Round(time.Millisecond))
	})
	if npmCIMissing != "" {
		mounttest.SkipOrFail(t, "%s", npmCIMissing)
	}
	if npmCIErr != nil {
		t.Fatal(npmCIErr)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatalf("python3 (the mock Hub) is not installed: %v", err)
	}
}

// ---------------------------------------------------------------------------
// The mock Hub
// ---------------------------------------------------------------------------

type npmHubFile struct {
	Etag   string `json:"etag"`
	Size   int64  `json:"size"`
	LFS    bool   `json:"lfs"`
	BlobID string `json:"blob_id"`
}

type npmHubCommit struct {
	Sha   string                `json:"sha"`
	Files map[string]npmHubFile `json:"files"`
}

type npmHubRepo struct {
	Refs    map[string]string       `json:"refs"`
	Commits map[string]npmHubCommit `json:"commits"` // by label
}

// npmHub is one running mockhub.py (our child).
type npmHub struct {
	endpoint string
	cmd      *exec.Cmd
	done     chan struct{}
	stderr   *bytes.Buffer
	repos    map[string]npmHubRepo // "model/acme/tiny-model" -> what is served
	stopOnce sync.Once
}

// npmStartHub starts the mock Hub on a manifest and reads what it serves.
func npmStartHub(t *testing.T, manifest string) *npmHub {
	t.Helper()
	script := filepath.Join(prRepoRoot(), "testdata", "conformance", "mockhub", "mockhub.py")
	h := &npmHub{done: make(chan struct{}), stderr: &bytes.Buffer{}}
	h.cmd = exec.Command("python3", script, "--manifest", manifest)
	h.cmd.Dir = "/"
	h.cmd.Stderr = h.stderr
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start mockhub: %v", err)
	}
	t.Cleanup(func() { h.stop(t) })
	line := make(chan string, 1)
	go func() {
		var b []byte
		one := make([]byte, 1)
		for {
			n, err := out.Read(one)
			if n == 1 {
				if one[0] == '\n' {
					break
				}
				b = append(b, one[0])
			}
			if err != nil {
				break
			}
		}
		line <- string(b)
		_, _ = io.Copy(io.Discard, out)
		_ = h.cmd.Wait()
		close(h.done)
	}()
	var ready struct {
		Endpoint string `json:"endpoint"`
		Pid      int    `json:"pid"`
	}
	select {
	case l := <-line:
		if err := json.Unmarshal([]byte(l), &ready); err != nil || ready.Endpoint == "" {
			t.Fatalf("mockhub did not say it is ready (%q, %v); stderr:\n%s", l, err, h.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("mockhub not ready after 60s; stderr:\n%s", h.stderr)
	}
	if ready.Pid != h.cmd.Process.Pid {
		t.Fatalf("mockhub reports pid %d, we started %d", ready.Pid, h.cmd.Process.Pid)
	}
	h.endpoint = ready.Endpoint
	if err := json.Unmarshal(npmHTTPGet(t, h.endpoint+"/_mock/manifest"), &h.repos); err != nil {
		t.Fatalf("mockhub /_mock/manifest: %v", err)
	}
	return h
}

// stop sends SIGTERM (by pid: our child) and waits; SIGKILL after 10 s.
func (h *npmHub) stop(t *testing.T) {
	h.stopOnce.Do(func() {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			t.Logf("mockhub (pid %d) ignored SIGTERM for 10s; killing it", h.cmd.Process.Pid)
			_ = h.cmd.Process.Kill()
			<-h.done
		}
	})
}

func (h *npmHub) repo(t *testing.T, typ, id string) npmHubRepo {
	t.Helper()
	r, ok := h.repos[typ+"/"+id]
	if !ok {
		t.Fatalf("the mock Hub serves no %s %s", typ, id)
	}
	return r
}

// commit finds a commit of a repo by sha.
func (r npmHubRepo) commit(sha string) (npmHubCommit, bool) {
	for _, c := range r.Commits {
		if c.Sha == sha {
			return c, true
		}
	}
	return npmHubCommit{}, false
}

func npmHTTPGet(t *testing.T, u string) []byte {
	t.Helper()
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %v", u, resp.Status, err)
	}
	return data
}

// fetch downloads a file's bytes from the mock Hub (following the LFS
// redirect) and checks them against the manifest's size and etag.
func (h *npmHub) fetch(t *testing.T, typ, id, sha, file string) []byte {
	t.Helper()
	prefix := map[string]string{"model": "", "dataset": "datasets/", "space": "spaces/"}[typ]
	var segs []string
	for _, s := range strings.Split(file, "/") {
		segs = append(segs, url.PathEscape(s))
	}
	data := npmHTTPGet(t, h.endpoint+"/"+prefix+id+"/resolve/"+sha+"/"+strings.Join(segs, "/"))
	c, ok := h.repo(t, typ, id).commit(sha)
	if !ok {
		t.Fatalf("%s %s has no commit %s", typ, id, sha)
	}
	f := c.Files[file]
	if int64(len(data)) != f.Size || prEtag(data, f.LFS) != f.Etag {
		t.Fatalf("the mock Hub served %d bytes for %s %s@%s:%s, its manifest says %d bytes, etag %s", len(data), typ, id, sha, file, f.Size, f.Etag)
	}
	return data
}

// ---------------------------------------------------------------------------
// The npm client
// ---------------------------------------------------------------------------

type npmItem struct {
	Type     string `json:"type"`
	Name     string `json:"name"`
	Revision string `json:"revision"`
}

// npmDownload runs e2e/npm/download.mjs (snapshotDownload of each item).
func npmDownload(t *testing.T, endpoint, cache string, delayMs int, items []npmItem) {
	t.Helper()
	spec, _ := json.Marshal(map[string]any{"hubUrl": endpoint, "cacheDir": cache, "delayMs": delayMs, "items": items})
	res := prStartIn(t, 10*time.Minute, npmDir(), nil, "node", filepath.Join(npmDir(), "download.mjs"), string(spec)).wait()
	if res.code != 0 || res.timedOut {
		t.Fatalf("npm client snapshotDownload %s: %s", spec, res)
	}
}

type npmJSScan struct {
	Size  int64 `json:"size"`
	Repos []struct {
		ID struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"id"`
		Path       string `json:"path"`
		FilesCount int    `json:"filesCount"`
		Revisions  []struct {
			CommitOid string   `json:"commitOid"`
			Path      string   `json:"path"`
			Size      int64    `json:"size"`
			Refs      []string `json:"refs"`
			Files     []struct {
				Path string `json:"path"`
				Blob struct {
					Path string `json:"path"`
					Size int64  `json:"size"`
				} `json:"blob"`
			} `json:"files"`
		} `json:"revisions"`
	} `json:"repos"`
	Warnings []struct {
		Name    string `json:"name"`
		Message string `json:"message"`
	} `json:"warnings"`
}

// npmTheirScan runs e2e/npm/scan.mjs: the npm client's scanCacheDir.
func npmTheirScan(t *testing.T, cache string) npmJSScan {
	t.Helper()
	res := prStartIn(t, prChildTimeout, npmDir(), nil, "node", filepath.Join(npmDir(), "scan.mjs"), cache).wait()
	if res.code != 0 || res.timedOut {
		t.Fatalf("npm client scanCacheDir: %s", res)
	}
	var doc npmJSScan
	if err := json.Unmarshal([]byte(res.stdout), &doc); err != nil {
		t.Fatalf("scan.mjs output: %v\n%s", err, prClip(res.stdout, 2000))
	}
	return doc
}

// ---------------------------------------------------------------------------
// hfcachefs
// ---------------------------------------------------------------------------

// npmMount is one `hfcachefs mount --daemon` (mounttest.Daemon), stopped
// at cleanup: `hfcachefs unmount` (the daemon must then exit), a lazy
// unmount if still mounted, SIGTERM/SIGKILL to the daemon (by its pid) if
// it did not exit.
type npmMount struct {
	*mounttest.Daemon
	mp string
}

func npmMountCache(t *testing.T, cache string) *npmMount {
	t.Helper()
	prNeedFuse(t, mounttest.UnderCI())
	d := prMountDaemon(t, cache, false)
	return &npmMount{Daemon: d, mp: d.MP}
}

// npmIsMounted reports whether mp is in /proc/self/mountinfo.
func npmIsMounted(mp string) bool {
	ok, _ := mounttest.Mounted(mp)
	return ok
}

// view is MOUNT/<type>s/<id>.
func (m *npmMount) view(typ, id string) string {
	return filepath.Join(m.mp, typ+"s", filepath.FromSlash(id))
}

// ---------------------------------------------------------------------------
// The cache the npm client downloads
// ---------------------------------------------------------------------------

// npmDownloaded is what a set of downloads put in the cache, per repo
// ("type/id"): the commits and the refs (name -> sha).
type npmDownloaded struct {
	commits map[string]map[string]bool
	refs    map[string]map[string]string
}

// npmBaseItems: 4 repos (2 models, a dataset, a space); acme/tiny-model at
// main, a tag, a branch with a slash, a PR ref and a commit hash (detached);
// the dataset at 2 revisions.
func npmBaseItems(t *testing.T, h *npmHub) []npmItem {
	c0 := h.repo(t, "model", "acme/tiny-model").Commits["c0"].Sha
	if c0 == "" {
		t.Fatal("the manifest has no commit c0 in acme/tiny-model")
	}
	return []npmItem{
		{"model", "acme/tiny-model", "main"},
		{"model", "acme/tiny-model", "v1.0"},
		{"model", "acme/tiny-model", "feature/x"},
		{"model", "acme/tiny-model", "refs/pr/1"},
		{"model", "acme/tiny-model", c0},
		{"model", "gpt2", "main"},
		{"dataset", "acme/tiny-dataset", "main"},
		{"dataset", "acme/tiny-dataset", "v1"},
		{"space", "acme/tiny-space", "main"},
	}
}

func npmExpect(t *testing.T, h *npmHub, items []npmItem) npmDownloaded {
	t.Helper()
	d := npmDownloaded{commits: map[string]map[string]bool{}, refs: map[string]map[string]string{}}
	for _, it := range items {
		key := it.Type + "/" + it.Name
		r := h.repo(t, it.Type, it.Name)
		sha, isRef := r.Refs[it.Revision]
		if !isRef {
			if _, ok := r.commit(it.Revision); !ok {
				t.Fatalf("%s has no revision %s", key, it.Revision)
			}
			sha = it.Revision
		}
		if d.commits[key] == nil {
			d.commits[key], d.refs[key] = map[string]bool{}, map[string]string{}
		}
		d.commits[key][sha] = true
		if isRef {
			d.refs[key][it.Revision] = sha
		}
	}
	return d
}

// npmBuildCache: a fresh cache written by the npm client from the mock Hub
// on e2e/testdata/npm-hub-v1.json. It returns the (resolved) cache dir.
func npmBuildCache(t *testing.T) (string, *npmHub, npmDownloaded) {
	t.Helper()
	npmNeedClient(t)
	h := npmStartHub(t, filepath.Join(prRepoRoot(), "e2e", "testdata", "npm-hub-v1.json"))
	cache := filepath.Join(prResolved(t, t.TempDir()), "hub")
	items := npmBaseItems(t, h)
	npmDownload(t, h.endpoint, cache, 0, items)
	return cache, h, npmExpect(t, h, items)
}

// ---------------------------------------------------------------------------
// Test A
// ---------------------------------------------------------------------------

// TestNpmClientCacheScan: our scan and the npm client's scanCacheDir agree
// on a cache the npm client wrote, on every field the npm client reports
// faithfully; our scan also matches the mock Hub's manifest in full.
func TestNpmClientCacheScan(t *testing.T) {
	cache, h, want := npmBuildCache(t)
	ours := prScan(t, cache, prChildTimeout)
	theirs := npmTheirScan(t, cache)

	if len(ours.Warnings) != 0 {
		t.Errorf("hfcachefs scan has warnings on a cache the npm client wrote: %q", ours.Warnings)
	}
	if len(ours.IncompleteFiles) != 0 {
		t.Errorf("hfcachefs scan reports incomplete files: %s", ours.IncompleteFiles)
	}
	if len(ours.Notices) != 0 {
		t.Logf("hfcachefs scan notices (not compared): %s", ours.Notices)
	}
	if len(theirs.Warnings) != 0 {
		t.Errorf("the npm client's own scanCacheDir has warnings on its own cache: %+v", theirs.Warnings)
	}
	if ours.CacheDir != cache {
		t.Errorf("cache_dir = %q, want %q", ours.CacheDir, cache)
	}

	// The set of repos (type + id).
	ourRepos, theirRepos, wantRepos := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, r := range ours.Repos {
		ourRepos[r.RepoType+"/"+r.RepoID] = true
	}
	for _, r := range theirs.Repos {
		theirRepos[r.ID.Type+"/"+r.ID.Name] = true
	}
	for k := range want.commits {
		wantRepos[k] = true
	}
	if fmt.Sprint(npmSortedKeys(ourRepos)) != fmt.Sprint(npmSortedKeys(wantRepos)) ||
		fmt.Sprint(npmSortedKeys(theirRepos)) != fmt.Sprint(npmSortedKeys(wantRepos)) {
		t.Fatalf("repos: hfcachefs %v, npm scanCacheDir %v, downloaded %v", npmSortedKeys(ourRepos), npmSortedKeys(theirRepos), npmSortedKeys(wantRepos))
	}

	nestedFiles, nestedRefs := 0, 0
	for _, tr := range theirs.Repos {
		key := tr.ID.Type + "/" + tr.ID.Name
		hubRepo := h.repo(t, tr.ID.Type, tr.ID.Name)
		var or *prScanRepo
		for i := range ours.Repos {
			if ours.Repos[i].RepoType+"/"+ours.Repos[i].RepoID == key {
				or = &ours.Repos[i]
			}
		}
		if or.RepoPath != tr.Path {
			t.Errorf("%s: repo_path %q, npm path %q", key, or.RepoPath, tr.Path)
		}
		// All refs (nested ones too) against what was downloaded; the npm
		// scan does not recurse into refs/, so only top-level refs are compared with it below.
		gotRefs := map[string]string{}
		for name, sha := range or.Refs {
			gotRefs[name] = sha
		}
		if fmt.Sprint(gotRefs) != fmt.Sprint(want.refs[key]) {
			t.Errorf("%s: hfcachefs refs %v, downloaded %v", key, gotRefs, want.refs[key])
		}

		ourRevs := map[string]int{}
		for i, rv := range or.Revisions {
			ourRevs[rv.CommitHash] = i
		}
		theirRevs := map[string]bool{}
		for _, trv := range tr.Revisions {
			theirRevs[trv.CommitOid] = true
		}
		if fmt.Sprint(npmSortedKeys(theirRevs)) != fmt.Sprint(npmSortedKeys(want.commits[key])) || len(ourRevs) != len(want.commits[key]) {
			t.Errorf("%s: revisions: npm %v, hfcachefs %v, downloaded %v", key, npmSortedKeys(theirRevs), ourRevs, npmSortedKeys(want.commits[key]))
			continue
		}
		for _, trv := range tr.Revisions {
			idx, ok := ourRevs[trv.CommitOid]
			if !ok {
				t.Errorf("%s: revision %s is in the npm scan, not in ours", key, trv.CommitOid)
				continue
			}
			orv := or.Revisions[idx]
			where := key + "@" + trv.CommitOid[:8]
			if orv.SnapshotPath != trv.Path {
				t.Errorf("%s: snapshot_path %q, npm path %q", where, orv.SnapshotPath, trv.Path)
			}
			// Refs: ours restricted to the top-level ones equals npm's.
			var ourTop, theirTop []string
			for _, r := range orv.Refs {
				if strings.Contains(r, "/") {
					nestedRefs++
				} else {
					ourTop = append(ourTop, r)
				}
			}
			theirTop = append(theirTop, trv.Refs...)
			sort.Strings(ourTop)
			sort.Strings(theirTop)
			if fmt.Sprint(ourTop) != fmt.Sprint(theirTop) {
				t.Errorf("%s: top-level refs: hfcachefs %q, npm %q", where, ourTop, theirTop)
			}
			// Top-level files: name, size, blob path (both resolved).
			type npmF struct {
				size int64
				blob string
			}
			ourTopFiles, theirFiles := map[string]npmF{}, map[string]npmF{}
			for _, f := range orv.Files {
				rel, err := filepath.Rel(orv.SnapshotPath, f.FilePath)
				if err != nil || strings.HasPrefix(rel, "..") {
					t.Errorf("%s: file_path %q is not inside %q", where, f.FilePath, orv.SnapshotPath)
					continue
				}
				if strings.Contains(rel, "/") {
					nestedFiles++
					continue
				}
				ourTopFiles[rel] = npmF{f.SizeOnDisk, f.BlobPath}
			}
			for _, f := range trv.Files {
				if filepath.Dir(f.Path) != trv.Path {
					t.Errorf("%s: the npm scan has a file %q outside the top level of %q", where, f.Path, trv.Path)
				}
				theirFiles[filepath.Base(f.Path)] = npmF{f.Blob.Size, f.Blob.Path}
			}
			if fmt.Sprint(ourTopFiles) != fmt.Sprint(theirFiles) {
				t.Errorf("%s: top-level files (name {size blob}):\n  hfcachefs %v\n  npm       %v", where, ourTopFiles, theirFiles)
			}

			// Beyond what the npm scan sees: every file, nested ones
			// included, is the manifest's (size, blob named by its etag).
			hc, _ := hubRepo.commit(trv.CommitOid)
			got := map[string]string{}
			for _, f := range orv.Files {
				rel, _ := filepath.Rel(orv.SnapshotPath, f.FilePath)
				got[filepath.ToSlash(rel)] = fmt.Sprintf("%d %s", f.SizeOnDisk, filepath.Base(f.BlobPath))
				if f.FileName != path.Base(filepath.ToSlash(rel)) {
					t.Errorf("%s: file_name %q for %q", where, f.FileName, rel)
				}
				if filepath.Dir(f.BlobPath) != filepath.Join(or.RepoPath, "blobs") {
					t.Errorf("%s: blob_path %q is not in the repo's blobs/", where, f.BlobPath)
				}
			}
			exp := map[string]string{}
			for p, f := range hc.Files {
				exp[p] = fmt.Sprintf("%d %s", f.Size, f.Etag)
			}
			if fmt.Sprint(got) != fmt.Sprint(exp) {
				t.Errorf("%s: files (path: size blob):\n  hfcachefs %v\n  mock Hub  %v", where, got, exp)
			}
			if orv.NbFiles != len(exp) {
				t.Errorf("%s: nb_files %d, the commit has %d files", where, orv.NbFiles, len(exp))
			}
		}
	}
	t.Logf("compared %d repos; not comparable (the npm scan is not recursive, spec §14.3): %d nested files, %d nested refs (refs/pr/1, feature/x) that only hfcachefs reports",
		len(theirs.Repos), nestedFiles, nestedRefs)
}

// ---------------------------------------------------------------------------
// Test B
// ---------------------------------------------------------------------------

// npmCmpAll compares files of the mount with the expected bytes, one `cmp`
// child per file. pairs: mount path -> expected file.
func npmCmpAll(t *testing.T, pairs map[string]string) {
	t.Helper()
	var keys []string
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bad := 0
	for _, mp := range keys {
		if res := prRun(t, prChildTimeout, nil, "cmp", "--", pairs[mp], mp); res.code != 0 || res.timedOut {
			bad++
			if bad <= 20 {
				t.Errorf("cmp %s: %s", mp, res)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d files differ from the mock Hub's bytes", bad, len(keys))
	}
}

// npmListFiles lists the files under a mount folder (find, in a child).
func npmListFiles(t *testing.T, dir string) []string {
	t.Helper()
	out := prMust(t, prChildTimeout, "find", dir, "-mindepth", "1", "-type", "f", "-printf", "%P\\n")
	l := strings.Split(strings.TrimSpace(out), "\n")
	if len(l) == 1 && l[0] == "" {
		l = nil
	}
	sort.Strings(l)
	return l
}

// TestNpmClientCacheMount: every file of every revision the npm client
// downloaded reads back, through by-commit/<hash>/ and by-ref/<ref>/, as
// the bytes the mock Hub serves.
func TestNpmClientCacheMount(t *testing.T) {
	cache, h, want := npmBuildCache(t)
	m := npmMountCache(t, cache)
	expDir := t.TempDir()
	pairs := map[string]string{}
	n := 0
	expected := func(typ, id, sha, file string) string {
		n++
		p := filepath.Join(expDir, strconv.Itoa(n))
		if err := os.WriteFile(p, h.fetch(t, typ, id, sha, file), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, key := range npmSortedKeys(want.commits) {
		typ, id, _ := strings.Cut(key, "/")
		r := h.repo(t, typ, id)
		view := m.view(typ, id)
		var commits []string
		for sha := range want.commits[key] {
			commits = append(commits, sha)
		}
		sort.Strings(commits)
		if got := npmListDir(t, filepath.Join(view, "by-commit")); fmt.Sprint(got) != fmt.Sprint(commits) {
			t.Errorf("%s: by-commit/ lists %v, downloaded %v", key, got, commits)
		}
		exp := map[string]string{} // sha/file -> expected bytes file
		for _, sha := range commits {
			c, _ := r.commit(sha)
			var files []string
			for f := range c.Files {
				files = append(files, f)
				e := expected(typ, id, sha, f)
				exp[sha+"/"+f] = e
				pairs[filepath.Join(view, "by-commit", sha, filepath.FromSlash(f))] = e
			}
			sort.Strings(files)
			if got := npmListFiles(t, filepath.Join(view, "by-commit", sha)); fmt.Sprint(got) != fmt.Sprint(files) {
				t.Errorf("%s: by-commit/%s holds %q, the commit has %q", key, sha, got, files)
			}
		}
		for ref, sha := range want.refs[key] {
			c, _ := r.commit(sha)
			var files []string
			for f := range c.Files {
				files = append(files, f)
				pairs[filepath.Join(view, "by-ref", filepath.FromSlash(ref), filepath.FromSlash(f))] = exp[sha+"/"+f]
			}
			sort.Strings(files)
			if got := npmListFiles(t, filepath.Join(view, "by-ref", filepath.FromSlash(ref))); fmt.Sprint(got) != fmt.Sprint(files) {
				t.Errorf("%s: by-ref/%s holds %q, %s has %q", key, ref, got, sha, files)
			}
		}
		if _, ok := want.refs[key]["main"]; !ok {
			t.Errorf("%s: main was not downloaded (test setup)", key)
		}
	}
	npmCmpAll(t, pairs)
	st, raw := prStatus(t, m.mp)
	if len(st.Warnings) != 0 {
		t.Errorf(".status.json warnings: %q", st.Warnings)
	}
	if len(st.KeptLastGoodView) != 0 {
		t.Errorf(".status.json kept_last_good_view on a settled cache: %v", st.KeptLastGoodView)
	}
	if t.Failed() {
		t.Logf(".status.json: %s", prClip(raw, 4000))
	}
	t.Logf("compared %d files of the mount with the mock Hub's bytes", len(pairs))
}

func npmSortedKeys[V any](m map[string]V) []string {
	var l []string
	for k := range m {
		l = append(l, k)
	}
	sort.Strings(l)
	return l
}

func npmListDir(t *testing.T, dir string) []string {
	t.Helper()
	out := prMust(t, prChildTimeout, "ls", "-1A", dir)
	l := strings.Fields(out)
	sort.Strings(l)
	return l
}

// ---------------------------------------------------------------------------
// Test C
// ---------------------------------------------------------------------------

// npmReaderPy opens and reads each path every 20 ms until the stop file
// exists; it records the sha256 of every content read and every error.
const npmReaderPy = `import errno, hashlib, json, os, sys, time
paths = json.loads(sys.argv[1]); stop = sys.argv[2]; ready = sys.argv[3]
seen = {p: {} for p in paths}
errors = {p: {} for p in paths}
rounds = 0
while True:
    for p in paths:
        try:
            with open(p, "rb") as f:
                data = f.read()
            h = hashlib.sha256(data).hexdigest()
            e = seen[p].setdefault(h, {"count": 0, "size": len(data), "first": time.time(), "last": 0})
            e["count"] += 1
            e["last"] = time.time()
        except OSError as ex:
            name = errno.errorcode.get(ex.errno, str(ex.errno))
            e = errors[p].setdefault(name, {"count": 0, "first": time.time(), "last": 0, "message": str(ex)})
            e["count"] += 1
            e["last"] = time.time()
    rounds += 1
    if rounds == 1:
        open(ready, "w").close()
    if os.path.exists(stop):
        break
    time.sleep(0.02)
print(json.dumps({"rounds": rounds, "seen": seen, "errors": errors}))
`

type npmReaderOut struct {
	Rounds int `json:"rounds"`
	Seen   map[string]map[string]struct {
		Count int     `json:"count"`
		Size  int64   `json:"size"`
		First float64 `json:"first"`
		Last  float64 `json:"last"`
	} `json:"seen"`
	Errors map[string]map[string]struct {
		Count   int     `json:"count"`
		First   float64 `json:"first"`
		Last    float64 `json:"last"`
		Message string  `json:"message"`
	} `json:"errors"`
}

// TestNpmClientRefMoveWhileMounted: a mounted cache, the npm client moves
// main to a new commit (mock Hub restarted on a second manifest), a reader
// polls by-ref/main/<file> all along: it never sees a partial file nor an
// error, and by-ref/main follows the ref.
func TestNpmClientRefMoveWhileMounted(t *testing.T) {
	npmNeedClient(t)
	prNeedFuse(t, mounttest.UnderCI())
	const typ, id = "model", "acme/tiny-model"
	watched := []string{"config.json", "model.safetensors"}

	h1 := npmStartHub(t, filepath.Join(prRepoRoot(), "e2e", "testdata", "npm-hub-v1.json"))
	cache := filepath.Join(prResolved(t, t.TempDir()), "hub")
	npmDownload(t, h1.endpoint, cache, 0, []npmItem{{typ, id, "main"}, {"model", "gpt2", "main"}})
	oldSha := h1.repo(t, typ, id).Refs["main"]
	h1.stop(t)

	m := npmMountCache(t, cache)
	view := m.view(typ, id)
	st0, _ := prStatus(t, m.mp)

	h2 := npmStartHub(t, filepath.Join(prRepoRoot(), "e2e", "testdata", "npm-hub-v2.json"))
	newSha := h2.repo(t, typ, id).Refs["main"]
	if newSha == oldSha {
		t.Fatalf("npm-hub-v2.json does not move main (%s)", oldSha)
	}
	if _, ok := h2.repo(t, typ, id).commit(oldSha); !ok {
		t.Fatalf("npm-hub-v2.json lost the old main %s", oldSha)
	}
	// The complete versions of each watched file.
	versions := map[string]map[string]string{} // file -> sha256 -> which
	expNew := map[string][]byte{}
	for _, f := range watched {
		versions[f] = map[string]string{}
		old := h2.fetch(t, typ, id, oldSha, f)
		nw := h2.fetch(t, typ, id, newSha, f)
		if bytes.Equal(old, nw) {
			t.Fatalf("%s is the same in %s and %s: pick a file that changes", f, oldSha, newSha)
		}
		versions[f][prSha256(old)] = "old main " + oldSha[:8]
		versions[f][prSha256(nw)] = "new main " + newSha[:8]
		expNew[f] = nw
	}
	// by-ref/main shows the old main before the download.
	for _, f := range watched {
		got := prMust(t, prChildTimeout, "sha256sum", filepath.Join(view, "by-ref", "main", f))
		if which := versions[f][strings.Fields(got + " ")[0]]; !strings.HasPrefix(which, "old") {
			t.Fatalf("before the download, by-ref/main/%s: %s (%q)", f, got, which)
		}
	}

	// The reader, in a child with cwd "/".
	tmp := t.TempDir()
	script := prWriteScript(t, "reader.py", npmReaderPy)
	stop, ready := filepath.Join(tmp, "stop"), filepath.Join(tmp, "ready")
	var paths []string
	for _, f := range watched {
		paths = append(paths, filepath.Join(view, "by-ref", "main", f))
	}
	pathsJSON, _ := json.Marshal(paths)
	reader := prStart(t, 10*time.Minute, nil, "python3", script, string(pathsJSON), stop, ready)
	readerDone := false
	t.Cleanup(func() {
		if !readerDone {
			_ = os.WriteFile(stop, nil, 0o644)
			reader.wait()
		}
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if i > 600 {
			_ = os.WriteFile(stop, nil, 0o644)
			t.Fatalf("the reader did not start: %s", reader.wait())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The download of the new main, with a delay per request (the client's
	// fetch parameter) so that it spans several poll intervals of the mount.
	dlStart := time.Now()
	npmDownload(t, h2.endpoint, cache, 150, []npmItem{{typ, id, "main"}})
	dlEnd := time.Now()

	// by-ref/main follows (poll up to 15 s, a child per look).
	followed := false
	deadline := time.Now().Add(15 * time.Second)
	for !followed && time.Now().Before(deadline) {
		res := prRun(t, prChildTimeout, nil, "sha256sum", filepath.Join(view, "by-ref", "main", watched[0]))
		followed = res.code == 0 && strings.HasPrefix(res.stdout, prSha256(expNew[watched[0]]))
		if !followed {
			time.Sleep(200 * time.Millisecond)
		}
	}
	followedAt := time.Now()
	time.Sleep(1500 * time.Millisecond) // a few more reads of the new version
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := reader.wait()
	readerDone = true
	if res.code != 0 || res.timedOut {
		t.Fatalf("the reader: %s", res)
	}
	var out npmReaderOut
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatalf("the reader's output: %v\n%s", err, prClip(res.stdout, 2000))
	}
	t.Logf("download %v; by-ref/main followed %v after it; the reader did %d rounds",
		dlEnd.Sub(dlStart).Round(time.Millisecond), followedAt.Sub(dlEnd).Round(time.Millisecond), out.Rounds)

	rel := func(ts float64) string {
		at := time.Unix(0, int64(ts*1e9))
		return fmt.Sprintf("%+.2fs from the download's start", at.Sub(dlStart).Seconds())
	}
	for i, f := range watched {
		p := paths[i]
		for sum, e := range out.Seen[p] {
			which, ok := versions[f][sum]
			if !ok {
				t.Errorf("by-ref/main/%s: the reader saw a content that is no complete version (%d bytes, sha256 %s, %d times, first %s)",
					f, e.Size, sum, e.Count, rel(e.First))
				continue
			}
			t.Logf("by-ref/main/%s: %s read %d times (%s .. %s)", f, which, e.Count, rel(e.First), rel(e.Last))
		}
		for name, e := range out.Errors[p] {
			t.Errorf("by-ref/main/%s: the reader got %s %d times (first %s, last %s): %s",
				f, name, e.Count, rel(e.First), rel(e.Last), e.Message)
		}
	}
	if !followed {
		t.Fatalf("by-ref/main/%s did not show the new main %s within 15 s of the download", watched[0], newSha)
	}

	// After the move: the whole new main through by-ref/main, the old one
	// still through by-commit, and a newer generation.
	expDir := t.TempDir()
	pairs := map[string]string{}
	n := 0
	for _, sha := range []string{newSha, oldSha} {
		c, _ := h2.repo(t, typ, id).commit(sha)
		for f := range c.Files {
			n++
			e := filepath.Join(expDir, strconv.Itoa(n))
			if err := os.WriteFile(e, h2.fetch(t, typ, id, sha, f), 0o644); err != nil {
				t.Fatal(err)
			}
			pairs[filepath.Join(view, "by-commit", sha, filepath.FromSlash(f))] = e
			if sha == newSha {
				pairs[filepath.Join(view, "by-ref", "main", filepath.FromSlash(f))] = e
			}
		}
	}
	npmCmpAll(t, pairs)
	st1, raw := prStatus(t, m.mp)
	if st1.Generation <= st0.Generation {
		t.Errorf(".status.json generation %d after the ref moved, %d before", st1.Generation, st0.Generation)
	}
	if len(st1.KeptLastGoodView) != 0 {
		t.Errorf(".status.json kept_last_good_view after the download: %v\n%s", st1.KeptLastGoodView, prClip(raw, 3000))
	}
	ours := prScan(t, cache, prChildTimeout)
	if len(ours.Warnings) != 0 {
		t.Errorf("hfcachefs scan warnings after the download: %q", ours.Warnings)
	}
}
