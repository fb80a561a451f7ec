package main

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"time"
)

var scanCommand = &command{
	name:    "scan",
	summary: "scan the cache: export_as_table, or the whole scan as JSON",
	usage:   "[--cache-dir DIR] [-v...] [--format table|json]",
	help: `
Scans the cache exactly as huggingface_hub's scan_cache_dir() does and prints
HFCacheInfo.export_as_table(): one row per repo, or one per revision with -v.
A footer in the style of the old 'huggingface-cli scan-cache' follows; -vvv
prints every warning (a corrupted repo is left out of the scan, as upstream)
and every notice (what hfcachefs noticed beyond upstream's warnings).

--format json prints the whole scan with huggingface_hub's field names and
absolute paths: repos[].revisions[].files[], warnings[], notices[],
incomplete_files[].

Exit status: 0 on success (warnings included), 1 on error (e.g. no cache).`,
}

func init() {
	scanCommand.run = runScan
	register(scanCommand)
}

func runScan(env *cliEnv, args []string) error {
	fs := newFlags(env, scanCommand)
	var cache cacheDirOption
	cache.AddFlags(fs)
	verbosity := fs.CountP("verbose", "v", "more detail: -v one row per revision, -vvv every warning")
	format := fs.String("format", "table", "table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if *format != "table" && *format != "json" {
		return usageErrorf("Invalid value for '--format': '%s' is not one of 'table', 'json'.", *format)
	}
	// A scan allocates a little per file and keeps all of it: collecting
	// less often saves a third of the CPU on large caches.
	debug.SetGCPercent(400)
	start := time.Now()
	info, err := cache.scan(env)
	if err != nil {
		return err
	}
	if *format == "json" {
		return info.WriteJSON(env.stdout)
	}
	o := newOut(env, modeHuman, true)
	fmt.Fprintln(env.stdout, info.ExportAsTable(*verbosity))
	elapsed := math.Round(time.Since(start).Seconds()*10) / 10
	fmt.Fprintf(env.stdout, "\nDone in %ss. Scanned %d repo(s) for a total of %s.\n",
		strconv.FormatFloat(elapsed, 'f', 1, 64), len(info.Repos), paint(o.color, ansiBold+ansiRed, info.SizeOnDiskStr()))
	if n := len(info.Warnings); n > 0 {
		if *verbosity < 3 {
			fmt.Fprintln(env.stdout, paint(o.color, ansiGray, fmt.Sprintf("Got %d warning(s) while scanning. Use -vvv to print details.", n)))
		} else {
			fmt.Fprintln(env.stdout, paint(o.color, ansiGray, fmt.Sprintf("Got %d warning(s) while scanning.", n)))
			for _, w := range info.Warnings {
				fmt.Fprintln(env.stdout, paint(o.color, ansiGray, w.Message))
			}
		}
	}
	if n := len(info.Notices); n > 0 {
		if *verbosity < 3 {
			fmt.Fprintln(env.stdout, paint(o.color, ansiGray, fmt.Sprintf("Got %d notice(s) beyond huggingface_hub's warnings. Use -vvv to print details.", n)))
		} else {
			fmt.Fprintln(env.stdout, paint(o.color, ansiGray, fmt.Sprintf("Got %d notice(s) beyond huggingface_hub's warnings.", n)))
			for _, nt := range info.Notices {
				fmt.Fprintln(env.stdout, paint(o.color, ansiGray, fmt.Sprintf("[%s] %s: %s", nt.Kind, nt.Path, nt.Message)))
			}
		}
	}
	if n := len(info.IncompleteFiles); n > 0 {
		fmt.Fprintln(env.stdout, paint(o.color, ansiGray, fmt.Sprintf("Found %d incomplete download(s) totalling %s. Remove them with 'hfcachefs prune'.", n, formatSize(info.IncompleteSizeOnDisk()))))
	}
	if h := cache.held; h.receipts > 0 {
		fmt.Fprintln(env.stdout, paint(o.color, ansiGray, fmt.Sprintf("%d .trash receipt(s) hold %s aside (--trash-hold) until they expire: 'hfcachefs restore' lists them.", h.receipts, formatSize(h.bytes))))
	}
	return nil
}
