package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

// lsRun runs the CLI in-process with COLUMNS=200 unless vars says otherwise.
func lsRun(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	env := map[string]string{"COLUMNS": "200"}
	for k, v := range vars {
		env[k] = v
	}
	var out, errb bytes.Buffer
	e := &cliEnv{
		stdout: &out, stderr: &errb, stdin: strings.NewReader(""),
		lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	}
	code = run(e, args)
	return out.String(), errb.String(), code
}

// lsFixClock pins cachecore.Now for the test.
func lsFixClock(t *testing.T, now float64) {
	t.Helper()
	old := cachecore.Now
	cachecore.Now = func() float64 { return now }
	t.Cleanup(func() { cachecore.Now = old })
}

const lsDay = 86400.0

// lsAgedBasic is the basic conformance cache with every blob of a repo
// accessed and modified the given days before the pinned clock:
// dataset 2 days, tiny-model 10, gpt2 40, tiny-space 400.
func lsAgedBasic(t *testing.T) (dir string, info *cachecore.CacheInfo) {
	t.Helper()
	dir = testcache.Basic(t)
	base := float64(time.Now().Unix())
	lsFixClock(t, base)
	for folder, days := range map[string]float64{
		"datasets--acme--tiny-dataset": 2,
		"models--acme--tiny-model":     10,
		"models--gpt2":                 40,
		"spaces--acme--tiny-space":     400,
	} {
		lsSetBlobTimes(t, filepath.Join(dir, folder), base-days*lsDay)
	}
	info, err := cachecore.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, info
}

func lsSetBlobTimes(t *testing.T, repoDir string, ts float64) {
	t.Helper()
	blobs, err := filepath.Glob(filepath.Join(repoDir, "blobs", "*"))
	if err != nil || len(blobs) == 0 {
		t.Fatalf("no blobs in %s: %v", repoDir, err)
	}
	tm := time.Unix(int64(ts), 0)
	for _, b := range blobs {
		if err := os.Chtimes(b, tm, tm); err != nil {
			t.Fatal(err)
		}
	}
}

type lsTestRev struct {
	hash    string
	refs    []string
	content string
}

