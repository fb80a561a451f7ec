package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hfcachefs/hfcachefs/cachecore"
	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI in-process with a controlled environment.
func runCLI(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &cliEnv{
		stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(""),
		lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	}
	code := run(e, args)
	return cliResult{code, stdout.String(), stderr.String()}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands {
		r := runCLI(t, nil, c.name, "--help")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: hfcachefs "+c.name) || !strings.Contains(r.stdout, "Options:") {
			t.Errorf("%s --help: code %d\n%s%s", c.name, r.code, r.stdout, r.stderr)
		}
	}
	r := runCLI(t, nil, "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "scan") || !strings.Contains(r.stdout, "rm") {
		t.Errorf("top-level help: %+v", r)
	}
	r = runCLI(t, nil, "frobnicate")
	if r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %+v", r)
	}
	r = runCLI(t, nil, "scan", "--bogus")
	if r.code != 2 || !strings.Contains(r.stderr, "unknown flag: --bogus") || strings.Contains(r.stderr, "goroutine") {
		t.Errorf("bad flag: %+v", r)
	}
}

func TestScanTableAndFooter(t *testing.T) {
	dir := testcache.Basic(t)
	info, err := cachecore.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"", "-v"} {
		args := []string{"scan", "--cache-dir", dir}
		verbosity := 0
		if v != "" {
			args = append(args, v)
			verbosity = 1
		}
		r := runCLI(t, nil, args...)
		if r.code != 0 {
			t.Fatalf("%+v", r)
		}
		want := info.ExportAsTable(verbosity) + "\n\nDone in "
		if !strings.HasPrefix(r.stdout, want) {
			t.Errorf("scan %s:\n%s\nwant prefix:\n%s", v, r.stdout, want)
		}
		if !regexp.MustCompile(`\nDone in \d+\.\ds\. Scanned 4 repo\(s\) for a total of 34\.1K\.\n$`).MatchString(r.stdout) {
			t.Errorf("footer: %q", r.stdout)
		}
	}
}

func TestScanWarningsAndNotices(t *testing.T) {
	root := testcache.Cases(t)
	dir := filepath.Join(root, "unknown-repo-type")
	r := runCLI(t, nil, "scan", "--cache-dir", dir)
	if !strings.Contains(r.stdout, "Got 3 warning(s) while scanning. Use -vvv to print details.") {
		t.Errorf("%s", r.stdout)
	}
	r = runCLI(t, nil, "scan", "--cache-dir", dir, "-vvv")
	if !strings.Contains(r.stdout, "Got 3 warning(s) while scanning.\n") ||
		!strings.Contains(r.stdout, "Repo type must be `dataset`, `model` or `space`, found `kernel` ("+dir+"/kernels--acme--kern).") ||
		!strings.Contains(r.stdout, "[kernel-repo] "+dir+"/kernels--acme--kern") {
		t.Errorf("%s", r.stdout)
	}
}

func TestScanJSONHasHFFieldNames(t *testing.T) {
	dir := testcache.Basic(t)
	r := runCLI(t, nil, "scan", "--cache-dir", dir, "--format", "json")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"size_on_disk", "repos", "warnings", "notices", "incomplete_files"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("missing %s", k)
		}
	}
	repo := doc["repos"].([]any)[1].(map[string]any)
	for _, k := range []string{"repo_id", "repo_type", "repo_path", "size_on_disk", "nb_files", "last_accessed", "last_modified", "revisions"} {
		if _, ok := repo[k]; !ok {
			t.Errorf("repo misses %s", k)
		}
	}
	if repo["repo_id"] != "acme/tiny-model" || repo["repo_path"] != dir+"/models--acme--tiny-model" {
		t.Errorf("repo: %v %v", repo["repo_id"], repo["repo_path"])
	}
	rev := repo["revisions"].([]any)[0].(map[string]any)
	for _, k := range []string{"commit_hash", "snapshot_path", "size_on_disk", "nb_files", "refs", "last_modified", "files"} {
		if _, ok := rev[k]; !ok {
			t.Errorf("revision misses %s", k)
		}
	}
	file := rev["files"].([]any)[0].(map[string]any)
	for _, k := range []string{"file_name", "file_path", "blob_path", "size_on_disk", "blob_last_accessed", "blob_last_modified"} {
		if _, ok := file[k]; !ok {
			t.Errorf("file misses %s", k)
		}
	}
	if !strings.HasPrefix(file["blob_path"].(string), dir+"/models--acme--tiny-model/blobs/") {
		t.Errorf("blob path not absolute: %v", file["blob_path"])
	}
}

