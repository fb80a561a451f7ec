#!/usr/bin/env bash
# Mount benchmark: an hfcachefs mount against the native cache, side by
# side in one run, medians over RUNS runs, as ratios mount/native.
#
#   1 blob   reads of a big blob (BLOB_SIZE, default 1 GiB) through
#            MOUNT/models/bench/big/by-ref/main/model.safetensors vs the blob
#            itself: sequential (1 MiB reads) and random 4 KiB preads
#            (fixed seed), cold (page cache dropped before each) and warm
#   2 walk   find / ls -lR / du -s over a mounted gencache cache (warm) vs
#            find -L / ls -lRL / du -sL over CACHE/*/snapshots; file counts
#            must agree
#   3 ref    latency from rewriting refs/main (temp + rename) to the new
#            content showing through by-ref/main (polled every 20 ms)
#   4 ready  mount --daemon return time, time until ls MOUNT/models lists
#            every repo namespace, until .status.json shows the full scan
#   5 rss    the daemon's VmRSS after a full walk, without and with GOMEMLIMIT,
#            and once the mount has been idle past --trim-after (TRIM_AFTER,
#            the default 10s): the kernel forgot the walk's inodes; with the
#            walk's time after that trim, the first walk's and a warm one's
#   6 trash  mv of a TRASH_FILES-file revision (default 40,000) into .trash
#            until mv returns, vs a plain mv of the same snapshot folder and
#            an rm -rf of it with its blobs on the native disk; and the time
#            until the background deletion has ended (.status.json)
#
# Usage: scripts/bench-mount.sh            (as root for drop_caches; from any directory)
#
# Environment:
#   RUNS=5          timed runs of each measurement (medians)
#   PARTS="blob walk ref ready rss trash"   the parts to run
#   TRASH_FILES=40000  files of the revision part 6 trashes
#   REPOS=2000 REVISIONS=3 FILES=30 SEED=1   size of the generated walk cache
#   BENCH_CACHE=DIR use this existing cache for parts 2-5 instead of generating one
#                   (part 3 rewrites one refs/main of it and puts it back)
#   BLOB_SIZE=1GiB  size of the blob of part 1
#   RAND_COLD=2000 RAND_WARM=100000   random reads per cold / warm run
#   REF_CHANGES=2*RUNS   ref changes timed in part 3 (rounded up to even)
#   MEMLIMIT=100MiB GOMEMLIMIT of the second daemon of part 5
#   TRIM_AFTER=10   seconds of idleness before the daemon trims (its --trim-after)
#   KEEP=1          keep the generated caches (their paths are printed)
#   HFCACHEFS_BIN=PATH  use this binary instead of building the repository
#   TMPDIR          where the temporary directory goes (the file system matters)
set -euo pipefail
export LC_ALL=C # '.' as the decimal separator in $EPOCHREALTIME and awk

RUNS=${RUNS:-5}
PARTS=${PARTS:-blob walk ref ready rss trash}
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
HFCACHEFS_BIN=${HFCACHEFS_BIN:-}

for v in RUNS REPOS REVISIONS FILES SEED RAND_COLD RAND_WARM REF_CHANGES TRASH_FILES; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]] || ((${!v} < 1)); then
		echo "bench-mount: $v must be a positive integer, not '${!v}'" >&2
		exit 2
	fi
