#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every check.
#   scripts/test.sh            everything (as CI runs it)
#   scripts/test.sh -run Foo   extra arguments go to 'go test'
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use: fuse3 (fusermount3), attr (getfattr),
# bubblewrap (container export), python3 (case builder, mmap), nodejs and
# npm (the real Hugging Face client of the e2e tests), glusterfs-server and
# glusterfs-client (the network file system of e2e/gluster_test.go, set up
# by scripts/glusterfs.sh), strace (an idle daemon makes no system call:
# mount/watch_test.go). Installed only where missing, and only as root
# (elsewhere say what is missing).
need_pkgs=()
command -v fusermount3 >/dev/null || need_pkgs+=(fuse3)
command -v getfattr >/dev/null || need_pkgs+=(attr)
command -v bwrap >/dev/null || need_pkgs+=(bubblewrap)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v node >/dev/null || need_pkgs+=(nodejs)
command -v npm >/dev/null || need_pkgs+=(npm)
command -v glusterd >/dev/null || need_pkgs+=(glusterfs-server)
command -v mount.glusterfs >/dev/null || need_pkgs+=(glusterfs-client)
command -v strace >/dev/null || need_pkgs+=(strace)
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "missing packages (install them as root): ${need_pkgs[*]}" >&2
  fi
fi

export PATH="$PATH:/usr/local/go/bin"
go mod download

# npm @huggingface/hub, pinned by e2e/npm/package-lock.json, into that
# project folder.
echo "== npm ci (e2e/npm)"
(cd e2e/npm && npm ci --no-audit --no-fund --loglevel=error)

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test (race detector on)"
go test -race -timeout 40m -p 1 -count=1 "$@" ./...

# Fuzzing, a fixed budget per target: a number of executions, about 30 s
# each here (a time budget makes Go's fuzzer fail now and then with
# "context deadline exceeded" when the time runs out mid-minimization).
# FUZZ=0 skips; the seed corpora in */testdata/fuzz run as plain tests
# above either way.
FUZZ=${FUZZ:-1}
if [ "$FUZZ" != 0 ] && [ $# -eq 0 ]; then
  for target in "FuzzParseRepoFolderName ./cachecore 900000" "FuzzRefContent ./cachecore 800000" \
    "FuzzLsFilter . 500000" "FuzzDecideRename ./fs 900000"; do
    set -- $target
    echo "== fuzz $1 ($3 executions)"
    timeout 600 go test -run='^$' -fuzz="^$1\$" -fuzztime="$3x" -fuzzminimizetime=5s "$2"
  done
fi
