#!/usr/bin/env bash
# The main job: mount your Hugging Face cache on a mountpoint, in the
# foreground (Ctrl-C unmounts). Where no cache exists, mount a copy of the
# bundled demo cache (testdata/demo-cache) instead, and say so.
#   scripts/run.sh [MOUNTPOINT] [hfcachefs mount flags...]
# MOUNTPOINT defaults to ./mnt in this checkout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$PATH:/usr/local/go/bin"

mountpoint="${1:-$root/mnt}"
[ $# -gt 0 ] && shift

if [ "$(id -u)" != 0 ] && ! command -v fusermount3 >/dev/null; then
  echo "fusermount3 is missing: install Debian's fuse3 package (sudo apt-get install fuse3)" >&2
  exit 1
fi

mkdir -p "$root/bin" "$mountpoint"
(cd "$root" && go build -o bin/hfcachefs .)
bin="$root/bin/hfcachefs"

cache_args=()
if ! "$bin" where >/dev/null 2>&1; then
  demo="$(mktemp -d "${TMPDIR:-/tmp}/hfcachefs-demo.XXXXXX")"
  trap 'rm -rf "$demo"' EXIT
  cp -a "$root/testdata/demo-cache" "$demo/hub"
  echo "No Hugging Face cache at $("$bin" where --format json | sed 's/.*"hub_cache": "\([^"]*\)".*/\1/'):"
  echo "mounting the bundled demo cache (a copy in $demo/hub) instead."
  cache_args=(--cache-dir "$demo/hub")
fi

echo "Mounting on $mountpoint. Try: ls $mountpoint/models; du -sh $mountpoint/models/*/*; ls -l $mountpoint/by-size"
"$bin" mount "$mountpoint" "${cache_args[@]}" "$@"