// lsMakeRepo writes a small well-formed repo folder into a cache.
func lsMakeRepo(t *testing.T, cacheDir, folder string, revs ...lsTestRev) {
	t.Helper()
	repo := filepath.Join(cacheDir, folder)
	for _, d := range []string{"blobs", "refs", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range revs {
		sum := sha256.Sum256([]byte(r.content))
		blob := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(repo, "blobs", blob), []byte(r.content), 0o644); err != nil {
			t.Fatal(err)
		}
		snap := filepath.Join(repo, "snapshots", r.hash)
		if err := os.MkdirAll(snap, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "blobs", blob), filepath.Join(snap, "file.txt")); err != nil {
			t.Fatal(err)
		}
		for _, ref := range r.refs {
			p := filepath.Join(repo, "refs", filepath.FromSlash(ref))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(r.hash), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func lsLines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

func lsRepoRevCount(info *cachecore.CacheInfo) (revs int, size int64) {
	for _, r := range info.Repos {
		revs += len(r.Revisions)
		size += r.SizeOnDisk
	}
	return
}

func lsJoinRefs(refs []string) string { return strings.Join(refs, ", ") }

func TestLsTableBasic(t *testing.T) {
	dir, info := lsAgedBasic(t)
	stdout, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lines := lsLines(stdout)
	// The literal layout: one space between columns, SIZE right-aligned and
	// as wide as its widest cell, every column padded, a dash rule.
	if want := "ID                         SIZE LAST_ACCESSED LAST_MODIFIED REFS                            "; lines[0] != want {
		t.Errorf("header\n got %q\nwant %q", lines[0], want)
	}
	if want := "------------------------- ----- ------------- ------------- --------------------------------"; lines[1] != want {
		t.Errorf("rule\n got %q\nwant %q", lines[1], want)
	}
	ages := []string{"2 days ago", "1 week ago", "6 weeks ago", "1 year ago"}
	if len(info.Repos) != 4 {
		t.Fatalf("scan has %d repos", len(info.Repos))
	}
	sizeW := 4
	for _, r := range info.Repos {
		sizeW = max(sizeW, len(r.SizeOnDiskStr()))
	}
	for i, r := range info.Repos { // scan order is repo path order = cache_id order here
		want := fmt.Sprintf("%-25s %*s %-13s %-13s %-32s", r.CacheID(), sizeW, r.SizeOnDiskStr(), ages[i], ages[i], lsJoinRefs(r.RefNames()))
		if lines[2+i] != want {
			t.Errorf("row %d\n got %q\nwant %q", i, lines[2+i], want)
		}
	}
	if !strings.HasPrefix(lines[3], "model/acme/tiny-model     ") || !strings.HasSuffix(lines[3], " 1 week ago    1 week ago    feature/x, main, refs/pr/1, v1.0") {
		t.Errorf("tiny-model row %q", lines[3])
	}
	revs, size := lsRepoRevCount(info)
	if lines[6] != "" {
		t.Errorf("want a blank line before the summary, got %q", lines[6])
	}
	if want := fmt.Sprintf("Found 4 repo(s) for a total of %d revision(s) and %s on disk.", revs, cachecore.FormatSize(size)); lines[7] != want {
		t.Errorf("summary\n got %q\nwant %q", lines[7], want)
	}
	if len(lines) != 8 {
		t.Errorf("want 8 lines, got %d:\n%s", len(lines), stdout)
	}

	// The alias and --no-revisions after --revisions give the same table.
	alias, _, code := lsRun(t, nil, "list", "--cache-dir", dir, "--revisions", "--no-revisions")
	if code != 0 || alias != stdout {
		t.Errorf("list --revisions --no-revisions differs (exit %d):\n%s", code, alias)
	}
}

func TestLsRevisionsTable(t *testing.T) {
	dir, info := lsAgedBasic(t)
	stdout, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir, "--revisions")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lines := lsLines(stdout)
	if want := "ID                        REVISION                                  SIZE LAST_MODIFIED REFS           "; lines[0] != want {
		t.Errorf("header\n got %q\nwant %q", lines[0], want)
	}
	type rev struct {
		id  string
		r   *cachecore.RevisionInfo
		age string
	}
	ages := []string{"2 days ago", "1 week ago", "6 weeks ago", "1 year ago"}
	var revs []rev
	var total int64
	sizeW := 4
	for i, repo := range info.Repos {
		for _, r := range repo.Revisions {
			revs = append(revs, rev{repo.CacheID(), r, ages[i]})
			total += r.SizeOnDisk
			sizeW = max(sizeW, len(r.SizeOnDiskStr()))
		}
	}
	if len(lines) != 2+len(revs)+2 {
		t.Fatalf("got %d lines:\n%s", len(lines), stdout)
	}
	for i, r := range revs {
		want := fmt.Sprintf("%-25s %s %*s %-13s %-15s", r.id, r.r.CommitHash, sizeW, r.r.SizeOnDiskStr(), r.age, lsJoinRefs(r.r.Refs))
		if lines[2+i] != want {
			t.Errorf("row %d\n got %q\nwant %q", i, lines[2+i], want)
		}
	}
	// Revision mode: N is the rows, the size the sum of revision sizes.
	if want := fmt.Sprintf("Found 4 repo(s) for a total of %d revision(s) and %s on disk.", len(revs), cachecore.FormatSize(total)); lines[len(lines)-1] != want {
		t.Errorf("summary\n got %q\nwant %q", lines[len(lines)-1], want)
	}
}

// lsJSONKeys returns the keys of each object of a JSON array, in order.
func lsJSONKeys(t *testing.T, raw string) [][]string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(raw))
	var out [][]string
	depth := 0
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				depth++
				if depth == 1 {
					out = append(out, nil)
				}
				expectKey = true
			case '}':
				depth--
			case '[':
				if depth >= 1 {
					depth++
				}
			case ']':
				if depth >= 2 {
					depth--
				}
			}
			continue
		case string:
			if depth == 1 && expectKey {
				out[len(out)-1] = append(out[len(out)-1], v)
				expectKey = false
				continue
			}
		}
		if depth == 1 {
			expectKey = true
		}
	}
	return out
}

func TestLsJSON(t *testing.T) {
	dir, info := lsAgedBasic(t)
	stdout, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir, "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	ds := info.Repos[0]
	prefix := fmt.Sprintf(`[{"id": "dataset/acme/tiny-dataset", "repo_id": "acme/tiny-dataset", "repo_type": "dataset", "size": "%s", "last_accessed": "2 days ago", "last_modified": "2 days ago", "refs": ["main", "v1"]}, {"id": "model/acme/tiny-model", `, ds.SizeOnDiskStr())
	if !strings.HasPrefix(stdout, prefix) {
		t.Errorf("json\n got %s\nwant prefix %s", stdout, prefix)
	}
	if !strings.HasSuffix(stdout, "]}]\n") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("want one line of JSON, got %q", stdout)
	}
	if strings.Contains(stdout, "Found ") {
		t.Error("json mode must not print the summary")
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(stdout), &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != len(info.Repos) {
		t.Fatalf("%d items", len(items))
	}
	for i, r := range info.Repos {
		it := items[i]
		if it["id"] != r.CacheID() || it["repo_id"] != r.RepoID || it["repo_type"] != r.RepoType || it["size"] != r.SizeOnDiskStr() {
			t.Errorf("item %d: %v", i, it)
		}
		refs, _ := it["refs"].([]any)
		if fmt.Sprint(refs) != fmt.Sprint(r.RefNames()) {
			t.Errorf("item %d refs %v, want %v", i, refs, r.RefNames())
		}
	}
	allKeys := lsJSONKeys(t, stdout)
	if len(allKeys) != len(info.Repos) {
		t.Fatalf("keys of %d objects", len(allKeys))
	}
	for i, keys := range allKeys {
		if got := strings.Join(keys, ","); got != "id,repo_id,repo_type,size,last_accessed,last_modified,refs" {
			t.Errorf("item %d keys %s", i, got)
		}
	}
	// --format json is --json.
	out2, _, _ := lsRun(t, nil, "ls", "--cache-dir", dir, "--format", "json")
	if out2 != stdout {
		t.Error("--format json differs from --json")
	}
}

