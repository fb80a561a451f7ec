// Package testcache builds Hugging Face caches for tests: the conformance
// caches written by the real client (from layout.json) and the odd or
// corrupted cases (from the corpus's own case builder).
package testcache

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Conformance is testdata/conformance, the copy of the shared corpus.
func Conformance() string { return filepath.Join(Root(), "testdata", "conformance") }

// Layout is the layout.json format.
type Layout struct {
	Entries []struct {
		Path   string `json:"path"`
		Type   string `json:"type"`
		Target string `json:"target"`
		Base64 string `json:"base64"`
		Mode   string `json:"mode"`
	} `json:"entries"`
}

// Materialize recreates a layout.json under dir (which must not exist),
// as materialize.py does.
func Materialize(t testing.TB, layoutPath, dir string) {
	t.Helper()
	data, err := os.ReadFile(layoutPath)
	if err != nil {
		t.Fatal(err)
	}
	var l Layout
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range l.Entries {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		switch e.Type {
		case "dir":
			must(t, os.MkdirAll(p, 0o755))
		case "symlink":
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			target := e.Target
			if strings.HasPrefix(target, "{CACHE_DIR}") {
				target = dir + strings.TrimPrefix(target, "{CACHE_DIR}")
			}
			must(t, os.Symlink(target, p))
		case "file":
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			content, err := base64.StdEncoding.DecodeString(e.Base64)
			must(t, err)
			must(t, os.WriteFile(p, content, 0o644))
			if e.Mode != "" {
				mode, err := strconv.ParseUint(strings.TrimPrefix(e.Mode, "0o"), 8, 32)
				must(t, err)
				must(t, os.Chmod(p, os.FileMode(mode)))
			}
		default:
			t.Fatalf("unknown layout entry type %q", e.Type)
		}
	}
}

// Basic materializes the conformance basic cache in a fresh temp dir and
// returns its path.
func Basic(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "hub")
	Materialize(t, filepath.Join(Conformance(), "goldens", "basic", "layout.json"), dir)
	return dir
}

// Cases runs the corpus's case builder (make_corrupt_cases.py) into a
// fresh temp dir and returns it: one cache per case, plus _outside/.
func Cases(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "cases")
	cmd := exec.Command("python3", filepath.Join(Conformance(), "make_corrupt_cases.py"), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make_corrupt_cases.py: %v\n%s", err, b)
	}
	return out
}

// CaseNames lists the cases that have a golden scan (not the _ errors).
func CaseNames(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(Conformance(), "goldens", "cases", "*.scan.json"))
	must(t, err)
	var names []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".scan.json")
		if !strings.HasPrefix(name, "_") {
			names = append(names, name)
		}
	}
	return names
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
