package cachecore

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hfcachefs/hfcachefs/internal/testcache"
)

// The tests in this file hold cachecore to what huggingface_hub itself
// answered on the same caches (testdata/conformance/goldens).

func readGolden(t *testing.T, rel string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testcache.Conformance(), "goldens", rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// relPath makes an absolute path relative to the cache dir, as goldens are.
func relPath(cacheDir, p string) string {
	rel, err := filepath.Rel(cacheDir, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(rel)
}

// goldenScan renders a scan in the goldens' form: relative paths, no
// times, warnings with {CACHE_DIR} and sorted.
func goldenScan(c *CacheInfo) map[string]any {
	doc := c.Document()
	for i := range doc.Repos {
		r := &doc.Repos[i]
		r.RepoPath = relPath(c.CacheDir, r.RepoPath)
		for j := range r.Revisions {
			rv := &r.Revisions[j]
			rv.SnapshotPath = relPath(c.CacheDir, rv.SnapshotPath)
			for k := range rv.Files {
				f := &rv.Files[k]
				f.FilePath = relPath(c.CacheDir, f.FilePath)
				f.BlobPath = relPath(c.CacheDir, f.BlobPath)
			}
		}
	}
	for i := range doc.IncompleteFiles {
		doc.IncompleteFiles[i].FilePath = relPath(c.CacheDir, doc.IncompleteFiles[i].FilePath)
	}
	var m map[string]any
	data, _ := json.Marshal(doc)
	_ = json.Unmarshal(data, &m)
	delete(m, "cache_dir")
	delete(m, "notices")
	stripKeys(m, "last_accessed", "last_modified", "blob_last_accessed", "blob_last_modified")
	var warnings, types []any
	for _, w := range doc.Warnings {
		warnings = append(warnings, strings.ReplaceAll(w, c.CacheDir, "{CACHE_DIR}"))
		types = append(types, "CorruptedCacheException")
	}
	sort.Slice(warnings, func(i, j int) bool { return warnings[i].(string) < warnings[j].(string) })
	m["warnings"] = orEmpty(warnings)
	m["warning_types"] = orEmpty(types)
	return m
}

func orEmpty(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

func stripKeys(v any, keys ...string) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range keys {
			delete(x, k)
		}
		for _, e := range x {
			stripKeys(e, keys...)
		}
	case []any:
		for _, e := range x {
			stripKeys(e, keys...)
		}
	}
}

// diffJSON lists the differences between two decoded JSON values.
func diffJSON(path string, want, got any, out *[]string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: want object, got %v", path, got))
			return
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		for k := range keys {
			diffJSON(path+"."+k, w[k], g[k], out)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			*out = append(*out, fmt.Sprintf("%s: want %v, got %v", path, want, got))
			return
		}
		for i := range w {
			diffJSON(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], out)
		}
	default:
		if !reflect.DeepEqual(want, got) {
			*out = append(*out, fmt.Sprintf("%s: want %v, got %v", path, want, got))
		}
	}
}

func assertJSONEqual(t *testing.T, want, got any) {
	t.Helper()
	var w, g any
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	_ = json.Unmarshal(wb, &w)
	_ = json.Unmarshal(gb, &g)
	var diffs []string
	diffJSON("$", w, g, &diffs)
	sort.Strings(diffs)
	for _, d := range diffs {
		t.Error(d)
	}
}

func TestConformanceBasicScan(t *testing.T) {
	dir := testcache.Basic(t)
	info, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	readGolden(t, "basic/scan.json", &want)
	assertJSONEqual(t, want, goldenScan(info))
}

func TestConformanceCases(t *testing.T) {
	root := testcache.Cases(t)
	names := testcache.CaseNames(t)
	if len(names) != 26 {
		t.Fatalf("expected the 26 cases of the corpus, found %d", len(names))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			info, err := Scan(filepath.Join(root, name))
			if err != nil {
				t.Fatal(err)
			}
			var want map[string]any
			readGolden(t, "cases/"+name+".scan.json", &want)
			assertJSONEqual(t, want, goldenScan(info))
		})
	}
}

