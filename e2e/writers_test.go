package e2e_test

// TestConcurrentWritersAndReaders: a writer adds and removes revisions the
// way huggingface_hub does while four readers walk the mount and check
// every byte they read against the blob's etag.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// prWriterPy writes the cache as huggingface_hub does (spec §2–§3), with
// content that is a function of (seed, repo, commit, path) so readers can
// check every byte against its etag:
//   - hf_hub_download: makedirs blobs/ and the pointer's folder, CACHEDIR.TAG,
//     the ref (when revision != commit: temp "<name>.<8hex>.tmp" +
//     os.replace, only if missing or different), .locks/<repo>/<etag>.lock
//     (flock); the blob into blobs/<etag>.<8hex>.incomplete, chmod from a
//     tmp_<uuid> probe, os.replace to blobs/<etag>; then the relative link.
//     An existing blob only gets the link. Etag: sha256 for LFS files (.bin,
//     .safetensors), git blob sha1 for the others.
//   - snapshot_download: refs/<revision> first, with a plain open("w")
//     (_snapshot_download.py:415-420), trees/<commit>.json (mkstemp +
//     os.replace), then hf_hub_download(revision=<commit>) per file: the
//     ref exists before any of the snapshot's files.
//   - a 404 EntryNotFound: .no_exist/<commit>/<file>, then the ref.
//   - hf cache rm <hash>: the delete strategy (a repo's last revision takes
//     the repo; else the snapshot, its refs, the blobs no other revision
//     links), executed repos, snapshots, refs, blobs; hf cache rm <repo>.
//
// Every removal is logged (one JSON line, before it starts) so the test
// knows which revisions really went.
const prWriterPy = `import hashlib, json, os, random, shutil, stat, sys, tempfile, time, uuid, fcntl
cache, seconds, seed, log_path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = random.Random(seed)
deadline = time.monotonic() + seconds
log = open(log_path, "a", buffering=1)
REPOS = ["models--acme--alpha", "models--acme--beta", "models--solo", "datasets--acme--gamma"]
MAX_REVS = 5
state = {}
stats = {"snapshot_download": 0, "single_file_download": 0, "no_exist": 0, "rm_revision": 0, "rm_repo": 0,
         "files_linked": 0, "blobs_written": 0, "bytes_written": 0, "refs_written": 0}
counter = [0]

def fresh(folder):
    state[folder] = {"revs": {}, "refs": {}}
for f in REPOS:
    fresh(f)

def event(**kw):
    kw["t"] = time.time()
    log.write(json.dumps(kw) + "\n")

def git_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

def content(folder, commit, path):
    if path == "README.md":
        key = folder
    elif path == ".gitattributes":
        key = ""
    elif path.startswith("shards/"):
        key = "%s:%d" % (folder, int(commit[:8], 16) % 3)  # shared by some revisions
    else:
        key = folder + ":" + commit
    r = random.Random("%d|%s|%s" % (seed, path, key))
    lfs = path.endswith((".bin", ".safetensors"))
    if lfs:
        data = r.randbytes(r.randint(16 << 10, 256 << 10))
    else:
        data = ("%s %s %s\n" % (folder, path, key)).encode() * r.randint(1, 40)
    return data, lfs

def new_commit():
    counter[0] += 1
    return hashlib.sha1(b"%d-%d" % (seed, counter[0])).hexdigest()

def cache_ref(folder, revision, commit):
    # _cache_commit_hash_for_specific_revision: atomic, only when needed.
    if revision == commit:
        return
    path = os.path.join(cache, folder, "refs", *revision.split("/"))
    try:
        with open(path) as f:
            if f.read() == commit:
                return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.%s.tmp" % (path, uuid.uuid4().hex[:8])
    with open(tmp, "w") as f:
        f.write(commit)
    os.replace(tmp, path)
    state[folder]["refs"][revision] = commit
    stats["refs_written"] += 1

def hf_hub_download(folder, revision, commit, path):
    repo = os.path.join(cache, folder)
    data, lfs = content(folder, commit, path)
    etag = hashlib.sha256(data).hexdigest() if lfs else git_sha1(data)
    blob = os.path.join(repo, "blobs", etag)
    pointer = os.path.join(repo, "snapshots", commit, *path.split("/"))
    revs = state[folder]["revs"]
    if os.path.lexists(pointer):
        cache_ref(folder, revision, commit)
        return
    os.makedirs(os.path.dirname(blob), exist_ok=True)
    os.makedirs(os.path.dirname(pointer), exist_ok=True)
    revs.setdefault(commit, {})
    tag = os.path.join(cache, "CACHEDIR.TAG")
    if not os.path.exists(tag):
        with open(tag, "w") as f:
            f.write("Signature: 8a477f597d28d172789f06886806bc55\n")
    cache_ref(folder, revision, commit)
    locks = os.path.join(cache, ".locks", folder)
    os.makedirs(locks, exist_ok=True)
    with open(os.path.join(locks, etag + ".lock"), "a") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        try:
            if not os.path.exists(blob):
                tmp = "%s.%s.incomplete" % (blob, uuid.uuid4().hex[:8])
                with open(tmp, "wb") as f:
                    for i in range(0, len(data), 65536):
                        f.write(data[i:i + 65536])
                        f.flush()
                        if rng.random() < 0.3:
                            time.sleep(0.002)
                probe = os.path.join(repo, "blobs", "tmp_" + str(uuid.uuid4()))
                open(probe, "w").close()
                os.chmod(tmp, stat.S_IMODE(os.stat(probe).st_mode))
                os.remove(probe)
                os.replace(tmp, blob)
                stats["blobs_written"] += 1
                stats["bytes_written"] += len(data)
            if not os.path.lexists(pointer):
                os.symlink(os.path.relpath(blob, os.path.dirname(pointer)), pointer)
                stats["files_linked"] += 1
        finally:
            fcntl.flock(lk, fcntl.LOCK_UN)
    revs[commit][path] = etag

def files_for(commit):
    r = random.Random(commit)
    files = ["config.json", "README.md", ".gitattributes", "model.safetensors", "tokenizer/vocab.txt"]
    files += ["shards/model-%05d.bin" % (k + 1) for k in range(r.randint(0, 2))]
    return files

def snapshot_download(folder, revision):
    commit = new_commit()
    repo = os.path.join(cache, folder)
    event(op="add", folder=folder, commit=commit, revision=revision)
    ref = os.path.join(repo, "refs", *revision.split("/"))
    os.makedirs(os.path.dirname(ref), exist_ok=True)
    with open(ref, "w") as f:  # plain write, before the snapshot exists
        f.write(commit)
    state[folder]["refs"][revision] = commit
    stats["refs_written"] += 1
    files = files_for(commit)
    trees = os.path.join(repo, "trees")
    os.makedirs(trees, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=trees, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"format_version": 1, "files": {p: {"size": len(content(folder, commit, p)[0])} for p in sorted(files)}}, f, indent=1)
    os.replace(tmp, os.path.join(trees, commit + ".json"))
    for p in files:
        hf_hub_download(folder, commit, commit, p)
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0, 0.01))
    stats["snapshot_download"] += 1

def single_file_download(folder, revision):
    # The remote moved: hf_hub_download(revision="dev") writes the ref
    # (atomically) before the blob and the link.
    commit = new_commit()
    event(op="add", folder=folder, commit=commit, revision=revision)
    for p in rng.sample(files_for(commit), rng.randint(1, 2)):
        hf_hub_download(folder, revision, commit, p)
    stats["single_file_download"] += 1

def no_exist(folder):
    refs = state[folder]["refs"]
    if not refs:
        return False
    revision = rng.choice(sorted(refs))
    commit = refs[revision]
    if commit not in state[folder]["revs"]:
        return False
    marker = os.path.join(cache, folder, ".no_exist", commit, "optional", "missing-%d.json" % rng.randint(1, 5))
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    open(marker, "w").close()
    cache_ref(folder, revision, commit)
    stats["no_exist"] += 1
    return True

def rm_repo(folder):
    event(op="rm", folder=folder, commits=sorted(state[folder]["revs"]), whole=True)
    shutil.rmtree(os.path.join(cache, folder))
    fresh(folder)
    stats["rm_repo"] += 1

def rm_revision(folder, commit):
    repo = os.path.join(cache, folder)
    revs, refs = state[folder]["revs"], state[folder]["refs"]
    others = [c for c in revs if c != commit]
    if not others:
        rm_repo(folder)
        return
    event(op="rm", folder=folder, commits=[commit], whole=False)
    used = set()
    for c in others:
        used.update(revs[c].values())
    dead_refs = [r for r, c in refs.items() if c == commit]
    dead_blobs = sorted(set(revs[commit].values()) - used)
    shutil.rmtree(os.path.join(repo, "snapshots", commit))
    for r in dead_refs:
        os.remove(os.path.join(repo, "refs", *r.split("/")))
        del refs[r]
    for b in dead_blobs:
        os.remove(os.path.join(repo, "blobs", b))
    del revs[commit]
    stats["rm_revision"] += 1

for folder in REPOS:
    snapshot_download(folder, "main")
while time.monotonic() < deadline:
    folder = rng.choice(REPOS)
    n = len(state[folder]["revs"])
    x = rng.random()
    if n >= MAX_REVS or (n > 0 and x < 0.3):
        if rng.random() < 0.08:
            rm_repo(folder)
        else:
            rm_revision(folder, rng.choice(sorted(state[folder]["revs"])))
    elif x < 0.75:
        snapshot_download(folder, rng.choice(["main", "main", "v1.0", "refs/pr/%d" % rng.randint(1, 3)]))
    elif x < 0.9 or not no_exist(folder):
        single_file_download(folder, "dev")
    time.sleep(rng.uniform(0, 0.03))
stats["revisions_at_end"] = {f: len(state[f]["revs"]) for f in REPOS}
print(json.dumps(stats))
`

