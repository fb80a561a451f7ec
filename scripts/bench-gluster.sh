#!/usr/bin/env bash
# GlusterFS benchmark of change detection in poll mode: what idle hfcachefs
# daemons cost the file server, and how fast a ref moved on one node shows
# on another. A real GlusterFS (scripts/glusterfs.sh: one brick on the local
# disk, two client mounts standing in for two nodes), a generated cache of
# REPOS repos written through client mount 1.
#
#   1 idle   the brick's LOOKUP calls per second (gluster volume profile ...
#            info incremental) over BENCH_SECONDS: with no daemon (baseline),
#            one idle daemon (client mount 2), two (one per client mount);
#            daemons run with the defaults (--watch auto: poll, 30 s).
#            Target per idle node: a handful of paths (HANDFUL=7:
#            cachecore.PollPaths of these repos: the repo folder, refs/,
#            refs/main, snapshots/, the snapshot main points to, blobs/,
#            .no_exist/) x REPOS / poll interval
#   2 ref    cross-node ref follow: a new snapshot and refs/main rewritten
#            (temp + rename) on node 1, until cat of by-ref/main/config.json
#            through node 2's daemon shows the new bytes (polled every
#            50 ms), RUNS times, median. Target: ref TTL + 1 s
#
# Prints rows "name  value  target  verdict".
#
# Usage: scripts/bench-gluster.sh     (as root; installs GlusterFS when missing)
# Environment:
#   BENCH_SECONDS=60   the window of each idle measurement
#   REPOS=50           repos in the generated cache
#   RUNS=7             ref moves timed in part 2
#   POLL=30s REF_TTL=1s  the daemons' --poll-interval / --ref-ttl (the defaults)
#   HANDFUL=7          paths per repo a poll pass may look at (for the target)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

BENCH_SECONDS=${BENCH_SECONDS:-60}
REPOS=${REPOS:-50}
RUNS=${RUNS:-7}
POLL=${POLL:-30s}
REF_TTL=${REF_TTL:-1s}
HANDFUL=${HANDFUL:-7}

[ "$(id -u)" = 0 ] || { echo "bench-gluster.sh: needs root (glusterd, mounts)" >&2; exit 1; }

