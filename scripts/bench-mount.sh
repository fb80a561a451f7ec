#!/usr/bin/env bash
# Mount benchmark: an hfcachefs mount against the native cache, side by
# side in one run, medians over RUNS runs, as ratios mount/native. Every
# row prints its target (or "report" where the row has none).
#
#   1 blob   reads of a big blob (BLOB_SIZE, default 1 GiB) through
#            MOUNT/models/bench/big/by-ref/main/model.safetensors vs the blob
#            itself: sequential (1 MiB reads) and random 4 KiB preads
#            (fixed seed), cold (page cache dropped before each) and warm
#   2 walk   warm: find / ls -lR / du -s over the by-commit folders of a
#            mounted gencache cache vs find -L / ls -lRL / du -sL over
#            CACHE/*/snapshots (file counts must agree); whole-mount walks,
#            by-ref included: du -sb MOUNT/{models,datasets,spaces}, du -sb
#            MOUNT/models, find MOUNT vs du -sbL CACHE/*/snapshots, du -sbL
#            CACHE/models--*/snapshots, find -L CACHE/*/snapshots, warm and
#            cold (COLD_RUNS; drop_caches before each run, the mount side on a
#            fresh mount timed once .status.json shows its full scan)
#   3 ref    latency from rewriting refs/main (temp + rename) to the new
#            content showing through by-ref/main (polled every 20 ms)
#   4 ready  mount --daemon return time, time until ls MOUNT/models lists
#            every repo namespace, until .status.json shows the full scan;
#            on other fresh mounts, the time ls MOUNT/by-size takes to answer
#            right after mount --daemon returns, its entries, and whether
#            .status.json flags anything partial then
#   5 rss    on a default mount: VmHWM, VmRSS after, and VmRSS sampled every
#            100 ms during du -sb MOUNT/{models,datasets,spaces} (by-ref too);
#            then the daemon's VmRSS after a full ls -lR, without and with
#            GOMEMLIMIT, and once the mount has been idle past --trim-after
#            (TRIM_AFTER, the default 10s): the kernel forgot the walk's
#            inodes; with the walk's time after that trim, the first walk's
#            and a warm one's
#   6 trash  mv of a TRASH_FILES-file revision (default 40,000) into .trash
#            until mv returns, vs a plain mv of the same snapshot folder and
#            an rm -rf of it with its blobs on the native disk; and the time
#            until the background deletion has ended (.status.json)
#   7 idle   a default mount left alone once .status.json shows its first full
#            scan and IDLE_SETTLE seconds have passed: VmRSS (no walk), the
#            daemon's CPU over IDLE_SECS (utime+stime of /proc/PID/stat),
#            metadata system calls per second (strace -c -f -p over
#            IDLE_STRACE_SECS; /proc/PID/io syscr as a cross-check), and a
#            short traced sample (IDLE_TRACE_SECS) of the paths they touch
#
# Usage: scripts/bench-mount.sh            (as root for drop_caches; from any directory)
#        PARTS="idle walk ready rss ref" RUNS=3 BENCH_CACHE=/path/hub scripts/bench-mount.sh
#
# Environment:
#   RUNS=5          timed runs of each measurement (medians)
#   PARTS="blob walk ref ready rss trash idle"   the parts to run (in this order)
#   COLD_RUNS=RUNS  runs of each cold whole-mount walk of part 2 (a fresh mount each)
#   TRASH_FILES=40000  files of the revision part 6 trashes
#   REPOS=2000 REVISIONS=3 FILES=30 SEED=1   size of the generated walk cache
#   BENCH_CACHE=DIR use this existing cache for parts 2-5 and 7 instead of generating
#                   one (part 3 rewrites one refs/main of it and puts it back)
#   BLOB_SIZE=1GiB  size of the blob of part 1
#   RAND_COLD=2000 RAND_WARM=100000   random reads per cold / warm run
#   REF_CHANGES=2*RUNS   ref changes timed in part 3 (rounded up to even)
#   MEMLIMIT=100MiB GOMEMLIMIT of the second daemon of part 5
#   TRIM_AFTER=10   seconds of idleness before the daemon trims (its --trim-after)
#   IDLE_SETTLE=15 IDLE_SECS=60 IDLE_STRACE_SECS=20 IDLE_TRACE_SECS=3   part 7's windows
#   SCAN_TIMEOUT=600  seconds a mount may take to show its full scan
#   KEEP=1          keep the generated caches (their paths are printed)
#   HFCACHEFS_BIN=PATH  use this binary instead of building the repository
#   TMPDIR          where the temporary directory goes (the file system matters)
#
# Mounts use the daemon's default flags (but part 5's ls -lR daemons: --trim-after);
# the refresh mode (.status.json refresh.mode, if there is one) and poll interval
# are printed in a note. Part 7 uses strace (installed with apt-get if missing and
# root); without it the syscall row says so and keeps the syscr cross-check.
set -euo pipefail
export LC_ALL=C # '.' as the decimal separator in $EPOCHREALTIME and awk

RUNS=${RUNS:-5}
PARTS=${PARTS:-blob walk ref ready rss trash idle}
COLD_RUNS=${COLD_RUNS:-$RUNS}
TRASH_FILES=${TRASH_FILES:-40000}
REPOS=${REPOS:-2000}
REVISIONS=${REVISIONS:-3}
FILES=${FILES:-30}
SEED=${SEED:-1}
BLOB_SIZE=${BLOB_SIZE:-1GiB}
RAND_COLD=${RAND_COLD:-2000}
RAND_WARM=${RAND_WARM:-100000}
REF_CHANGES=${REF_CHANGES:-$((2 * RUNS))}
MEMLIMIT=${MEMLIMIT:-100MiB}
KEEP=${KEEP:-0}
BENCH_CACHE=${BENCH_CACHE:-}
IDLE_SETTLE=${IDLE_SETTLE:-15}
IDLE_SECS=${IDLE_SECS:-60}
IDLE_STRACE_SECS=${IDLE_STRACE_SECS:-20}
IDLE_TRACE_SECS=${IDLE_TRACE_SECS:-3}
SCAN_TIMEOUT=${SCAN_TIMEOUT:-600}
HFCACHEFS_BIN=${HFCACHEFS_BIN:-}

for v in RUNS COLD_RUNS REPOS REVISIONS FILES SEED RAND_COLD RAND_WARM REF_CHANGES TRASH_FILES \
	IDLE_SETTLE IDLE_SECS IDLE_STRACE_SECS IDLE_TRACE_SECS SCAN_TIMEOUT; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]] || ((${!v} < 1)); then
		echo "bench-mount: $v must be a positive integer, not '${!v}'" >&2
		exit 2
	fi
done
REF_CHANGES=$(((REF_CHANGES + 1) / 2 * 2)) # even: the ref ends where it started
for p in $PARTS; do
	case $p in blob | walk | ref | ready | rss | trash | idle) ;; *)
		echo "bench-mount: unknown part '$p' in PARTS (blob walk ref ready rss trash idle)" >&2
		exit 2
		;;
	esac
done
want() { [[ " $PARTS " == *" $1 "* ]]; }

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hfcachefs-bench.XXXXXX")
mounts=() # mountpoints we mounted
pids=()   # daemons we started
bgpids=() # background helpers we started (strace, RSS samplers)
log() { echo "bench-mount: [${SECONDS}s] $*" >&2; }

