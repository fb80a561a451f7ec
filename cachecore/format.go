package cachecore

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// FormatSize is huggingface_hub's _format_size: base 1000, one decimal, no
// "B"; the unit test is on the unrounded value, so 999.95 prints "1000.0".
func FormatSize(num int64) string {
	x := float64(num)
	for _, unit := range []string{"", "K", "M", "G", "T", "P", "E", "Z"} {
		if math.Abs(x) < 1000.0 {
			return strconv.FormatFloat(x, 'f', 1, 64) + unit
		}
		x /= 1000.0
	}
	return strconv.FormatFloat(x, 'f', 1, 64) + "Y"
}

type timeChunk struct {
	label   string
	divider float64
	max     float64 // 0: no maximum
}

var timeChunks = []timeChunk{
	{"second", 1, 60},
	{"minute", 60, 60},
	{"hour", 60 * 60, 24},
	{"day", 60 * 60 * 24, 6},
	{"week", 60 * 60 * 24 * 7, 6},
	{"month", 60 * 60 * 24 * 30, 11},
	{"year", 60 * 60 * 24 * 365, 0},
}

// Now is the clock used by the humanised times; tests replace it.
var Now = func() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// FormatTimesince is huggingface_hub's format_timesince(ts).
func FormatTimesince(ts float64) string {
	return formatDelta(Now() - ts)
}

func formatDelta(delta float64) string {
	if delta < 20 {
		return "a few seconds ago"
	}
	for _, c := range timeChunks {
		value := math.RoundToEven(delta / c.divider)
		if c.max == 0 || value <= c.max {
			plural := ""
			if value > 1 {
				plural = "s"
			}
			return fmt.Sprintf("%d %s%s ago", int64(value), c.label, plural)
		}
	}
	panic("unreachable")
}

// Alignment of a table column.
type Alignment int

// Column alignments of Tabulate.
const (
	AlignLeft Alignment = iota
	AlignRight
)

// Tabulate is huggingface_hub's current tabulate (v1.5+): columns joined by
// one space, every column left-aligned unless right is asked for, the last
// column padded too, a dash rule under the header, no final newline.
// Widths count code points, as Python's len() does.
func Tabulate(rows [][]string, headers []string, align map[int]Alignment) string {
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, row := range rows {
		for i, cell := range row {
			if n := utf8.RuneCountInString(cell); n > widths[i] {
				widths[i] = n
			}
		}
	}
	var b strings.Builder
	writeRow := func(cells []string) {
		for i, cell := range cells {
			if i > 0 {
				b.WriteByte(' ')
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if align[i] == AlignRight {
				b.WriteString(pad + cell)
			} else {
				b.WriteString(cell + pad)
			}
		}
	}
	writeRow(headers)
	b.WriteByte('\n')
	rule := make([]string, len(headers))
	for i, w := range widths {
		rule[i] = strings.Repeat("-", w)
	}
	b.WriteString(strings.Join(rule, " "))
	for _, row := range rows {
		b.WriteByte('\n')
		writeRow(row)
	}
	return b.String()
}

// ExportAsTable is HFCacheInfo.export_as_table(verbosity): one row per repo
// at verbosity 0, one per revision otherwise, sorted by repo path (then hash).
func (c *CacheInfo) ExportAsTable(verbosity int) string {
	if verbosity == 0 {
		var rows [][]string
		for _, repo := range c.Repos {
			rows = append(rows, []string{
				repo.RepoID,
				repo.RepoType,
				fmt.Sprintf("%12s", repo.SizeOnDiskStr()),
				strconv.Itoa(repo.NbFiles),
				FormatTimesince(repo.LastAccessed),
				FormatTimesince(repo.LastModified),
				strings.Join(repo.RefNames(), ", "),
				repo.RepoPath,
			})
		}
		return Tabulate(rows, []string{"REPO ID", "REPO TYPE", "SIZE ON DISK", "NB FILES", "LAST_ACCESSED", "LAST_MODIFIED", "REFS", "LOCAL PATH"}, nil)
	}
	var rows [][]string
	for _, repo := range c.Repos {
		for _, rev := range repo.Revisions {
			rows = append(rows, []string{
				repo.RepoID,
				repo.RepoType,
				rev.CommitHash,
				fmt.Sprintf("%12s", rev.SizeOnDiskStr()),
				strconv.Itoa(rev.NbFiles()),
				FormatTimesince(rev.LastModified),
				strings.Join(rev.Refs, ", "),
				rev.SnapshotPath,
			})
		}
	}
	return Tabulate(rows, []string{"REPO ID", "REPO TYPE", "REVISION", "SIZE ON DISK", "NB FILES", "LAST_MODIFIED", "REFS", "LOCAL PATH"}, nil)
}
