#!/usr/bin/env bash
# File-share benchmark (issue 10). Not a test: prints figures and ratios measured in the
# same run.
#
# Usage: bench/shares.sh [--bin-dir DIR] [--runs N] [--mib M] [--files N]   (as root)
#
#   --bin-dir DIR  where vmrund, vmrun-shim and vmrun are (env VMRUN_BIN_DIR).
#                  Default: ${CARGO_TARGET_DIR:-REPO/target}/release, built if missing.
#   --runs N       runs per figure, median reported (default 3).
#   --mib M        MiB written then read sequentially (default 64).
#   --files N      files in the metadata workload (default 1000).
#
# The same three workloads, run by busybox's sh in a container in the shared VM
# (vmrund --mode vm) on a host directory shared into it (-v DIR:/s), and on the host
# directly in the same directory (the peer):
#   write     dd M MiB from /dev/zero into a file, fsync'd
#   read      cat that file to /dev/null (the share has no guest page cache by design; the
#             host's read is from its page cache: this is the ratio a user feels)
#   metadata  create N small files in a new directory, then stat every one (find + stat)
# Each figure is the wall time of one `vmrun exec` less that of an empty one, so the
# exec's own cost is left out. Target on hardware KVM: reads >= 0.8x the host. Under TCG
# (emulation) the figures are regression numbers only.
set -euo pipefail
export LC_ALL=C

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
RUNS=3
MIB=64
FILES=1000
BIN_DIR=${VMRUN_BIN_DIR:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) BIN_DIR=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --mib) MIB=$2; shift 2 ;;
        --files) FILES=$2; shift 2 ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "shares.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
for n in "$RUNS" "$MIB" "$FILES"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "shares.sh: counts must be positive integers" >&2; exit 2; }
done
die() { echo "shares.sh: $*" >&2; exit 1; }
log() { echo "shares.sh: $*" >&2; }
[ "$EUID" -eq 0 ] || die "needs root"
command -v busybox >/dev/null || die "needs busybox (apt-get install busybox-static)"

# shellcheck source=bench/lib/binaries.sh
. "$ROOT_DIR/bench/lib/binaries.sh"
ensure_binaries vmrund vmrun-shim vmrun
# shellcheck source=bench/lib/processes.sh
. "$ROOT_DIR/bench/lib/processes.sh"
# shellcheck source=bench/lib/daemon.sh
. "$ROOT_DIR/bench/lib/daemon.sh"
# shellcheck source=bench/lib/numbers.sh
. "$ROOT_DIR/bench/lib/numbers.sh"

D=$(mktemp -d /tmp/vms.XXXXXX)
SOCK=$D/d.sock
BRIDGE=${D##*/}; BRIDGE=${BRIDGE//./-}
PID=
SHARE=$D/share
cleanup() {
    set +e
    stop_daemon
    rm -rf "$D"
}
trap cleanup EXIT INT TERM
vmrun() { "$BIN_DIR/vmrun" -H "unix://$SOCK" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# The workloads, for busybox sh, in directory $1.
workload() {
    case "$1" in
        write) echo "dd if=/dev/zero of=\$W/big bs=1048576 count=$MIB conv=fsync 2>/dev/null" ;;
        read) echo "cat \$W/big > /dev/null" ;;
        metadata) echo "rm -rf \$W/t; mkdir \$W/t; i=0; while [ \$i -lt $FILES ]; do echo x > \$W/t/f\$i; i=\$((i+1)); done; find \$W/t -type f -exec stat -c %s {} + > /dev/null" ;;
    esac
}

# in_container KIND: ms of one run of workload KIND on the share in the container.
in_container() {
    local t0 t1 e0 e1
    e0=$(now_ms); vmrun exec bench true; e1=$(now_ms)
    t0=$(now_ms); vmrun exec -e W=/s bench sh -c "$(workload "$1")"; t1=$(now_ms)
    echo $(((t1 - t0) - (e1 - e0)))
}

# on_host KIND: ms of one run of workload KIND in the same directory on the host.
on_host() {
    local t0 t1
    t0=$(now_ms); W=$SHARE busybox sh -c "$(workload "$1")"; t1=$(now_ms)
    echo $((t1 - t0))
}

mkdir -p "$SHARE"
"$ROOT_DIR/installer/make-busybox-image.sh" "$D/busybox.tar" >/dev/null
start_daemon
if ! status=$(vmrun vm status 2>&1); then
    echo "no VM backend here: $status"
    exit 0
fi
start_daemon --mode vm --vm-memory 512 --vm-disk-size 4
vmrun load -i "$D/busybox.tar" >/dev/null
vmrun vm start >/dev/null
status=$(vmrun vm status)
backend=$(awk '/^Backend:/ {print $2}' <<<"$status")
accel=$(awk '/^Accelerator:/ {print $2}' <<<"$status")
vmrun run -d --name bench -v "$SHARE:/s" busybox sleep 3600 >/dev/null

echo "file share, container in the shared VM ($backend, accelerator $accel$( [ "$accel" = tcg ] && echo ': emulated, regression numbers only')), medians of $RUNS, ms (lower is better):"
for kind in write read metadata; do
    vm=$(for _ in $(seq "$RUNS"); do in_container "$kind"; done | median)
    host=$(for _ in $(seq "$RUNS"); do on_host "$kind"; done | median)
    [ "$vm" -gt 0 ] || vm=1
    case $kind in
        write|read) what="$kind $MIB MiB" ;;
        metadata) what="create + stat $FILES files" ;;
    esac
    printf '  %-26s share %6s ms, host %6s ms  -> %sx the host'"'"'s speed\n' \
        "$what:" "$vm" "$host" "$(ratio "$host" "$vm")"
done