func TestScanErrors(t *testing.T) {
	tmp := t.TempDir()
	r := runCLI(t, nil, "scan", "--cache-dir", filepath.Join(tmp, "nope"))
	if r.code != 1 || r.stderr != "Error: Cache directory not found: "+filepath.Join(tmp, "nope")+"\n" || r.stdout != "" {
		t.Errorf("%+v", r)
	}
	if err := os.WriteFile(filepath.Join(tmp, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, nil, "scan", "--cache-dir", filepath.Join(tmp, "f"))
	if r.code != 1 || !strings.HasPrefix(r.stderr, "Error: Invalid value. Scan cache expects a directory but found a file: ") {
		t.Errorf("%+v", r)
	}
	// The default cache dir comes from the environment, as upstream.
	r = runCLI(t, map[string]string{"HF_HOME": filepath.Join(tmp, "home")}, "scan")
	if r.code != 1 || !strings.Contains(r.stderr, filepath.Join(tmp, "home", "hub")) {
		t.Errorf("%+v", r)
	}
}

func TestLookupStatusesAndExitCodes(t *testing.T) {
	dir := testcache.Basic(t)
	cases := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"acme/tiny-model", "config.json"}, 0, dir + "/models--acme--tiny-model/snapshots/eba90b51402874116c4cda2ae669ce32cc85e1c6/config.json\n"},
		{[]string{"acme/tiny-model", "missing.txt"}, lookupExitNoExist, "no_exist\n"},
		{[]string{"acme/tiny-model", "nothing.txt"}, lookupExitNotCached, "not_cached\n"},
		{[]string{"acme/tiny-model", "config.json", "--revision", "refs/pr/1", "--format", "json"}, 0,
			`{"status": "cached", "path": "` + dir + `/models--acme--tiny-model/snapshots/b182d9dfaaa3b0371d923ac6f05d09a96e70a56e/config.json"}` + "\n"},
		{[]string{"acme/tiny-model", "missing.txt", "--format", "json"}, lookupExitNoExist, `{"status": "no_exist", "path": null}` + "\n"},
		{[]string{"acme/tiny-dataset", "data/train.csv", "--repo-type", "dataset", "--revision", "v1"}, 0,
			dir + "/datasets--acme--tiny-dataset/snapshots/955d0852cd0c532cccffa7785d06160005451066/data/train.csv\n"},
	}
	for _, c := range cases {
		r := runCLI(t, nil, append([]string{"lookup", "--cache-dir", dir}, c.args...)...)
		if r.code != c.code || r.stdout != c.out {
			t.Errorf("lookup %v: got %d %q %q, want %d %q", c.args, r.code, r.stdout, r.stderr, c.code, c.out)
		}
	}
	r := runCLI(t, nil, "lookup", "--cache-dir", dir, "bad--id", "x")
	if r.code != 2 || r.stderr != "Error: Cannot have -- or .. in repo_id: 'bad--id'.\n" {
		t.Errorf("%+v", r)
	}
	r = runCLI(t, nil, "lookup", "--cache-dir", dir, "gpt2", "x", "--repo-type", "models")
	if r.code != 2 || !strings.Contains(r.stderr, "Invalid repo type: models. Accepted repo types are: [None, 'model', 'dataset', 'space', 'kernel']") {
		t.Errorf("%+v", r)
	}
	r = runCLI(t, nil, "lookup", "--cache-dir", dir, "gpt2")
	if r.code != 2 {
		t.Errorf("one argument: %+v", r)
	}
}

