package main

import (
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hfcachefs/hfcachefs/cachecore"
)

var lsCommand = &command{
	name:    "ls",
	aliases: []string{"list"},
	summary: "list cached repos or revisions (hf cache ls), with filters and sorting",
	usage:   "[--cache-dir DIR] [--revisions] [-f EXPR]... [--sort KEY[:asc|:desc]] [--limit N] [--show-warnings] [--format auto|human|agent|json|quiet]",
	help: `
Lists the cache as 'hf cache ls' (alias 'list') does: one row per repo, or one
per revision with --revisions, ordered by ID (type/repo_id, case-sensitive),
then by commit hash. A summary line follows the table.

Filters (-f/--filter, repeatable, all must hold): KEY OP VALUE with
  size      =, !=, >, <, >=, <=   bytes, or a number with k kb m mb g gb t tb
                                  p pb (decimal: 1k = 1000), e.g. 'size>1GB'
  accessed  =, !=, >, <, >=, <=   time since the repo was last accessed, in
  modified                        s m h d w mo y (m is minutes, mo 30 days,
                                  y 365 days), e.g. 'accessed>7d': unused
                                  for more than a week
  type      =                     model, dataset or space
  refs      =                     has this ref (e.g. 'refs=main')
size and modified are the revision's with --revisions, else the repo's;
accessed is always the repo's.

--sort name (ascending) or size, accessed, modified (descending, biggest or
newest first); add ':asc' or ':desc' to choose. Ties keep the ID order.
--limit N keeps the first N rows after filtering and sorting.

Corrupted repos are left out, as upstream: a warning counts them, and
--show-warnings prints each. Leftover .incomplete downloads are mentioned
with their total size (remove them with 'hfcachefs prune').

--format json prints the rows with the same humanised values as the table;
-q/--quiet prints only the IDs (commit hashes with --revisions).

Exit status: 0 on success (warnings included), 1 on error (e.g. no cache),
2 on a bad invocation (e.g. an invalid filter).`,
}

func init() {
	lsCommand.run = runLs
	register(lsCommand)
}

// lsNegatedBool is the --no-X half of click's --X/--no-X boolean pair.
type lsNegatedBool struct{ p *bool }

func (n lsNegatedBool) String() string { return "false" }
func (n lsNegatedBool) Type() string   { return "bool" }
func (n lsNegatedBool) Set(s string) error {
	switch s {
	case "true":
		*n.p = false
	case "false":
		*n.p = true
	default:
		return fmt.Errorf("invalid boolean %q", s)
	}
	return nil
}

// lsBoolPair registers --name and --no-name on one bool; the last one wins.
func lsBoolPair(fs *pflag.FlagSet, p *bool, name, usage string) {
	fs.BoolVar(p, name, false, usage)
	fs.Var(lsNegatedBool{p}, "no-"+name, "undo --"+name)
	fs.Lookup("no-" + name).NoOptDefVal = "true"
}

// lsRawInt keeps an int flag's text, to be checked as click would.
type lsRawInt string

func (r *lsRawInt) String() string     { return string(*r) }
func (r *lsRawInt) Type() string       { return "int" }
func (r *lsRawInt) Set(s string) error { *r = lsRawInt(s); return nil }

// lsSortChoices are the values of hf cache ls --sort, in click's order.
var lsSortChoices = func() []string {
	var out []string
	for _, k := range []string{"accessed", "modified", "name", "size"} {
		out = append(out, k, k+":asc", k+":desc")
	}
	return out
}()