func TestLsJSONRevisions(t *testing.T) {
	dir, info := lsAgedBasic(t)
	stdout, _, code := lsRun(t, nil, "ls", "--cache-dir", dir, "--revisions", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	r0 := info.Repos[0].Revisions[0]
	prefix := fmt.Sprintf(`[{"id": "dataset/acme/tiny-dataset", "repo_id": "acme/tiny-dataset", "repo_type": "dataset", "revision": "%s", "snapshot_path": "%s", "size": "%s", "last_modified": "2 days ago", "refs": ["v1"]}, `,
		r0.CommitHash, r0.SnapshotPath, r0.SizeOnDiskStr())
	if !strings.HasPrefix(stdout, prefix) {
		t.Errorf("json\n got %s\nwant prefix %s", stdout, prefix)
	}
	keys := lsJSONKeys(t, stdout)
	if len(keys) != 8 {
		t.Fatalf("%d items", len(keys))
	}
	for i, k := range keys {
		if got := strings.Join(k, ","); got != "id,repo_id,repo_type,revision,snapshot_path,size,last_modified,refs" {
			t.Errorf("item %d keys %s", i, got)
		}
	}
	// The detached revision has an empty list.
	if !strings.Contains(stdout, `"last_modified": "1 week ago", "refs": []}`) {
		t.Errorf("no detached revision with refs []: %s", stdout)
	}
	if !filepath.IsAbs(r0.SnapshotPath) {
		t.Errorf("snapshot_path %q not absolute", r0.SnapshotPath)
	}
}

func TestLsAgent(t *testing.T) {
	dir, info := lsAgedBasic(t)
	stdout, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir, "--format", "agent")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lines := lsLines(stdout)
	if lines[0] != "id\tsize\tlast_accessed\tlast_modified\trefs" {
		t.Errorf("header %q", lines[0])
	}
	tm := info.Repo("model", "acme/tiny-model")
	if want := "model/acme/tiny-model\t" + tm.SizeOnDiskStr() + "\t1 week ago\t1 week ago\t['feature/x', 'main', 'refs/pr/1', 'v1.0']"; lines[2] != want {
		t.Errorf("row\n got %q\nwant %q", lines[2], want)
	}
	revs, size := lsRepoRevCount(info)
	if want := fmt.Sprintf("Found 4 repo(s) for a total of %d revision(s) and %s on disk.", revs, cachecore.FormatSize(size)); lines[len(lines)-1] != want || lines[len(lines)-2] != "" {
		t.Errorf("summary %q", lines[len(lines)-2:])
	}
	out, _, _ := lsRun(t, nil, "ls", "--cache-dir", dir, "--format", "agent", "--revisions")
	if !strings.HasPrefix(out, "id\trevision\tsize\tlast_modified\trefs\n") || !strings.Contains(out, "\t1 week ago\t[]\n") {
		t.Errorf("agent revisions:\n%s", out)
	}
}

func TestLsQuiet(t *testing.T) {
	dir, info := lsAgedBasic(t)
	stdout, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir, "-q")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	want := "dataset/acme/tiny-dataset\nmodel/acme/tiny-model\nmodel/gpt2\nspace/acme/tiny-space\n"
	if stdout != want {
		t.Errorf("quiet\n got %q\nwant %q", stdout, want)
	}
	stdout, _, _ = lsRun(t, nil, "ls", "--cache-dir", dir, "--revisions", "--format", "quiet")
	var hashes []string
	for _, r := range info.Repos {
		for _, rev := range r.Revisions {
			hashes = append(hashes, rev.CommitHash)
		}
	}
	if stdout != strings.Join(hashes, "\n")+"\n" {
		t.Errorf("quiet revisions\n%s", stdout)
	}
}

// lsIDs runs ls -q with the args and returns the printed IDs.
func lsIDs(t *testing.T, dir string, args ...string) []string {
	t.Helper()
	stdout, stderr, code := lsRun(t, nil, append([]string{"ls", "--cache-dir", dir, "-q"}, args...)...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, stderr)
	}
	if stdout == "" {
		return nil
	}
	return lsLines(stdout)
}