is_mounted() { # exact mountpoint in our mount namespace
	awk -v p="$1" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo
}
under_tmp_mounted() { awk -v p="$tmp/" 'index($5, p) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; }

unmount_fs() { # MOUNTPOINT: unmount and wait for its daemon to go
	local m=$1 pid=${2:-}
	if is_mounted "$m"; then
		"$bin" unmount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	fi
	if [[ -n $pid ]]; then
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || return 0
			sleep 0.05
		done
		kill "$pid" 2>/dev/null || true
	fi
}

cleanup() {
	local m p
	# strace first: it detaches on SIGTERM (timeout passes it on); then the mounts.
	for p in "${bgpids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${bgpids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	for m in "${mounts[@]}"; do
		is_mounted "$m" && { "${bin:-false}" unmount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
	done
	for p in "${pids[@]}"; do
		if kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null || true; fi
	done
	if under_tmp_mounted; then
		log "something is still mounted under $tmp: left in place"
		return
	fi
	# If part 3 was interrupted, put the ref back.
	if [[ -n ${ref_file:-} && -n ${ref_orig:-} ]]; then
		{ printf '%s' "$ref_orig" >"$ref_file.bench.tmp" && mv -f "$ref_file.bench.tmp" "$ref_file"; } || true
	fi
	if [[ $KEEP == 1 ]]; then
		rm -rf --one-file-system "$tmp/hfcachefs" "$tmp/benchio" "$tmp/gencache" "$tmp"/mnt*
		log "kept: $tmp (blob cache: $tmp/blobcache, walk cache: $tmp/cache)"
	else
		rm -rf --one-file-system "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
minmax() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { printf "%.3f..%.3f", a, b }'; }
fmt_runs() { printf ' %.3f' "$@"; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

# The binaries.
if [[ -n $HFCACHEFS_BIN ]]; then
	bin=$HFCACHEFS_BIN
	[[ -x $bin ]] || { log "HFCACHEFS_BIN=$bin is not executable"; exit 2; }
else
	log "building hfcachefs ..."
	go build -o "$tmp/hfcachefs" .
	bin=$tmp/hfcachefs
fi
go build -o "$tmp/benchio" ./scripts/benchio
bio=$tmp/benchio

# mount_fs MOUNTPOINT CACHE [VAR=VALUE...]: mounts with --daemon; sets
# mount_pid and mount_secs (time until mount --daemon returned).
mount_flags=()
mount_fs() { # MOUNTPOINT CACHE [ENV=VALUE | -u NAME]...; mount flags in the array mount_flags
	local m=$1 c=$2 out t0 t1
	shift 2
	mkdir -p "$m"
	mounts+=("$m")
	t0=$EPOCHREALTIME
	if ! out=$(env "$@" "$bin" mount "$m" --cache-dir "$c" --daemon "${mount_flags[@]}" 2>&1); then
		log "mount $m failed: $out"
		exit 1
	fi
	t1=$EPOCHREALTIME
	mount_secs=$(elapsed "$t0" "$t1")
	mount_pid=$(sed -n 's/.*daemon pid \([0-9][0-9]*\).*/\1/p' <<<"$out")
	if [[ -z $mount_pid ]]; then
		mount_pid=$(pgrep -n -f -- "mount $m --cache-dir" || true)
	fi
	[[ -n $mount_pid ]] && pids+=("$mount_pid")
	return 0
}
status_field() { # MOUNTPOINT KEY: a top-level or mount field of .status.json
	sed -n "s/^ *\"$2\": *//p" "$1/.status.json" | head -1 | sed 's/,$//; s/^"//; s/"$//'
}
rss_of() { awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { printf "%.1f %.1f\n", r / 1024, h / 1024 }' "/proc/$1/status"; }
nap() { sleep "$1" & wait "$!"; } # a sleep the INT/TERM trap does not wait out

# .status.json, read with jq (else python3): "dotted.path=value" for every scalar.
json_leaves() { # FILE
	if command -v jq >/dev/null 2>&1; then
		jq -r 'paths(scalars) as $p | "\($p | map(tostring) | join("."))=\(getpath($p))"' "$1" 2>/dev/null || true
	else
		python3 - "$1" <<'PY' 2>/dev/null || true
import json, sys
def walk(v, p):
    if isinstance(v, dict):
        for k, x in v.items(): walk(x, p + [str(k)])
    elif isinstance(v, list):
        for i, x in enumerate(v): walk(x, p + [str(i)])
    else:
        print(".".join(p) + "=" + ("null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)))
walk(json.load(open(sys.argv[1])), [])
PY
	fi
}
leaf() { # FILE REGEX: the value of the first scalar whose dotted path matches REGEX
	json_leaves "$1" | awk -v re="$2" '{ k = $0; sub(/=.*/, "", k) } k ~ re { sub(/^[^=]*=/, ""); print; exit }'
}
# Every repo and revision of the cache is in, and nothing says the scan (or
# the ranking) is partial or not done yet (fields a newer daemon may add).
scan_done() { # FILE
	local l
	l=$(json_leaves "$1")
	grep -qx "repos=$nrepos" <<<"$l" && grep -qx "revisions=$nrevs" <<<"$l" || return 1
	! grep -Eiq '^[^=]*partial[^=]*=true$|^[^=]*(scan|rank)[^=]*(done|complete)[^=]*=false$|^[^=]*(scan|rank)[^=.]*([.]state)?=(partial|scanning|running|pending)$' <<<"$l"
}
partial_desc() { # FILE: the fields of .status.json about something partial, or that there are none
	local p
	p=$(json_leaves "$1" | grep -Ei '^[^=]*partial' | tr '\n' ' ' | sed 's/ $//' || true)
	echo "${p:-no partial field in .status.json}"
}
defaults_noted=
refresh_mode=
wait_scan() { # MOUNTPOINT: until .status.json shows the full scan; leaves it in $tmp/status.json
	local m=$1 deadline=$((SECONDS + SCAN_TIMEOUT)) mode poll trim
	until timeout "$SCAN_TIMEOUT" cat "$m/.status.json" >"$tmp/status.json" 2>/dev/null && scan_done "$tmp/status.json"; do
		if ((SECONDS > deadline)); then
			log "$m: .status.json does not show $nrepos repos and $nrevs revisions after ${SCAN_TIMEOUT} s"
			exit 1
		fi
		sleep 0.05
	done
	if [[ -z $defaults_noted && ${#mount_flags[@]} == 0 ]]; then
		defaults_noted=1
		mode=$(leaf "$tmp/status.json" '^(mount[.])?refresh[.]mode$')
		poll=$(leaf "$tmp/status.json" '(^|[.])poll_interval$')
		trim=$(leaf "$tmp/status.json" '(^|[.])trim[.]after$')
		refresh_mode=${mode:-absent from .status.json}
		notes+=("daemon default flags: refresh.mode $refresh_mode, poll_interval ${poll:-?}, trim after ${trim:-?}")
	fi
}
cpu_ticks() { # PID: utime + stime of all its threads, in clock ticks
	local st fields
	st=$(<"/proc/$1/stat")
	st=${st##*) }
	read -ra fields <<<"$st"
	echo $((fields[11] + fields[12]))
}
io_field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/io"; } # PID FIELD of /proc/PID/io
rss_sampler() { # PID OUTFILE: VmRSS (KiB) every 100 ms until killed or PID ends
	local k v _
	while kill -0 "$1" 2>/dev/null; do
		while read -r k v _; do
			[[ $k == VmRSS: ]] && echo "$v"
		done <"/proc/$1/status"
		sleep 0.1
	done >"$2" 2>/dev/null
}
# Rows: a value with its target, and a ratio mount/native with its target.
vrow() { # LABEL VALUE TARGET VERDICT [EXTRA]
	add '%-40s %13s %13s %8s  %s %s%s' "$1" "" "$2" "" "$3" "$4" "${5:+   ($5)}"
}
ratio_row() { # LABEL "NATIVE RUNS" "MOUNT RUNS" MAX_RATIO("" = report) RUNS_LABEL
	local n m ratio tgt
	# shellcheck disable=SC2086
	n=$(median $2)
	# shellcheck disable=SC2086
	m=$(median $3)
	ratio=$(calc %.2f "$m / $n")
	if [[ -n $4 ]]; then tgt="<= ${4}x  $(verdict_le "$ratio" "$4")"; else tgt=report; fi
	add '%-40s %13s %13s %7sx  %s' "$1" "$(calc %.3f "$n") s" "$(calc %.3f "$m") s" "$ratio" "$tgt"
	# shellcheck disable=SC2086
	runs_lines+=("$(printf '%-18s native%s | mount%s' "$5" "$(fmt_runs $2)" "$(fmt_runs $3)")")
}
drop_ok=
can_drop() { # drop_caches works here (root, not a locked-down container)
	if [[ -z $drop_ok ]]; then
		if { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then drop_ok=1; else drop_ok=0; fi
	fi
	[[ $drop_ok == 1 ]]
}
drop_all() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# Cold reads: drop_caches if this box lets us, else fadvise(DONTNEED).
drop_method=
drop_cold() { # FILES...: the files whose pages must go (fadvise fallback)
	if [[ $drop_method == drop_caches ]]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	else
		"$bio" drop "$@"
	fi
}

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
fstype=$(df -PT "$tmp" 2>/dev/null | awk 'NR == 2 { print $2 }' || true)
machine="machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -srm), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), temp dir on ${fstype:-?}, $(go env GOVERSION 2>/dev/null || echo 'go ?'), loadavg $(cut -d' ' -f1 /proc/loadavg) at start"
table=()      # result lines, printed at the end
runs_lines=() # every run's seconds
# shellcheck disable=SC2059 # the first argument is the format
add() { table+=("$(printf "$@")"); }
notes=()
verdict_ge() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t ? "ok" : "UNDER") }'; }
verdict_le() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t ? "ok" : "OVER") }'; }

# ---------------------------------------------------------------- 1 blob
if want blob; then
	log "part 1: writing a $BLOB_SIZE blob ..."
	mapfile -t made < <("$bio" mkblob -cache "$tmp/blobcache" -size "$BLOB_SIZE" -seed "$SEED")
	blob=${made[0]:-}
	[[ -f $blob ]] || { log "benchio mkblob failed"; exit 1; }
	m1=$tmp/mnt-blob
	mount_fs "$m1" "$tmp/blobcache"
	pid1=$mount_pid
	mfile=$m1/models/bench/big/by-ref/main/model.safetensors
	passthrough=$(status_field "$m1" passthrough)
	if [[ $(stat -c %s "$mfile") != $(stat -c %s "$blob") ]]; then
		log "$mfile and $blob differ in size"
		exit 1
	fi
	if ! cmp -s -n 16777216 "$mfile" "$blob"; then
		log "$mfile does not read as $blob"
		exit 1
	fi
	# Does drop_caches work here (root, not in a locked-down container)?
	"$bio" seq "$blob" >/dev/null
	if { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null && [[ $("$bio" resident "$blob") == 0.0 ]]; then
		drop_method=drop_caches
	else
		drop_method=fadvise
		"$bio" drop "$blob" "$mfile"
		[[ $("$bio" resident "$blob") == 0.0 ]] ||
			notes+=("fadvise(DONTNEED) left $("$bio" resident "$blob")% of the blob cached: cold numbers are not cold")
		notes+=("drop_caches does not work here: cold = posix_fadvise(DONTNEED) on the blob and the mount file")
	fi
	size_mb=$(calc %.1f "$(stat -c %s "$blob") / 1e6")
	declare -A t=()
	for k in seq_cold_n seq_cold_m rnd_cold_n rnd_cold_m seq_warm_n seq_warm_m rnd_warm_n rnd_warm_m; do t[$k]=""; done
	one() { # KEY CMD...: runs a benchio read, appends its seconds
		local key=$1 r
		shift
		r=$("$bio" "$@")
		t[$key]+=" ${r#* }"
	}
	log "part 1: $RUNS runs of cold and warm reads (drop: $drop_method, passthrough: $passthrough) ..."
	# Native and mount alternate which goes first (the host may cache the
	# virtual disk: what one cold read brings in, the next may find there).
	for ((i = 1; i <= RUNS; i++)); do
		if ((i % 2)); then sides="n m"; else sides="m n"; fi
		for s in $sides; do
			if [[ $s == n ]]; then f=$blob; else f=$mfile; fi
			drop_cold "$blob" "$mfile"; one "seq_cold_$s" seq "$f"
		done
		for s in $sides; do
			if [[ $s == n ]]; then f=$blob; else f=$mfile; fi
			drop_cold "$blob" "$mfile"; one "rnd_cold_$s" rand -n "$RAND_COLD" -seed "$SEED" "$f"
		done
		"$bio" seq "$blob" >/dev/null
		"$bio" seq "$mfile" >/dev/null
		for s in $sides; do
			if [[ $s == n ]]; then f=$blob; else f=$mfile; fi
			one "seq_warm_$s" seq "$f"
		done
		for s in $sides; do
			if [[ $s == n ]]; then f=$blob; else f=$mfile; fi
			one "rnd_warm_$s" rand -n "$RAND_WARM" -seed "$SEED" "$f"
		done
	done
	blob_row() { # LABEL KEY UNIT WORK: throughput = WORK / median seconds
		local label=$1 key=$2 unit=$3 work=$4 n m rn rmt ratio
		# shellcheck disable=SC2086
		n=$(median ${t[${key}_n]})
		# shellcheck disable=SC2086
		m=$(median ${t[${key}_m]})
		rn=$(calc %.0f "$work / $n")
		rmt=$(calc %.0f "$work / $m")
		ratio=$(calc %.2f "$n / $m")
		add '%-40s %13s %13s %7sx  >= 0.95x %s' "$label" "$rn $unit" "$rmt $unit" "$ratio" "$(verdict_ge "$ratio" 0.95)"
		# shellcheck disable=SC2086
		runs_lines+=("$(printf '%-14s native%s | mount%s' "$key" "$(fmt_runs ${t[${key}_n]})" "$(fmt_runs ${t[${key}_m]})")")
	}
	add '%-40s %13s %13s %8s' "1 blob ($BLOB_SIZE, passthrough $passthrough)" native mount ratio
	blob_row "  sequential 1 MiB reads, cold" seq_cold MB/s "$size_mb"
	blob_row "  sequential 1 MiB reads, warm" seq_warm MB/s "$size_mb"
	blob_row "  random 4 KiB preads x$RAND_COLD, cold" rnd_cold IOPS "$RAND_COLD"
	blob_row "  random 4 KiB preads x$RAND_WARM, warm" rnd_warm IOPS "$RAND_WARM"
	unmount_fs "$m1" "$pid1"
	[[ $KEEP == 1 ]] || rm -rf "$tmp/blobcache"
fi

# ---------------------------------------------------------------- the walk cache
if want walk || want ref || want ready || want rss || want idle; then
	if [[ -n $BENCH_CACHE ]]; then
		cache=$BENCH_CACHE
		[[ -d $cache ]] || { log "BENCH_CACHE=$cache is not a directory"; exit 2; }
		cache_desc="$cache"
	else
		cache=$tmp/cache
		go build -o "$tmp/gencache" ./scripts/gencache
		log "generating $REPOS repos x $REVISIONS revisions x $FILES files in $cache ..."
		t0=$EPOCHREALTIME
		"$tmp/gencache" -out "$cache" -repos "$REPOS" -revisions "$REVISIONS" -files "$FILES" -seed "$SEED" >&2
		gen_secs=$(elapsed "$t0" "$EPOCHREALTIME")
		cache_desc="gencache $REPOS x $REVISIONS x $FILES"
	fi
	shopt -s nullglob
	repo_dirs=("$cache"/models--* "$cache"/datasets--* "$cache"/spaces--*)
	snap_dirs=("$cache"/*/snapshots/*)
	shopt -u nullglob
	nrepos=${#repo_dirs[@]}
	nrevs=${#snap_dirs[@]}
	# What ls MOUNT/models must show: one name per namespace or per legacy repo.
	nmodel_top=$(for d in "$cache"/models--*; do n=${d##*/models--}; echo "${n%%--*}"; done | sort -u | grep -c . || true)
	nat_files=$(find -L "$cache"/*/snapshots -type f | wc -l)
fi

# by-commit folders of every repo (namespaced or legacy) under MOUNT.
commit_dirs() {
	local m=$1
	shopt -s nullglob
	cdirs=("$m"/{models,datasets,spaces}/*/by-commit "$m"/{models,datasets,spaces}/*/*/by-commit)
	shopt -u nullglob
}

# Whole-mount walks (by-ref included) and their native baselines; wm is the mount.
sum_col1() { awk '{ s += $1 } END { printf "%.0f\n", s }'; }
nat_duall() { du -sbL "$cache"/*/snapshots | sum_col1; }
mnt_duall() { du -sb "$wm/models" "$wm/datasets" "$wm/spaces" | sum_col1; }
nat_dumodels() { du -sbL "$cache"/models--*/snapshots | sum_col1; }
mnt_dumodels() { du -sb "$wm/models" | sum_col1; }
nat_findall() { find -L "$cache"/*/snapshots | wc -l; }
mnt_findall() { find "$wm" | wc -l; }
whole_walks="duall dumodels findall"
declare -A whole_label=([duall]="  du -sb MOUNT/{models,datasets,spaces}" [dumodels]="  du -sb MOUNT/models"
	[findall]="  find MOUNT (whole mount)")
declare -A whole_target=([duall]="" [dumodels]="" [findall]="")
declare -A cw=() cv=() # cold runs' seconds and outputs, by walk and side

# ---------------------------------------------------------------- 2 walk, cold
# Before the warm mount of part 2 is up: its polling would bring the cache
# back into the page cache. Native: drop_caches, walk. Mount: a fresh
# mount (the kernel knows none of its dentries), its full scan, drop_caches,
# walk. Sides alternate which goes first.
cold_walks=0
if want walk; then
	if ! can_drop; then
		notes+=("drop_caches does not work here: the cold whole-mount walks of part 2 are skipped")
	else
		cold_walks=1
		whole_target[duall]=1.5
		mc=$tmp/mnt-cold
		log "part 2: $COLD_RUNS cold runs of du -sb, du -sb models, find over the whole mount (a fresh mount each) ..."
		t_cold0=$EPOCHREALTIME
		for ((i = 1; i <= COLD_RUNS; i++)); do
			if ((i % 2)); then sides="nat mnt"; else sides="mnt nat"; fi
			for k in $whole_walks; do
				for s in $sides; do
					if [[ $s == mnt ]]; then
						mount_fs "$mc" "$cache"
						pc=$mount_pid
						wait_scan "$mc"
						wm=$mc
					fi
					drop_all
					t0=$EPOCHREALTIME
					cv[${k}_${s:0:1}]=$("${s}_$k")
					cw[${k}_${s:0:1}]+=" $(elapsed "$t0" "$EPOCHREALTIME")"
					if [[ $s == mnt ]]; then unmount_fs "$mc" "$pc"; fi
				done
			done
		done
		cold_secs=$(elapsed "$t_cold0" "$EPOCHREALTIME")
	fi
fi

if want walk || want ref; then
	m2=$tmp/mnt
	mount_fs "$m2" "$cache"
	pid2=$mount_pid
	wait_scan "$m2"
fi

# ---------------------------------------------------------------- 2 walk
if want walk; then
	nat_find() { find -L "$cache"/*/snapshots -type f | wc -l; }
	mnt_find() { find "$m2/models" "$m2/datasets" "$m2/spaces" -name by-ref -prune -o -type f -print | wc -l; }
	nat_ls() { ls -lRL "$cache"/*/snapshots >/dev/null; }
	mnt_ls() { commit_dirs "$m2"; ls -lR "${cdirs[@]}" >/dev/null; }
	nat_du() { du -sL "$cache"/*/snapshots | awk '{ s += $1 } END { print s }'; }
	mnt_du() { commit_dirs "$m2"; du -s "${cdirs[@]}" | awk '{ s += $1 } END { print s }'; }
	log "part 2: warm-up walks ..."
	t_warm0=$EPOCHREALTIME
	mnt_files=$(mnt_find)
	nat_ls; mnt_ls
	nat_kib=$(nat_du)
	mnt_kib=$(mnt_du)
	wm=$m2
	declare -A wv=()
	for k in $whole_walks; do
		wv[${k}_n]=$("nat_$k")
		wv[${k}_m]=$("mnt_$k")
	done
	declare -A w=()
	log "part 2: $RUNS runs of find, ls -lR, du -s (native and mount alternate) ..."
	for ((i = 1; i <= RUNS; i++)); do
		if ((i % 2)); then sides="nat mnt"; else sides="mnt nat"; fi
		for k in find ls du $whole_walks; do
			for s in $sides; do
				t0=$EPOCHREALTIME
				"${s}_$k" >/dev/null
				w[${k}_${s:0:1}]+=" $(elapsed "$t0" "$EPOCHREALTIME")"
			done
		done
	done
	warm_secs=$(elapsed "$t_warm0" "$EPOCHREALTIME")
	log "part 2: the warm walks took $(calc %.0f "$warm_secs") s"
	walk_row() { ratio_row "$1" "${w[${2}_n]}" "${w[${2}_m]}" "$3" "walk $2"; } # LABEL KEY MAX_RATIO
	add '%-40s %13s %13s %8s' "2 walk, warm ($nat_files files)" native mount ratio
	walk_row "  find (mount: -name by-ref -prune)" find 1.5
	walk_row "  ls -lR(L) (mount: */by-commit)" ls 1.5
	walk_row "  du -s(L) (mount: */by-commit)" du 1.5
	for k in $whole_walks; do walk_row "${whole_label[$k]}" "$k" ""; done
	if [[ $mnt_files == "$nat_files" ]]; then
		add '  file counts agree: %s' "$nat_files"
	else
		add '  FILE COUNTS DIFFER: native find %s, mount find %s' "$nat_files" "$mnt_files"
	fi
	add '  du totals (KiB): native %s, mount %s' "$nat_kib" "$mnt_kib"
	add '  whole mount: du -sb bytes native %s, mount %s; models native %s, mount %s; find entries native %s, mount %s' \
		"${wv[duall_n]}" "${wv[duall_m]}" "${wv[dumodels_n]}" "${wv[dumodels_m]}" "${wv[findall_n]}" "${wv[findall_m]}"
	add '  (native: du -sbL / find -L over CACHE/*/snapshots; for MOUNT/models, CACHE/models--*/snapshots)'
	read -r r h < <(rss_of "$pid2")
	add '  daemon after these walks (by-ref too): VmRSS %s MiB, VmHWM %s MiB' "$r" "$h"
	if ((cold_walks)); then
		add '%-40s %13s %13s %8s' "2 walk, cold (drop_caches; fresh mount)" native mount ratio
		for k in $whole_walks; do
			ratio_row "${whole_label[$k]}" "${cw[${k}_n]}" "${cw[${k}_m]}" "${whole_target[$k]}" "cold $k"
		done
		add '  cold: du -sb bytes native %s, mount %s; models native %s, mount %s; find entries native %s, mount %s' \
			"${cv[duall_n]}" "${cv[duall_m]}" "${cv[dumodels_n]}" "${cv[dumodels_m]}" "${cv[findall_n]}" "${cv[findall_m]}"
		add '  (the mount side timed after its full scan; %s runs took %.0f s with the mounts and scans;' "$COLD_RUNS" "$cold_secs"
		add '   du -L counts a blob once per link to it, the mount once per inode)' 
	fi
fi

# ---------------------------------------------------------------- 3 ref
if want ref; then
	# A namespaced model repo with two revisions in which a file differs.
	pick=
	for d in "$cache"/models--*--*; do
		[[ -f $d/refs/main ]] || continue
		main=$(<"$d/refs/main")
		for s in "$d"/snapshots/*; do
			other=${s##*/}
			[[ $other != "$main" ]] || continue
			while IFS= read -r f; do
				rel=${f#"$d/snapshots/$main/"}
				if [[ -L $s/$rel && $(readlink "$s/$rel") != $(readlink "$f") ]]; then
					pick=$d
					break 3
				fi
			done < <(find "$d/snapshots/$main" -type l)
		done
	done
	if [[ -z $pick ]]; then
		add '3 ref change: no model repo with two revisions differing in a file: skipped'
	else
		name=${pick##*/models--}
		watch=$m2/models/${name//--//}/by-ref/main/$rel
		ref_file=$pick/refs/main
		ref_orig=$main
		poll=$(status_field "$m2" poll_interval)
		lat=()
		log "part 3: $REF_CHANGES ref changes of ${pick##*/} ($rel) ..."
		for ((i = 1; i <= REF_CHANGES; i++)); do
			if ((i % 2)); then to=$other; else to=$main; fi
			lat+=("$("$bio" refswap -ref "$ref_file" -commit "$to" -watch "$watch" -want "$pick/snapshots/$to/$rel" -interval 20ms)")
			sleep 0.$((RANDOM % 900 + 100)) # not in phase with the poll ticker
		done
		ref_orig=
		med=$(median "${lat[@]}")
		vrow "3 ref change -> new bytes via by-ref" "$(calc %.3f "$med") s" "<= 0.5 s" "$(verdict_le "$med" 0.5)" \
			"$(minmax "${lat[@]}") s, poll-interval $poll, refresh.mode ${refresh_mode:-?}"
		runs_lines+=("$(printf '%-14s%s' "ref change" "$(fmt_runs "${lat[@]}")")")
	fi
fi
if want walk || want ref; then
	unmount_fs "$m2" "$pid2"
fi

# ---------------------------------------------------------------- 4 ready
if want ready; then
	log "part 4: $RUNS mounts from scratch (cache warm in the page cache) ..."
	r_ret=() r_ls=() r_full=()
	for ((i = 1; i <= RUNS; i++)); do
		m4=$tmp/mnt-ready
		mkdir -p "$m4"
		t0=$EPOCHREALTIME
		mount_fs "$m4" "$cache"
		t1=$EPOCHREALTIME
		# shellcheck disable=SC2012 # one name per line
		until [[ $(ls "$m4/models" | wc -l) -ge $nmodel_top ]]; do sleep 0.02; done
		t2=$EPOCHREALTIME
		until timeout "$SCAN_TIMEOUT" cat "$m4/.status.json" >"$tmp/status4.json" 2>/dev/null && scan_done "$tmp/status4.json"; do sleep 0.02; done
		t3=$EPOCHREALTIME
		r_ret+=("$mount_secs") r_ls+=("$(elapsed "$t0" "$t2")") r_full+=("$(elapsed "$t0" "$t3")")
		unmount_fs "$m4" "$mount_pid"
	done
	# ls MOUNT/by-size right after mount --daemon returns, on other fresh mounts
	# (the first ls of a mount would wait on whatever the one before it did).
	log "part 4: $RUNS mounts from scratch, ls MOUNT/by-size as soon as mount --daemon returns ..."
	b_ls=() b_n=() b_part=()
	for ((i = 1; i <= RUNS; i++)); do
		mount_fs "$m4" "$cache"
		t1=$EPOCHREALTIME
		# shellcheck disable=SC2012 # the ls of the row; one name per line
		n=$(ls "$m4/by-size" | wc -l)
		t2=$EPOCHREALTIME
		timeout "$SCAN_TIMEOUT" cat "$m4/.status.json" >"$tmp/status4.json" 2>/dev/null || true
		b_part+=("$(partial_desc "$tmp/status4.json")")
		wait_scan "$m4"
		# shellcheck disable=SC2012
		b_ls+=("$(elapsed "$t1" "$t2")") b_n+=("$n/$(ls "$m4/by-size" | wc -l)")
		unmount_fs "$m4" "$mount_pid"
	done
	part=$(printf '%s\n' "${b_part[@]}" | sort -u | paste -sd ';' -)
	add '%-40s' "4 mount to ready ($nrepos repos, $nrevs revisions; cache in the page cache)"
	vrow "  mount --daemon returned" "$(calc %.3f "$(median "${r_ret[@]}")") s" report "" "$(minmax "${r_ret[@]}")"
	vrow "  ls MOUNT/models lists all $nmodel_top names" "$(calc %.3f "$(median "${r_ls[@]}")") s" report "" "$(minmax "${r_ls[@]}")"
	vrow "  .status.json shows the full scan" "$(calc %.3f "$(median "${r_full[@]}")") s" report "" "$(minmax "${r_full[@]}")"
	med=$(median "${b_ls[@]}")
	vrow "  ls MOUNT/by-size right after return" "$(calc %.3f "$med") s" "< 1 s" "$(verdict_le "$med" 0.999999)" \
		"$(minmax "${b_ls[@]}"); entries listed/after the full scan: ${b_n[*]}; then: $part"
	runs_lines+=("$(printf '%-18s%s' "ls by-size" "$(fmt_runs "${b_ls[@]}")")")
fi

# ---------------------------------------------------------------- 5 rss
if want rss; then
	# du -sb over the whole mount on a default mount: VmHWM is the peak at any
	# moment (the first scan's included); VmRSS sampled every 100 ms meanwhile.
	log "part 5: $RUNS default mounts, du -sb MOUNT/{models,datasets,spaces} with VmRSS sampled every 100 ms ..."
	m5=$tmp/mnt-rss
	h_runs=() s_runs=() a_runs=() q_runs=() d_runs=()
	for ((i = 1; i <= RUNS; i++)); do
		mount_fs "$m5" "$cache"
		p5=$mount_pid
		wait_scan "$m5"
		read -r r0 h0 < <(rss_of "$p5")
		rss_sampler "$p5" "$tmp/rss-samples" &
		sampler=$!
		bgpids+=("$sampler")
		t0=$EPOCHREALTIME
		du -sb "$m5/models" "$m5/datasets" "$m5/spaces" >/dev/null
		t1=$EPOCHREALTIME
		read -r r h < <(rss_of "$p5")
		kill "$sampler" 2>/dev/null || true
		wait "$sampler" 2>/dev/null || true
		smax=$(awk -v r="$r" 'BEGIN { m = r * 1024 } $1 + 0 > m { m = $1 } END { printf "%.1f", m / 1024 }' "$tmp/rss-samples")
		h_runs+=("$h") s_runs+=("$smax") a_runs+=("$r") q_runs+=("$r0/$h0") d_runs+=("$(elapsed "$t0" "$t1")")
		unmount_fs "$m5" "$p5"
	done
	hmax=$(printf '%s\n' "${h_runs[@]}" | sort -g | tail -1)
	smax=$(printf '%s\n' "${s_runs[@]}" | sort -g | tail -1)
	amed=$(median "${a_runs[@]}")
	add '%-40s' "5 daemon memory, default flags, du -sb MOUNT/{models,datasets,spaces} (by-ref too)"
	vrow "  VmHWM (any moment), max of runs" "$hmax MiB" "< 150 MiB" "$(verdict_le "$hmax" 149.999)" \
		"runs: ${h_runs[*]}; VmRSS/VmHWM when ready: ${q_runs[*]}"
	vrow "  VmRSS every 100 ms during du, max" "$smax MiB" "< 150 MiB" "$(verdict_le "$smax" 149.999)" "runs: ${s_runs[*]}"
	vrow "  VmRSS right after du, median" "$amed MiB" "< 150 MiB" "$(verdict_le "$amed" 149.999)" \
		"runs: ${a_runs[*]}; du took $(calc %.2f "$(median "${d_runs[@]}")") s"

	trim=${TRIM_AFTER:-10}
	log "part 5: ls -lR over the whole mount, without and with GOMEMLIMIT=$MEMLIMIT, then ${trim} s idle ..."
	add '%-40s' "5 daemon memory after a full walk (ls -lR MOUNT/{models,datasets,spaces}, by-ref too)"
	for lim in "" "$MEMLIMIT"; do
		m5=$tmp/mnt-rss
		mount_flags=(--trim-after "${trim}s")
		if [[ -n $lim ]]; then mount_fs "$m5" "$cache" "GOMEMLIMIT=$lim"; else mount_fs "$m5" "$cache" -u GOMEMLIMIT; fi
		mount_flags=()
		wait_scan "$m5"
		read -r r0 _ < <(rss_of "$mount_pid")
		t0=$EPOCHREALTIME
		ls -lR "$m5/models" "$m5/datasets" "$m5/spaces" >/dev/null
		t1=$EPOCHREALTIME
		read -r r h < <(rss_of "$mount_pid")
		# Idle past --trim-after, without a request (reading .status.json is one).
		sleep $((trim + 4))
		read -r r2 _ < <(rss_of "$mount_pid")
		runs=$(sed -n 's/^ *"runs": *\([0-9]*\).*/\1/p' "$m5/.status.json")
		left=$(sed -n 's/^ *"kernel_nodes_now": *\([0-9]*\).*/\1/p' "$m5/.status.json")
		peak=$(sed -n 's/^ *"kernel_nodes_peak": *\([0-9]*\).*/\1/p' "$m5/.status.json")
		t2=$EPOCHREALTIME
		ls -lR "$m5/models" "$m5/datasets" "$m5/spaces" >/dev/null
		t3=$EPOCHREALTIME
		ls -lR "$m5/models" "$m5/datasets" "$m5/spaces" >/dev/null
		t4=$EPOCHREALTIME
		vrow "  VmRSS, GOMEMLIMIT=${lim:-unset}, walked" "$r MiB" "< 150 MiB" "$(verdict_le "$r" 149.999)" \
			"VmHWM $h MiB, $r0 MiB when ready"
		vrow "    idle ${trim} s later, trimmed" "$r2 MiB" "< 150 MiB" "$(verdict_le "$r2" 149.999)" \
			"trims: ${runs:-?}; kernel nodes ${peak:-?} -> ${left:-?}"
		vrow "    ls -lR after the trim (cold again)" "$(calc %.2f "$(elapsed "$t2" "$t3")") s" report "" \
			"first walk $(calc %.2f "$(elapsed "$t0" "$t1")") s; warm, right after: $(calc %.2f "$(elapsed "$t3" "$t4")") s"
		unmount_fs "$m5" "$mount_pid"
	done
fi

# ---------------------------------------------------------------- 6 trash
if want trash; then
	log "part 6: a $TRASH_FILES-file revision into .trash, $RUNS times ..."
	big=$(printf 'b%.0s' $(seq 40)) keep=$(printf 'c%.0s' $(seq 40))
	tpl=$tmp/trash-tpl/hub
	python3 - "$tpl" "$big" "$keep" "$TRASH_FILES" <<'PY'
import hashlib, os, sys
hub, big, keep, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
repo = os.path.join(hub, "models--bench--trash")
os.makedirs(repo + "/blobs"); os.makedirs(repo + "/refs")
for rev, count in ((big, n), (keep, 3)):
    d = f"{repo}/snapshots/{rev}"
    os.makedirs(d)
    for i in range(count):
        etag = hashlib.sha1(f"{rev}/{i}".encode()).hexdigest()
        with open(f"{repo}/blobs/{etag}", "w") as f:
            f.write(f"blob {i}\n")
        os.symlink(f"../../blobs/{etag}", f"{d}/f{i}")
with open(f"{repo}/refs/main", "w") as f:
    f.write(keep)
PY
	t_mv=() t_done=() t_ren=() t_rm=()
	for ((i = 1; i <= RUNS; i++)); do
		c6=$tmp/trash-run/hub
		rm -rf "$tmp/trash-run"
		mkdir -p "$tmp/trash-run" && cp -a "$tpl" "$c6"
		# Native baselines: one rename of the snapshot folder, and rm -rf of
		# it and of its blobs (what deleting the revision costs without us).
		snap=$c6/models--bench--trash/snapshots/$big
		t0=$EPOCHREALTIME; mv "$snap" "$tmp/trash-run/moved"; t1=$EPOCHREALTIME
		mv "$tmp/trash-run/moved" "$snap"
		t_ren+=("$(elapsed "$t0" "$t1")")
		cp -a "$c6/models--bench--trash" "$tmp/trash-run/copy"
		t0=$EPOCHREALTIME
		(cd "$tmp/trash-run/copy" && find "snapshots/$big" -type l -printf '%l\n' | sed 's|^../../||' | xargs rm -f && rm -rf "snapshots/$big")
		t1=$EPOCHREALTIME
		t_rm+=("$(elapsed "$t0" "$t1")")
		m6=$tmp/mnt-trash
		mount_fs "$m6" "$c6" "XDG_STATE_HOME=$tmp/trash-run/state"
		until [[ $(status_field "$m6" revisions) == 2 ]]; do sleep 0.02; done
		t0=$EPOCHREALTIME
		mv "$m6/models/bench/trash/by-commit/$big" "$m6/.trash/big$i"
		t1=$EPOCHREALTIME
		until grep -q '"running": \[\]' "$m6/.status.json" && grep -q '"state": "deleted"' "$m6/.status.json"; do sleep 0.02; done
		t2=$EPOCHREALTIME
		t_mv+=("$(elapsed "$t0" "$t1")") t_done+=("$(elapsed "$t0" "$t2")")
		unmount_fs "$m6" "$mount_pid"
	done
	add '%-40s %13s %13s %7s' "6 trash a $TRASH_FILES-file revision" "native" "hfcachefs" "ratio"
	add '%-40s %11s s %11s s %7s  < 1 s %s   (%s)' "  mv into .trash returns vs rename" "$(calc %.4f "$(median "${t_ren[@]}")")" \
		"$(calc %.3f "$(median "${t_mv[@]}")")" "" "$(verdict_le "$(median "${t_mv[@]}")" 1)" "$(minmax "${t_mv[@]}")"
	add '%-40s %11s s %11s s %7s  report   (%s)' "  deletion ended vs rm of it natively" "$(calc %.3f "$(median "${t_rm[@]}")")" \
		"$(calc %.3f "$(median "${t_done[@]}")")" "$(calc %.2fx "$(median "${t_done[@]}")/$(median "${t_rm[@]}")")" "$(minmax "${t_done[@]}")"
	runs_lines+=("$(printf '%-14s%s' "trash mv" "$(fmt_runs "${t_mv[@]}")")")
	runs_lines+=("$(printf '%-14s%s' "trash done" "$(fmt_runs "${t_done[@]}")")")
	rm -rf "$tmp/trash-run" "$tmp/trash-tpl"
fi

# ---------------------------------------------------------------- 7 idle
if want idle; then
	log "part 7: a default mount left idle: first scan, ${IDLE_SETTLE} s settle, CPU over ${IDLE_SECS} s, syscalls over ${IDLE_STRACE_SECS} s ..."
	t_idle0=$EPOCHREALTIME
	m7=$tmp/mnt-idle
	mount_fs "$m7" "$cache"
	pid7=$mount_pid
	[[ -n $pid7 ]] || { log "part 7: the daemon's pid is unknown"; exit 1; }
	wait_scan "$m7"
	scan7=$(elapsed "$t_idle0" "$EPOCHREALTIME")
	mode7=$(leaf "$tmp/status.json" '^(mount[.])?refresh[.]mode$')
	poll7=$(leaf "$tmp/status.json" '(^|[.])poll_interval$')
	# From here on nothing touches the mount (a request would not be idle).
	read -r rss_a _ < <(rss_of "$pid7")
	nap "$IDLE_SETTLE"
	read -r rss_b _ < <(rss_of "$pid7")
	load=$(cut -d' ' -f1-3 /proc/loadavg)

	# CPU: utime + stime over IDLE_SECS, in 6 slices (their spread is printed).
	hz=$(getconf CLK_TCK)
	c0=$(cpu_ticks "$pid7") r0=$(io_field "$pid7" syscr) ts=$EPOCHREALTIME
	cprev=$c0 tprev=$ts slices=()
	for ((j = 1; j <= 6; j++)); do
		nap "$(calc %.3f "$IDLE_SECS / 6")"
		cnow=$(cpu_ticks "$pid7") tnow=$EPOCHREALTIME
		slices+=("$(calc %.2f "($cnow - $cprev) / $hz / ($tnow - $tprev) * 100")")
		cprev=$cnow tprev=$tnow
	done
	r1=$(io_field "$pid7" syscr)
	cpu=$(calc %.3f "($cprev - $c0) / $hz / ($tprev - $ts) * 100")
	syscr_rate=$(calc %.1f "($r1 - $r0) / ($tprev - $ts)")
	read -r rss_c hwm_c < <(rss_of "$pid7")

	# System calls: strace -c -f attached to every thread. Traced, the daemon
	# runs slower: the counts are a floor; syscr (untraced above) cross-checks.
	if ! command -v strace >/dev/null 2>&1 && ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
		log "part 7: installing strace (apt-get) ..."
		apt-get install -y -qq strace >/dev/null 2>&1 ||
			{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq strace >/dev/null 2>&1; } || true
	fi
	meta_calls='' strace_err=''
	# The stat family, opens, directory reads, readlinks, read(2).
	meta_set="stat lstat fstat newfstatat fstatat64 statx open openat openat2 getdents getdents64 readlink readlinkat read"
	if command -v strace >/dev/null 2>&1; then
		r2=$(io_field "$pid7" syscr) t0=$EPOCHREALTIME
		timeout -s INT "$IDLE_STRACE_SECS" strace -c -f -qq -o "$tmp/strace-c.txt" -p "$pid7" 2>"$tmp/strace.err" &
		sp=$!
		bgpids+=("$sp")
		wait "$sp" || true
		t1=$EPOCHREALTIME r3=$(io_field "$pid7" syscr)
		traced=$(elapsed "$t0" "$t1")
		if grep -q ' total$' "$tmp/strace-c.txt" 2>/dev/null; then
			# % time, seconds, usecs/call, calls, [errors,] syscall
			meta_calls=$(awk -v set="$meta_set" 'BEGIN { n = split(set, a, /[ \t\n]+/); for (i = 1; i <= n; i++) m[a[i]] = 1 }
				$4 ~ /^[0-9]+$/ && ($NF in m) { s += $4 } END { print s + 0 }' "$tmp/strace-c.txt")
			meta_rate=$(calc %.1f "$meta_calls / $traced")
			# shellcheck disable=SC2016 # awk's $
			per_sec='$4 ~ /^[0-9]+$/ && $NF != "total" && (($NF in m) == meta) { printf "%s %.1f/s\n", $NF, $4 / d }'
			breakdown=$(awk -v d="$traced" -v set="$meta_set" -v meta=1 "BEGIN { n = split(set, a, /[ \t\n]+/); for (i = 1; i <= n; i++) m[a[i]] = 1 } $per_sec" \
				"$tmp/strace-c.txt" | sort -k2,2gr | paste -sd ',' - | sed 's/,/, /g')
			others=$(awk -v d="$traced" -v set="$meta_set" -v meta=0 "BEGIN { n = split(set, a, /[ \t\n]+/); for (i = 1; i <= n; i++) m[a[i]] = 1 } $per_sec" \
				"$tmp/strace-c.txt" | sort -k2,2gr | head -6 | paste -sd ',' - | sed 's/,/, /g')
			syscr_traced=$(calc %.1f "($r3 - $r2) / $traced")
			# Where from: a short trace of the same calls, fds shown as paths.
			timeout -s INT "$IDLE_TRACE_SECS" strace -f -qq -y -o "$tmp/strace-t.txt" -p "$pid7" \
				-e 'trace=?stat,?lstat,?fstat,?newfstatat,?statx,?open,?openat,?openat2,?getdents64,?readlink,?readlinkat,?read,?pread64' \
				2>>"$tmp/strace.err" &
			sp=$!
			bgpids+=("$sp")
			wait "$sp" || true
			# "syscall path" per call: the path argument, else the fd's path (-y).
			trace_rows=$(awk -v c="$cache" '$2 ~ /^[a-z0-9_]+\(/ {
					sc = $2; sub(/\(.*/, "", sc); p = ""; d = ""
					if (match($2, /<[^>]*>/)) d = substr($2, RSTART + 1, RLENGTH - 2)
					if (sc !~ /^(read|pread64|fstat|getdents64)$/ && match($0, /"[^"]*"/)) p = substr($0, RSTART + 1, RLENGTH - 2)
					if (p == "") p = d; else if (substr(p, 1, 1) != "/" && d != "") p = d "/" p
					if (index(p, c) == 1) p = "CACHE" substr(p, length(c) + 1)
					print sc " " p }' "$tmp/strace-t.txt" |
				sed -E 's#/(models|datasets|spaces)--[^/]+#/\1--*#g; s#/(snapshots|\.no_exist)/[0-9a-f]{40}/.+#/\1/<rev>/<file>#;
					s#/(snapshots|\.no_exist)/[0-9a-f]{40}$#/\1/<rev>#; s#/blobs/[0-9a-f]{40,64}$#/blobs/<blob>#; s#/refs/.+#/refs/<ref>#')
			top_rows() { # N share TOTAL | N rate SECS: the N most frequent lines of stdin, as shares or per second
				sort | uniq -c | sort -rn | head -"$1" |
					awk -v k="$2" -v d="$3" '{ c = $1; $1 = ""; sub(/^ /, "")
						if (k == "share") printf "%s %.1f%%\n", $0, 100 * c / d; else printf "%s %.1f/s\n", $0, c / d }' |
					paste -sd ';' - | sed 's/;/; /g'
			}
			on_cache=$(awk '/ CACHE/ { n++ } END { print n + 0 }' <<<"$trace_rows")
			elsewhere=$(awk 'NF && !/ CACHE/ { n++ } END { print n + 0 }' <<<"$trace_rows")
			total=$((on_cache + elsewhere > 0 ? on_cache + elsewhere : 1))
			sources="on the cache dir $(calc %.1f "$on_cache / $IDLE_TRACE_SECS")/s"
			((on_cache)) && sources+=" ($(awk '/ CACHE/' <<<"$trace_rows" | top_rows 5 share "$total"))"
			sources+="; elsewhere $(calc %.1f "$elsewhere / $IDLE_TRACE_SECS")/s"
			((elsewhere)) && sources+=" ($(awk 'NF && !/ CACHE/' <<<"$trace_rows" | top_rows 3 rate "$IDLE_TRACE_SECS"))"
		else
			strace_err=$(head -c 200 "$tmp/strace.err" | tr '\n' ' ')
		fi
	else
		strace_err="strace is not installed"
	fi
	unmount_fs "$m7" "$pid7"
	idle_secs=$(elapsed "$t_idle0" "$EPOCHREALTIME")

	rss_max=$(printf '%s\n' "$rss_a" "$rss_b" "$rss_c" | sort -g | tail -1)
	add '%-40s' "7 idle, default flags (refresh.mode ${mode7:-absent from .status.json}, poll-interval ${poll7:-?})"
	add '  (measured once the full scan was in, %.1f s after mount, and %s s of settle; loadavg then %s)' "$scan7" "$IDLE_SETTLE" "$load"
	vrow "  daemon CPU, ${IDLE_SECS} s idle (utime+stime)" "$cpu %" "< 0.5 % of a core" "$(verdict_le "$cpu" 0.4999)" \
		"per $(calc %.0f "$IDLE_SECS / 6") s: ${slices[*]} %"
	if [[ -n $meta_calls ]]; then
		vrow "  metadata syscalls/s (strace -c -f)" "$meta_rate/s" "0" "$(verdict_le "$meta_calls" 0)" \
			"$meta_calls calls in $(calc %.1f "$traced") s traced; syscr meanwhile $syscr_traced/s"
	else
		vrow "  metadata syscalls/s (strace -c -f)" "?" "0" "NOT MEASURED" "$strace_err"
	fi
	# A cross-check, not the target: Go's runtime preads its cgroup CPU quota every second.
	vrow "  read syscalls/s (/proc/PID/io syscr)" "$syscr_rate/s" "report" "" "cross-check: over the ${IDLE_SECS} s CPU window, untraced"
	vrow "  VmRSS after the first scan, no walk" "$rss_max MiB" "< 100 MiB" "$(verdict_le "$rss_max" 99.999)" \
		"at the full scan $rss_a, after the settle $rss_b, after the CPU window $rss_c MiB; VmHWM $hwm_c MiB"
	[[ -n ${breakdown:-} ]] && add '    strace -c -f, metadata calls: %s; others: %s' "$breakdown" "${others:-none}"
	[[ -n ${sources:-} ]] && add '    where (%s s of strace -f -y, which slows the daemon more than -c; shares of the calls): %s' "$IDLE_TRACE_SECS" "$sources"
	add '    (metadata calls: %s)' "$meta_set"
	add '    (part 7 took %.0f s)' "$idle_secs"
fi

# ---------------------------------------------------------------- report
echo "mount benchmark: medians of RUNS=$RUNS; ratios are mount/native (throughput for reads, seconds for walks)"
[[ -n ${drop_method:-} ]] && echo "cold = $drop_method before each run"
[[ -n ${cache_desc:-} ]] && echo "walk cache: $cache_desc: $nrepos repos, $nrevs revisions, $nat_files files${gen_secs:+ (generated in $(calc %.1f "$gen_secs") s)}"
printf '%s\n' "${table[@]}"
((${#notes[@]})) && printf 'note: %s\n' "${notes[@]}"
echo
echo "runs (s):"
((${#runs_lines[@]})) && printf '  %s\n' "${runs_lines[@]}"
echo "$machine"
echo "binary: $bin"