done
REF_CHANGES=$(((REF_CHANGES + 1) / 2 * 2)) # even: the ref ends where it started
for p in $PARTS; do
	case $p in blob | walk | ref | ready | rss | trash) ;; *)
		echo "bench-mount: unknown part '$p' in PARTS (blob walk ref ready rss trash)" >&2
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
log() { echo "bench-mount: $*" >&2; }

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
	for m in "${mounts[@]}"; do
		is_mounted "$m" && { "${bin:-false}" unmount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
	done
	for p in "${pids[@]}"; do
		kill -0 "$p" 2>/dev/null && kill "$p" 2>/dev/null || true
	done
	if under_tmp_mounted; then
		log "something is still mounted under $tmp: left in place"
		return
	fi
	# If part 3 was interrupted, put the ref back.
	if [[ -n ${ref_file:-} && -n ${ref_orig:-} ]]; then
		printf '%s' "$ref_orig" >"$ref_file.bench.tmp" && mv -f "$ref_file.bench.tmp" "$ref_file" || true
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
machine="machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -srm), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), temp dir on ${fstype:-?}, $(go env GOVERSION 2>/dev/null || echo 'go ?')"
table=()      # result lines, printed at the end
runs_lines=() # every run's seconds
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
if want walk || want ref || want ready || want rss; then
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

if want walk || want ref; then
	m2=$tmp/mnt
	mount_fs "$m2" "$cache"
	pid2=$mount_pid
	cat "$m2/.status.json" >/dev/null # blocks until the first full scan is in
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
	mnt_files=$(mnt_find)
	nat_ls; mnt_ls
	nat_kib=$(nat_du)
	mnt_kib=$(mnt_du)
	declare -A w=()
	log "part 2: $RUNS runs of find, ls -lR, du -s (native and mount alternate) ..."
	for ((i = 1; i <= RUNS; i++)); do
		if ((i % 2)); then sides="nat mnt"; else sides="mnt nat"; fi
		for k in find ls du; do
			for s in $sides; do
				t0=$EPOCHREALTIME
				"${s}_$k" >/dev/null
				w[${k}_${s:0:1}]+=" $(elapsed "$t0" "$EPOCHREALTIME")"
			done
		done
	done
	walk_row() { # LABEL KEY
		local n m ratio
		# shellcheck disable=SC2086
		n=$(median ${w[${2}_n]})
		# shellcheck disable=SC2086
		m=$(median ${w[${2}_m]})
		ratio=$(calc %.2f "$m / $n")
		add '%-40s %13s %13s %7sx  <= 1.5x  %s' "$1" "$(calc %.3f "$n") s" "$(calc %.3f "$m") s" "$ratio" "$(verdict_le "$ratio" 1.5)"
		# shellcheck disable=SC2086
		runs_lines+=("$(printf '%-14s native%s | mount%s' "walk $2" "$(fmt_runs ${w[${2}_n]})" "$(fmt_runs ${w[${2}_m]})")")
	}
	add '%-40s %13s %13s %8s' "2 walk, warm ($nat_files files)" native mount ratio
	walk_row "  find (mount: -name by-ref -prune)" find
	walk_row "  ls -lR(L) (mount: */by-commit)" ls
	walk_row "  du -s(L) (mount: */by-commit)" du
	if [[ $mnt_files == "$nat_files" ]]; then
		add '  file counts agree: %s' "$nat_files"
	else
		add '  FILE COUNTS DIFFER: native find %s, mount find %s' "$nat_files" "$mnt_files"
	fi
	add '  du totals (KiB): native %s, mount %s' "$nat_kib" "$mnt_kib"
	read -r r h < <(rss_of "$pid2")
	add '  daemon after these walks: VmRSS %s MiB, VmHWM %s MiB' "$r" "$h"
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
		add '%-40s %13s %13s   (%s s, poll-interval %s)' "3 ref change -> new bytes via by-ref" "" "$(calc %.3f "$(median "${lat[@]}")") s" "$(minmax "${lat[@]}")" "$poll"
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
		until [[ $(ls "$m4/models" | wc -l) -ge $nmodel_top ]]; do sleep 0.02; done
		t2=$EPOCHREALTIME
		until [[ $(status_field "$m4" revisions) == "$nrevs" && $(status_field "$m4" repos) == "$nrepos" ]]; do sleep 0.02; done
		t3=$EPOCHREALTIME
		r_ret+=("$(elapsed "$t0" "$t1")") r_ls+=("$(elapsed "$t0" "$t2")") r_full+=("$(elapsed "$t0" "$t3")")
		unmount_fs "$m4" "$mount_pid"
	done
	add '%-40s' "4 mount to ready ($nrepos repos, $nrevs revisions)"
	add '%-40s %13s %13s   (%s)' "  mount --daemon returned" "" "$(calc %.3f "$(median "${r_ret[@]}")") s" "$(minmax "${r_ret[@]}")"
	add '%-40s %13s %13s   (%s)' "  ls MOUNT/models lists all $nmodel_top names" "" "$(calc %.3f "$(median "${r_ls[@]}")") s" "$(minmax "${r_ls[@]}")"
	add '%-40s %13s %13s   (%s)' "  .status.json shows the full scan" "" "$(calc %.3f "$(median "${r_full[@]}")") s" "$(minmax "${r_full[@]}")"
fi

# ---------------------------------------------------------------- 5 rss
if want rss; then
	trim=${TRIM_AFTER:-10}
	add '%-40s' "5 daemon memory after a full walk (ls -lR MOUNT/{models,datasets,spaces}, by-ref too)"
	for lim in "" "$MEMLIMIT"; do
		m5=$tmp/mnt-rss
		mount_flags=(--trim-after "${trim}s")
		if [[ -n $lim ]]; then mount_fs "$m5" "$cache" "GOMEMLIMIT=$lim"; else mount_fs "$m5" "$cache" -u GOMEMLIMIT; fi
		mount_flags=()
		cat "$m5/.status.json" >/dev/null
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
		add '%-40s %13s %13s  < 150 MiB %s   (VmHWM %s MiB, %s MiB when ready)' "  VmRSS, GOMEMLIMIT=${lim:-unset}, walked" "" "$r MiB" \
			"$(verdict_le "$r" 150)" "$h" "$r0"
		add '%-40s %13s %13s  < 150 MiB %s   (trims: %s; kernel nodes %s -> %s)' "    idle ${trim} s later, trimmed" "" "$r2 MiB" \
			"$(verdict_le "$r2" 150)" "${runs:-?}" "${peak:-?}" "${left:-?}"
		add '%-40s %13s %13s   (first walk %s s; warm, right after: %s s)' "    ls -lR after the trim (cold again)" "" \
			"$(calc %.2f "$(elapsed "$t2" "$t3")") s" "$(calc %.2f "$(elapsed "$t0" "$t1")")" "$(calc %.2f "$(elapsed "$t3" "$t4")")"
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
	add '%-40s %11s s %11s s %7s   (%s)' "  deletion ended vs rm of it natively" "$(calc %.3f "$(median "${t_rm[@]}")")" \
		"$(calc %.3f "$(median "${t_done[@]}")")" "$(calc %.2fx "$(median "${t_done[@]}")/$(median "${t_rm[@]}")")" "$(minmax "${t_done[@]}")"
	runs_lines+=("$(printf '%-14s%s' "trash mv" "$(fmt_runs "${t_mv[@]}")")")
	runs_lines+=("$(printf '%-14s%s' "trash done" "$(fmt_runs "${t_done[@]}")")")
	rm -rf "$tmp/trash-run" "$tmp/trash-tpl"
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