func TestLsFilters(t *testing.T) {
	dir, info := lsAgedBasic(t)
	var (
		ds = "dataset/acme/tiny-dataset"
		tm = "model/acme/tiny-model"
		gp = "model/gpt2"
		sp = "space/acme/tiny-space"
	)
	gpt2 := info.Repo("model", "gpt2").SizeOnDisk
	for _, r := range info.Repos { // the size cases below rely on these
		if (r.RepoID == "acme/tiny-model") != (r.SizeOnDisk > 5000) || (r.RepoType == "space") != (r.SizeOnDisk < 2000) || r.SizeOnDisk > 1e6 {
			t.Fatalf("basic cache sizes changed: %s %d", r.CacheID(), r.SizeOnDisk)
		}
	}
	cases := []struct {
		filters []string
		want    []string
	}{
		{[]string{"size>5k"}, []string{tm}},
		{[]string{"size > 5KB"}, []string{tm}},
		{[]string{"SIZE>=" + fmt.Sprint(gpt2)}, []string{tm, gp}},
		{[]string{"size=" + fmt.Sprint(gpt2)}, []string{gp}},
		{[]string{"size!=" + fmt.Sprint(gpt2)}, []string{ds, tm, sp}},
		{[]string{"size<2k"}, []string{sp}},
		{[]string{"size<=" + fmt.Sprint(gpt2)}, []string{ds, gp, sp}},
		{[]string{"size<1mb"}, []string{ds, tm, gp, sp}},
		{[]string{"size>1_000_000"}, nil},
		{[]string{"size>-1"}, []string{ds, tm, gp, sp}},
		{[]string{"size>1G"}, nil},
		{[]string{"size<1tb", "size<1p", "size<1PB"}, []string{ds, tm, gp, sp}},
		{[]string{"accessed>7d"}, []string{tm, gp, sp}},
		{[]string{"accessed>1w"}, []string{tm, gp, sp}},
		{[]string{"accessed<3d"}, []string{ds}},
		{[]string{"accessed>=1mo"}, []string{gp, sp}},
		{[]string{"accessed>1y"}, []string{sp}},
		{[]string{"accessed<30m"}, nil}, // m is minutes
		{[]string{"accessed>1000h"}, []string{sp}},
		{[]string{"accessed>200000s"}, []string{tm, gp, sp}},
		{[]string{"accessed!=0"}, []string{ds, tm, gp, sp}},
		{[]string{"modified<15d"}, []string{ds, tm}},
		{[]string{"modified<=9d", "modified>=2d"}, []string{ds}}, // the clock is exactly 2d after its blobs
		{[]string{"type=model"}, []string{tm, gp}},
		{[]string{"Type = DATASET"}, []string{ds}},
		{[]string{"type=space"}, []string{sp}},
		{[]string{"refs=main"}, []string{ds, tm, gp, sp}},
		{[]string{"refs=refs/pr/1"}, []string{tm}},
		{[]string{"refs=V1.0"}, []string{tm}},
		{[]string{"refs=v1"}, []string{ds}},
		{[]string{"type=model", "size<5k"}, []string{gp}},
		{[]string{"  size>5k  "}, []string{tm}},
	}
	for _, c := range cases {
		args := []string{}
		for _, f := range c.filters {
			args = append(args, "-f", f)
		}
		if got := lsIDs(t, dir, args...); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%q: got %v, want %v", c.filters, got, c.want)
		}
	}

	// With --revisions, size and modified are the revision's, refs its own,
	// accessed still the repo's.
	var bigRevs, mainRevs, tmRevs []string
	for _, r := range info.Repos {
		for _, rev := range r.Revisions {
			if rev.SizeOnDisk > 5000 {
				bigRevs = append(bigRevs, rev.CommitHash)
			}
			for _, ref := range rev.Refs {
				if ref == "main" {
					mainRevs = append(mainRevs, rev.CommitHash)
				}
			}
			if r.RepoID == "acme/tiny-model" {
				tmRevs = append(tmRevs, rev.CommitHash)
			}
		}
	}
	if len(bigRevs) != 2 {
		t.Fatalf("expected two revisions over 5k, got %v", bigRevs)
	}
	revCases := []struct {
		filters []string
		want    []string
	}{
		{[]string{"size>5k"}, bigRevs},
		{[]string{"refs=main"}, mainRevs},
		{[]string{"refs=v1.0"}, tmRevs[:1]},
		{[]string{"accessed>7d", "accessed<20d"}, tmRevs},
		{[]string{"modified>7d", "modified<20d"}, tmRevs},
	}
	for _, c := range revCases {
		args := []string{"--revisions"}
		for _, f := range c.filters {
			args = append(args, "-f", f)
		}
		if got := lsIDs(t, dir, args...); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("--revisions %q: got %v, want %v", c.filters, got, c.want)
		}
	}

	// The summary counts what the filters kept.
	stdout, _, _ := lsRun(t, nil, "ls", "--cache-dir", dir, "-f", "type=model")
	m1, m2 := info.Repo("model", "acme/tiny-model"), info.Repo("model", "gpt2")
	want := fmt.Sprintf("Found 2 repo(s) for a total of %d revision(s) and %s on disk.\n", len(m1.Revisions)+len(m2.Revisions), cachecore.FormatSize(m1.SizeOnDisk+m2.SizeOnDisk))
	if !strings.HasSuffix(stdout, "\n\n"+want) {
		t.Errorf("summary after filter:\n%s", stdout)
	}
}