func TestAssetsPath(t *testing.T) {
	tmp := t.TempDir()
	r := runCLI(t, map[string]string{"HF_HOME": tmp}, "assets-path", "my lib", "Helsinki-NLP/tatoeba_mt", `a\b c`)
	want := filepath.Join(tmp, "assets", "my--lib", "Helsinki-NLP--tatoeba_mt", "a--b--c")
	if r.code != 0 || r.stdout != want+"\n" {
		t.Fatalf("%+v", r)
	}
	if fi, err := os.Stat(want); err != nil || !fi.IsDir() {
		t.Errorf("not created: %v", err)
	}
	r = runCLI(t, nil, "assets-path", "datasets", "--assets-dir", tmp)
	if r.stdout != filepath.Join(tmp, "datasets", "default", "default")+"\n" {
		t.Errorf("%+v", r)
	}
	if err := os.WriteFile(filepath.Join(tmp, "afile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, nil, "assets-path", "afile", "--assets-dir", tmp)
	if r.code != 1 || r.stderr != "Error: Corrupted assets folder: cannot create directory because of an existing file ("+filepath.Join(tmp, "afile", "default", "default")+").\n" {
		t.Errorf("%+v", r)
	}
}

func TestRmDryRunPlanJSON(t *testing.T) {
	dir := testcache.Basic(t)
	r := runCLI(t, nil, "rm", "--cache-dir", dir, "--dry-run", "--format", "json", "model/GPT2", "4a67d7bb895e9c468f402aa571ffea8548c37676", "model/nope")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	var plan cachecore.PlanDoc
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(plan.Repos) != 1 || plan.Repos[0] != dir+"/models--gpt2" || len(plan.Snapshots) != 1 || len(plan.Blobs) != 2 || len(plan.Refs) != 2 ||
		plan.ExpectedFreedSize != 20015+4211 || len(plan.NotFound) != 1 || plan.NotFound[0] != "model/nope" {
		t.Errorf("plan: %+v", plan)
	}
	if !strings.Contains(r.stderr, "Warning: Could not find in cache:\n  - model/nope\n") {
		t.Errorf("stderr: %q", r.stderr)
	}
	if _, err := os.Stat(dir + "/models--gpt2"); err != nil {
		t.Errorf("dry run deleted: %v", err)
	}
}

func TestRmHumanOutputAndConfirmation(t *testing.T) {
	dir := testcache.Basic(t)
	r := runCLI(t, nil, "rm", "--cache-dir", dir, "hf://gpt2", "b182d9dfaaa3b0371d923ac6f05d09a96e70a56e")
	want := "About to delete 1 repo(s) and 1 revision(s) totalling 4.2K.\n" +
		"  - model/acme/tiny-model:\n" +
		"      b182d9dfaaa3b0371d923ac6f05d09a96e70a56e [refs/pr/1] 32.0\n" +
		"  - model/gpt2 (entire repo)\n"
	if r.code != 1 || r.stdout != want || r.stderr != "Error: Proceed with deletion? Use --yes to skip confirmation.\n" {
		t.Fatalf("without a terminal or -y it must refuse:\n%+v", r)
	}
	if _, err := os.Stat(dir + "/models--gpt2"); err != nil {
		t.Fatalf("refused rm deleted: %v", err)
	}
	r = runCLI(t, nil, "rm", "--cache-dir", dir, "-y", "hf://gpt2", "b182d9dfaaa3b0371d923ac6f05d09a96e70a56e")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "✓ Deleted 1 repo(s) and 2 revision(s); freed 4.2K.\n  repos_deleted: 1\n  revisions_deleted: 2\n  freed: 4.2K\n") ||
		r.stderr != "Cache deletion done. Saved 4.2K.\n" {
		t.Fatalf("%+v", r)
	}
	info, err := cachecore.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Warnings) != 0 || len(info.Repos) != 3 || info.Repo("model", "acme/tiny-model").Revision("b182d9dfaaa3b0371d923ac6f05d09a96e70a56e") != nil {
		t.Errorf("after rm: %d repos, warnings %v", len(info.Repos), info.Warnings)
	}
	r = runCLI(t, nil, "rm", "--cache-dir", dir, "-y", "model/gone")
	if r.code != 0 || r.stdout != "Nothing to delete.\n" {
		t.Errorf("%+v", r)
	}
}

