package mount

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// holdScript opens a file, reads its first half, says "held", waits for a
// line on stdin, then reads the rest and prints the whole file's sha256.
const holdScript = `
import hashlib, sys
with open(sys.argv[1], 'rb') as f:
    data = f.read(max(1, len(open(sys.argv[1], 'rb').read()) // 2))
    print('held', flush=True)
    sys.stdin.readline()
    data += f.read()
print(hashlib.sha256(data).hexdigest(), flush=True)
`

// inodeMap lists every file under dirs as path -> st_ino, by find.
func inodeMap(t *testing.T, mp string, dirs ...string) map[string]string {
	t.Helper()
	args := []string{}
	for _, d := range dirs {
		args = append(args, filepath.Join(mp, d))
	}
	args = append(args, "-type", "f", "-printf", `%i %p\n`)
	out := map[string]string{}
	for _, l := range lines(mustRun(t, "find", args...)) {
		ino, p, _ := strings.Cut(l, " ")
		out[p] = ino
	}
	return out
}

// After an idle spell the kernel forgets the inodes it held (the trimmer),
// except those in use; the tree then reads as before, with the same inode
// numbers, and a file held open across the trim keeps reading its bytes.
func TestTrimForgetsIdleInodes(t *testing.T) {
	needTool(t, "python3")
	cache, info := basicCache(t)
	m, mp := startMount(t, cache, Options{TrimAfter: time.Second})
	waitReady(t, m)

	repo := findRepo(t, info, "model", "acme/tiny-model")
	var held, heldSum string
	for _, rev := range repo.Revisions {
		for _, f := range rev.Files {
			if held == "" && slices.Contains(rev.Refs, "main") && f.SizeOnDisk > 1 {
				held = filepath.Join(mp, repoPath(repo), "by-ref/main", f.RelPath)
				heldSum = sha(readBlob(t, f))
			}
		}
	}
	if held == "" {
		t.Fatal("fixture: acme/tiny-model has no file of 2 bytes or more at main")
	}

	before := inodeMap(t, mp, "models", "datasets", "spaces")
	if len(before) == 0 {
		t.Fatal("find listed no file through the mount")
	}
	// The held file stays open across the trim.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reader := exec.CommandContext(ctx, "python3", "-c", holdScript, held)
	reader.Dir = "/"
	stdin, err := reader.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := reader.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reader.Process.Kill(); _ = reader.Wait() }()
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "held" {
		t.Fatalf("reader of %s did not start: %q", held, out.Text())
	}

	runsBefore := m.State().TrimInfo().Runs
	poll(t, 20*time.Second, "a trim after the walk", func() (bool, string) {
		st := m.State().TrimInfo()
		if !st.Supported {
			return true, "unsupported"
		}
		return st.Runs > runsBefore && st.Asked > 0, fmt.Sprintf("runs %d, asked %d", st.Runs, st.Asked)
	})
	st := m.State().TrimInfo()
	doc, _ := readStatus(t, mp)
	if !st.Supported {
		// A kernel before FUSE 7.45: nothing is trimmed, and the status says so.
		if doc.Mount.Trim.Supported || doc.Mount.Trim.Runs != 0 {
			t.Errorf(".status.json trim = %+v on a kernel without FUSE_NOTIFY_PRUNE", doc.Mount.Trim)
		}
		t.Logf("this kernel does not take FUSE_NOTIFY_PRUNE: nothing trimmed")
	} else {
		if st.KnownPeak < len(before) {
			t.Errorf("the kernel held %d nodes before the trim, fewer than the %d files walked", st.KnownPeak, len(before))
		}
		// Left: the root, and the held file with its folders up to it
		// (models/acme/tiny-model/by-ref/main/<file>, maybe a few more).
		if st.KnownAfter > 12 || st.KnownAfter < 2 {
			t.Errorf("after the trim the kernel holds %d nodes, want the held file and its folders (2..12)", st.KnownAfter)
		}
		if st.Error != "" {
			t.Errorf("the trim's notification failed: %s", st.Error)
		}
		if !doc.Mount.Trim.Supported || doc.Mount.Trim.Runs < 1 || doc.Mount.Trim.After != "1s" || doc.Mount.Trim.Last == nil {
			t.Errorf(".status.json trim = %+v, want a run reported", doc.Mount.Trim)
		}
	}

	// The held file reads on.
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if !out.Scan() || out.Text() != heldSum {
		t.Errorf("the file held open across the trim read %q, want sha256 %s", out.Text(), heldSum)
	}

	// Same tree, same inode numbers, same bytes.
	after := inodeMap(t, mp, "models", "datasets", "spaces")
	if len(after) != len(before) {
		t.Errorf("after the trim find lists %d files, before %d", len(after), len(before))
	}
	for p, ino := range before {
		if after[p] != ino {
			t.Errorf("%s: inode %s after the trim, %s before", p, after[p], ino)
		}
	}
	for _, r := range info.Repos {
		for _, rev := range r.Revisions {
			for _, f := range rev.Files {
				p := filepath.Join(mp, repoPath(r), "by-commit", rev.CommitHash, f.RelPath)
				if f.Blob == nil || f.Blob.Outside {
					continue
				}
				if got, want := sha(catBytes(t, p)), sha(readBlob(t, f)); got != want {
					t.Errorf("%s after the trim: sha256 %s, want %s", p, got, want)
				}
			}
		}
	}
}