func TestLsModifiedUsesRevisionTimes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hub")
	lsMakeRepo(t, dir, "models--o--m",
		lsTestRev{hash: strings.Repeat("1", 40), refs: []string{"old"}, content: "old blob"},
		lsTestRev{hash: strings.Repeat("2", 40), refs: []string{"main"}, content: "new blob"})
	base := float64(time.Now().Unix())
	lsFixClock(t, base)
	blobs, _ := filepath.Glob(filepath.Join(dir, "models--o--m", "blobs", "*"))
	for _, b := range blobs {
		data, _ := os.ReadFile(b)
		age := 2 * lsDay
		if string(data) == "old blob" {
			age = 30 * lsDay
		}
		tm := time.Unix(int64(base-age), 0)
		if err := os.Chtimes(b, tm, tm); err != nil {
			t.Fatal(err)
		}
	}
	// The repo's last_modified is its newest blob: 2 days.
	if got := lsIDs(t, dir, "-f", "modified>7d"); got != nil {
		t.Errorf("repo mode modified>7d: %v", got)
	}
	if got := lsIDs(t, dir, "--revisions", "-f", "modified>7d"); strings.Join(got, " ") != strings.Repeat("1", 40) {
		t.Errorf("revision mode modified>7d: %v", got)
	}
	// accessed is the repo's even per revision: both revisions, or none.
	if got := lsIDs(t, dir, "--revisions", "-f", "accessed>7d"); got != nil {
		t.Errorf("revision mode accessed>7d: %v", got)
	}
	if got := lsIDs(t, dir, "--revisions", "-f", "accessed<7d"); len(got) != 2 {
		t.Errorf("revision mode accessed<7d: %v", got)
	}
}

func TestLsFilterErrors(t *testing.T) {
	dir := testcache.Basic(t)
	cases := []struct{ filter, msg string }{
		{"size", "Invalid filter expression: 'size'."},
		{"  size ~ 3 ", "Invalid filter expression: '  size ~ 3 '."},
		{"size>", "Invalid filter expression: 'size>'."},
		{"size==1k", "Unsupported operator '==' in filter 'size==1k'. Must be one of ['!=', '<', '<=', '=', '>', '>=']."},
		{"Name=foo", "Unsupported filter key 'name' in 'Name=foo'. Must be one of ['accessed', 'modified', 'refs', 'size', 'type']."},
		{"size>1.5GB", `Invalid value '1.5GB'. Must match pattern '\d+[a-z]+' or be a plain number.`},
		{"size>10 kb", `Invalid value '10 kb'. Must match pattern '\d+[a-z]+' or be a plain number.`},
		{"size>10kib", "Unknown unit 'kib'. Must be one of ['k', 'kb', 'm', 'mb', 'g', 'gb', 't', 'tb', 'p', 'pb']."},
		{"size>10B", "Unknown unit 'b'. Must be one of ['k', 'kb', 'm', 'mb', 'g', 'gb', 't', 'tb', 'p', 'pb']."},
		{"accessed>7days", "Unknown unit 'days'. Must be one of ['s', 'm', 'h', 'd', 'w', 'mo', 'y']."},
		{"modified<1.5d", `Invalid value '1.5d'. Must match pattern '\d+[a-z]+' or be a plain number.`},
		{"type>model", "Only '=' is supported for 'type' filters. Got '>'."},
		{"type!=model", "Only '=' is supported for 'type' filters. Got '!='."},
		{"refs!=main", "Only '=' is supported for 'refs' filters. Got !=."},
		{"refs<main", "Only '=' is supported for 'refs' filters. Got <."},
	}
	for _, c := range cases {
		stdout, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir, "-f", "type=model", "-f", c.filter)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", c.filter, code)
		}
		if stdout != "" {
			t.Errorf("%q: stdout %q", c.filter, stdout)
		}
		want := "Error: Invalid value: " + c.msg + "\n"
		if !strings.HasSuffix(stderr, "\n"+want) || !strings.HasPrefix(stderr, "Usage: hfcachefs ls ") {
			t.Errorf("%q: stderr\n%s\nwant ending %s", c.filter, stderr, want)
		}
	}
}

