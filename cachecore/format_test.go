package cachecore

import (
	"strings"
	"testing"
)

func TestFormatSize(t *testing.T) {
	cases := map[int64]string{
		0: "0.0", 1: "1.0", 16: "16.0", 999: "999.0", 1000: "1.0K", 1049: "1.0K", 1050: "1.1K",
		12345: "12.3K", 1 << 30: "1.1G", -5: "-5.0", 999950: "1000.0K", 999_999_999: "1000.0M",
		1_000_000_000_000_000_000: "1.0E",
	}
	for n, want := range cases {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFormatTimesince(t *testing.T) {
	const day = 86400.0
	cases := []struct {
		delta float64
		want  string
	}{
		{1, "a few seconds ago"}, {15, "a few seconds ago"}, {19.9, "a few seconds ago"}, {-100, "a few seconds ago"},
		{20, "20 seconds ago"}, {25, "25 seconds ago"}, {60, "60 seconds ago"}, {80, "1 minute ago"},
		{89, "1 minute ago"}, {90, "2 minutes ago"}, {1000, "17 minutes ago"}, {3599, "60 minutes ago"},
		{3600, "60 minutes ago"}, {4000, "1 hour ago"}, {5399, "1 hour ago"}, {5400, "2 hours ago"},
		{8000, "2 hours ago"}, {1.5 * day, "2 days ago"}, {6.6 * day, "1 week ago"}, {7 * day, "1 week ago"},
		{13 * day, "2 weeks ago"}, {45 * day, "6 weeks ago"}, {46 * day, "2 months ago"},
		{8.2 * 30 * day, "8 months ago"}, {344 * day, "11 months ago"}, {345 * day, "1 year ago"},
		{365 * day, "1 year ago"}, {1.5 * 365 * day, "2 years ago"}, {2.5 * 365 * day, "2 years ago"},
		{2.6 * 365 * day, "3 years ago"}, {9.6 * 365 * day, "10 years ago"},
	}
	for _, c := range cases {
		if got := formatDelta(c.delta); got != c.want {
			t.Errorf("formatDelta(%v) = %q, want %q", c.delta, got, c.want)
		}
	}
	defer func(old func() float64) { Now = old }(Now)
	Now = func() float64 { return 1000 }
	if got := FormatTimesince(950); got != "50 seconds ago" {
		t.Errorf("FormatTimesince uses the clock: %q", got)
	}
}

func TestTabulateCurrentDialect(t *testing.T) {
	// The spec's capture of export_as_table at HEAD (NB FILES left-aligned,
	// no trailing separator, last column padded).
	got := Tabulate([][]string{
		{"ds", "dataset", "       999.0", "1", "a few seconds ago", "a few seconds ago", "main", "/srv/hf/hubdir/datasets--ds"},
		{"org/model", "model", "      125.0K", "3", "a few seconds ago", "a few seconds ago", "main, refs/pr/1, v1.0", "/srv/hf/hubdir/models--org--model"},
		{"u/s", "space", "        50.0", "1", "a few seconds ago", "a few seconds ago", "", "/srv/hf/hubdir/spaces--u--s"},
	}, []string{"REPO ID", "REPO TYPE", "SIZE ON DISK", "NB FILES", "LAST_ACCESSED", "LAST_MODIFIED", "REFS", "LOCAL PATH"}, nil)
	want := strings.Join([]string{
		"REPO ID   REPO TYPE SIZE ON DISK NB FILES LAST_ACCESSED     LAST_MODIFIED     REFS                  LOCAL PATH                       ",
		"--------- --------- ------------ -------- ----------------- ----------------- --------------------- ---------------------------------",
		"ds        dataset          999.0 1        a few seconds ago a few seconds ago main                  /srv/hf/hubdir/datasets--ds      ",
		"org/model model           125.0K 3        a few seconds ago a few seconds ago main, refs/pr/1, v1.0 /srv/hf/hubdir/models--org--model",
		"u/s       space             50.0 1        a few seconds ago a few seconds ago                       /srv/hf/hubdir/spaces--u--s      ",
	}, "\n")
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	right := Tabulate([][]string{{"a", "1"}, {"bbb", "22"}}, []string{"ID", "SIZE"}, map[int]Alignment{1: AlignRight})
	if right != "ID  SIZE\n--- ----\na      1\nbbb   22" {
		t.Errorf("right alignment:\n%s", right)
	}
}

func TestExportAsTableRowsAndOrder(t *testing.T) {
	defer func(old func() float64) { Now = old }(Now)
	Now = func() float64 { return 1e9 }
	rev := func(hash string, refs ...string) *RevisionInfo {
		return &RevisionInfo{CommitHash: hash, SnapshotPath: "/c/x/snapshots/" + hash, SizeOnDisk: 1500, LastModified: 1e9 - 7200, Refs: refs,
			Files: []*FileInfo{{}, {}}}
	}
	info := &CacheInfo{Repos: []*RepoInfo{
		{RepoID: "org/model", RepoType: "model", RepoPath: "/c/models--org--model", SizeOnDisk: 124966, NbFiles: 3,
			LastAccessed: 1e9 - 30, LastModified: 1e9 - 7200,
			Revisions: []*RevisionInfo{rev("aaaa", "main", "v1.0"), rev("bbbb", "refs/pr/1"), rev("cccc")}},
	}}
	lines := strings.Split(info.ExportAsTable(0), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "      125.0K 3        30 seconds ago 2 hours ago   main, refs/pr/1, v1.0 /c/models--org--model") {
		t.Errorf("verbosity 0:\n%s", strings.Join(lines, "\n"))
	}
	lines = strings.Split(info.ExportAsTable(1), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "REPO ID   REPO TYPE REVISION SIZE ON DISK NB FILES LAST_MODIFIED REFS") {
		t.Fatalf("verbosity 1:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[4], "cccc             1.5K 2        2 hours ago              /c/x/snapshots/cccc") {
		t.Errorf("detached revision row: %q", lines[4])
	}
}

func TestPyRepr(t *testing.T) {
	cases := map[string]string{
		"main": "'main'", "a\n": `'a\n'`, "it's": `"it's"`, `it's "q"`: `'it\'s "q"'`,
		"résumé ✓": "'résumé ✓'", "\x00\x7f": `'\x00\x7f'`, "tab\t": `'tab\t'`, "back\\": `'back\\'`,
	}
	for in, want := range cases {
		if got := PyRepr(in); got != want {
			t.Errorf("PyRepr(%q) = %s, want %s", in, got, want)
		}
	}
	got := pyDictOfSets(map[string][]string{"dead": {"v1", "main"}, "beef": {"refs/pr/1"}})
	if got != "{'beef': {'refs/pr/1'}, 'dead': {'main', 'v1'}}" {
		t.Errorf("pyDictOfSets: %s", got)
	}
}