func runLs(env *cliEnv, args []string) error {
	fs := newFlags(env, lsCommand)
	var (
		cache        cacheDirOption
		output       outputOptions
		revisions    bool
		showWarnings bool
		filters      []string
		sortExpr     string
		limitStr     string
	)
	cache.AddFlags(fs)
	lsBoolPair(fs, &revisions, "revisions", "one row per revision instead of one per repo")
	fs.StringArrayVarP(&filters, "filter", "f", nil, "filter rows, e.g. 'size>1GB', 'type=model', 'accessed>7d' (repeatable, ANDed)")
	fs.StringVar(&sortExpr, "sort", "", "sort by name, size, accessed or modified, optionally with :asc or :desc")
	fs.Var((*lsRawInt)(&limitStr), "limit", "keep only the first N rows after filtering and sorting")
	lsBoolPair(fs, &showWarnings, "show-warnings", "print each cache inconsistency found while scanning")
	output.AddFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	mode, err := output.mode()
	if err != nil {
		return err
	}
	var sortKey, sortOrder string
	if fs.Changed("sort") {
		ok := false
		for _, c := range lsSortChoices {
			ok = ok || c == sortExpr
		}
		if !ok {
			quoted := make([]string, len(lsSortChoices))
			for i, c := range lsSortChoices {
				quoted[i] = "'" + c + "'"
			}
			return usageErrorf("Invalid value for '--sort': '%s' is not one of %s.", sortExpr, strings.Join(quoted, ", "))
		}
		sortKey, sortOrder, _ = strings.Cut(sortExpr, ":")
	}
	var limit int
	limitSet := fs.Changed("limit")
	if limitSet {
		n, ok := lsPyInt(limitStr)
		if !ok || !n.IsInt64() {
			return usageErrorf("Invalid value for '--limit': '%s' is not a valid integer.", limitStr)
		}
		limit = int(n.Int64())
	}

	info, err := cache.scan(env)
	if err != nil {
		return err
	}
	entries := lsCollect(info, revisions)

	var tests []lsFilter
	for _, expr := range filters {
		f, err := compileLsFilter(expr)
		if err != nil {
			return usageErrorf("Invalid value: %s", err.Error())
		}
		tests = append(tests, f)
	}
	now := cachecore.Now()
	for _, test := range tests {
		kept := entries[:0:0]
		for _, e := range entries {
			if test(e, now) {
				kept = append(kept, e)
			}
		}
		entries = kept
	}

	if sortKey != "" {
		lsSort(entries, sortKey, sortOrder)
	}

	if limitSet {
		if limit < 0 {
			return usageErrorf("Invalid value: Limit must be a positive integer, got %d.", limit)
		}
		if limit < len(entries) {
			entries = entries[:limit]
		}
	}

	o := newOut(env, mode, output.noTruncate)
	rows := make([][]kv, len(entries))
	for i, e := range entries {
		rows[i] = e.row()
	}
	if revisions {
		o.table(rows, []string{"id", "revision", "size", "last_modified", "refs"}, "revision", map[string]bool{"size": true})
	} else {
		o.table(rows, []string{"id", "size", "last_accessed", "last_modified", "refs"}, "id", map[string]bool{"size": true})
	}

	if len(entries) > 0 {
		seen := map[*cachecore.RepoInfo]bool{}
		var nRevs int
		var size int64
		for _, e := range entries {
			if e.rev != nil {
				nRevs++
				size += e.rev.SizeOnDisk
			} else if !seen[e.repo] {
				nRevs += len(e.repo.Revisions)
				size += e.repo.SizeOnDisk
			}
			seen[e.repo] = true
		}
		o.text(paint(o.color, ansiBold, fmt.Sprintf("\nFound %d repo(s) for a total of %d revision(s) and %s on disk.", len(seen), nRevs, cachecore.FormatSize(size))))
	}

	if n := len(info.Warnings); n > 0 {
		if showWarnings {
			for _, w := range info.Warnings {
				o.warning(strings.TrimRight(w.Message, ".") + ". Repo ignored.")
			}
		} else {
			o.warning(fmt.Sprintf("Found %d cache inconsistencies. Re-run with `--show-warnings` to display them.", n))
		}
	}
	if n := len(info.IncompleteFiles); n > 0 {
		o.hint(fmt.Sprintf("Found %d incomplete download(s) totalling %s. Remove them with 'hfcachefs prune'.", n, cachecore.FormatSize(info.IncompleteSizeOnDisk())))
	}
	return nil
}

// lsEntry is one row: a repo, or one of its revisions (rev != nil).
type lsEntry struct {
	repo *cachecore.RepoInfo
	rev  *cachecore.RevisionInfo
	refs []string // the revision's refs, or the union over the repo
}

// lsCollect is collect_cache_entries: sorted by cache_id, then commit hash.
func lsCollect(info *cachecore.CacheInfo, revisions bool) []lsEntry {
	var entries []lsEntry
	for _, repo := range info.Repos {
		if !revisions {
			entries = append(entries, lsEntry{repo: repo, refs: lsRepoRefs(repo)})
			continue
		}
		for _, rev := range repo.Revisions {
			refs := append([]string{}, rev.Refs...)
			sort.Strings(refs)
			entries = append(entries, lsEntry{repo: repo, rev: rev, refs: refs})
		}
	}
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if ai, bi := a.repo.CacheID(), b.repo.CacheID(); ai != bi {
			return ai < bi
		}
		return a.hash() < b.hash()
	})
	return entries
}

