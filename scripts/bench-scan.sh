#!/usr/bin/env bash
# Scan benchmark: times `hfcachefs scan` against `find -L` on a synthetic
# Hugging Face Hub cache (scripts/gencache) and prints the medians.
#
# Usage: scripts/bench-scan.sh            (from any directory)
#
# Environment:
#   RUNS=7          timed runs of each command (they alternate)
#   REPOS=2000 REVISIONS=3 FILES=30 SEED=1   size of the generated cache
#   BENCH_CACHE=DIR benchmark this existing cache instead of generating one
#   KEEP=1          keep the generated cache (its path is printed)
#   HFCACHEFS_BIN=PATH  use this binary instead of building the repository
#   TMPDIR          where the temporary directory goes (the file system matters)
set -euo pipefail
export LC_ALL=C # '.' as the decimal separator in $EPOCHREALTIME and awk

RUNS=${RUNS:-7}
REPOS=${REPOS:-2000}
REVISIONS=${REVISIONS:-3}
FILES=${FILES:-30}
SEED=${SEED:-1}
KEEP=${KEEP:-0}
BENCH_CACHE=${BENCH_CACHE:-}
HFCACHEFS_BIN=${HFCACHEFS_BIN:-}

for v in RUNS REPOS REVISIONS FILES SEED; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]] || ((${!v} < 1)); then
		echo "bench-scan: $v must be a positive integer, not '${!v}'" >&2
		exit 2
	fi
done

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hfcachefs-bench.XXXXXX")
cleanup() {
	if [[ $KEEP == 1 && -z $BENCH_CACHE && -d $tmp/cache ]]; then
		rm -f "$tmp/hfcachefs" "$tmp/gencache" "$tmp/scan.out"
		echo "cache kept: BENCH_CACHE=$tmp/cache $0" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The binary under test.
if [[ -n $HFCACHEFS_BIN ]]; then
	bin=$HFCACHEFS_BIN
	[[ -x $bin ]] || { echo "bench-scan: HFCACHEFS_BIN=$bin is not executable" >&2; exit 2; }
else
	echo "building hfcachefs ..." >&2
	go build -o "$tmp/hfcachefs" .
	bin=$tmp/hfcachefs
fi

# The cache.
if [[ -n $BENCH_CACHE ]]; then
	cache=$BENCH_CACHE
	[[ -d $cache ]] || { echo "bench-scan: BENCH_CACHE=$cache is not a directory" >&2; exit 2; }
else
	cache=$tmp/cache
	go build -o "$tmp/gencache" ./scripts/gencache
	echo "generating $REPOS repos x $REVISIONS revisions x $FILES files in $cache ..." >&2
	t0=$EPOCHREALTIME
	"$tmp/gencache" -out "$cache" -repos "$REPOS" -revisions "$REVISIONS" -files "$FILES" -seed "$SEED" >&2
	t1=$EPOCHREALTIME
	gen_time=$(elapsed "$t0" "$t1")
fi
shopt -s nullglob
snapdirs=("$cache"/*/snapshots)
shopt -u nullglob
if ((${#snapdirs[@]} == 0)); then
	echo "bench-scan: no */snapshots directory in $cache" >&2
	exit 1
fi

run_find() { find -L "$cache"/*/snapshots -type f | wc -l; }
run_scan() { "$bin" scan --cache-dir "$cache" --format json; }

# Warm the page, dentry and inode caches once, and check both commands work.
echo "warming up ..." >&2
nfiles=$(run_find)
nfiles=${nfiles//[[:space:]]/}
if ! run_scan >"$tmp/scan.out"; then
	echo "bench-scan: '$bin scan --cache-dir $cache --format json' failed" >&2
	exit 1
fi
if [[ ! -s $tmp/scan.out ]]; then
	echo "bench-scan: '$bin scan' printed nothing" >&2
	exit 1
fi
scan_bytes=$(wc -c <"$tmp/scan.out")
rm -f "$tmp/scan.out"

find_times=()
scan_times=()
for ((i = 1; i <= RUNS; i++)); do
	t0=$EPOCHREALTIME
	run_find >/dev/null
	t1=$EPOCHREALTIME
	run_scan >/dev/null
	t2=$EPOCHREALTIME
	find_times+=("$(elapsed "$t0" "$t1")")
	scan_times+=("$(elapsed "$t1" "$t2")")
done
find_med=$(median "${find_times[@]}")
scan_med=$(median "${scan_times[@]}")
ratio=$(awk -v s="$scan_med" -v f="$find_med" 'BEGIN { printf "%.2f", s / f }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.2 ? "ok" : "OVER") }')

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
fstype=$(df -PT "$cache" 2>/dev/null | awk 'NR == 2 { print $2 }' || true)
fmt_runs() { printf ' %.3f' "$@"; }

if [[ -n $BENCH_CACHE ]]; then
	nrepos=${#snapdirs[@]}
	echo "scan benchmark: $cache: $nrepos repos ($nfiles files), $RUNS runs each, medians"
else
	echo "scan benchmark: $REPOS repos x $REVISIONS revisions x $FILES files ($nfiles files), $RUNS runs each, medians"
fi
printf '%-54s %7.3f s\n' "baseline  find -L CACHE/*/snapshots -type f | wc -l" "$find_med"
printf '%-54s %7.3f s\n' "hfcachefs scan --format json > /dev/null" "$scan_med"
printf '%-54s %7sx   (target <= 1.2x: %s)\n' "ratio" "$ratio" "$verdict"
echo
echo "runs (s): find$(fmt_runs "${find_times[@]}")"
echo "          scan$(fmt_runs "${scan_times[@]}")"
echo "scan output: $scan_bytes bytes of JSON"
if [[ -n ${gen_time:-} ]]; then
	printf 'generation: %.2f s\n' "$gen_time"
fi
echo "machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -srm), cache on ${fstype:-?}, $(go env GOVERSION 2>/dev/null || echo 'go ?')"
echo "binary: $bin"
