#!/usr/bin/env bash
# A real GlusterFS on this machine, for the tests and benchmarks that need a
# network file system (e2e/gluster_test.go, scripts/bench-gluster.sh): one
# glusterd, a one-brick volume on the local disk, mounted twice with the
# FUSE client (two client mounts standing in for two nodes).
#
#   scripts/glusterfs.sh install            apt-get glusterfs-server/-client when missing (root)
#   scripts/glusterfs.sh start              glusterd running and answering (started directly, no systemd needed)
#   scripts/glusterfs.sh up DIR             install + start + a volume with its brick in DIR/brick, started,
#                                           mounted on DIR/m1 and DIR/m2; idempotent. Prints KEY=VALUE lines:
#                                             VOLUME= HOST= BRICK= MOUNT1= MOUNT2= LOGDIR= INSTALL_SECONDS= SETUP_SECONDS=
#   scripts/glusterfs.sh down DIR           unmount both, stop and delete the volume, remove the brick (and DIR's
#                                           gluster folders); idempotent
#   scripts/glusterfs.sh brick-kill VOL     SIGKILL the brick process (its pid from 'gluster volume status'),
#                                           wait until it is gone; prints BRICK_PID=
#   scripts/glusterfs.sh brick-start VOL    'gluster volume start VOL force', wait until the brick is online;
#                                           prints BRICK_PID= BRICK_START_SECONDS=
#   scripts/glusterfs.sh brick-pid VOL      the brick's pid (empty and exit 1 when it is offline)
#   scripts/glusterfs.sh wait-mounts DIR    wait until both client mounts of DIR answer (after a brick-start)
#   scripts/glusterfs.sh profile-start VOL  'gluster volume profile VOL start', and reset the incremental counters
#   scripts/glusterfs.sh profile-info VOL   calls since the last profile-info/profile-start, from
#                                           'gluster volume profile VOL info incremental':
#                                             DURATION=<s> LOOKUP=<n> FOP_<NAME>=<n> ... (summed over bricks)
#   scripts/glusterfs.sh volume-name DIR    the volume name 'up DIR' uses
#
# Exit status: 0 done; 2 usage; 3 GlusterFS cannot be had here (not root,
# no apt-get, the packages do not install, glusterd does not start or
# answer): callers may skip on 3 outside CI; 1 anything else.
#
# Everything runs without a terminal (gluster --mode=script, apt-get -y,
# DEBIAN_FRONTEND=noninteractive) and every gluster call is bounded
# (GLUSTER_TIMEOUT, default 60 s). Messages go to stderr, results to stdout.
# The brick lives on the local disk under DIR (gluster is told 'force': a
# brick on the root file system is refused otherwise). The volume is
# reached through the machine's own address (hostname -I), never localhost
# (gluster refuses loopback brick addresses); traffic stays on this machine.
set -euo pipefail

export PATH="$PATH:/usr/sbin:/sbin"
GLUSTER_TIMEOUT=${GLUSTER_TIMEOUT:-60}
LOCK=/run/lock/hfcachefs-glusterfs.lock

