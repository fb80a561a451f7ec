package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/hfcachefs/hfcachefs/cachecore"
)

// outputMode is hf's --format: human, agent, json or quiet.
type outputMode string

const (
	modeHuman outputMode = "human"
	modeAgent outputMode = "agent"
	modeJSON  outputMode = "json"
	modeQuiet outputMode = "quiet"
)

// outputOptions are hf's global formatting flags.
type outputOptions struct {
	format     string
	json       bool
	quiet      bool
	noTruncate bool
}

// AddFlags registers --format, --json, -q/--quiet and --no-truncate.
func (o *outputOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.format, "format", "auto", "output format: auto, human, agent, json or quiet")
	fs.BoolVar(&o.json, "json", false, "same as --format json")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "same as --format quiet")
	fs.BoolVar(&o.noTruncate, "no-truncate", false, "do not truncate table cells to the terminal width")
}

func (o *outputOptions) mode() (outputMode, error) {
	switch {
	case o.json:
		return modeJSON, nil
	case o.quiet:
		return modeQuiet, nil
	}
	switch o.format {
	case "auto", "human":
		return modeHuman, nil
	case "agent":
		return modeAgent, nil
	case "json":
		return modeJSON, nil
	case "quiet":
		return modeQuiet, nil
	}
	return "", usageErrorf("Invalid value for '--format': '%s' is not one of 'auto', 'human', 'agent', 'json', 'quiet'.", o.format)
}

// out mirrors huggingface_hub's CLI output object (cli/_output.py).
type out struct {
	mode       outputMode
	stdout     io.Writer
	stderr     io.Writer
	stdin      io.Reader
	noTruncate bool
	color      bool // stdout is a terminal and NO_COLOR is unset
	colorErr   bool // same for stderr
	columns    int  // width tables are cut to in human mode
	stdinTTY   bool
}

func newOut(env *cliEnv, mode outputMode, noTruncate bool) *out {
	o := &out{mode: mode, stdout: env.stdout, stderr: env.stderr, stdin: env.stdin, noTruncate: noTruncate}
	noColor := env.getenv("NO_COLOR") != ""
	o.color = !noColor && isTerminal(env.stdout)
	o.colorErr = !noColor && isTerminal(env.stderr)
	o.stdinTTY = isTerminal(env.stdin)
	o.columns = 80
	if c, err := strconv.Atoi(env.getenv("COLUMNS")); err == nil && c > 0 {
		o.columns = c
	} else if f, ok := env.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			o.columns = w
		}
	}
	return o
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

const (
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiGray   = "\x1b[90m"
	ansiReset  = "\x1b[0m"
)

func paint(on bool, codes, s string) string {
	if !on {
		return s
	}
	return codes + s + ansiReset
}

var ansiPattern = regexp.MustCompile("\x1b\\[[0-9;]*m")

// text prints a message for people (human and agent modes only).
func (o *out) text(msg string) {
	switch o.mode {
	case modeHuman:
		fmt.Fprintln(o.stdout, msg)
	case modeAgent:
		fmt.Fprintln(o.stdout, ansiPattern.ReplaceAllString(msg, ""))
	}
}

func (o *out) warning(msg string) {
	fmt.Fprintln(o.stderr, paint(o.colorErr && o.mode == modeHuman, ansiYellow, "Warning: "+msg))
}

func (o *out) error(msg string) {
	fmt.Fprintln(o.stderr, paint(o.colorErr && o.mode == modeHuman, ansiBold+ansiRed, "Error: "+msg))
}

func (o *out) hint(msg string) {
	if o.mode == modeQuiet {
		return
	}
	fmt.Fprintln(o.stderr, paint(o.colorErr && o.mode == modeHuman, ansiGray, "Hint: "+msg))
}

// kv is one ordered key/value of a result or a table row.
type kv struct {
	key   string
	value any
}

// result prints the outcome of a command with its data.
func (o *out) result(msg string, data ...kv) {
	switch o.mode {
	case modeHuman:
		fmt.Fprintln(o.stdout, paint(o.color, ansiGreen, "✓ "+msg))
		for _, d := range data {
			if d.value != nil {
				fmt.Fprintf(o.stdout, "  %s: %s\n", d.key, pyStr(d.value))
			}
		}
	case modeAgent:
		if len(data) == 0 {
			fmt.Fprintln(o.stdout, msg)
			return
		}
		var parts []string
		for _, d := range data {
			if d.value != nil {
				parts = append(parts, d.key+"="+pyStr(d.value))
			}
		}
		fmt.Fprintln(o.stdout, strings.Join(parts, " "))
	case modeJSON:
		fmt.Fprintln(o.stdout, pyJSONObject(data))
	case modeQuiet:
		for _, d := range data {
			if d.value != nil {
				fmt.Fprintln(o.stdout, pyStr(d.value))
				return
			}
		}
	}
}

// errAborted is click's Abort: the user said no.
var errAborted = errors.New("Aborted!")