func TestLsSort(t *testing.T) {
	dir, info := lsAgedBasic(t)
	var (
		ds = "dataset/acme/tiny-dataset"
		tm = "model/acme/tiny-model"
		gp = "model/gpt2"
		sp = "space/acme/tiny-space"
	)
	var bySize []string // the basic cache's repo sizes are distinct
	for _, r := range info.Repos {
		bySize = append(bySize, r.CacheID())
	}
	sizeOf := func(id string) int64 {
		for _, r := range info.Repos {
			if r.CacheID() == id {
				return r.SizeOnDisk
			}
		}
		return -1
	}
	for i := range bySize {
		for j := i + 1; j < len(bySize); j++ {
			if sizeOf(bySize[j]) > sizeOf(bySize[i]) {
				bySize[i], bySize[j] = bySize[j], bySize[i]
			}
		}
	}
	rev := func(s []string) []string {
		out := make([]string, len(s))
		for i, v := range s {
			out[len(s)-1-i] = v
		}
		return out
	}
	cases := []struct {
		sort string
		want []string
	}{
		{"size", bySize},
		{"size:desc", bySize},
		{"size:asc", rev(bySize)},
		{"accessed", []string{ds, tm, gp, sp}},
		{"accessed:asc", []string{sp, gp, tm, ds}},
		{"modified", []string{ds, tm, gp, sp}},
		{"modified:asc", []string{sp, gp, tm, ds}},
		{"name", []string{ds, tm, gp, sp}},
		{"name:desc", []string{sp, gp, tm, ds}},
	}
	if bySize[0] != tm {
		t.Fatalf("tiny-model should be the biggest: %v", bySize)
	}
	for _, c := range cases {
		if got := lsIDs(t, dir, "--sort", c.sort); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("--sort %s: got %v, want %v", c.sort, got, c.want)
		}
	}

	// Ties keep the cache_id, commit hash order, descending or not: every
	// revision of a repo shares the repo's last_accessed.
	var hashesBy [4][]string
	for i, r := range info.Repos {
		for _, rv := range r.Revisions {
			hashesBy[i] = append(hashesBy[i], rv.CommitHash)
		}
	}
	cat := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, hashesBy[i]...)
		}
		return out
	}
	if got, want := lsIDs(t, dir, "--revisions", "--sort", "accessed"), cat(0, 1, 2, 3); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("--revisions --sort accessed:\n got %v\nwant %v", got, want)
	}
	if got, want := lsIDs(t, dir, "--revisions", "--sort", "accessed:asc"), cat(3, 2, 1, 0); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("--revisions --sort accessed:asc:\n got %v\nwant %v", got, want)
	}
	if got, want := lsIDs(t, dir, "--revisions", "--sort", "name:desc"), cat(3, 2, 1, 0); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("--revisions --sort name:desc:\n got %v\nwant %v", got, want)
	}

	_, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir, "--sort", "Size")
	if code != 2 || !strings.HasSuffix(stderr, "Error: Invalid value for '--sort': 'Size' is not one of 'accessed', 'accessed:asc', 'accessed:desc', 'modified', 'modified:asc', 'modified:desc', 'name', 'name:asc', 'name:desc', 'size', 'size:asc', 'size:desc'.\n") {
		t.Errorf("--sort Size: exit %d\n%s", code, stderr)
	}
}

func TestLsSortCaseAndStability(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hub")
	for i, name := range []string{"alpha", "Zeta", "abc", "ABC"} {
		lsMakeRepo(t, dir, "models--"+name, lsTestRev{hash: strings.Repeat(fmt.Sprint(i+1), 40), refs: []string{"main"}, content: "same size " + fmt.Sprint(i)})
	}
	// Default: cache_id, case-sensitive (upper case first).
	if got := lsIDs(t, dir); strings.Join(got, " ") != "model/ABC model/Zeta model/abc model/alpha" {
		t.Errorf("default order %v", got)
	}
	// name: lower-cased; ABC and abc tie and keep their order both ways.
	if got := lsIDs(t, dir, "--sort", "name"); strings.Join(got, " ") != "model/ABC model/abc model/alpha model/Zeta" {
		t.Errorf("--sort name %v", got)
	}
	if got := lsIDs(t, dir, "--sort", "name:desc"); strings.Join(got, " ") != "model/Zeta model/alpha model/ABC model/abc" {
		t.Errorf("--sort name:desc %v", got)
	}
	// All four have the same size: a stable sort changes nothing.
	for _, s := range []string{"size", "size:asc"} {
		if got := lsIDs(t, dir, "--sort", s); strings.Join(got, " ") != "model/ABC model/Zeta model/abc model/alpha" {
			t.Errorf("--sort %s %v", s, got)
		}
	}
}