func TestConformanceScanErrors(t *testing.T) {
	tmp := t.TempDir()
	var missing, file struct{ Error string }
	readGolden(t, "cases/_missing-dir.scan.json", &missing)
	readGolden(t, "cases/_file-not-dir.scan.json", &file)

	_, err := Scan(filepath.Join(tmp, "does-not-exist"))
	var nf *CacheNotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("missing dir: got %v", err)
	}
	if got := "CacheNotFound: " + strings.ReplaceAll(err.Error(), tmp, "{TMP}"); got != missing.Error {
		t.Errorf("missing dir:\n got %s\nwant %s", got, missing.Error)
	}

	if err := os.WriteFile(filepath.Join(tmp, "a-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Scan(filepath.Join(tmp, "a-file"))
	var nd *NotADirectoryError
	if !errors.As(err, &nd) {
		t.Fatalf("file as cache dir: got %v", err)
	}
	if got := "ValueError: " + strings.ReplaceAll(err.Error(), tmp, "{TMP}"); got != file.Error {
		t.Errorf("file as cache dir:\n got %s\nwant %s", got, file.Error)
	}
}

type goldenPlan struct {
	Hashes []string       `json:"hashes"`
	Plan   map[string]any `json:"plan"`
}

func relPlan(cacheDir string, s *DeleteStrategy) PlanDoc {
	doc := s.Document()
	for _, l := range [][]string{doc.Blobs, doc.Refs, doc.Repos, doc.Snapshots} {
		for i := range l {
			l[i] = relPath(cacheDir, l[i])
		}
		sort.Strings(l)
	}
	return doc
}

func checkPlans(t *testing.T, dir, golden string) {
	var plans []goldenPlan
	readGolden(t, golden, &plans)
	if len(plans) == 0 {
		t.Fatalf("%s: no plans", golden)
	}
	info, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plans {
		t.Run(strings.Join(p.Hashes, "+"), func(t *testing.T) {
			assertJSONEqual(t, p.Plan, relPlan(info.CacheDir, info.DeleteRevisions(p.Hashes...)))
		})
	}
}

func TestConformanceBasicPlans(t *testing.T) {
	checkPlans(t, testcache.Basic(t), "basic/plans.json")
}

func TestConformanceCasePlans(t *testing.T) {
	root := testcache.Cases(t)
	files, _ := filepath.Glob(filepath.Join(testcache.Conformance(), "goldens", "cases", "*.plans.json"))
	if len(files) == 0 {
		t.Fatal("no case plans")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".plans.json")
		t.Run(name, func(t *testing.T) { checkPlans(t, filepath.Join(root, name), "cases/"+name+".plans.json") })
	}
}