// prReaderPy walks MOUNT/models and MOUNT/datasets until the stop file
// shows up (or its own deadline), reading every file: open, the etag from
// the open fd (same inode as the bytes), every byte, and the check that
// they hash to the etag (sha256 for 64 hex, git blob sha1 for 40 hex).
const prReaderPy = `import errno, hashlib, json, os, re, sys, time
mp, stop, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + limit
counts = {"walks": 0, "dirs": 0, "files": 0, "bytes": 0, "wrong": 0, "errors": {}}
samples = {"wrong": [], "ENOENT": [], "ESTALE": [], "other": []}
by_commit = re.compile(r"/by-commit/([0-9a-f]{40})(/|$)")
enoent_commits = {}  # every ENOENT below by-commit/<hash>, by hash
def rel(p):
    return os.path.relpath(p, mp)
def err(e, path, what):
    name = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    counts["errors"][name] = counts["errors"].get(name, 0) + 1
    m = by_commit.search(path)
    if name == "ENOENT" and m:
        enoent_commits[m.group(1)] = enoent_commits.get(m.group(1), 0) + 1
    key = name if name in ("ENOENT", "ESTALE") else "other"
    if len(samples[key]) < 3000:
        samples[key].append([what, name, rel(path)])
def wrong(path, why):
    counts["wrong"] += 1
    if len(samples["wrong"]) < 200:
        samples["wrong"].append([rel(path), why])
def verify(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        etag = os.getxattr(fd, "user.hf.etag").decode()
        size = os.fstat(fd).st_size
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    counts["files"] += 1
    counts["bytes"] += len(data)
    if len(etag) == 64:
        got = hashlib.sha256(data).hexdigest()
    elif len(etag) == 40:
        got = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    else:
        got = None
    if got != etag:
        wrong(path, "etag %s but the %d bytes hash to %s" % (etag, len(data), got))
    elif len(data) != size:
        wrong(path, "st_size %d but %d bytes read" % (size, len(data)))
while not os.path.exists(stop) and time.monotonic() < deadline:
    stack = [os.path.join(mp, "datasets"), os.path.join(mp, "models")]
    while stack and time.monotonic() < deadline:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError as e:
            err(e, d, "list")
            continue
        counts["dirs"] += 1
        for ent in entries:
            if ".incomplete" in ent.name or ent.name.startswith("tmp_"):
                wrong(ent.path, "a temporary download file is in the view")
            try:
                if ent.is_dir(follow_symlinks=False):
                    stack.append(ent.path)
                elif ent.is_file(follow_symlinks=False):
                    verify(ent.path)
                else:
                    wrong(ent.path, "neither a file nor a folder")
            except OSError as e:
                err(e, ent.path, "read")
    counts["walks"] += 1
print(json.dumps({"counts": counts, "samples": samples, "enoent_commits": enoent_commits}))
`