say() { echo "glusterfs.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }
unavailable() { say "GlusterFS unavailable: $*"; exit 3; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 2; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }

# g runs the gluster CLI without prompts, bounded.
g() { timeout --kill-after=5 "$GLUSTER_TIMEOUT" gluster --mode=script "$@"; }

need_root() {
  [ "$(id -u)" = 0 ] || unavailable "needs root (glusterd, mount -t glusterfs)"
}

# lock serialises the commands that change the volume set (up, down).
lock() {
  mkdir -p "$(dirname "$LOCK")"
  exec 9>"$LOCK"
  flock -w 300 9 || die "another glusterfs.sh holds $LOCK for more than 300 s"
}

cmd_install() {
  need_root
  local pkgs=()
  command -v glusterd >/dev/null || pkgs+=(glusterfs-server)
  command -v mount.glusterfs >/dev/null || [ -x /sbin/mount.glusterfs ] || pkgs+=(glusterfs-client)
  ((${#pkgs[@]})) || return 0
  command -v apt-get >/dev/null || unavailable "missing ${pkgs[*]} and no apt-get to install them"
  say "installing ${pkgs[*]}"
  local t0 log
  t0=$(now)
  log=$(mktemp)
  if ! { timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${pkgs[@]}"; } >"$log" 2>&1 </dev/null; then
    tail -20 "$log" >&2
    rm -f "$log"
    unavailable "apt-get install ${pkgs[*]} failed"
  fi
  rm -f "$log"
  say "installed ${pkgs[*]} in $(elapsed "$t0") s"
}

# glusterd_answers: the CLI reaches glusterd.
glusterd_answers() {
  timeout --kill-after=2 10 gluster --mode=script volume list >/dev/null 2>&1
}

cmd_start() {
  need_root
  command -v glusterd >/dev/null || unavailable "glusterd is not installed (scripts/glusterfs.sh install)"
  glusterd_answers && return 0
  local t0
  t0=$(now)
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    say "starting glusterd (systemctl)"
    timeout 60 systemctl start glusterd >&2 || say "systemctl start glusterd failed; starting it directly"
  fi
  if ! glusterd_answers; then
    local pidfile=/run/glusterd.pid
    # A glusterd that runs but does not answer yet is waited for, not
    # started twice.
    if ! { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
      say "starting glusterd"
      mkdir -p /var/log/glusterfs /var/lib/glusterd
      glusterd -p "$pidfile" --log-level WARNING </dev/null >/dev/null 2>&1 ||
        unavailable "glusterd failed to start (see /var/log/glusterfs/glusterd.log): $(tail -5 /var/log/glusterfs/glusterd.log 2>/dev/null)"
    fi
  fi
  local i
  for ((i = 0; i < 300; i++)); do
    glusterd_answers && { say "glusterd answers ($(elapsed "$t0") s)"; return 0; }
    sleep 0.1
  done
  unavailable "glusterd does not answer 'gluster volume list' within 30 s (see /var/log/glusterfs/glusterd.log): $(tail -5 /var/log/glusterfs/glusterd.log 2>/dev/null)"
}

# host_ip: the machine's own address (gluster refuses loopback bricks).
host_ip() {
  local ip
  ip=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+(\.[0-9]+){3}$' | grep -v '^127\.' | head -1 || true)
  if [ -z "$ip" ] && command -v ip >/dev/null; then
    ip=$(ip -4 -o addr show scope global 2>/dev/null | awk '{sub("/.*", "", $4); print $4; exit}')
  fi
  [ -n "$ip" ] || unavailable "this machine has no non-loopback IPv4 address for the brick (hostname -I is empty)"
  echo "$ip"
}

# volume_name DIR: hfc-<8 hex of DIR's absolute path>; stable for a DIR.
volume_name() {
  echo "hfc-$(printf '%s' "$1" | sha256sum | cut -c1-8)"
}

abs_dir() {
  [ -n "${1:-}" ] || usage
  mkdir -p "$1"
  (cd "$1" && pwd -P)
}

is_mounted() { awk -v mp="$1" '$5 == mp {found=1} END {exit !found}' /proc/self/mountinfo; }

volume_exists() { g volume info "$1" >/dev/null 2>&1; }

volume_started() { g volume info "$1" 2>/dev/null | grep -q '^Status: Started'; }

# brick_pid VOL: the pid of the (single) brick when online. From the XML
# status: the text one wraps long brick paths over two lines.
brick_pid() {
  g volume status "$1" --xml 2>/dev/null | awk '
    /<node>/ { status = ""; pid = "" }
    /<status>/ { gsub(/.*<status>|<\/status>.*/, ""); status = $0 }
    /<pid>/ { gsub(/.*<pid>|<\/pid>.*/, ""); pid = $0 }
    /<\/node>/ { if (status == "1" && pid ~ /^[0-9]+$/ && pid > 0) { print pid; exit } }'
}

# mount_client VOL HOST MP LOG: a FUSE client mount, waited for.
mount_client() {
  local vol=$1 host=$2 mp=$3 log=$4
  mkdir -p "$mp"
  if is_mounted "$mp"; then
    timeout 10 stat -f "$mp" >/dev/null 2>&1 && return 0
    say "$mp is mounted but does not answer; mounting it again"
    umount -l "$mp" 2>/dev/null || true
  fi
  # The client daemon mount starts must inherit neither the lock (9>&-)
  # nor our stdout/stderr (a caller reading them would wait for its end).
  timeout 60 mount -t glusterfs -o "log-file=$log,log-level=WARNING" "$host:/$vol" "$mp" </dev/null >"$log.mount" 2>&1 9>&- ||
    die "mount -t glusterfs $host:/$vol $mp failed: $(cat "$log.mount" 2>/dev/null) (log: $log): $(tail -5 "$log" 2>/dev/null)"
  local i
  for ((i = 0; i < 100; i++)); do
    timeout 10 stat -f "$mp" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$mp (glusterfs $host:/$vol) does not answer 10 s after mounting (log: $log)"
}

unmount_client() {
  local mp=$1 i
  for ((i = 0; i < 20; i++)); do
    is_mounted "$mp" || break
    timeout 30 umount "$mp" 2>/dev/null || timeout 30 umount -l "$mp" 2>/dev/null || true
    is_mounted "$mp" || break
    sleep 0.2
  done
  ! is_mounted "$mp" || die "cannot unmount $mp"
}

# up_failed (EXIT trap of up): takes down what this 'up' made.
up_failed() {
  local rc=$?
  [ "$rc" != 0 ] || return 0
  say "up failed; cleaning up"
  (unmount_client "$m1") || true
  (unmount_client "$m2") || true
  if [ "$created" = 1 ]; then
    g volume stop "$vol" force >/dev/null 2>&1 || true
    g volume delete "$vol" >/dev/null 2>&1 || true
    rm -rf "$brick"
  fi
}

cmd_up() {
  # Globals (not local): the EXIT trap uses them.
  local t0 dir host logdir install_s
  created=0
  t0=$(now)
  dir=$(abs_dir "${1:-}")
  need_root
  cmd_install
  install_s=$(elapsed "$t0")
  cmd_start
  lock
  vol=$(volume_name "$dir")
  host=$(host_ip)
  brick=$dir/brick
  m1=$dir/m1
  m2=$dir/m2
  logdir=$dir/logs
  mkdir -p "$logdir"

  # On failure from here: take down what this call made.
  trap up_failed EXIT

  if ! volume_exists "$vol"; then
    # A brick folder left by a deleted volume carries its volume-id xattr:
    # gluster refuses it. It is ours (DIR/brick): start afresh.
    rm -rf "$brick"
    mkdir -p "$brick"
    say "creating volume $vol ($host:$brick)"
    g volume create "$vol" "$host:$brick" force >&2 || die "gluster volume create $vol $host:$brick force failed"
    created=1
  fi
  if ! volume_started "$vol"; then
    g volume start "$vol" >&2 || die "gluster volume start $vol failed"
  fi
  local i
  for ((i = 0; i < 300; i++)); do
    [ -n "$(brick_pid "$vol")" ] && break
    sleep 0.1
  done
  [ -n "$(brick_pid "$vol")" ] || g volume start "$vol" force >&2 || true
  [ -n "$(brick_pid "$vol")" ] || die "the brick of $vol is not online 30 s after start: $(g volume status "$vol" 2>&1)"
  mount_client "$vol" "$host" "$m1" "$logdir/m1.log"
  mount_client "$vol" "$host" "$m2" "$logdir/m2.log"
  trap - EXIT
  printf 'VOLUME=%s\nHOST=%s\nBRICK=%s\nMOUNT1=%s\nMOUNT2=%s\nLOGDIR=%s\nINSTALL_SECONDS=%s\nSETUP_SECONDS=%s\n' \
    "$vol" "$host" "$brick" "$m1" "$m2" "$logdir" "$install_s" "$(elapsed "$t0")"
}

cmd_down() {
  local dir vol
  [ -n "${1:-}" ] || usage
  [ -d "$1" ] || { say "$1 does not exist: nothing to take down"; return 0; }
  dir=$(cd "$1" && pwd -P)
  need_root
  vol=$(volume_name "$dir")
  lock
  unmount_client "$dir/m1"
  unmount_client "$dir/m2"
  if command -v gluster >/dev/null && glusterd_answers && volume_exists "$vol"; then
    # Profiling off first: 'volume stop' answers later otherwise.
    g volume profile "$vol" stop >/dev/null 2>&1 || true
    g volume stop "$vol" force >&2 || say "gluster volume stop $vol failed"
    g volume delete "$vol" >&2 || die "gluster volume delete $vol failed"
  fi
  rm -rf "$dir/brick" "$dir/m1" "$dir/m2" "$dir/logs"
  say "$vol is down"
}

cmd_brick_pid() {
  local pid
  pid=$(brick_pid "${1:?volume name}")
  [ -n "$pid" ] || return 1
  echo "$pid"
}

cmd_brick_kill() {
  local vol=${1:?volume name} pid i
  need_root
  pid=$(brick_pid "$vol")
  [ -n "$pid" ] || die "the brick of $vol is not online: nothing to kill"
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = glusterfsd ] || die "pid $pid of $vol's brick is not a glusterfsd"
  kill -KILL "$pid"
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  ! kill -0 "$pid" 2>/dev/null || die "the brick process $pid survives SIGKILL"
  echo "BRICK_PID=$pid"
}

cmd_brick_start() {
  local vol=${1:?volume name} t0 i pid
  need_root
  t0=$(now)
  g volume start "$vol" force >&2 || die "gluster volume start $vol force failed"
  for ((i = 0; i < 300; i++)); do
    pid=$(brick_pid "$vol")
    [ -n "$pid" ] && break
    sleep 0.1
  done
  [ -n "$pid" ] || die "the brick of $vol is not online 30 s after 'volume start force'"
  printf 'BRICK_PID=%s\nBRICK_START_SECONDS=%s\n' "$pid" "$(elapsed "$t0")"
}

cmd_wait_mounts() {
  local dir t0 i mp
  dir=$(cd "${1:?DIR}" && pwd -P)
  t0=$(now)
  for mp in "$dir/m1" "$dir/m2"; do
    for ((i = 0; i < 600; i++)); do
      timeout 5 stat -f "$mp" >/dev/null 2>&1 && timeout 5 ls "$mp" >/dev/null 2>&1 && break
      sleep 0.1
    done
    timeout 5 ls "$mp" >/dev/null 2>&1 || die "$mp does not answer after 60 s"
  done
  echo "MOUNTS_BACK_SECONDS=$(elapsed "$t0")"
}

cmd_profile_start() {
  local vol=${1:?volume name} out
  need_root
  if ! out=$(g volume profile "$vol" start 2>&1); then
    grep -qi 'already started' <<<"$out" || die "gluster volume profile $vol start: $out"
  fi
  g volume profile "$vol" info incremental >/dev/null || die "gluster volume profile $vol info incremental failed"
}

# profile_parse: sums 'No. of calls' per fop over the bricks' interval
# tables, and takes the first Duration.
profile_parse() {
  awk '
    /^Interval [0-9]+ Stats:/ { inside = 1; next }
    /^Cumulative Stats:/ { inside = 0; next }
    inside && /Duration:/ { if (dur == "") dur = $2; next }
    inside && NF >= 6 && $NF ~ /^[A-Z_]+$/ && $(NF-1) ~ /^[0-9]+$/ { calls[$NF] += $(NF-1) }
    END {
      printf "DURATION=%s\n", (dur == "" ? 0 : dur)
      printf "LOOKUP=%d\n", calls["LOOKUP"] + 0
      for (f in calls) if (f != "LOOKUP") printf "FOP_%s=%d\n", f, calls[f]
    }'
}

cmd_profile_info() {
  local vol=${1:?volume name} out
  need_root
  out=$(g volume profile "$vol" info incremental) || die "gluster volume profile $vol info incremental failed"
  profile_parse <<<"$out"
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in
  install) cmd_install ;;
  start) cmd_install && cmd_start ;;
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  brick-kill) cmd_brick_kill "$@" ;;
  brick-start) cmd_brick_start "$@" ;;
  brick-pid) cmd_brick_pid "$@" ;;
  wait-mounts) cmd_wait_mounts "$@" ;;
  profile-start) cmd_profile_start "$@" ;;
  profile-info) cmd_profile_info "$@" ;;
  volume-name) volume_name "$(abs_dir "${1:-}")" ;;
  -h | --help | help | "") usage ;;
  *)
    say "unknown command: $cmd"
    usage
    ;;
  esac
}

main "$@"