func TestRmTargetErrors(t *testing.T) {
	dir := testcache.Basic(t)
	for target, msg := range map[string]string{
		"hf://buckets/acme/b":         "Only repository hf:// URIs are supported by `hfcachefs rm`.",
		"hf://acme/tiny-model@main":   "Only repo-level hf:// URIs are supported by `hfcachefs rm` for now.",
		"hf://acme/tiny-model/x.json": "Only repo-level hf:// URIs are supported by `hfcachefs rm` for now.",
	} {
		r := runCLI(t, nil, "rm", "--cache-dir", dir, "-y", target)
		if r.code != 1 || r.stderr != "Error: "+msg+"\n" {
			t.Errorf("%s: %+v", target, r)
		}
	}
	r := runCLI(t, nil, "rm", "--cache-dir", dir)
	if r.code != 2 {
		t.Errorf("no target: %+v", r)
	}
	// A short hash is not a revision (as upstream): it is a missing target.
	r = runCLI(t, nil, "rm", "--cache-dir", dir, "-y", "4a67d7b")
	if r.code != 0 || !strings.Contains(r.stderr, "  - 4a67d7b") || r.stdout != "Nothing to delete.\n" {
		t.Errorf("short hash: %+v", r)
	}
}

func TestRmRefusesAHashHeldByTwoRepos(t *testing.T) {
	dir := testcache.Basic(t)
	hash := "f584eba0dcc94d97dd2cc48e48a591be55492603"
	if err := os.MkdirAll(filepath.Join(dir, "spaces--acme--tiny-space", "snapshots", hash), 0o755); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, "rm", "--cache-dir", dir, "-y", hash)
	if r.code != 1 || !strings.Contains(r.stderr, "held by 2 repos (model/gpt2, space/acme/tiny-space)") {
		t.Errorf("%+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "models--gpt2")); err != nil {
		t.Error(err)
	}
	// prune picks per repo: the shared hash is no obstacle.
	r = runCLI(t, nil, "prune", "--cache-dir", dir, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "About to delete 2 unreferenced revision(s) (0.0 total).") ||
		!strings.Contains(r.stdout, "      "+hash+" [(detached)] 0.0") {
		t.Errorf("%+v", r)
	}
}

func TestPruneDetachedAndIncomplete(t *testing.T) {
	root := testcache.Cases(t)
	dir := filepath.Join(root, "incomplete-blobs")
	if err := os.Remove(filepath.Join(dir, "models--acme--ok", "refs", "v1")); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, "prune", "--cache-dir", dir, "--dry-run")
	want := "About to delete 1 unreferenced revision(s) and 2 incomplete download(s) (23.0 total).\n" +
		"  - model/acme/ok:\n      " + strings.Repeat("1", 40) + " [(detached)] 110.0\n" +
		"✓ Dry run: no files were deleted.\n  dry_run: True\n  revisions: 1\n  incomplete: 2\n  size: 23.0\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("got:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = runCLI(t, nil, "prune", "--cache-dir", dir, "-y")
	if r.code != 0 || !strings.Contains(r.stdout, "✓ Deleted 1 unreferenced revision(s) and 2 incomplete download(s); freed 23.0.") {
		t.Fatalf("%+v", r)
	}
	info, err := cachecore.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.IncompleteFiles) != 0 || len(info.Repos[0].Revisions) != 1 {
		t.Errorf("after prune: %+v", info.Repos[0].Revisions)
	}
	if _, err := os.Stat(filepath.Join(dir, "notarepo.incomplete")); err != nil {
		t.Errorf("a root file is not an incomplete download of a repo: %v", err)
	}
	r = runCLI(t, nil, "prune", "--cache-dir", dir, "-y")
	if r.stdout != "No unreferenced revisions or incomplete downloads found. Nothing to prune.\n" {
		t.Errorf("%+v", r)
	}
}

