#!/usr/bin/env bash
# Published-port benchmark (issue 10). Not a test: prints figures and ratios measured in
# the same run.
#
# Usage: bench/ports.sh [--bin-dir DIR] [--runs N] [--mib M]   (as root; needs socat)
#
#   --bin-dir DIR  where vmrund, vmrun-shim and vmrun are (env VMRUN_BIN_DIR).
#                  Default: ${CARGO_TARGET_DIR:-REPO/target}/release, built if missing.
#   --runs N       runs per figure, median reported (default 3).
#   --mib M        MiB streamed through the echo server per throughput run (default 256;
#                  a quarter of it through the VM path under TCG).
#
# One echo server (netecho, tests/e2e/fixtures/netecho.rs, copied into a busybox
# container) and one client (netecho throughput|connrate on the host) for every path:
#   1. native: vmrund's published port (its userland proxy to the container's bridge
#      address) against socat relaying the same way (TCP-LISTEN on the host, fork, to the
#      container's address): throughput (streamed while echoed back) and connection rate
#      (one connection after another, one byte echoed each). Target: ratio >= 1.0.
#   2. shared VM (vmrund --mode vm): the same published port, relayed over vsock to the
#      guest agent; reported with its backend and accelerator, and as a ratio to the socat
#      figure of 1 (TCG is emulation: regression numbers only).
set -euo pipefail
export LC_ALL=C

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
RUNS=3
MIB=256
BIN_DIR=${VMRUN_BIN_DIR:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) BIN_DIR=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --mib) MIB=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "ports.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "ports.sh: --runs must be a positive integer" >&2; exit 2; }
[[ $MIB =~ ^[1-9][0-9]*$ ]] || { echo "ports.sh: --mib must be a positive integer" >&2; exit 2; }
die() { echo "ports.sh: $*" >&2; exit 1; }
log() { echo "ports.sh: $*" >&2; }
[ "$EUID" -eq 0 ] || die "needs root"
command -v socat >/dev/null || die "needs socat (apt-get install socat)"
command -v python3 >/dev/null || die "needs python3 (to pick free ports)"
command -v rustc >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"

# shellcheck source=bench/lib/binaries.sh
. "$ROOT_DIR/bench/lib/binaries.sh"
ensure_binaries vmrund vmrun-shim vmrun
# shellcheck source=bench/lib/processes.sh
. "$ROOT_DIR/bench/lib/processes.sh"
# shellcheck source=bench/lib/daemon.sh
. "$ROOT_DIR/bench/lib/daemon.sh"

D=$(mktemp -d /tmp/vmp.XXXXXX)
SOCK=$D/d.sock
BRIDGE=${D##*/}; BRIDGE=${BRIDGE//./-}
PID=
SOCAT=
cleanup() {
    set +e
    [ -n "$SOCAT" ] && kill "$SOCAT" 2>/dev/null
    stop_daemon
    rm -rf "$D"
}
trap cleanup EXIT INT TERM

# shellcheck source=bench/lib/numbers.sh
. "$ROOT_DIR/bench/lib/numbers.sh"
vmrun() { "$BIN_DIR/vmrun" -H "unix://$SOCK" "$@"; }
# free_port: a TCP port nobody listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# figure KIND ADDR COUNT: median of RUNS client runs.
figure() {
    for _ in $(seq "$RUNS"); do "$D/netecho" "$1" "$2" "$3" | awk '{print $2}'; done | median
}

rustc --edition 2021 -O -C strip=symbols -C target-feature=+crt-static \
    "$ROOT_DIR/tests/e2e/fixtures/netecho.rs" -o "$D/netecho"
"$ROOT_DIR/installer/make-busybox-image.sh" "$D/busybox.tar" >/dev/null

# echo_container PORT: container srv with the echo server on 7000, published on PORT.
echo_container() {
    vmrun rm -f srv >/dev/null 2>&1 || true
    vmrun run -d --name srv -p "127.0.0.1:$1:7000" busybox sh -c \
        'until [ -x /bin/netecho ]; do sleep 0.1; done; exec netecho tcp 7000' >/dev/null
    vmrun exec -i srv sh -c 'cat > /bin/n.part && chmod 755 /bin/n.part && mv /bin/n.part /bin/netecho' <"$D/netecho"
    for _ in $(seq 300); do
        vmrun logs srv 2>/dev/null | grep -q listening && return
        sleep 0.1
    done
    die "the echo server did not start"
}

# 1. native
start_daemon
vmrun load -i "$D/busybox.tar" >/dev/null
P1=$(free_port)
echo_container "$P1"
IP=$(vmrun inspect -f '{{.NetworkSettings.IPAddress}}' srv)
P2=$(free_port)
socat "TCP-LISTEN:$P2,bind=127.0.0.1,fork,reuseaddr" "TCP:$IP:7000" &
SOCAT=$!
for _ in $(seq 50); do "$D/netecho" connrate "127.0.0.1:$P2" 1 >/dev/null 2>&1 && break; sleep 0.1; done
CONNS=1000
v_tp=$(figure throughput "127.0.0.1:$P1" "$MIB")
s_tp=$(figure throughput "127.0.0.1:$P2" "$MIB")
v_cr=$(figure connrate "127.0.0.1:$P1" "$CONNS")
s_cr=$(figure connrate "127.0.0.1:$P2" "$CONNS")
echo "published port, native container, medians of $RUNS (target: ratio >= 1.0):"
echo "  throughput, $MIB MiB echoed:   vmrun $v_tp MiB/s, socat $s_tp MiB/s  -> $(ratio "$v_tp" "$s_tp")x"
echo "  connections, $CONNS in a row:  vmrun $v_cr/s, socat $s_cr/s  -> $(ratio "$v_cr" "$s_cr")x"

# 2. shared VM
vmrun rm -f srv >/dev/null
if ! status=$(vmrun vm status 2>&1); then
    echo "no VM backend here: $status"
    exit 0
fi
start_daemon --mode vm --vm-memory 512 --vm-disk-size 4
vmrun vm start >/dev/null
status=$(vmrun vm status)
backend=$(awk '/^Backend:/ {print $2}' <<<"$status")
accel=$(awk '/^Accelerator:/ {print $2}' <<<"$status")
P3=$(free_port)
echo_container "$P3"
[ "$accel" = tcg ] && VM_MIB=$((MIB / 4)) || VM_MIB=$MIB
VM_CONNS=$([ "$accel" = tcg ] && echo 200 || echo "$CONNS")
vm_tp=$(figure throughput "127.0.0.1:$P3" "$VM_MIB")
vm_cr=$(figure connrate "127.0.0.1:$P3" "$VM_CONNS")
echo "published port, container in the shared VM ($backend, accelerator $accel$( [ "$accel" = tcg ] && echo ': emulated, regression numbers only')), medians of $RUNS:"
echo "  throughput, $VM_MIB MiB echoed:   $vm_tp MiB/s  ($(ratio "$vm_tp" "$s_tp")x socat to a native container)"
echo "  connections, $VM_CONNS in a row:  $vm_cr/s  ($(ratio "$vm_cr" "$s_cr")x socat to a native container)"
vmrun rm -f srv >/dev/null
vmrun vm stop >/dev/null
