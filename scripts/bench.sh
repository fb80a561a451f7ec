#!/usr/bin/env bash
# Every benchmark of the project in one run, one table of ratios against
# baselines measured side by side in the same run, each row with its target:
#   scan vs a plain walk (scripts/bench-scan.sh),
#   blob reads vs native cold and warm, walks vs native (warm, and cold on
#   fresh mounts), ref-change latency, mount-to-ready time and ls by-size
#   right after mounting, daemon RSS during and after walks, and the idle
#   daemon: CPU, metadata system calls, RSS (scripts/bench-mount.sh; PARTS
#   picks its parts).
# One synthetic cache (scripts/gencache, 2000 repos x 3 revisions x 30 files)
# serves both. Environment: RUNS (default 5), REPOS/REVISIONS/FILES/SEED,
# BENCH_CACHE=DIR to use an existing cache, HFCACHEFS_BIN=PATH to use that
# binary instead of building the repository, TMPDIR, and what
# scripts/bench-mount.sh reads (PARTS, COLD_RUNS, IDLE_*). As root (page-cache
# drops, strace).
set -euo pipefail
export LC_ALL=C
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$PATH:/usr/local/go/bin"
RUNS=${RUNS:-5}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hfcachefs-benchall.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [[ -z ${HFCACHEFS_BIN:-} ]]; then
	(cd "$root" && go build -o "$tmp/hfcachefs" .)
	HFCACHEFS_BIN=$tmp/hfcachefs
fi
export HFCACHEFS_BIN
if [[ -z ${BENCH_CACHE:-} ]]; then
	echo "generating the cache ..." >&2
	(cd "$root" && go run ./scripts/gencache -out "$tmp/cache" -repos "${REPOS:-2000}" -revisions "${REVISIONS:-3}" \
		-files "${FILES:-30}" -seed "${SEED:-1}" >/dev/null)
	export BENCH_CACHE="$tmp/cache"
fi

echo "running scripts/bench-scan.sh ..." >&2
RUNS=$((RUNS < 7 ? 7 : RUNS)) "$root/scripts/bench-scan.sh" >"$tmp/scan.out" 2>"$tmp/scan.err" || { cat "$tmp/scan.err" >&2; exit 1; }
echo "running scripts/bench-mount.sh ..." >&2
RUNS=$RUNS "$root/scripts/bench-mount.sh" >"$tmp/mount.out" 2>"$tmp/mount.err" || { cat "$tmp/mount.err" >&2; exit 1; }

find_s=$(awk '/^baseline/ {print $(NF-1)}' "$tmp/scan.out")
scan_s=$(awk '/^hfcachefs scan/ {print $(NF-1)}' "$tmp/scan.out")
ratio=$(awk '/^ratio/ {print $2}' "$tmp/scan.out")
verdict=$(sed -n 's/^ratio.*target <= 1.2x: \(.*\))$/\1/p' "$tmp/scan.out")

echo "hfcachefs benchmarks, one run ($(date -u +%Y-%m-%d)); medians; ratios hfcachefs/baseline"
printf '%-46s %13s %13s %7s  %s\n' "0 scan (2000 repos, 180k files)" "find -L" "hfcachefs" "ratio" "target"
printf '%-46s %11s s %11s s %7s  %s\n' "  scan --format json vs find -L CACHE/*/snapshots" "$find_s" "$scan_s" "$ratio" "<= 1.2x $verdict"
sed -n '/^[0-9] /,/^$/p' "$tmp/mount.out" | sed '/^$/d; /^note:/d'
grep -h '^note:' "$tmp/mount.out" || true
grep -h '^machine:' "$tmp/mount.out"