// TestKilledDeletionLeavesAScannableCache kills a real rm process between
// two deletion steps.
func TestKilledDeletionLeavesAScannableCache(t *testing.T) {
	bin := buildBinary(t)
	for _, after := range []int{1, 2, 3} {
		dir := testcache.Basic(t)
		cmd := exec.Command(bin, "rm", "--cache-dir", dir, "-y", "4a67d7bb895e9c468f402aa571ffea8548c37676", "model/gpt2")
		cmd.Env = append(os.Environ(), "HFCACHEFS_TEST_DELETE_STEP_DELAY=300ms")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		steps := 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "step: ") {
				if steps++; steps == after {
					break
				}
			}
		}
		time.Sleep(150 * time.Millisecond) // into the step's own work
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		info, err := cachecore.Scan(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Warnings) != 0 {
			t.Errorf("killed after step %d: %v", after, info.Warnings)
		}
		if steps != after {
			t.Errorf("saw %d steps before the kill, wanted %d", steps, after)
		}
	}
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hfcachefs")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// openPTY gives a pseudo-terminal, so colour decisions can be tested.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return slave
}

func TestColourOnlyOnATerminalAndNotWithNoColor(t *testing.T) {
	tty := openPTY(t)
	env := func(m map[string]string) *cliEnv {
		return &cliEnv{stdout: tty, stderr: tty, stdin: tty, lookupEnv: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
	}
	if o := newOut(env(nil), modeHuman, false); !o.color || !o.colorErr || !o.stdinTTY {
		t.Errorf("a terminal gets colour: %+v", o)
	}
	if o := newOut(env(map[string]string{"NO_COLOR": "1"}), modeHuman, false); o.color || o.colorErr {
		t.Errorf("NO_COLOR turns colour off: %+v", o)
	}
	var buf bytes.Buffer
	if o := newOut(&cliEnv{stdout: &buf, stderr: &buf, stdin: tty, lookupEnv: func(string) (string, bool) { return "", false }}, modeHuman, false); o.color {
		t.Errorf("a pipe gets no colour")
	}
}

func TestVerifyFindsCorruptionAndExitsNonZero(t *testing.T) {
	dir := testcache.Basic(t)
	r := runCLI(t, nil, "verify", "--cache-dir", dir)
	if r.code != 0 || r.stdout != "Checked 23 blob(s) (33 KiB hashed): 23 ok, 0 not verifiable offline, 0 problem(s).\n" {
		t.Fatalf("%+v", r)
	}
	blob := filepath.Join(dir, "models--gpt2", "blobs", "3914be8a017af6f2a58402c37134858a1cce9b22")
	if err := os.WriteFile(blob, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, nil, "verify", "--cache-dir", dir, "model/gpt2")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "MISMATCH model/gpt2 "+blob+": expected 3914be8a017af6f2a58402c37134858a1cce9b22 (git-sha1), got ") ||
		!strings.HasSuffix(r.stdout, "Checked 3 blob(s) (4.1 KiB hashed): 2 ok, 0 not verifiable offline, 1 problem(s).\n") {
		t.Fatalf("%+v", r)
	}
	r = runCLI(t, nil, "verify", "--cache-dir", dir, "--format", "json", "model/acme/tiny-model")
	var rep cachecore.VerifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || rep.Checked != 12 || rep.Problems != 0 {
		t.Errorf("json: %v %+v", err, r)
	}
}