// layoutOf lists a cache like layout.json does (without .locks/).
func layoutOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := relPath(dir, p)
		if rel == "." {
			return nil
		}
		if rel == ".locks" || strings.HasPrefix(rel, ".locks/") {
			if fi.IsDir() && rel == ".locks" {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "symlink " + target
		case fi.IsDir():
			out[rel] = "dir"
		default:
			out[rel] = "file"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func goldenLayout(t *testing.T, rel string) map[string]string {
	var l testcache.Layout
	readGolden(t, rel, &l)
	out := map[string]string{}
	for _, e := range l.Entries {
		if e.Path == ".locks" || strings.HasPrefix(e.Path, ".locks/") {
			continue
		}
		switch e.Type {
		case "symlink":
			out[e.Path] = "symlink " + e.Target
		case "dir":
			out[e.Path] = "dir"
		default:
			out[e.Path] = "file"
		}
	}
	return out
}

func TestConformanceDeleteC1(t *testing.T) {
	dir := testcache.Basic(t)
	var golden struct {
		goldenPlan
		Blobs     []string `json:"blobs"`
		Snapshots []string `json:"snapshots"`
		Refs      []string `json:"refs"`
		Repos     []string `json:"repos"`
	}
	readGolden(t, "basic/delete_c1/delete.json", &golden)
	info, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	var hashes []string
	for _, s := range golden.Snapshots {
		hashes = append(hashes, filepath.Base(s))
	}
	plan := info.DeleteRevisions(hashes...)
	got := relPlan(info.CacheDir, plan)
	if !reflect.DeepEqual(got.Blobs, golden.Blobs) || !reflect.DeepEqual(got.Refs, golden.Refs) || !reflect.DeepEqual(got.Snapshots, golden.Snapshots) {
		t.Fatalf("plan differs from delete.json: %+v", got)
	}
	rep, err := plan.Execute(ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Skipped) > 0 || len(rep.Missing) > 0 {
		t.Errorf("unexpected skips %v / missing %v", rep.Skipped, rep.Missing)
	}
	want := goldenLayout(t, "basic/delete_c1/layout_after.json")
	gotLayout := layoutOf(t, dir)
	if !reflect.DeepEqual(want, gotLayout) {
		for k, v := range want {
			if gotLayout[k] != v {
				t.Errorf("%s: want %.60s, got %.60s", k, v, gotLayout[k])
			}
		}
		for k, v := range gotLayout {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: unexpected %.60s", k, v)
			}
		}
	}
	// What stays keeps its bytes.
	var before testcache.Layout
	readGolden(t, "basic/layout.json", &before)
	for _, e := range before.Entries {
		if e.Type != "file" || gotLayout[e.Path] != "file" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil || base64.StdEncoding.EncodeToString(data) != e.Base64 {
			t.Errorf("%s changed by the deletion (%v)", e.Path, err)
		}
	}
	after, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wantScan map[string]any
	readGolden(t, "basic/delete_c1/scan_after.json", &wantScan)
	assertJSONEqual(t, wantScan, goldenScan(after))
}

func TestConformanceLookups(t *testing.T) {
	dir := testcache.Basic(t)
	var lookups []struct {
		Args   []string          `json:"args"`
		Result map[string]string `json:"result"`
	}
	readGolden(t, "basic/lookups.json", &lookups)
	if len(lookups) != 43 {
		t.Fatalf("expected 43 lookups, got %d", len(lookups))
	}
	for _, l := range lookups {
		t.Run(strings.Join(l.Args, " "), func(t *testing.T) {
			repoID, filename := l.Args[0], l.Args[1]
			var revision, repoType string
			for i := 2; i+1 < len(l.Args); i += 2 {
				switch l.Args[i] {
				case "--revision":
					revision = l.Args[i+1]
				case "--repo-type":
					repoType = l.Args[i+1]
				}
			}
			res, err := TryLoadFromCache(dir, repoID, filename, revision, repoType)
			got := map[string]string{}
			switch {
			case err != nil:
				kind := "ValueError"
				var ve *ValidationError
				if errors.As(err, &ve) {
					kind = "HFValidationError"
				}
				got["error"] = kind + ": " + err.Error()
			case res.Status == Cached:
				got["status"] = string(res.Status)
				got["path"] = strings.TrimPrefix(res.Path, dir+"/")
				if !strings.HasPrefix(res.Path, dir+"/") {
					t.Errorf("path %q is not the raw join under the cache dir", res.Path)
				}
			default:
				got["status"] = string(res.Status)
			}
			if want := l.Result; !reflect.DeepEqual(want, got) {
				t.Errorf("want %v, got %v", want, got)
			}
		})
	}
}

func TestConformanceAssets(t *testing.T) {
	var cases []struct {
		Args   []string       `json:"args"`
		Result map[string]any `json:"result"`
	}
	readGolden(t, "assets.json", &cases)
	dir := t.TempDir()
	// The golden's "afile" case: a file where the library folder should be.
	if err := os.WriteFile(filepath.Join(dir, "afile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(strings.Join(c.Args, ","), func(t *testing.T) {
			args := append(append([]string(nil), c.Args...), "default", "default")
			if len(c.Args) >= 2 {
				args[1] = c.Args[1]
			}
			if len(c.Args) >= 3 {
				args[2] = c.Args[2]
			}
			path, err := CachedAssetsPath(dir, args[0], args[1], args[2], OSEnv)
			got := map[string]any{}
			if err != nil {
				got["error"] = "ValueError: " + strings.ReplaceAll(err.Error(), dir, "{CACHE_DIR}")
			} else {
				fi, statErr := os.Stat(path)
				got["path"] = relPath(dir, path)
				got["is_dir"] = statErr == nil && fi.IsDir()
			}
			if !reflect.DeepEqual(c.Result, got) {
				t.Errorf("want %v, got %v", c.Result, got)
			}
		})
	}
}