// lsRepoRefs is the sorted set of refs across the repo's revisions.
func lsRepoRefs(repo *cachecore.RepoInfo) []string {
	set := map[string]bool{}
	refs := []string{}
	for _, rev := range repo.Revisions {
		for _, r := range rev.Refs {
			if !set[r] {
				set[r] = true
				refs = append(refs, r)
			}
		}
	}
	sort.Strings(refs)
	return refs
}

func (e lsEntry) hash() string {
	if e.rev == nil {
		return ""
	}
	return e.rev.CommitHash
}

func (e lsEntry) size() int64 {
	if e.rev != nil {
		return e.rev.SizeOnDisk
	}
	return e.repo.SizeOnDisk
}

func (e lsEntry) modified() float64 {
	if e.rev != nil {
		return e.rev.LastModified
	}
	return e.repo.LastModified
}

// row is the dict hf builds for the entry, in its key order.
func (e lsEntry) row() []kv {
	r := e.repo
	if e.rev != nil {
		return []kv{
			{"id", r.CacheID()},
			{"repo_id", r.RepoID},
			{"repo_type", r.RepoType},
			{"revision", e.rev.CommitHash},
			{"snapshot_path", e.rev.SnapshotPath},
			{"size", cachecore.FormatSize(e.rev.SizeOnDisk)},
			{"last_modified", cachecore.FormatTimesince(e.rev.LastModified)},
			{"refs", e.refs},
		}
	}
	return []kv{
		{"id", r.CacheID()},
		{"repo_id", r.RepoID},
		{"repo_type", r.RepoType},
		{"size", cachecore.FormatSize(r.SizeOnDisk)},
		{"last_accessed", cachecore.FormatTimesince(r.LastAccessed)},
		{"last_modified", cachecore.FormatTimesince(r.LastModified)},
		{"refs", e.refs},
	}
}

// lsSort is compile_cache_sort plus Python's stable list.sort(reverse=...):
// ties keep their order whichever the direction.
func lsSort(entries []lsEntry, key, order string) {
	var less func(a, b lsEntry) bool
	switch key {
	case "name":
		less = func(a, b lsEntry) bool {
			return strings.ToLower(a.repo.CacheID()) < strings.ToLower(b.repo.CacheID())
		}
	case "size":
		less = func(a, b lsEntry) bool { return a.size() < b.size() }
	case "accessed":
		less = func(a, b lsEntry) bool { return a.repo.LastAccessed < b.repo.LastAccessed }
	case "modified":
		less = func(a, b lsEntry) bool { return a.modified() < b.modified() }
	}
	if order == "" {
		order = "desc"
		if key == "name" {
			order = "asc"
		}
	}
	if order == "desc" {
		sort.SliceStable(entries, func(i, j int) bool { return less(entries[j], entries[i]) })
	} else {
		sort.SliceStable(entries, func(i, j int) bool { return less(entries[i], entries[j]) })
	}
}

// lsFilter is one compiled --filter: does the entry pass, at time now?
type lsFilter func(e lsEntry, now float64) bool

var (
	lsFilterPattern = regexp.MustCompile(`^(?P<key>[a-zA-Z_]+)\s*(?P<op>==|!=|>=|<=|>|<|=)\s*(?P<value>.+)$`)
	// Printed as Python prints list(set): the set order varies, this is sorted.
	lsFilterOps  = []string{"!=", "<", "<=", "=", ">", ">="}
	lsFilterKeys = []string{"accessed", "modified", "refs", "size", "type"}
)

// Units of huggingface_hub's parse_size and parse_duration.
var (
	lsSizeUnitNames = []string{"k", "kb", "m", "mb", "g", "gb", "t", "tb", "p", "pb"}
	lsSizeUnits     = map[string]int64{
		"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
		"t": 1e12, "tb": 1e12, "p": 1e15, "pb": 1e15,
	}
	lsTimeUnitNames = []string{"s", "m", "h", "d", "w", "mo", "y"}
	lsTimeUnits     = map[string]int64{
		"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400,
		"mo": 30 * 86400, "y": 365 * 86400,
	}
	lsNumberWithUnit = regexp.MustCompile(`^([0-9]+)([a-zA-Z]+)$`)
)