type prReaderOut struct {
	Counts struct {
		Walks  int            `json:"walks"`
		Dirs   int            `json:"dirs"`
		Files  int            `json:"files"`
		Bytes  int64          `json:"bytes"`
		Wrong  int            `json:"wrong"`
		Errors map[string]int `json:"errors"`
	} `json:"counts"`
	Samples       map[string][][]string `json:"samples"`
	EnoentCommits map[string]int        `json:"enoent_commits"`
}

var prByCommitRe = regexp.MustCompile(`/by-commit/([0-9a-f]{40})(/|$)`)

func TestConcurrentWritersAndReaders(t *testing.T) {
	prNeedFuse(t, prCITrue())
	seconds := 60
	if v := os.Getenv("HFCACHEFS_WRITERS_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 600 {
			t.Fatalf("HFCACHEFS_WRITERS_SECONDS=%q: want 1..600", v)
		}
		seconds = n
	}
	seed := 20261126
	if v := os.Getenv("HFCACHEFS_WRITERS_SEED"); v != "" {
		seed, _ = strconv.Atoi(v)
	}
	t.Logf("writer: %d s, seed %d (HFCACHEFS_WRITERS_SECONDS, HFCACHEFS_WRITERS_SEED)", seconds, seed)

	tmp := t.TempDir()
	cache := filepath.Join(tmp, "hub")
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	cache = prResolved(t, cache)
	d := prStartMount(t, cache, "--poll-interval", "250ms")

	writerPy := prWriteScript(t, "writer.py", prWriterPy)
	readerPy := prWriteScript(t, "reader.py", prReaderPy)
	events := filepath.Join(tmp, "events.jsonl")
	stop := filepath.Join(tmp, "stop")
	limit := time.Duration(seconds)*time.Second + 2*time.Minute

	// The mount comes first (an empty cache), and someone lists datasets/
	// before anything is downloaded: the kernel caches that empty listing.
	if ls := prMust(t, time.Minute, "ls", "-A", filepath.Join(d.mp, "datasets")); ls != "" {
		t.Fatalf("datasets/ of an empty cache: %q", ls)
	}
	writer := prStart(t, limit, nil, "python3", writerPy, cache, strconv.Itoa(seconds), strconv.Itoa(seed), events)
	// The writer's first downloads create every repo (datasets--acme--gamma
	// last): wait for it by lookup (no listing is cached meanwhile), then
	// datasets/ must list it within 10 s (a few poll intervals).
	lookupDeadline := time.Now().Add(30 * time.Second)
	for prRun(t, time.Minute, nil, "stat", filepath.Join(d.mp, "datasets/acme/gamma/by-commit")).code != 0 {
		if time.Now().After(lookupDeadline) {
			t.Fatalf("datasets/acme/gamma not in the mount 30 s after the writer started")
		}
		time.Sleep(100 * time.Millisecond)
	}
	listDeadline := time.Now().Add(10 * time.Second)
	for {
		ls := prRun(t, time.Minute, nil, "ls", filepath.Join(d.mp, "datasets"))
		if strings.Contains("\n"+ls.stdout, "\nacme\n") {
			break
		}
		if time.Now().After(listDeadline) {
			t.Errorf("BUG: 10 s after datasets/acme/gamma appeared (stat finds it), ls datasets/ still gives %q: a folder listing the kernel cached while it was empty is never refreshed", ls.stdout)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	var readers []*prChild
	for i := 0; i < 4; i++ {
		readers = append(readers, prStart(t, limit+time.Minute, nil, "python3", readerPy, d.mp, stop, strconv.Itoa(seconds+150)))
	}
	wres := writer.wait()
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var outs []prReaderOut
	for i, r := range readers {
		res := r.wait()
		var out prReaderOut
		if res.code != 0 || res.timedOut || json.Unmarshal([]byte(res.stdout), &out) != nil {
			t.Errorf("reader %d: %s", i, res)
			continue
		}
		outs = append(outs, out)
	}
	if wres.code != 0 || wres.timedOut {
		t.Fatalf("writer: %s", wres)
	}
	t.Logf("writer: %s", strings.TrimSpace(wres.stdout))

	// Which revisions the writer removed (logged before each removal).
	removed := map[string]bool{}
	data, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var ev struct {
			Op      string   `json:"op"`
			Commits []string `json:"commits"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("events: %v: %q", err, line)
		}
		if ev.Op == "rm" {
			for _, c := range ev.Commits {
				removed[c] = true
			}
		}
	}

	var total prReaderOut
	total.Counts.Errors = map[string]int{}
	for i, out := range outs {
		c := out.Counts
		t.Logf("reader %d: %d walks, %d folders, %d files read, %d bytes, %d wrong, errors %v", i, c.Walks, c.Dirs, c.Files, c.Bytes, c.Wrong, c.Errors)
		total.Counts.Walks += c.Walks
		total.Counts.Files += c.Files
		total.Counts.Bytes += c.Bytes
		total.Counts.Wrong += c.Wrong
		for k, v := range c.Errors {
			total.Counts.Errors[k] += v
		}
		for _, w := range out.Samples["wrong"] {
			t.Errorf("reader %d: WRONG BYTES: %q", i, w)
		}
		for _, o := range out.Samples["other"] {
			t.Errorf("reader %d: unexpected error %q (only ENOENT may happen)", i, o)
		}
		for _, s := range out.Samples["ESTALE"] {
			t.Errorf("reader %d: ESTALE: %q", i, s)
		}
		// ENOENT is allowed only for what is really gone: below
		// by-commit/<hash>, that revision must have been removed.
		for hash, n := range out.EnoentCommits {
			if !removed[hash] {
				var ex []string
				for _, s := range out.Samples["ENOENT"] {
					if m := prByCommitRe.FindStringSubmatch("/" + s[2]); m != nil && m[1] == hash && len(ex) < 3 {
						ex = append(ex, s[2])
					}
				}
				t.Errorf("reader %d: %d ENOENT below by-commit/%s, a revision the writer never removed (e.g. %q)", i, n, hash, ex)
			}
		}
	}
	t.Logf("readers total: %d walks, %d files read, %d bytes, %d wrong, errors by errno %v; the writer removed %d revisions",
		total.Counts.Walks, total.Counts.Files, total.Counts.Bytes, total.Counts.Wrong, total.Counts.Errors, len(removed))
	if total.Counts.Files == 0 {
		t.Error("the readers read no file")
	}

	// The end: the mount shows what a fresh scan of the final cache says.
	scan := prScan(t, cache, 2*time.Minute)
	if len(scan.Warnings) != 0 || len(scan.IncompleteFiles) != 0 {
		t.Errorf("final scan: warnings %q, incomplete files %v; want none", scan.Warnings, scan.IncompleteFiles)
	}
	deadline := time.Now().Add(30 * time.Second)
	var diffs []string
	for attempt := 0; ; attempt++ {
		status, _ := prStatus(t, d.mp)
		diffs = prCompare(t, prWalk(t, d.mp, true, "models", "datasets", "spaces"), scan)
		if len(status.KeptLastGoodView) != 0 || len(status.Warnings) != 0 {
			diffs = append(diffs, fmt.Sprintf(".status.json: kept_last_good_view %q, warnings %q", status.KeptLastGoodView, status.Warnings))
		}
		if status.Repos != len(scan.Repos) || status.SizeOnDisk != scan.SizeOnDisk {
			diffs = append(diffs, fmt.Sprintf(".status.json: %d repos, %d bytes; the scan: %d repos, %d bytes", status.Repos, status.SizeOnDisk, len(scan.Repos), scan.SizeOnDisk))
		}
		if len(diffs) == 0 {
			t.Logf("the mount matches the final scan (%d repos, %d bytes) after %d extra look(s)", len(scan.Repos), scan.SizeOnDisk, attempt)
			break
		}
		if time.Now().After(deadline) || attempt >= 60 {
			sort.Strings(diffs)
			for i, df := range diffs {
				if i == 40 {
					t.Errorf("... %d more", len(diffs)-40)
					break
				}
				t.Errorf("final view vs fresh scan: %s", df)
			}
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	d.checkAlive(t)
}