// confirm asks "msg [y/N]: " on a terminal; without one, or in a machine
// mode, it refuses unless --yes was given.
func (o *out) confirm(msg string, yes bool) error {
	if yes {
		return nil
	}
	if o.mode != modeHuman || !o.stdinTTY {
		return fmt.Errorf("%s Use --yes to skip confirmation.", msg)
	}
	fmt.Fprintf(o.stdout, "%s [y/N]: ", msg)
	line, _ := bufio.NewReader(o.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errAborted
}

// table prints rows; each row is an ordered list of key/values whose keys
// are the lower-case headers. idKey names the column quiet mode prints.
func (o *out) table(rows [][]kv, headers []string, idKey string, rightAligned map[string]bool) {
	if len(rows) == 0 {
		switch o.mode {
		case modeHuman, modeAgent:
			fmt.Fprintln(o.stdout, "No results found.")
		case modeJSON:
			fmt.Fprintln(o.stdout, "[]")
		}
		return
	}
	switch o.mode {
	case modeJSON:
		items := make([]string, len(rows))
		for i, r := range rows {
			items[i] = pyJSONObject(r)
		}
		fmt.Fprintln(o.stdout, "["+strings.Join(items, ", ")+"]")
	case modeQuiet:
		for _, r := range rows {
			for _, c := range r {
				if c.key == idKey {
					fmt.Fprintln(o.stdout, pyStr(c.value))
				}
			}
		}
	case modeAgent:
		fmt.Fprintln(o.stdout, strings.Join(headers, "\t"))
		for _, r := range rows {
			cells := make([]string, len(headers))
			for i, h := range headers {
				cells[i] = collapseSpace(pyStr(cellValue(r, h)))
			}
			fmt.Fprintln(o.stdout, strings.Join(cells, "\t"))
		}
	default:
		upper := make([]string, len(headers))
		align := map[int]cachecore.Alignment{}
		for i, h := range headers {
			upper[i] = strings.ToUpper(h)
			if rightAligned[h] {
				align[i] = cachecore.AlignRight
			}
		}
		cells := make([][]string, len(rows))
		for j, r := range rows {
			cells[j] = make([]string, len(headers))
			for i, h := range headers {
				cells[j][i] = collapseSpace(humanCell(cellValue(r, h)))
			}
		}
		truncated := false
		if !o.noTruncate {
			truncated = fitColumns(upper, cells, o.columns)
		}
		fmt.Fprintln(o.stdout, cachecore.Tabulate(cells, upper, align))
		if truncated {
			o.hint("Use `--no-truncate` or `--format json` to display full values.")
		}
	}
}

func cellValue(r []kv, key string) any {
	for _, c := range r {
		if c.key == key {
			return c.value
		}
	}
	return nil
}

// humanCell: lists joined with ", ", None as "".
func humanCell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []string:
		return strings.Join(x, ", ")
	}
	return pyStr(v)
}

var spaceRun = regexp.MustCompile(`\s+`)

func collapseSpace(s string) string { return spaceRun.ReplaceAllString(s, " ") }

// fitColumns shortens the widest columns (cells end in "…") until the
// table fits in width; it reports whether anything was cut.
func fitColumns(headers []string, rows [][]string, width int) bool {
	n := len(headers)
	widths := make([]int, n)
	for i, h := range headers {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	total := func() int {
		t := n - 1
		for _, w := range widths {
			t += w
		}
		return t
	}
	if total() <= width {
		return false
	}
	for total() > width {
		widest := 0
		for i := range widths {
			if widths[i] > widths[widest] {
				widest = i
			}
		}
		// Never below the header or 8 columns: a table a bit too wide
		// beats unreadable cells.
		floor := max(8, utf8.RuneCountInString(headers[widest]))
		if widths[widest] <= floor {
			break
		}
		widths[widest]--
	}
	cut := false
	for _, r := range rows {
		for i, c := range r {
			if utf8.RuneCountInString(c) > widths[i] {
				runes := []rune(c)
				r[i] = string(runes[:widths[i]-1]) + "…"
				cut = true
			}
		}
	}
	return cut
}

// pyStr is Python's str() of the values the CLI prints.
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = cachecore.PyRepr(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// pyJSONObject is json.dumps of a dict with Python's defaults: ", " and
// ": " separators, non-ASCII escaped as \uXXXX, no HTML escaping.
func pyJSONObject(data []kv) string {
	parts := make([]string, len(data))
	for i, d := range data {
		parts[i] = pyJSON(d.key) + ": " + pyJSON(d.value)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func pyJSON(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return pyJSONString(x)
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = pyJSONString(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []kv:
		return pyJSONObject(x)
	case map[string]string:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		items := make([]kv, len(keys))
		for i, k := range keys {
			items[i] = kv{k, x[k]}
		}
		return pyJSONObject(items)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func pyJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || (r > 0x7f && r <= 0xffff):
			fmt.Fprintf(&b, `\u%04x`, r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// formatSize is huggingface_hub's size format, the contract of its outputs.
func formatSize(n int64) string { return cachecore.FormatSize(n) }