work=$(mktemp -d /tmp/hfcachefs-bench-gluster.XXXXXX)
bin=$work/hfcachefs
mps=()
# mounted_under DIR: something is mounted at or below DIR.
mounted_under() { awk -v d="$1" '$5 == d || index($5, d "/") == 1 {found=1} END {exit !found}' /proc/self/mountinfo; }
cleanup() {
  local mp
  for mp in "${mps[@]}"; do
    "$bin" unmount "$mp" >/dev/null 2>&1 || umount -l "$mp" 2>/dev/null || true
  done
  scripts/glusterfs.sh down "$work/gl" >/dev/null 2>&1 || echo "bench-gluster.sh: glusterfs.sh down $work/gl failed" >&2
  # Never rm -rf through a mount.
  if mounted_under "$work"; then
    echo "bench-gluster.sh: something is still mounted under $work; left in place" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

go build -o "$bin" .
t0=$(date +%s.%N)
eval "$(scripts/glusterfs.sh up "$work/gl")"
setup_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
cache1=$MOUNT1/hub
cache2=$MOUNT2/hub

# gencache: REPOS repos of one revision (2 files) each, written on node 1.
commit_of() { printf '%s' "$1" | sha1sum | cut -c1-40; }
write_revision() { # folder commit
  local repo=$cache1/$1 c=$2 p data etag
  mkdir -p "$repo/blobs" "$repo/refs" "$repo/snapshots/$c"
  for p in config.json model.safetensors; do
    data="$1 $c $p"
    etag=$(printf '%s' "$data" | sha256sum | cut -c1-64)
    printf '%s' "$data" >"$repo/blobs/$etag"
    ln -sfn "../../blobs/$etag" "$repo/snapshots/$c/$p"
  done
}
set_ref() { # folder commit
  printf '%s' "$2" >"$cache1/$1/refs/main.tmp"
  mv -f "$cache1/$1/refs/main.tmp" "$cache1/$1/refs/main"
}
for ((i = 0; i < REPOS; i++)); do
  f=models--bench--r$i
  c=$(commit_of "$f@1")
  write_revision "$f" "$c"
  set_ref "$f" "$c"
done

# mount_daemon CACHE: a default daemon on a new mountpoint ($mp), once its
# first scan is done. Not in a subshell: cleanup needs $mps.
mount_daemon() {
  mp=$(mktemp -d "$work/mnt.XXXXXX")
  mps+=("$mp")
  "$bin" mount "$mp" --cache-dir "$1" --poll-interval "$POLL" --ref-ttl "$REF_TTL" --daemon >&2
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q '"state": *"done"' "$mp/.status.json" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench-gluster.sh: $mp: the first scan is not done after 60 s" >&2
  exit 1
}

lookups_per_s() { # -> "lookups/s"
  scripts/glusterfs.sh profile-info "$VOLUME" >/dev/null # reset the interval
  sleep "$BENCH_SECONDS"
  local out lookups dur
  out=$(scripts/glusterfs.sh profile-info "$VOLUME")
  lookups=$(sed -n 's/^LOOKUP=//p' <<<"$out")
  dur=$(sed -n 's/^DURATION=//p' <<<"$out")
  [ "${dur:-0}" -gt 0 ] || dur=$BENCH_SECONDS
  awk -v l="$lookups" -v d="$dur" 'BEGIN{printf "%.2f", l/d}'
}

scripts/glusterfs.sh profile-start "$VOLUME"
echo "GlusterFS setup ${setup_s} s; $REPOS repos; idle windows ${BENCH_SECONDS} s; poll $POLL, ref TTL $REF_TTL" >&2
base=$(lookups_per_s)
mount_daemon "$cache2"
mpB=$mp
sleep 2 # the first scan's lookups are not idle ones
one=$(lookups_per_s)
mount_daemon "$cache1"
sleep 2
two=$(lookups_per_s)
grep -o '"mode": *"[a-z+]*"' "$mpB/.status.json" | head -1 | sed 's/^/daemon B refresh /' >&2

# Part 2: cross-node ref follow through daemon B: "cold", the ref last
# read more than the TTL ago (and the GlusterFS client's ~1 s caches
# expired); "hot", read through the mount right before it moves (the
# worst case: the daemon's check and node 2's client caches are fresh).
f=models--bench--r0
follow() { # cold|hot -> the latencies, space-separated
  local k c want s i out=()
  for ((k = 0; k < RUNS; k++)); do
    c=$(commit_of "$f@$1$k")
    write_revision "$f" "$c"
    want="$f $c config.json"
    sleep 1.5
    [ "$1" = hot ] && cat "$mpB/models/bench/r0/by-ref/main/config.json" >/dev/null
    set_ref "$f" "$c"
    s=$(date +%s.%N)
    for ((i = 0; i < 400; i++)); do
      [ "$(cat "$mpB/models/bench/r0/by-ref/main/config.json" 2>/dev/null)" = "$want" ] && break
      sleep 0.05
    done
    out+=("$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN{printf "%.3f", b-a}')")
  done
  echo "${out[*]}"
}
median_of() { tr ' ' '\n' <<<"$1" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
lat_cold=$(follow cold)
lat_hot=$(follow hot)
median=$(median_of "$lat_cold")
median_hot=$(median_of "$lat_hot")

poll_s=$(awk -v p="$POLL" 'BEGIN{ if (p ~ /ms$/) print p/1000; else if (p ~ /m$/) print p*60; else if (p ~ /h$/) print p*3600; else print p+0 }')
ttl_s=$(awk -v p="$REF_TTL" 'BEGIN{ if (p ~ /ms$/) print p/1000; else if (p ~ /m$/) print p*60; else print p+0 }')
target=$(awk -v h="$HANDFUL" -v r="$REPOS" -v p="$poll_s" 'BEGIN{printf "%.2f", h*r/p}')
per1=$(awk -v a="$one" -v b="$base" 'BEGIN{printf "%.2f", a-b}')
per2=$(awk -v a="$two" -v b="$base" 'BEGIN{printf "%.2f", (a-b)/2}')
verdict() { awk -v v="$1" -v t="$2" 'BEGIN{print (v <= t ? "ok" : "OVER")}'; }

echo
echo "hfcachefs on GlusterFS ($(date +%F)): $REPOS repos, poll $POLL, ref TTL $REF_TTL, windows ${BENCH_SECONDS} s"
printf '%-56s %12s %14s  %s\n' name value target verdict
printf '%-56s %12s %14s  %s\n' "brick LOOKUP/s, no daemon (baseline)" "$base" "-" "report"
printf '%-56s %12s %14s  %s\n' "brick LOOKUP/s, one idle daemon" "$one" "-" "report"
printf '%-56s %12s %14s  %s\n' "brick LOOKUP/s, two idle daemons" "$two" "-" "report"
printf '%-56s %12s %14s  %s\n' "  per idle node, one daemon (minus baseline)" "$per1" "<= $target" "$(verdict "$per1" "$target")"
printf '%-56s %12s %14s  %s\n' "  per idle node, two daemons (minus baseline)" "$per2" "<= $target" "$(verdict "$per2" "$target")"
perpass=$(awk -v v="$per2" -v p="$poll_s" -v r="$REPOS" 'BEGIN{printf "%.2f", v*p/r}')
printf '%-56s %12s %14s  %s\n' "  LOOKUPs per repo per poll pass (two daemons)" "$perpass" "<= $HANDFUL" "$(verdict "$perpass" "$HANDFUL")"
rt=$(awk -v t="$ttl_s" 'BEGIN{printf "%.3f", t+1}')
printf '%-56s %12s %14s  %s\n' "cross-node ref follow, ref not read lately, median (s)" "$median" "<= $rt" "$(verdict "$median" "$rt")"
printf '%-56s %12s %14s  %s\n' "cross-node ref follow, ref read just before, median (s)" "$median_hot" "<= $rt" "$(verdict "$median_hot" "$rt")"
printf '  ref follow runs (s): not read lately: %s; read just before: %s\n' "$lat_cold" "$lat_hot"
echo "  target per node: HANDFUL=$HANDFUL paths x $REPOS repos / ${poll_s} s; GlusterFS setup took ${setup_s} s"