// compileLsFilter is compile_cache_filter.
func compileLsFilter(expr string) (lsFilter, error) {
	m := lsFilterPattern.FindStringSubmatch(strings.TrimSpace(expr))
	if m == nil {
		return nil, fmt.Errorf("Invalid filter expression: '%s'.", expr)
	}
	key, op, value := strings.ToLower(m[1]), m[2], strings.TrimSpace(m[3])
	if !lsContains(lsFilterOps, op) {
		return nil, fmt.Errorf("Unsupported operator '%s' in filter '%s'. Must be one of %s.", op, expr, pyStr(lsFilterOps))
	}
	if !lsContains(lsFilterKeys, key) {
		return nil, fmt.Errorf("Unsupported filter key '%s' in '%s'. Must be one of %s.", key, expr, pyStr(lsFilterKeys))
	}
	switch key {
	case "size":
		threshold, err := lsParseWithUnit(value, lsSizeUnits, lsSizeUnitNames)
		if err != nil {
			return nil, err
		}
		return func(e lsEntry, _ float64) bool {
			return lsCompare(new(big.Float).SetInt64(e.size()), op, threshold)
		}, nil
	case "accessed", "modified":
		seconds, err := lsParseWithUnit(value, lsTimeUnits, lsTimeUnitNames)
		if err != nil {
			return nil, err
		}
		return func(e lsEntry, now float64) bool {
			ts := e.repo.LastAccessed
			if key == "modified" {
				ts = e.modified()
			}
			return lsCompare(new(big.Float).SetFloat64(now-ts), op, seconds)
		}, nil
	case "type":
		if op != "=" {
			return nil, fmt.Errorf("Only '=' is supported for 'type' filters. Got '%s'.", op)
		}
		want := strings.ToLower(value)
		return func(e lsEntry, _ float64) bool { return strings.ToLower(e.repo.RepoType) == want }, nil
	default: // refs
		if op != "=" {
			return nil, fmt.Errorf("Only '=' is supported for 'refs' filters. Got %s.", op)
		}
		want := strings.ToLower(value)
		return func(e lsEntry, _ float64) bool {
			for _, r := range e.refs {
				if strings.ToLower(r) == want {
					return true
				}
			}
			return false
		}, nil
	}
}

func lsContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lsCompare is _compare_numeric, exact as Python's int/float
// comparisons are.
func lsCompare(left *big.Float, op string, right *big.Float) bool {
	c := left.Cmp(right)
	switch op {
	case "=":
		return c == 0
	case "!=":
		return c != 0
	case ">":
		return c > 0
	case "<":
		return c < 0
	case ">=":
		return c >= 0
	case "<=":
		return c <= 0
	}
	return false
}

// lsParseWithUnit is huggingface_hub's _parse_with_unit: a plain integer
// (Python's int(), so a sign and underscores are fine), or digits and a
// unit, case-insensitive.
func lsParseWithUnit(value string, units map[string]int64, unitNames []string) (*big.Float, error) {
	stripped := strings.TrimSpace(value)
	if stripped == "" {
		return nil, fmt.Errorf("Value cannot be empty.")
	}
	if n, ok := lsPyInt(value); ok {
		return new(big.Float).SetInt(n), nil
	}
	m := lsNumberWithUnit.FindStringSubmatch(stripped)
	if m == nil {
		return nil, fmt.Errorf(`Invalid value '%s'. Must match pattern '\d+[a-z]+' or be a plain number.`, value)
	}
	unit := strings.ToLower(m[2])
	mult, ok := units[unit]
	if !ok {
		return nil, fmt.Errorf("Unknown unit '%s'. Must be one of %s.", unit, pyStr(unitNames))
	}
	n, _ := new(big.Int).SetString(m[1], 10)
	n.Mul(n, big.NewInt(mult))
	return new(big.Float).SetInt(n), nil
}

// pyInt is Python's int(s) for a str: surrounding whitespace, an optional
// sign, digits with single underscores between them.
func lsPyInt(s string) (*big.Int, bool) {
	s = strings.TrimSpace(s)
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 || digits == "" || digits[0] == '_' || digits[len(digits)-1] == '_' || strings.Contains(digits, "__") {
		return nil, false
	}
	for _, c := range digits {
		if (c < '0' || c > '9') && c != '_' {
			return nil, false
		}
	}
	n, ok := new(big.Int).SetString(strings.ReplaceAll(digits, "_", ""), 10)
	if !ok {
		return nil, false
	}
	if strings.HasPrefix(s, "-") {
		n.Neg(n)
	}
	return n, true
}