func TestLsLimit(t *testing.T) {
	dir, _ := lsAgedBasic(t)
	if got := lsIDs(t, dir, "--limit", "2"); strings.Join(got, " ") != "dataset/acme/tiny-dataset model/acme/tiny-model" {
		t.Errorf("--limit 2: %v", got)
	}
	if got := lsIDs(t, dir, "--sort", "size:asc", "--limit", "1"); strings.Join(got, " ") != "space/acme/tiny-space" {
		t.Errorf("--sort size:asc --limit 1: %v", got)
	}
	if got := lsIDs(t, dir, "--limit", "100"); len(got) != 4 {
		t.Errorf("--limit 100: %v", got)
	}
	stdout, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir, "--limit", "0")
	if code != 0 || stdout != "No results found.\n" || stderr != "" {
		t.Errorf("--limit 0: exit %d %q %q", code, stdout, stderr)
	}
	stdout, _, _ = lsRun(t, nil, "ls", "--cache-dir", dir, "--limit", "0", "--json")
	if stdout != "[]\n" {
		t.Errorf("--limit 0 --json: %q", stdout)
	}
	stdout, _, _ = lsRun(t, nil, "ls", "--cache-dir", dir, "--limit", "0", "-q")
	if stdout != "" {
		t.Errorf("--limit 0 -q: %q", stdout)
	}
	stdout, stderr, code = lsRun(t, nil, "ls", "--cache-dir", dir, "--limit", "-3")
	if code != 2 || stdout != "" || !strings.HasSuffix(stderr, "\nError: Invalid value: Limit must be a positive integer, got -3.\n") {
		t.Errorf("--limit -3: exit %d\n%s", code, stderr)
	}
	_, stderr, code = lsRun(t, nil, "ls", "--cache-dir", dir, "--limit", "two")
	if code != 2 || !strings.HasSuffix(stderr, "\nError: Invalid value for '--limit': 'two' is not a valid integer.\n") {
		t.Errorf("--limit two: exit %d\n%s", code, stderr)
	}
}

func TestLsWarnings(t *testing.T) {
	dir := filepath.Join(testcache.Cases(t), "stray-file-at-root")
	info, err := cachecore.Scan(dir)
	if err != nil || len(info.Warnings) != 1 {
		t.Fatalf("scan: %v, %d warnings", err, len(info.Warnings))
	}
	count := "Warning: Found 1 cache inconsistencies. Re-run with `--show-warnings` to display them.\n"
	for _, mode := range []string{"human", "agent", "json", "quiet"} {
		stdout, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir, "--format", mode)
		if code != 0 || stderr != count {
			t.Errorf("%s: exit %d, stderr %q", mode, code, stderr)
		}
		if !strings.Contains(stdout, "model/acme/ok") {
			t.Errorf("%s: stdout %q", mode, stdout)
		}
	}
	each := "Warning: " + strings.TrimRight(info.Warnings[0].Message, ".") + ". Repo ignored.\n"
	if !strings.HasPrefix(each, "Warning: Repo path is not a directory: /") || !strings.HasSuffix(each, "/notes.txt. Repo ignored.\n") {
		t.Errorf("unexpected warning text %q", each)
	}
	_, stderr, _ := lsRun(t, nil, "ls", "--cache-dir", dir, "--show-warnings")
	if stderr != each {
		t.Errorf("--show-warnings: %q, want %q", stderr, each)
	}
	_, stderr, _ = lsRun(t, nil, "ls", "--cache-dir", dir, "--show-warnings", "-q")
	if stderr != each {
		t.Errorf("--show-warnings -q: %q", stderr)
	}
	_, stderr, _ = lsRun(t, nil, "ls", "--cache-dir", dir, "--show-warnings", "--no-show-warnings")
	if stderr != count {
		t.Errorf("--no-show-warnings: %q", stderr)
	}
	// A filter that keeps nothing still reports the warnings.
	stdout, stderr, _ := lsRun(t, nil, "ls", "--cache-dir", dir, "-f", "type=space")
	if stdout != "No results found.\n" || stderr != count {
		t.Errorf("empty: %q %q", stdout, stderr)
	}
}

func TestLsIncompleteHint(t *testing.T) {
	dir := filepath.Join(testcache.Cases(t), "incomplete-blobs")
	info, err := cachecore.Scan(dir)
	if err != nil || len(info.IncompleteFiles) != 2 {
		t.Fatalf("scan: %v, %d incomplete", err, len(info.IncompleteFiles))
	}
	hint := fmt.Sprintf("Hint: Found 2 incomplete download(s) totalling %s. Remove them with 'hfcachefs prune'.\n", cachecore.FormatSize(info.IncompleteSizeOnDisk()))
	if hint != "Hint: Found 2 incomplete download(s) totalling 13.0. Remove them with 'hfcachefs prune'.\n" {
		t.Errorf("hint %q", hint)
	}
	warn := "Warning: Found 1 cache inconsistencies. Re-run with `--show-warnings` to display them.\n"
	for _, mode := range []string{"human", "agent", "json"} {
		_, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir, "--format", mode)
		if code != 0 || stderr != warn+hint {
			t.Errorf("%s: exit %d, stderr %q", mode, code, stderr)
		}
	}
	_, stderr, _ := lsRun(t, nil, "ls", "--cache-dir", dir, "-q")
	if stderr != warn {
		t.Errorf("quiet: stderr %q (hints are suppressed)", stderr)
	}
}

func TestLsMissingCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	stdout, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir, "-f", "bad filter")
	if code != 1 || stdout != "" || stderr != "Error: Cache directory not found: "+dir+"\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// HF_HUB_CACHE is honoured when --cache-dir is not given.
	_, stderr, code = lsRun(t, map[string]string{"HF_HUB_CACHE": dir}, "list")
	if code != 1 || stderr != "Error: Cache directory not found: "+dir+"\n" {
		t.Errorf("HF_HUB_CACHE: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = lsRun(t, nil, "ls", "--cache-dir", dir, "extra")
	if code != 2 || !strings.Contains(stderr, "unexpected argument") {
		t.Errorf("extra argument: exit %d %q", code, stderr)
	}
}

func TestLsEmptyCache(t *testing.T) {
	dir := t.TempDir()
	stdout, stderr, code := lsRun(t, nil, "ls", "--cache-dir", dir)
	if code != 0 || stdout != "No results found.\n" || stderr != "" {
		t.Errorf("exit %d, %q, %q", code, stdout, stderr)
	}
	stdout, _, _ = lsRun(t, nil, "ls", "--cache-dir", dir, "--format", "agent")
	if stdout != "No results found.\n" {
		t.Errorf("agent: %q", stdout)
	}
}

func TestLsTruncation(t *testing.T) {
	dir, _ := lsAgedBasic(t)
	stdout, stderr, code := lsRun(t, map[string]string{"COLUMNS": "60"}, "ls", "--cache-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if stderr != "Hint: Use `--no-truncate` or `--format json` to display full values.\n" {
		t.Errorf("stderr %q", stderr)
	}
	lines := lsLines(stdout)
	for _, l := range lines[:6] {
		if n := utf8.RuneCountInString(l); n > 60 {
			t.Errorf("table line of %d columns: %q", n, l)
		}
	}
	if !strings.Contains(stdout, "…") {
		t.Errorf("nothing cut:\n%s", stdout)
	}
	if !strings.HasPrefix(lines[len(lines)-1], "Found 4 repo(s)") {
		t.Errorf("summary missing:\n%s", stdout)
	}
	full, stderr, _ := lsRun(t, map[string]string{"COLUMNS": "60"}, "ls", "--cache-dir", dir, "--no-truncate")
	wide, _, _ := lsRun(t, nil, "ls", "--cache-dir", dir)
	if stderr != "" || full != wide {
		t.Errorf("--no-truncate: %q\n%s", stderr, full)
	}
	// Machine formats are never cut.
	agent, stderr, _ := lsRun(t, map[string]string{"COLUMNS": "60"}, "ls", "--cache-dir", dir, "--format", "agent")
	if stderr != "" || !strings.Contains(agent, "['feature/x', 'main', 'refs/pr/1', 'v1.0']") {
		t.Errorf("agent at 60 columns: %q\n%s", stderr, agent)
	}
}

func TestLsParseWithUnit(t *testing.T) {
	cases := []struct {
		in   string
		want string
		time bool
	}{
		{"0", "0", false},
		{"1234", "1234", false},
		{" 12 ", "12", false},
		{"+7", "7", false},
		{"-5", "-5", false},
		{"1_000", "1000", false},
		{"1k", "1000", false},
		{"1KB", "1000", false},
		{"3Mb", "3000000", false},
		{"2g", "2000000000", false},
		{"2gb", "2000000000", false},
		{"1t", "1000000000000", false},
		{"1pb", "1000000000000000", false},
		{"99999999999999999999", "99999999999999999999", false},
		{"90s", "90", true},
		{"2m", "120", true},
		{"2h", "7200", true},
		{"1d", "86400", true},
		{"1w", "604800", true},
		{"1mo", "2592000", true},
		{"1MO", "2592000", true},
		{"1y", "31536000", true},
	}
	for _, c := range cases {
		units, names := lsSizeUnits, lsSizeUnitNames
		if c.time {
			units, names = lsTimeUnits, lsTimeUnitNames
		}
		got, err := lsParseWithUnit(c.in, units, names)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if s := got.Text('f', 0); s != c.want {
			t.Errorf("%q: got %s, want %s", c.in, s, c.want)
		}
	}
	for _, bad := range []string{"1__0", "_1", "1_", "--1", "1.0", "k", "1 k"} {
		if _, err := lsParseWithUnit(bad, lsSizeUnits, lsSizeUnitNames); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
